// One conversation with an NPC: the gateway's Converse stream through the suite's WebSocket edge
// (/v1/converse), with System.Net.WebSockets.ClientWebSocket only: no gRPC, no NuGet, so it runs in Unity's
// Mono and IL2CPP builds.
//
//   var conversation = new Conversation(new ConversationOptions {
//       Url = "ws://127.0.0.1:8050/v1/converse", NpcId = "blacksmith_hilda", PlayerId = "player-1" });
//   conversation.SendText("Can you repair my sword?");
//   // once a frame, on the game's main thread:
//   while (conversation.TryPoll(out ConversationEvent evt)) { switch (evt) { ... } }
//
// Threads: the connection runs on the thread pool (one task reading the socket, one writing it). No game
// code runs there: events wait in a queue until TryPoll or Wait takes them, on whatever thread calls those
// (the main thread), or are posted to a SynchronizationContext given to DispatchTo (Unity's main thread's).
// The Send* methods may be called from any thread (a microphone callback, the main thread); they queue the
// message and return at once, and the writing task sends them in the order they were queued.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace NpcVoice
{
    public sealed class ConversationOptions
    {
        /// <summary>The suite's WebSocket edge (wss:// with TLS).</summary>
        public string Url = "ws://127.0.0.1:8050/v1/converse";
        /// <summary>One of the suite's API keys; empty when it has none.</summary>
        public string ApiKey = "";
        /// <summary>Send the key as the first message instead of a header, as a browser (a WebGL build) must.</summary>
        public bool ApiKeyInFirstMessage;
        public string NpcId = "";
        public string PlayerId = "";
        /// <summary>Optional: conversations of one play session, for the logs.</summary>
        public string SessionId = "";
        /// <summary>How the NPC may address the player; optional.</summary>
        public string PlayerName = "";
        /// <summary>false: reply text and events only, no audio or visemes.</summary>
        public bool VoiceReply = true;
        /// <summary>The microphone's rate (PCM16 mono); 0 when the player only types.</summary>
        public int InputSampleRate;
        /// <summary>The reply audio's rate; 0 = the voice's own.</summary>
        public int OutputSampleRate;
        /// <summary>Viseme frames per second: 24, 30 or 60; 0 = the persona's.</summary>
        public int FrameRate;
        public bool InterimTranscripts;
        /// <summary>The same lines and memory give the same replies.</summary>
        public long? Seed;
        /// <summary>What the game knows as the conversation starts: location, time_of_day, weather, quest
        /// states (lower_snake_case keys). SendContext updates it later.</summary>
        public Dictionary<string, string> Context = new Dictionary<string, string>();
        /// <summary>A scene: several NPCs in one conversation (NpcId empty, or one of them: the one the player
        /// talks to first). Each line goes to one NPC (Address, else the one it calls by name, else the last who
        /// spoke to the player); events name who speaks (NpcId); the NPCs in earshot remember what they heard.</summary>
        public List<string> SceneNpcIds = new List<string>();
        /// <summary>How long connecting may take before the conversation closes as Unavailable.</summary>
        public TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    }

    public sealed class Conversation : IDisposable
    {
        private const int MaxResponseBytes = 16 * 1024 * 1024;

        private readonly ConversationOptions options;
        private readonly ClientWebSocket socket = new ClientWebSocket();
        private readonly CancellationTokenSource cancel = new CancellationTokenSource();
        private readonly ConcurrentQueue<byte[]> outgoing = new ConcurrentQueue<byte[]>();
        private readonly SemaphoreSlim outgoingReady = new SemaphoreSlim(0);
        private readonly ConcurrentQueue<ConversationEvent> events = new ConcurrentQueue<ConversationEvent>();
        private readonly SemaphoreSlim eventsReady = new SemaphoreSlim(0);
        private readonly object dispatchLock = new object();
        private SynchronizationContext dispatchContext;
        private Action<ConversationEvent> dispatchHandler;
        private volatile bool inputFinished;
        private volatile bool closed;
        private readonly Task connection;

        /// <summary>Connects and sends the config in the background; does not wait for the gateway (the first
        /// event is Started, or Closed with the reason: an unknown NPC, a wrong key, an unreachable suite).</summary>
        public Conversation(ConversationOptions options)
        {
            if (options == null) throw new ArgumentNullException(nameof(options));
            if (string.IsNullOrEmpty(options.NpcId) && (options.SceneNpcIds == null || options.SceneNpcIds.Count == 0))
                throw new ArgumentException("NpcId (or SceneNpcIds) is required", nameof(options));
            if (string.IsNullOrEmpty(options.PlayerId)) throw new ArgumentException("PlayerId is required", nameof(options));
            this.options = options;
            Queue(Messages.Config(options));  // first, before anything the game queues meanwhile
            connection = Task.Run(RunAsync);
        }

        /// <summary>A typed line starts a turn.</summary>
        public bool SendText(string line) => Queue(Messages.Text(line ?? ""));

        /// <summary>Microphone audio as captured, PCM16 mono at InputSampleRate.</summary>
        public bool SendAudio(short[] samples, int offset, int count) => Queue(Messages.Audio(samples, offset, count));

        /// <summary>Microphone audio as Unity's Microphone gives it: floats in [-1, 1], mono.</summary>
        public bool SendAudio(float[] samples, int offset, int count)
        {
            var pcm = new short[count];
            for (int i = 0; i < count; i++)
                pcm[i] = (short)Math.Round(Math.Max(-1f, Math.Min(1f, samples[offset + i])) * 32767);
            return SendAudio(pcm, 0, count);
        }

        /// <summary>Push-to-talk released: the player's speech ends here.</summary>
        public bool EndOfSpeech() => Queue(Messages.EndOfSpeech());

        /// <summary>How many samples of turn <paramref name="turnIndex"/>'s reply the game has played: on a
        /// barge-in, memory keeps exactly the words heard up to there. Send it every few frames while a reply plays.</summary>
        public bool SendPlayback(int turnIndex, long playedSamples) => Queue(Messages.Playback(turnIndex, playedSamples));

        /// <summary>World context now: replaces these keys' values (an empty value removes a key).</summary>
        public bool SendContext(IDictionary<string, string> values) => Queue(Messages.Context(values));

        /// <summary>Something that happened in the game: the NPC remembers it; its persona's trigger for the
        /// event may make it speak (a turn with an empty PlayerText and a Cue). In a scene, npcId is the NPC it
        /// happened to (empty: the one the player talks to).</summary>
        public bool SendEvent(string name, string description, IDictionary<string, string> parameters = null,
                              string npcId = "") =>
            Queue(Messages.Event(name, description, parameters, npcId));

        /// <summary>The NPC speaks first, prompted by this instruction (a scripted scene, a greeting). In a
        /// scene, npcId speaks (empty: the one the player talks to), and with toNpcId says it to that NPC, who
        /// answers: an exchange of <paramref name="lines"/> lines taking turns (0: 2), one voice at a time; a
        /// player line interrupts it.</summary>
        public bool AskToSpeak(string instruction, string npcId = "", string toNpcId = "", int lines = 0) =>
            Queue(Messages.Speak(instruction, npcId, toNpcId, lines));

        /// <summary>Scenes: the NPC the player talks to now (gaze, a UI choice); "" lets names decide again.</summary>
        public bool Address(string npcId) => Queue(Messages.Scene(null, null, npcId ?? "", null));

        /// <summary>Scenes: the NPCs that do not hear the player (nor the replies) from now on; the others do.</summary>
        public bool SetOutOfEarshot(params string[] npcIds) => Queue(Messages.Scene(null, null, null, npcIds));

        /// <summary>NPCs walk in (a one-NPC conversation becomes a scene).</summary>
        public bool Join(params string[] npcIds) => Queue(Messages.Scene(npcIds, null, null, null));

        /// <summary>NPCs leave (one speaking stops, as heard so far).</summary>
        public bool Leave(params string[] npcIds) => Queue(Messages.Scene(null, npcIds, null, null));

        /// <summary>No more input after what is queued: the gateway finishes the turn in progress, then ends the
        /// conversation (Closed with Ok).</summary>
        public void FinishInput()
        {
            if (Queue(Messages.EndOfInput)) inputFinished = true;
        }

        /// <summary>Stops at once; the conversation ends with Closed (Cancelled).</summary>
        public void Cancel() => cancel.Cancel();

        /// <summary>The next event, or false if none has arrived (never blocks).</summary>
        public bool TryPoll(out ConversationEvent evt)
        {
            evt = null;
            return eventsReady.Wait(0) && events.TryDequeue(out evt);
        }

        /// <summary>The next event, or null if none arrived within <paramref name="timeout"/>.</summary>
        public ConversationEvent Wait(TimeSpan timeout)
        {
            ConversationEvent evt;
            return eventsReady.Wait(timeout) && events.TryDequeue(out evt) ? evt : null;
        }

        /// <summary>From now on each event is posted to <paramref name="context"/> (Unity's main thread:
        /// SynchronizationContext.Current in Awake) and handed to <paramref name="handler"/> there, instead of
        /// waiting for TryPoll; events already waiting go first.</summary>
        public void DispatchTo(SynchronizationContext context, Action<ConversationEvent> handler)
        {
            if (context == null) throw new ArgumentNullException(nameof(context));
            if (handler == null) throw new ArgumentNullException(nameof(handler));
            lock (dispatchLock)
            {
                ConversationEvent waiting;
                while (TryPoll(out waiting)) Post(context, handler, waiting);
                dispatchContext = context;
                dispatchHandler = handler;
            }
        }

        /// <summary>Cancels the conversation if it is still open and waits briefly for its tasks.</summary>
        public void Dispose()
        {
            Cancel();
            try { connection.Wait(TimeSpan.FromSeconds(2)); }
            catch (AggregateException) { }
            socket.Dispose();
        }

        private bool Queue(byte[] frame)
        {
            if (inputFinished || closed) return false;
            outgoing.Enqueue(frame);
            outgoingReady.Release();
            return true;
        }

        private void Deliver(ConversationEvent evt)
        {
            lock (dispatchLock)
            {
                if (dispatchContext != null)
                {
                    Post(dispatchContext, dispatchHandler, evt);
                    return;
                }
                events.Enqueue(evt);
                eventsReady.Release();
            }
        }

        private static void Post(SynchronizationContext context, Action<ConversationEvent> handler, ConversationEvent evt) =>
            context.Post(_ => handler(evt), null);

        private async Task RunAsync()
        {
            Closed end;
            try
            {
                end = await ConverseAsync();
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                end = new Closed { Code = StatusCode.Cancelled, Message = "cancelled" };
            }
            catch (WebSocketException error)
            {
                end = new Closed { Code = StatusCode.Unavailable, Message = Describe(error) };
            }
            catch (Exception error)  // a frame this client cannot read, or a bug: say so rather than hang
            {
                end = new Closed { Code = StatusCode.Internal, Message = error.GetType().Name + ": " + error.Message };
            }
            closed = true;
            Deliver(end);
        }

        private async Task<Closed> ConverseAsync()
        {
            socket.Options.AddSubProtocol(Messages.Subprotocol);
            bool keyInHeader = !string.IsNullOrEmpty(options.ApiKey) && !options.ApiKeyInFirstMessage;
            if (keyInHeader) socket.Options.SetRequestHeader("Authorization", "Bearer " + options.ApiKey);
            using (var connecting = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token))
            {
                connecting.CancelAfter(options.ConnectTimeout);
                try
                {
                    await socket.ConnectAsync(new Uri(options.Url), connecting.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    return new Closed { Code = StatusCode.Unavailable, Message = "no answer from " + options.Url + " in " + options.ConnectTimeout.TotalSeconds + " s" };
                }
            }
            if (!string.IsNullOrEmpty(options.ApiKey) && options.ApiKeyInFirstMessage)
            {
                byte[] key = Encoding.UTF8.GetBytes("{\"api_key\": \"" + JsonEscape(options.ApiKey) + "\"}");
                await socket.SendAsync(new ArraySegment<byte>(key), WebSocketMessageType.Text, true, cancel.Token).ConfigureAwait(false);
            }
            using (var writing = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token))
            {
                Task writer = WriteAsync(writing.Token);
                Closed end = await ReadAsync().ConfigureAwait(false);
                writing.Cancel();
                try { await writer.ConfigureAwait(false); }
                catch (OperationCanceledException) { }
                catch (WebSocketException) { }
                return end;
            }
        }

        private async Task WriteAsync(CancellationToken stop)
        {
            while (true)
            {
                await outgoingReady.WaitAsync(stop).ConfigureAwait(false);
                byte[] frame;
                if (!outgoing.TryDequeue(out frame)) continue;
                await socket.SendAsync(new ArraySegment<byte>(frame), WebSocketMessageType.Binary, true, stop).ConfigureAwait(false);
                if (frame.Length == 0) return;  // the end of input went out: nothing more to send
            }
        }

        private async Task<Closed> ReadAsync()
        {
            var buffer = new byte[64 * 1024];
            var message = new MemoryStream();
            while (true)
            {
                WebSocketReceiveResult result = await socket.ReceiveAsync(new ArraySegment<byte>(buffer), cancel.Token).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    Closed end = FromClose((int)(result.CloseStatus ?? WebSocketCloseStatus.Empty), result.CloseStatusDescription);
                    try
                    {
                        using (var closing = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
                            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", closing.Token).ConfigureAwait(false);
                    }
                    catch (Exception) { }  // the edge has already gone: nothing left to say to it
                    return end;
                }
                message.Write(buffer, 0, result.Count);
                if (message.Length > MaxResponseBytes) throw new InvalidDataException("a response over " + MaxResponseBytes + " bytes");
                if (!result.EndOfMessage) continue;
                if (result.MessageType == WebSocketMessageType.Binary)
                {
                    ConversationEvent evt = Messages.Response(message.ToArray());
                    if (evt != null) Deliver(evt);
                }
                message.SetLength(0);
            }
        }

        /// <summary>The edge's close codes (docs/game-engines.md): 1000 done, 4000 + a gRPC status for the
        /// gateway's error, 1003/1007/1009/1011 the edge refused what this client sent or failed itself.</summary>
        internal static Closed FromClose(int status, string reason)
        {
            int code;
            if (status == 1000) code = StatusCode.Ok;
            else if (status >= 4000 && status <= 4016) code = status - 4000;
            else if (status == 1009) code = StatusCode.ResourceExhausted;
            else if (status == 1008) code = StatusCode.PermissionDenied;
            else if (status == 1001 || status == 1006) code = StatusCode.Unavailable;
            else code = StatusCode.Internal;  // 1003, 1007: a frame this client should not have sent; 1011
            string message = string.IsNullOrEmpty(reason) ? "the edge closed with " + status : reason;
            return new Closed { Code = code, Message = message, CloseStatus = status };
        }

        private string Describe(WebSocketException error)
        {
            // A refused upgrade (HTTP 403: an Origin not allowed) or a connection refused both land here.
            string inner = error.InnerException != null ? " (" + error.InnerException.Message + ")" : "";
            return "cannot talk to " + options.Url + ": " + error.Message + inner;
        }

        private static string JsonEscape(string text)
        {
            var escaped = new StringBuilder();
            foreach (char c in text)
            {
                if (c == '"' || c == '\\') escaped.Append('\\').Append(c);
                else if (c < ' ') escaped.Append("\\u").Append(((int)c).ToString("x4"));
                else escaped.Append(c);
            }
            return escaped.ToString();
        }
    }
}
