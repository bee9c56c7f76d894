// The conversation's messages on the wire: ConversationRequest builders and the ConverseResponse reader,
// by the field numbers of protos/npc/conversation/v1/conversation.proto (and audio.proto, face.proto).
// Field numbers never change in a published proto, so this stays compatible as the gateway grows; fields
// added later are skipped.
using System;
using System.Collections.Generic;
using NpcVoice.Wire;

namespace NpcVoice
{
    internal static class Messages
    {
        /// <summary>The edge's subprotocol for binary frames of serialized messages.</summary>
        public const string Subprotocol = "npcvoice.v1.proto";

        private const int ReplyModeText = 1, ReplyModeVoice = 2, Pcm16 = 1, Float32 = 2, FrameSetBoth = 3;

        // ConverseRequest's oneof
        private const int ConfigField = 1, AudioField = 2, TextField = 3, PlaybackField = 4, EndOfSpeechField = 5;
        private const int ContextField = 6, EventField = 7, SpeakField = 8, SceneField = 9;

        public static byte[] Config(ConversationOptions options)
        {
            var config = new Writer()
                .String(1, options.NpcId)
                .String(2, options.PlayerId)
                .String(3, options.SessionId)
                .String(4, options.PlayerName)
                .Int(5, options.VoiceReply ? ReplyModeVoice : ReplyModeText);
            if (options.InputSampleRate > 0)
                config.Message(6, AudioFormat(options.InputSampleRate));
            // The reply is always asked for as PCM16, which is what ReplyAudio.Samples holds.
            config.Message(7, AudioFormat(options.OutputSampleRate));
            config.Message(8, new Writer().Int(1, options.FrameRate).Int(2, FrameSetBoth));
            config.Bool(9, options.InterimTranscripts);
            if (options.Seed.HasValue) config.Varint(10, options.Seed.Value);
            config.Message(11, new Writer().Map(1, options.Context));
            config.Strings(12, options.SceneNpcIds);
            return new Writer().Message(ConfigField, config).ToArray();
        }

        public static byte[] Text(string line) =>
            new Writer().Bytes(TextField, System.Text.Encoding.UTF8.GetBytes(line)).ToArray();

        /// <summary>PCM16 little-endian, whatever the machine's byte order.</summary>
        public static byte[] Audio(short[] samples, int offset, int count)
        {
            var bytes = new byte[count * 2];
            for (int i = 0; i < count; i++)
            {
                ushort value = unchecked((ushort)samples[offset + i]);
                bytes[2 * i] = (byte)(value & 0xff);
                bytes[2 * i + 1] = (byte)(value >> 8);
            }
            return new Writer().Bytes(AudioField, bytes).ToArray();
        }

        public static byte[] Playback(int turnIndex, long playedSamples) =>
            new Writer().Message(PlaybackField, new Writer().Int(1, turnIndex).Int(2, playedSamples)).ToArray();

        public static byte[] EndOfSpeech() => new Writer().Message(EndOfSpeechField, new Writer()).ToArray();

        public static byte[] Context(IDictionary<string, string> values) =>
            new Writer().Message(ContextField, new Writer().Map(1, values)).ToArray();

        public static byte[] Event(string name, string description, IDictionary<string, string> parameters, string npcId) =>
            new Writer().Message(EventField, new Writer().String(1, name).String(2, description).Map(3, parameters)
                .String(4, npcId)).ToArray();

        public static byte[] Speak(string instruction, string npcId, string toNpcId, int lines) =>
            new Writer().Message(SpeakField, new Writer().String(1, instruction).String(2, npcId).String(3, toNpcId)
                .Int(4, lines)).ToArray();

        /// <summary>A SceneUpdate: null leaves that part unchanged.</summary>
        public static byte[] Scene(string[] join, string[] leave, string addressed, string[] outOfEarshot)
        {
            var update = new Writer().Strings(1, join).Strings(2, leave);
            if (addressed != null) update.SetString(3, addressed);
            if (outOfEarshot != null) update.Message(4, new Writer().Strings(1, outOfEarshot));
            return new Writer().Message(SceneField, update).ToArray();
        }

        /// <summary>An empty request: the edge's end of input (gRPC's half-close).</summary>
        public static readonly byte[] EndOfInput = new byte[0];

        private static Writer AudioFormat(int sampleRate) => new Writer().Int(1, Pcm16).Int(2, sampleRate);

        /// <summary>The event one ConverseResponse frame holds; null for a kind this client does not know.</summary>
        public static ConversationEvent Response(byte[] frame)
        {
            var response = new Reader(frame);
            ConversationEvent result = null;
            for (int field; (field = response.Next()) != 0;)
            {
                switch (field)
                {
                    case 1: result = Started(response.Message()); break;
                    case 2: result = Transcript(response.Message()); break;
                    case 3: result = ReplyText(response.Message()); break;
                    case 4: result = ReplyAudio(response.Message()); break;
                    case 5: result = Emotion(response.Message()); break;
                    case 6: result = Action(response.Message()); break;
                    case 7: result = Interruption(response.Message()); break;
                    case 8: result = TurnEnd(response.Message()); break;
                    case 9: result = Speaking(response.Message()); break;
                    case 10: result = Refused(response.Message()); break;
                    case 11: result = SceneChanged(response.Message()); break;
                    default: response.Skip(); break;
                }
            }
            return result;
        }

        private static Started Started(Reader m)
        {
            var e = new Started();
            var scene = new List<SceneMember>();
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.NpcId = m.String();
                else if (f == 2) e.DisplayName = m.String();
                else if (f == 3) e.Greeting = m.String();
                else if (f == 4) e.RememberedTurns = m.Int();
                else if (f == 5) scene.Add(Member(m.Message()));
                else m.Skip();
            }
            e.Scene = scene.ToArray();
            return e;
        }

        private static SceneMember Member(Reader m)
        {
            var member = new SceneMember();
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) member.NpcId = m.String();
                else if (f == 2) member.DisplayName = m.String();
                else if (f == 3) member.Greeting = m.String();
                else if (f == 4) member.RememberedTurns = m.Int();
                else m.Skip();
            }
            return member;
        }

        private static SceneChanged SceneChanged(Reader m)
        {
            var e = new SceneChanged();
            var members = new List<SceneMember>();
            var away = new List<string>();
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) members.Add(Member(m.Message()));
                else if (f == 2) e.AddressedNpcId = m.String();
                else if (f == 3) away.Add(m.String());
                else m.Skip();
            }
            e.Members = members.ToArray();
            e.OutOfEarshotNpcIds = away.ToArray();
            return e;
        }

        private static Transcript Transcript(Reader m)
        {
            var e = new Transcript { TurnIndex = 0 };
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else if (f == 2) e.Text = m.String();
                else if (f == 3) e.IsFinal = m.Bool();
                else m.Skip();
            }
            return e;
        }

        private static ReplyText ReplyText(Reader m)
        {
            var e = new ReplyText { TurnIndex = 0 };
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else if (f == 2) e.Delta = m.String();
                else if (f == 3) e.NpcId = m.String();
                else m.Skip();
            }
            return e;
        }

        private static ReplyAudio ReplyAudio(Reader m)
        {
            var e = new ReplyAudio { TurnIndex = 0 };
            byte[] audio = new byte[0];
            int encoding = Pcm16;
            var visemes = new List<VisemeFrame>();
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else if (f == 2) e.SentenceIndex = m.Int();
                else if (f == 3) audio = m.Bytes();
                else if (f == 4)
                {
                    Reader format = m.Message();
                    for (int g; (g = format.Next()) != 0;)
                    {
                        if (g == 1) encoding = format.Int();
                        else if (g == 2) e.SampleRate = format.Int();
                        else format.Skip();
                    }
                }
                else if (f == 5) e.StartSample = m.Long();
                else if (f == 7) e.Text = m.String();
                else if (f == 8) visemes.Add(Frame(m.Message()));
                else if (f == 10) e.NpcId = m.String();
                else m.Skip();
            }
            e.Samples = encoding == Float32 ? FromFloat32(audio) : FromPcm16(audio);
            e.Visemes = visemes.ToArray();
            return e;
        }

        private static VisemeFrame Frame(Reader m)
        {
            var frame = new VisemeFrame();
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) frame.Index = m.Int();
                else if (f == 2) frame.TimeSeconds = m.Double();
                else if (f == 3) Weights(m.Message(), frame.Ovr);
                else if (f == 4) Weights(m.Message(), frame.Arkit);
                else m.Skip();
            }
            return frame;
        }

        /// <summary>OvrVisemeWeights and ArkitMouthWeights: field n is weight n - 1.</summary>
        private static void Weights(Reader m, float[] into)
        {
            for (int f; (f = m.Next()) != 0;)
            {
                if (f <= into.Length) into[f - 1] = m.Float();
                else m.Skip();
            }
        }

        private static Emotion Emotion(Reader m)
        {
            var e = new Emotion { TurnIndex = 0 };
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else if (f == 2) e.Name = m.String();
                else if (f == 3) e.Intensity = m.Float();
                else if (f == 4) e.NpcId = m.String();
                else m.Skip();
            }
            return e;
        }

        private static NpcAction Action(Reader m)
        {
            var e = new NpcAction { TurnIndex = 0 };
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else if (f == 2) e.Name = m.String();
                else if (f == 3) m.MapEntry(e.Parameters);
                else if (f == 4) e.NpcId = m.String();
                else m.Skip();
            }
            return e;
        }

        private static Interruption Interruption(Reader m)
        {
            var e = new Interruption { TurnIndex = 0 };
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else if (f == 2) e.HeardText = m.String();
                else if (f == 3) e.HeardSamples = m.Long();
                else if (f == 4) e.NpcId = m.String();
                else m.Skip();
            }
            return e;
        }

        private static TurnEnd TurnEnd(Reader m)
        {
            var e = new TurnEnd { TurnIndex = 0 };
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else if (f == 2) e.PlayerText = m.String();
                else if (f == 3) e.ReplyText = m.String();
                else if (f == 4) e.Interrupted = m.Bool();
                else if (f == 5) e.Latency = Latency(m.Message());
                else if (f == 6) e.Cue = m.String();
                else if (f == 7) e.Continued = m.Bool();
                else if (f == 9) e.AnsweredBy = m.String();
                else if (f == 11) e.NpcId = m.String();
                else if (f == 12) e.ToNpcId = m.String();
                else m.Skip();
            }
            return e;
        }

        private static Latency Latency(Reader m)
        {
            var latency = new Latency();
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) latency.TranscriptSeconds = m.Double();
                else if (f == 2) latency.FirstTokenSeconds = m.Double();
                else if (f == 3) latency.FirstAudioSeconds = m.Double();
                else if (f == 4) latency.TotalSeconds = m.Double();
                else m.Skip();
            }
            return latency;
        }

        private static PlayerSpeaking Speaking(Reader m)
        {
            var e = new PlayerSpeaking { TurnIndex = 0 };
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else m.Skip();
            }
            return e;
        }

        private static TurnRefused Refused(Reader m)
        {
            var e = new TurnRefused { TurnIndex = 0 };
            for (int f; (f = m.Next()) != 0;)
            {
                if (f == 1) e.TurnIndex = m.Int();
                else if (f == 2) e.PlayerText = m.String();
                else if (f == 3) e.Reason = m.String();
                else if (f == 4) e.RetryAfterSeconds = m.Double();
                else if (f == 5) e.NpcId = m.String();
                else m.Skip();
            }
            return e;
        }

        private static short[] FromPcm16(byte[] bytes)
        {
            var samples = new short[bytes.Length / 2];
            for (int i = 0; i < samples.Length; i++)
                samples[i] = unchecked((short)(bytes[2 * i] | (bytes[2 * i + 1] << 8)));
            return samples;
        }

        private static short[] FromFloat32(byte[] bytes)
        {
            var samples = new short[bytes.Length / 4];
            for (int i = 0; i < samples.Length; i++)
            {
                uint bits = (uint)(bytes[4 * i] | (bytes[4 * i + 1] << 8) | (bytes[4 * i + 2] << 16) | (bytes[4 * i + 3] << 24));
                float value = BitConverter.ToSingle(BitConverter.GetBytes(bits), 0);
                samples[i] = (short)Math.Max(-32768, Math.Min(32767, Math.Round(value * 32767)));
            }
            return samples;
        }
    }
}
