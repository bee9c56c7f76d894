// The reply's audio: PCM16 chunks played with Web Audio at their own rate, on the turn's timeline, with
// their viseme frames handed to the face on the same clock.

import { heardTime } from "./face.js";

export class ReplyPlayer {
  // faces: the face of each NPC that may speak, by npc_id; the first is also the one for an unknown id.
  constructor(faces) {
    this.faces = faces;
    this.context = null;
    this.turn = null; // {index, base: context time of the turn's sample 0, rate, sources, delivered}
    this.stats = { audioChunks: 0, samplesScheduled: 0 };
  }

  // Called from a click or key press: browsers let a page start audio only after the user acts.
  unlock() {
    if (!this.context) this.context = new AudioContext();
    if (this.context.state === "suspended") this.context.resume();
  }

  play(chunk, pcm) {
    this.unlock();
    const context = this.context;
    const rate = chunk.sample_rate;
    if (!this.turn || this.turn.index !== chunk.turn_index) {
      this.stop();
      this.turn = { index: chunk.turn_index, base: context.currentTime + 0.05, rate, sources: [], delivered: 0 };
    }
    const turn = this.turn;
    let start = turn.base + chunk.start_sample / rate;
    // A chunk that came after its time pushes the rest of the turn (audio and mouth) later, together.
    const late = context.currentTime + 0.02 - start;
    if (late > 0) { turn.base += late; start += late; }
    const ints = new Int16Array(pcm);
    const samples = new Float32Array(ints.length);
    for (let i = 0; i < ints.length; i++) samples[i] = ints[i] / 32768;
    if (!samples.length) return;
    const buffer = context.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    source.start(start);
    turn.sources.push(source);
    turn.delivered = Math.max(turn.delivered, chunk.start_sample + samples.length);
    this.stats.audioChunks++;
    this.stats.samplesScheduled += samples.length;
    this.faceOf(chunk.npc_id).schedule(context, turn.base, chunk.frames, start, start + samples.length / rate);
  }

  // How much of the turn's audio has sounded (for the gateway's barge-in: what the player heard).
  played() {
    if (!this.turn) return null;
    const position = Math.round((heardTime(this.context) - this.turn.base) * this.turn.rate);
    return { turn_index: this.turn.index, played_samples: Math.max(0, Math.min(position, this.turn.delivered)) };
  }

  busy() {
    return !!this.turn && heardTime(this.context) < this.turn.base + this.turn.delivered / this.turn.rate;
  }

  stop() {
    if (this.turn) for (const source of this.turn.sources) { try { source.stop(); } catch { /* not started */ } }
    this.turn = null;
    for (const face of this.faces.values()) face.clear();
  }

  faceOf(npcId) {
    return this.faces.get(npcId) || this.faces.values().next().value;
  }
}
