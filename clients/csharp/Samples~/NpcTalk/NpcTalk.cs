// npc_talk: one turn with an NPC through the npcvoice C# client, driven the way a game drives it (the
// console twin of clients/cpp/sample/npc_talk.cpp, with the same output).
//
// The player types a line or speaks a WAV (streamed in real time from a thread of its own, as a capture
// callback would); the main thread plays the part of the game's main thread: it takes events from the
// conversation, plays the reply through a ReplyPlayer pulled in real time as an audio device would, reports
// the playback position to the gateway (what a barge-in keeps), and at the end writes the reply's audio and
// viseme frames and prints the latency breakdown. Exit status: 0 done, 1 the gateway failed or timed out,
// 2 bad arguments or input.
using System;
using System.Diagnostics;
using System.Globalization;
using System.Threading;

namespace NpcVoice.Samples
{
    internal static class NpcTalk
    {
        private static readonly TimeSpan Chunk = TimeSpan.FromMilliseconds(100);  // microphone pieces, reports

        private static int Main(string[] args)
        {
            Thread.CurrentThread.CurrentCulture = CultureInfo.InvariantCulture;
            string error;
            Options options = Options.Parse(args, out error);
            if (error != "")
            {
                Console.Error.Write("npc_talk: " + error + "\n" + Options.Usage);
                return 2;
            }
            if (options.Help)
            {
                Console.Write(Options.Usage);
                return 0;
            }
            short[] voice = null;
            int voiceRate = 0;
            if (options.Wav != "")
            {
                try { voice = ReplyFiles.ReadWav(options.Wav, out voiceRate); }
                catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
                {
                    return Fail(e.Message, 2);
                }
            }
            var settings = new ConversationOptions
            {
                Url = options.Url, ApiKey = options.ApiKey, ApiKeyInFirstMessage = options.KeyInFirstMessage,
                NpcId = options.Npc, PlayerId = options.Player, VoiceReply = !options.TextOnly,
                InputSampleRate = voiceRate, FrameRate = options.FrameRate, Seed = options.Seed,
                Context = options.Context, SceneNpcIds = options.Scene,
            };
            var clock = Stopwatch.StartNew();
            TimeSpan deadline = TimeSpan.FromSeconds(options.TimeoutSeconds);
            using (var conversation = new Conversation(settings))
            {
                if (options.To != "") conversation.Address(options.To);
                foreach (var pair in options.Events) conversation.SendEvent(pair.Key, pair.Value);
                Thread microphone = null;
                var stopMicrophone = new ManualResetEventSlim();
                if (voice != null)
                {
                    microphone = new Thread(() => Speak(conversation, voice, voiceRate, !options.Fast, stopMicrophone));
                    microphone.Start();
                }
                else if (options.Text != "") conversation.SendText(options.Text);
                else if (options.Speak != "") conversation.AskToSpeak(options.Speak);
                // else: the reply the NPC's trigger for the events makes
                var reply = new Reply();
                var playback = new Playback();
                bool ok = Converse(conversation, options, clock, deadline, ref reply, playback);
                stopMicrophone.Set();
                if (microphone != null) microphone.Join();
                if (!ok || !Close(conversation, clock, deadline)) return 1;
                PrintReply(reply, options, playback);
                if (options.TextOnly) return 0;
                try
                {
                    ReplyFiles.WriteWav(options.OutWav, reply.Samples, reply.SampleRate);
                    ReplyFiles.WriteVisemes(options.OutVisemes, reply);
                }
                catch (Exception e) when (e is System.IO.IOException || e is UnauthorizedAccessException)
                {
                    return Fail(e.Message, 1);
                }
                return 0;
            }
        }

        /// <summary>The player's microphone: the WAV in 100 ms pieces, each sent when it would have been
        /// captured, then push-to-talk released.</summary>
        private static void Speak(Conversation conversation, short[] samples, int rate, bool realtime, ManualResetEventSlim stop)
        {
            int step = rate / 10;
            var clock = Stopwatch.StartNew();
            TimeSpan due = TimeSpan.Zero;
            for (int at = 0; at < samples.Length; at += step)
            {
                if (realtime)
                {
                    due += Chunk;
                    TimeSpan wait = due - clock.Elapsed;
                    if (wait > TimeSpan.Zero && stop.Wait(wait)) return;
                }
                if (stop.IsSet || !conversation.SendAudio(samples, at, Math.Min(step, samples.Length - at))) return;
            }
            conversation.EndOfSpeech();
        }

        /// <summary>The game's audio device: it pulls the reply from a ReplyPlayer in real time, and the
        /// position is reported every 100 ms while a reply plays (at once when asked).</summary>
        private sealed class Playback
        {
            public readonly ReplyPlayer Player = new ReplyPlayer();
            private readonly Stopwatch device = new Stopwatch();
            private long pulled;  // samples the device has asked for since the turn began
            private int deviceTurn = -1;
            private TimeSpan nextReport;
            public int Reports;
            public long Last;

            public void On(ConversationEvent evt) => Player.Add(evt);

            /// <summary>Plays up to now: what the device would have pulled since the turn's audio started.</summary>
            public void Play()
            {
                int turn = Player.TurnIndex, rate = Player.SampleRate;
                if (turn < 0 || rate == 0) return;
                if (turn != deviceTurn)
                {
                    deviceTurn = turn;
                    pulled = 0;
                    device.Restart();
                }
                long due = (long)(device.Elapsed.TotalSeconds * rate) - pulled;
                if (due <= 0) return;
                var buffer = new float[due];
                Player.Read(buffer, 0, buffer.Length);
                pulled += due;
            }

            public double PlayedSeconds => Player.SampleRate > 0 ? (double)Player.PlayedSamples / Player.SampleRate : 0;

            public void Report(Conversation conversation, TimeSpan now, bool nowPlease = false)
            {
                if (Player.TurnIndex < 0 || (!nowPlease && now < nextReport)) return;
                Last = Player.PlayedSamples;
                conversation.SendPlayback(Player.TurnIndex, Last);
                Reports++;
                nextReport = now + Chunk;
            }
        }

        /// <summary>A refused turn (the NPC busy): its line is sent again once the gateway's retry_after has
        /// passed, as a game would, a few times at most. A spoken line goes again as the text that was heard.</summary>
        private sealed class Retry
        {
            private const int MaxTries = 3;
            private int tries;
            private string line = "";
            private TimeSpan? due;

            public bool Schedule(TurnRefused refused, Options options, TimeSpan now)
            {
                if (tries >= MaxTries || (refused.PlayerText == "" && options.Speak == "")) return false;
                tries++;
                line = refused.PlayerText;
                due = now + TimeSpan.FromSeconds(refused.RetryAfterSeconds);
                return true;
            }

            public void SendWhenDue(Conversation conversation, Options options, TimeSpan now)
            {
                if (due == null || now < due.Value) return;
                due = null;
                Console.WriteLine("retry: " + (line == "" ? options.Speak : line));
                if (line == "") conversation.AskToSpeak(options.Speak);
                else conversation.SendText(line);
            }
        }

        /// <summary>The game loop of one exchange: events in, playback positions out, and the barge-in when
        /// asked for. Leaves in <paramref name="reply"/> the last turn's (the barge-in's line, if it cut the first).</summary>
        private static bool Converse(Conversation conversation, Options options, Stopwatch clock, TimeSpan deadline,
                                     ref Reply reply, Playback playback)
        {
            bool bargedIn = options.InterruptWith == "";
            bool typed = false;  // the barge-in line was sent in this exchange
            Reply sent = null;  // a reply all sent and still playing, which the barge-in may yet cut
            var retry = new Retry();
            while (clock.Elapsed < deadline)
            {
                ConversationEvent evt = conversation.Wait(TimeSpan.FromMilliseconds(20));
                TimeSpan now = clock.Elapsed;
                playback.Play();
                playback.Report(conversation, now);
                retry.SendWhenDue(conversation, options, now);
                if (!bargedIn && playback.Player.TurnIndex >= 0 && playback.PlayedSeconds >= options.InterruptAfterSeconds)
                {
                    playback.Report(conversation, now, true);  // so what was heard is exactly where it stopped
                    Console.WriteLine("barge-in: typed after " + playback.Last + " samples played");
                    conversation.SendText(options.InterruptWith);
                    bargedIn = typed = true;
                }
                if (sent != null && !bargedIn && playback.Player.Pending == 0)
                {
                    Console.WriteLine("barge-in: none, the reply ended first");
                    reply = sent;
                    return true;
                }
                if (evt == null) continue;
                Print(evt);
                if (Ended(evt)) return false;
                playback.On(evt);
                if (!reply.Add(evt)) continue;
                if (reply.Refused != null)
                {
                    if (!retry.Schedule(reply.Refused, options, now)) return Fail("the NPC stayed busy", false);
                    reply = new Reply();
                    continue;
                }
                if (!bargedIn && !reply.End.Interrupted && playback.Player.Pending > 0)
                {
                    // All sent, still playing: the player can still talk over it (the gateway's Interruption
                    // then comes after its TurnEnd, and memory keeps what was heard).
                    Console.WriteLine("barge-in: waiting, the reply was all sent and still plays");
                    sent = reply;
                    reply = new Reply();
                    continue;
                }
                if (!bargedIn) Console.WriteLine("barge-in: none, the reply ended first");
                if (typed && !reply.End.Interrupted && reply.PlayerText != options.InterruptWith)
                {
                    // Typed over a reply whose TurnEnd was still on its way (a short reply, all of it sent):
                    // its Interruption and the barge-in line's own reply follow.
                    reply = new Reply();
                    continue;
                }
                if (!reply.End.Interrupted) return true;
                Console.WriteLine("turn " + reply.End.TurnIndex + " ended " +
                                  (reply.End.Continued ? "unsaid: the player went on with the line" : "interrupted"));
                reply = new Reply();
            }
            return Fail("no reply in time", false);
        }

        private static void Print(ConversationEvent evt)
        {
            if (evt is Started started)
            {
                Console.WriteLine("started: " + started.DisplayName + " (npc " + started.NpcId + ", remembers " + started.RememberedTurns + " turns)");
                Console.WriteLine("greeting: " + started.Greeting);
            }
            else if (evt is Transcript heard && heard.IsFinal) Console.WriteLine("transcript: " + heard.Text);
            else if (evt is Emotion emotion) Console.WriteLine("emotion: " + emotion.Name + " " + emotion.Intensity.ToString("F2"));
            else if (evt is NpcAction action)
            {
                var line = "action: " + action.Name;
                foreach (var pair in action.Parameters) line += " " + pair.Key + "=" + pair.Value;
                Console.WriteLine(line);
            }
            else if (evt is Interruption cut)
                Console.WriteLine("interrupted: turn " + cut.TurnIndex + " at " + cut.HeardSamples + " samples, heard \"" + cut.HeardText + "\"");
            else if (evt is TurnRefused refused)
                Console.WriteLine("refused: turn " + refused.TurnIndex + " (" + refused.Reason + "), retry after " + refused.RetryAfterSeconds.ToString("F1") + " s");
        }

        /// <summary>Whether the conversation ended here, saying why on stderr (an end with OK before the
        /// reply is a failure too).</summary>
        private static bool Ended(ConversationEvent evt)
        {
            var closed = evt as Closed;
            if (closed != null) Fail("the conversation ended: gRPC status " + closed.Code + ": " + closed.Message, false);
            return closed != null;
        }

        private static void PrintReply(Reply reply, Options options, Playback playback)
        {
            const string notWritten = "not written (text only)";
            Console.WriteLine("player: " + reply.PlayerText);
            Console.WriteLine("npc: " + reply.End.NpcId);
            if (reply.End.Cue != "") Console.WriteLine("cue: " + reply.End.Cue);
            Console.WriteLine("reply: " + reply.Text);
            Console.WriteLine("audio: " + reply.Seconds.ToString("F3") + " s at " + reply.SampleRate + " Hz in " + reply.AudioChunks +
                              " chunks -> " + (options.TextOnly ? notWritten : options.OutWav));
            Console.WriteLine("visemes: " + reply.Visemes.Count + " frames -> " + (options.TextOnly ? notWritten : options.OutVisemes));
            Console.WriteLine("playback: " + playback.Reports + " positions reported, the last " + playback.Last +
                              " samples of turn " + playback.Player.TurnIndex);
            Latency l = reply.End.Latency;
            Console.WriteLine("latency: transcript " + l.TranscriptSeconds.ToString("F3") + " s, first token " + l.FirstTokenSeconds.ToString("F3") +
                              " s, first audio " + l.FirstAudioSeconds.ToString("F3") + " s, total " + l.TotalSeconds.ToString("F3") + " s");
        }

        /// <summary>Input closed: the gateway ends the conversation once the turn is stored; anything but OK is a failure.</summary>
        private static bool Close(Conversation conversation, Stopwatch clock, TimeSpan deadline)
        {
            conversation.FinishInput();
            while (clock.Elapsed < deadline)
            {
                ConversationEvent evt = conversation.Wait(TimeSpan.FromMilliseconds(100));
                if (evt is Closed closed) return closed.Ok || !Ended(evt);
            }
            return Fail("the conversation did not close in time", false);
        }

        private static bool Fail(string message, bool result)
        {
            Console.Error.WriteLine("npc_talk: " + message);
            return result;
        }

        private static int Fail(string message, int status)
        {
            Console.Error.WriteLine("npc_talk: " + message);
            return status;
        }
    }
}
