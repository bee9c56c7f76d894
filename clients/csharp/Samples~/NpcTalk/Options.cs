// npc_talk's command line (the C++ sample's, with --url for the edge in place of --address).
using System;
using System.Collections.Generic;
using System.Globalization;

namespace NpcVoice.Samples
{
    internal sealed class Options
    {
        public const string Usage =
            "usage: npc_talk --npc ID (--text LINE | --wav FILE | --speak INSTRUCTION | --event ...) [options]\n" +
            "  --help                  this list\n" +
            "  --url URL               the suite's WebSocket edge (default ws://127.0.0.1:8050/v1/converse)\n" +
            "  --api-key KEY           sent as 'Authorization: Bearer KEY'\n" +
            "  --key-in-first-message  send the key as the first message instead, as a browser must\n" +
            "  --npc ID                the NPC; repeated, a scene of several (each line goes to the one it names)\n" +
            "  --to ID                 in a scene, the NPC the line goes to (as a game's gaze or UI choice)\n" +
            "  --player ID             the player's id (default csharp-sample)\n" +
            "  --text LINE             type LINE to the NPC\n" +
            "  --wav FILE              say FILE (16-bit PCM WAV), streamed in real time as a microphone would\n" +
            "  --fast                  stream the WAV as fast as possible instead\n" +
            "  --speak INSTRUCTION     the NPC speaks first, prompted by INSTRUCTION\n" +
            "  --event NAME=SENTENCE   a game event, sent first (repeatable); alone, wait for the reply the\n" +
            "                          NPC's trigger for it makes\n" +
            "  --context KEY=VALUE     world context sent with the config (repeatable), e.g. weather=snow\n" +
            "  --out-wav FILE          the reply's audio (default reply.wav)\n" +
            "  --out-visemes FILE      the reply's viseme frames, JSON, or CSV if FILE ends in .csv\n" +
            "                          (default reply.json)\n" +
            "  --frame-rate N          viseme frames per second: 24, 30 or 60 (default: the persona's)\n" +
            "  --text-only             ask for the reply's text and events only\n" +
            "  --seed N                the same seed and memory give the same reply\n" +
            "  --interrupt-with LINE   barge in: type LINE once the reply has played --interrupt-after\n" +
            "  --interrupt-after S     seconds of reply played before barging in (default 0.5)\n" +
            "  --timeout S             give up after S seconds (default 120)\n";

        public bool Help, Fast, TextOnly, KeyInFirstMessage;
        public string Url = "ws://127.0.0.1:8050/v1/converse", ApiKey = "", Npc = "", Player = "csharp-sample";
        public string Text = "", Wav = "", Speak = "", InterruptWith = "", To = "";
        public readonly List<string> Scene = new List<string>();
        public string OutWav = "reply.wav", OutVisemes = "reply.json";
        public int FrameRate;
        public long? Seed;
        public double InterruptAfterSeconds = 0.5, TimeoutSeconds = 120;
        public readonly List<KeyValuePair<string, string>> Events = new List<KeyValuePair<string, string>>();
        public readonly Dictionary<string, string> Context = new Dictionary<string, string>();

        /// <summary>The options, or an error message in <paramref name="error"/>.</summary>
        public static Options Parse(string[] args, out string error)
        {
            var options = new Options();
            error = "";
            for (int i = 0; i < args.Length; i++)
            {
                string name = args[i];
                if (name == "--help" || name == "-h") { options.Help = true; return options; }
                if (name == "--fast") { options.Fast = true; continue; }
                if (name == "--text-only") { options.TextOnly = true; continue; }
                if (name == "--key-in-first-message") { options.KeyInFirstMessage = true; continue; }
                if (i + 1 >= args.Length) { error = name + " needs a value"; return options; }
                string value = args[++i];
                int equals = value.IndexOf('=');
                double number;
                long integer;
                bool isNumber = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out number);
                bool isInteger = long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out integer);
                if (name == "--url") options.Url = value;
                else if (name == "--api-key") options.ApiKey = value;
                else if (name == "--npc")
                {
                    if (options.Npc == "") options.Npc = value;
                    options.Scene.Add(value);
                }
                else if (name == "--to") options.To = value;
                else if (name == "--player") options.Player = value;
                else if (name == "--text") options.Text = value;
                else if (name == "--wav") options.Wav = value;
                else if (name == "--out-wav") options.OutWav = value;
                else if (name == "--out-visemes") options.OutVisemes = value;
                else if (name == "--speak") options.Speak = value;
                else if (name == "--interrupt-with") options.InterruptWith = value;
                else if (name == "--event" && equals > 0)
                    options.Events.Add(new KeyValuePair<string, string>(value.Substring(0, equals), value.Substring(equals + 1)));
                else if (name == "--context" && equals > 0) options.Context[value.Substring(0, equals)] = value.Substring(equals + 1);
                else if (name == "--frame-rate" && isInteger) options.FrameRate = (int)integer;
                else if (name == "--seed" && isInteger) options.Seed = integer;
                else if (name == "--interrupt-after" && isNumber) options.InterruptAfterSeconds = number;
                else if (name == "--timeout" && isNumber) options.TimeoutSeconds = number;
                else { error = "unknown argument, or not a number: " + name + " " + value; return options; }
            }
            int inputs = (options.Text != "" ? 1 : 0) + (options.Wav != "" ? 1 : 0) + (options.Speak != "" ? 1 : 0);
            if (options.Scene.Count < 2) options.Scene.Clear();  // one NPC: a plain conversation
            if (options.Npc == "") error = "--npc is required";
            else if (options.To != "" && options.Scene.Count == 0) error = "--to needs a scene (--npc given twice or more)";
            else if (inputs > 1 || (inputs == 0 && options.Events.Count == 0))
                error = "give one of --text, --wav or --speak, or --event alone";
            return options;
        }
    }
}
