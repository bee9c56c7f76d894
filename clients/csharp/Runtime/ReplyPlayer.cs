// The game's playback of the NPC's replies: the audio thread pulls samples from it (Unity: a streamed
// AudioClip's PCMReaderCallback, or OnAudioFilterRead), the main thread reads where playback stands, to
// report it to the gateway (what a barge-in keeps) and to pose the mouth from the viseme frame at that time.
using System;
using System.Collections.Generic;

namespace NpcVoice
{
    public sealed class ReplyPlayer
    {
        private readonly object gate = new object();
        private readonly Queue<short> pending = new Queue<short>();
        private readonly List<VisemeFrame> frames = new List<VisemeFrame>();
        private int turn = -1;
        private int sampleRate;
        private long played;
        private int frameAt;

        /// <summary>The turn playing (or last played); -1 before any audio.</summary>
        public int TurnIndex { get { lock (gate) return turn; } }

        /// <summary>Samples of <see cref="TurnIndex"/>'s reply played so far: what SendPlayback reports.</summary>
        public long PlayedSamples { get { lock (gate) return played; } }

        public int SampleRate { get { lock (gate) return sampleRate; } }

        /// <summary>Audio received and not yet played.</summary>
        public int Pending { get { lock (gate) return pending.Count; } }

        /// <summary>Takes any event: a ReplyAudio is queued (a new turn's replaces what is left of the last);
        /// PlayerSpeaking and Interruption stop the audio, as the player talked over it.</summary>
        public void Add(ConversationEvent evt)
        {
            lock (gate)
            {
                if (evt is ReplyAudio audio)
                {
                    if (audio.TurnIndex != turn) Restart(audio.TurnIndex);
                    sampleRate = audio.SampleRate;
                    foreach (short sample in audio.Samples) pending.Enqueue(sample);
                    frames.AddRange(audio.Visemes);
                }
                else if (evt is PlayerSpeaking || evt is Interruption) pending.Clear();
            }
        }

        /// <summary>Fills <paramref name="buffer"/> with the next samples as floats in [-1, 1], silence past
        /// what has arrived (an underrun pauses the reply: those zeros are not counted as played). Returns how
        /// many were the reply's. Called on the audio thread.</summary>
        public int Read(float[] buffer, int offset, int count)
        {
            lock (gate)
            {
                int taken = Math.Min(count, pending.Count);
                for (int i = 0; i < taken; i++) buffer[offset + i] = pending.Dequeue() / 32768f;
                Array.Clear(buffer, offset + taken, count - taken);
                played += taken;
                return taken;
            }
        }

        /// <summary>The viseme frame at the playback position (null when none), for the mouth's blendshapes.</summary>
        public VisemeFrame CurrentFrame()
        {
            lock (gate)
            {
                if (frames.Count == 0 || sampleRate == 0) return null;
                double now = (double)played / sampleRate;
                while (frameAt + 1 < frames.Count && frames[frameAt + 1].TimeSeconds <= now) frameAt++;
                return frames[frameAt];
            }
        }

        private void Restart(int turnIndex)
        {
            turn = turnIndex;
            pending.Clear();
            frames.Clear();
            played = 0;
            frameAt = 0;
        }
    }
}
