// A turn's reply gathered from its events, and the files a sample or a tool writes from it.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace NpcVoice
{
    public sealed class Reply
    {
        /// <summary>The turn this reply belongs to: the first one it is given an event of (but an Interruption
        /// that comes first is held until the next event says whose it is: this turn's, cut before anything of
        /// it went out, or the turn before's, talked over after its TurnEnd while it still played).</summary>
        public int TurnIndex = -1;
        public string PlayerText = "";
        public string Text = "";
        public int SampleRate;
        public int AudioChunks;
        /// <summary>Every sentence's audio, joined in order.</summary>
        public readonly List<short> Samples = new List<short>();
        /// <summary>Their frames, on the same timeline.</summary>
        public readonly List<VisemeFrame> Visemes = new List<VisemeFrame>();
        public readonly List<Emotion> Emotions = new List<Emotion>();
        public readonly List<NpcAction> Actions = new List<NpcAction>();
        public Interruption Interruption;
        public TurnEnd End;
        /// <summary>The turn was refused (nothing said): send the line again later.</summary>
        public TurnRefused Refused;
        private Interruption held;  // an Interruption that came first, its turn not yet known

        public bool Done => End != null || Refused != null;
        public double Seconds => SampleRate > 0 ? (double)Samples.Count / SampleRate : 0;

        /// <summary>Takes one event into the reply (events of other turns are left out); true once the turn
        /// has ended or was refused.</summary>
        public bool Add(ConversationEvent evt)
        {
            int turn = evt.TurnIndex;
            if (turn < 0) return Done;
            if (TurnIndex < 0)
            {
                if (evt is Interruption first) { held = first; return Done; }  // whose: see TurnIndex
                if (held != null && held.TurnIndex == turn) Interruption = held;
                held = null;
            }
            else if (turn != TurnIndex) return Done;
            TurnIndex = turn;
            if (evt is Transcript heard) { if (heard.IsFinal) PlayerText = heard.Text; }
            else if (evt is ReplyText delta) Text += delta.Delta;
            else if (evt is ReplyAudio audio)
            {
                SampleRate = audio.SampleRate;
                AudioChunks++;
                Samples.AddRange(audio.Samples);
                Visemes.AddRange(audio.Visemes);
            }
            else if (evt is Emotion emotion) Emotions.Add(emotion);
            else if (evt is NpcAction action) Actions.Add(action);
            else if (evt is Interruption cut) Interruption = cut;
            else if (evt is TurnEnd end)
            {
                End = end;
                PlayerText = end.PlayerText;
            }
            else if (evt is TurnRefused refused)
            {
                Refused = refused;
                PlayerText = refused.PlayerText;
            }
            return Done;
        }
    }

    /// <summary>PCM16 mono WAV files, and a reply's viseme frames as CSV or JSON.</summary>
    public static class ReplyFiles
    {
        public static void WriteWav(string path, IList<short> samples, int sampleRate)
        {
            using (var file = new BinaryWriter(File.Create(path)))
            {
                int bytes = samples.Count * 2;
                file.Write(Encoding.ASCII.GetBytes("RIFF"));
                file.Write(36 + bytes);
                file.Write(Encoding.ASCII.GetBytes("WAVEfmt "));
                file.Write(16);
                file.Write((short)1);  // PCM
                file.Write((short)1);  // mono
                file.Write(sampleRate);
                file.Write(sampleRate * 2);
                file.Write((short)2);
                file.Write((short)16);
                file.Write(Encoding.ASCII.GetBytes("data"));
                file.Write(bytes);
                foreach (short sample in samples) file.Write(sample);  // BinaryWriter: little-endian
            }
        }

        /// <summary>A 16-bit PCM WAV as mono samples (a stereo file's channels are averaged).</summary>
        public static short[] ReadWav(string path, out int sampleRate)
        {
            using (var file = new BinaryReader(File.OpenRead(path)))
            {
                if (Encoding.ASCII.GetString(file.ReadBytes(4)) != "RIFF") throw new InvalidDataException(path + ": not a RIFF file");
                file.ReadInt32();
                if (Encoding.ASCII.GetString(file.ReadBytes(4)) != "WAVE") throw new InvalidDataException(path + ": not a WAVE file");
                int channels = 0, bits = 0;
                sampleRate = 0;
                while (file.BaseStream.Position + 8 <= file.BaseStream.Length)
                {
                    string chunk = Encoding.ASCII.GetString(file.ReadBytes(4));
                    int size = file.ReadInt32();
                    if (chunk == "fmt ")
                    {
                        short format = file.ReadInt16();
                        channels = file.ReadInt16();
                        sampleRate = file.ReadInt32();
                        file.ReadBytes(6);
                        bits = file.ReadInt16();
                        file.ReadBytes(size - 16);
                        if (format != 1 || bits != 16) throw new InvalidDataException(path + ": only 16-bit PCM is read");
                    }
                    else if (chunk == "data")
                    {
                        if (channels == 0) throw new InvalidDataException(path + ": data before its format");
                        int frames = size / (2 * channels);
                        var samples = new short[frames];
                        for (int i = 0; i < frames; i++)
                        {
                            int sum = 0;
                            for (int c = 0; c < channels; c++) sum += file.ReadInt16();
                            samples[i] = (short)(sum / channels);
                        }
                        return samples;
                    }
                    else file.ReadBytes(size + (size & 1));
                }
                throw new InvalidDataException(path + ": no data chunk");
            }
        }

        /// <summary>CSV when the path ends in ".csv" (one row per frame: time, 15 OVR weights, 16 ARKit weights,
        /// under their standard names), JSON otherwise ({"sample_rate", "frames": [...]}).</summary>
        public static void WriteVisemes(string path, Reply reply)
        {
            var text = new StringBuilder();
            if (path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
            {
                text.Append("time_seconds");
                foreach (string name in VisemeFrame.OvrNames) text.Append(',').Append(name);
                foreach (string name in VisemeFrame.ArkitNames) text.Append(',').Append(name);
                text.Append('\n');
                foreach (VisemeFrame frame in reply.Visemes)
                {
                    text.Append(Number(frame.TimeSeconds, "F6"));
                    foreach (float weight in frame.Ovr) text.Append(',').Append(Number(weight, "F4"));
                    foreach (float weight in frame.Arkit) text.Append(',').Append(Number(weight, "F4"));
                    text.Append('\n');
                }
            }
            else
            {
                text.Append("{\"sample_rate\": ").Append(reply.SampleRate).Append(", \"frames\": [");
                for (int i = 0; i < reply.Visemes.Count; i++)
                {
                    VisemeFrame frame = reply.Visemes[i];
                    text.Append(i > 0 ? ",\n" : "\n").Append("{\"index\": ").Append(frame.Index)
                        .Append(", \"time_seconds\": ").Append(Number(frame.TimeSeconds, "F6"));
                    Weights(text, "ovr", VisemeFrame.OvrNames, frame.Ovr);
                    Weights(text, "arkit", VisemeFrame.ArkitNames, frame.Arkit);
                    text.Append('}');
                }
                text.Append("\n]}\n");
            }
            File.WriteAllText(path, text.ToString());
        }

        private static void Weights(StringBuilder text, string key, string[] names, float[] weights)
        {
            text.Append(", \"").Append(key).Append("\": {");
            for (int v = 0; v < names.Length; v++)
                text.Append(v > 0 ? ", " : "").Append('"').Append(names[v]).Append("\": ").Append(Number(weights[v], "F4"));
            text.Append('}');
        }

        private static string Number(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
    }
}
