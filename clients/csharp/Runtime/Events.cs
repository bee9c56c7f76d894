// What the conversation gateway sends during a conversation, as plain C# values: they mirror
// npc.conversation.v1.ConverseResponse (protos/npc/conversation/v1/conversation.proto) and name no
// protobuf type. Every event is a ConversationEvent; the game switches on its type:
//
//   switch (evt) { case ReplyText text: ...; case ReplyAudio audio: ...; case Closed closed: ...; }
using System.Collections.Generic;

namespace NpcVoice
{
    /// <summary>One thing the gateway said; <see cref="TurnIndex"/> is the turn it belongs to (-1: none).</summary>
    public abstract class ConversationEvent
    {
        public int TurnIndex { get; internal set; } = -1;
    }

    /// <summary>The gateway accepted the config: who the NPC is and how much it remembers of this player.</summary>
    public sealed class Started : ConversationEvent
    {
        public string NpcId = "";
        public string DisplayName = "";
        public string Greeting = "";
        public int RememberedTurns;
        /// <summary>A scene's NPCs (the first as above); empty for one NPC.</summary>
        public SceneMember[] Scene = new SceneMember[0];
    }

    /// <summary>One NPC of a scene, and how much it remembers of this player.</summary>
    public sealed class SceneMember
    {
        public string NpcId = "";
        public string DisplayName = "";
        public string Greeting = "";
        public int RememberedTurns;
    }

    /// <summary>The scene after a change: an NPC joined or left, the addressed NPC or earshot changed.</summary>
    public sealed class SceneChanged : ConversationEvent
    {
        public SceneMember[] Members = new SceneMember[0];
        public string AddressedNpcId = "";
        public string[] OutOfEarshotNpcIds = new string[0];
    }

    /// <summary>What the speech service heard the player say (interim ones only when asked for).</summary>
    public sealed class Transcript : ConversationEvent
    {
        public string Text = "";
        public bool IsFinal;
    }

    /// <summary>The player's voice was detected, before any transcript: stop the NPC audio still playing.
    /// TurnIndex is the turn this speech will start.</summary>
    public sealed class PlayerSpeaking : ConversationEvent { }

    /// <summary>Text to append to the reply shown so far.</summary>
    public sealed class ReplyText : ConversationEvent
    {
        public string Delta = "";
        /// <summary>The NPC speaking (every event of a turn names it; in a scene, one of several).</summary>
        public string NpcId = "";
    }

    /// <summary>One frame of lip sync; TimeSeconds is on the turn's audio timeline (sample / sample rate).</summary>
    public sealed class VisemeFrame
    {
        /// <summary>The 15 Meta/Oculus OVR visemes, in the order of <see cref="Ovr"/>.</summary>
        public static readonly string[] OvrNames =
        {
            "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
        };

        /// <summary>The ARKit mouth blendshapes, in the order of <see cref="Arkit"/> (ARKit's own names).</summary>
        public static readonly string[] ArkitNames =
        {
            "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight",
            "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthPressLeft",
            "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
        };

        public int Index;
        public double TimeSeconds;
        /// <summary>Weights in [0, 1], in <see cref="OvrNames"/> order; all 0 if not requested.</summary>
        public readonly float[] Ovr = new float[15];
        /// <summary>Weights in [0, 1], in <see cref="ArkitNames"/> order; all 0 if not requested.</summary>
        public readonly float[] Arkit = new float[16];
    }

    /// <summary>One sentence of the reply's audio (PCM16 mono) with the viseme frames for exactly its samples.</summary>
    public sealed class ReplyAudio : ConversationEvent
    {
        public int SentenceIndex;
        public int SampleRate;
        /// <summary>Where it starts in the turn's audio, in samples.</summary>
        public long StartSample;
        public short[] Samples = new short[0];
        public string Text = "";
        public VisemeFrame[] Visemes = new VisemeFrame[0];
        /// <summary>The NPC speaking (every event of a turn names it; in a scene, one of several).</summary>
        public string NpcId = "";
    }

    public sealed class Emotion : ConversationEvent
    {
        public string Name = "";
        public float Intensity;
        /// <summary>The NPC speaking (every event of a turn names it; in a scene, one of several).</summary>
        public string NpcId = "";
    }

    /// <summary>Something the NPC does (an action tag of its persona): open_shop, give_item, ...</summary>
    public sealed class NpcAction : ConversationEvent
    {
        public string Name = "";
        public readonly Dictionary<string, string> Parameters = new Dictionary<string, string>();
        /// <summary>The NPC speaking (every event of a turn names it; in a scene, one of several).</summary>
        public string NpcId = "";
    }

    /// <summary>The player talked (or typed) over the reply: it stopped, and memory keeps only what was heard.</summary>
    public sealed class Interruption : ConversationEvent
    {
        public string HeardText = "";
        public long HeardSamples;
        /// <summary>The NPC speaking (every event of a turn names it; in a scene, one of several).</summary>
        public string NpcId = "";
    }

    /// <summary>Seconds from the end of the player's speech (or the typed line) to each stage of the reply.</summary>
    public sealed class Latency
    {
        public double TranscriptSeconds;
        public double FirstTokenSeconds;
        public double FirstAudioSeconds;
        public double TotalSeconds;
    }

    public sealed class TurnEnd : ConversationEvent
    {
        public string PlayerText = "";
        public string ReplyText = "";
        public bool Interrupted;
        public Latency Latency = new Latency();
        /// <summary>When the NPC spoke first: what prompted it (PlayerText is then empty).</summary>
        public string Cue = "";
        /// <summary>The player went on talking before any of the reply reached them: PlayerText was only the
        /// start of their line, which the next turn holds whole; nothing of this turn was said or remembered.</summary>
        public bool Continued;
        /// <summary>Which model answered: empty for the NPC's own, else the larger model it escalated to.</summary>
        public string AnsweredBy = "";
        /// <summary>The NPC speaking (every event of a turn names it; in a scene, one of several).</summary>
        public string NpcId = "";
        /// <summary>In a scene, the NPC this line was said to (an exchange); empty: the player.</summary>
        public string ToNpcId = "";
    }

    /// <summary>The gateway had no room for the turn now (the dialogue service at its limit): nothing of it
    /// was said or remembered, and the conversation goes on. Send the line again after RetryAfterSeconds (a
    /// spoken line too: PlayerText is what was heard, and can be sent as text).</summary>
    public sealed class TurnRefused : ConversationEvent
    {
        /// <summary>Empty when the NPC was to speak first.</summary>
        public string PlayerText = "";
        /// <summary>In words, for logs (not for the player).</summary>
        public string Reason = "";
        public double RetryAfterSeconds;
        /// <summary>The NPC that was to answer.</summary>
        public string NpcId = "";
    }

    /// <summary>The conversation is over; the last event of every conversation.</summary>
    public sealed class Closed : ConversationEvent
    {
        /// <summary>The gRPC status code of the gateway's answer (0 OK; 16 a wrong API key; 5 an unknown
        /// NPC; 14 the suite could not be reached; 1 cancelled here); see <see cref="StatusCode"/>.</summary>
        public int Code;
        public string Message = "";
        /// <summary>The WebSocket close code the edge sent (1000, 4000 + Code, ...); 0 if none arrived.</summary>
        public int CloseStatus;
        public bool Ok => Code == StatusCode.Ok;
    }

    /// <summary>The gRPC status codes a <see cref="Closed"/> carries most often.</summary>
    public static class StatusCode
    {
        public const int Ok = 0, Cancelled = 1, InvalidArgument = 3, NotFound = 5, PermissionDenied = 7;
        public const int ResourceExhausted = 8, Internal = 13, Unavailable = 14, Unauthenticated = 16;
    }
}
