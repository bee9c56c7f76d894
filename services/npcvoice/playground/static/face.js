// The face: a mouth drawn from the 15 OVR viseme weights, and frames applied on the audio clock.

// The gateway's frame order (convert.py's OVR_VISEMES).
export const VISEMES = ["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou"];

// Each shape as [open (jaw), wide (corners apart), round (lips pushed out), teeth shown, tongue shown].
const SHAPES = {
  sil: [0.0, 0.5, 0.0, 0, 0], PP: [0.0, 0.45, 0.1, 0, 0], FF: [0.12, 0.5, 0.0, 1, 0],
  TH: [0.22, 0.5, 0.0, 1, 1], DD: [0.28, 0.55, 0.0, 1, 0], kk: [0.32, 0.55, 0.0, 0, 0],
  CH: [0.22, 0.35, 0.5, 1, 0], SS: [0.12, 0.68, 0.0, 1, 0], nn: [0.18, 0.55, 0.0, 0, 1],
  RR: [0.22, 0.4, 0.45, 0, 0], aa: [0.92, 0.6, 0.0, 0, 0], E: [0.52, 0.82, 0.0, 1, 0],
  ih: [0.36, 0.72, 0.0, 1, 0], oh: [0.66, 0.35, 0.7, 0, 0], ou: [0.36, 0.25, 1.0, 0, 0],
};

// The context time of the audio the listener hears now. currentTime is what the graph renders, ahead of
// the speakers by the output latency (about 40 ms in headless Chromium, hundreds with Bluetooth); the
// mouth, and what the gateway is told was heard, follow what is heard.
export function heardTime(clock) {
  const stamp = clock.getOutputTimestamp ? clock.getOutputTimestamp() : null;
  if (stamp && stamp.contextTime > 0) return stamp.contextTime + (performance.now() - stamp.performanceTime) / 1000;
  return clock.currentTime - (clock.outputLatency || 0);
}

export class Face {
  constructor(svg, label) {
    this.svg = svg;
    this.label = label;
    this.frames = []; // {at: AudioContext time, w: weights}, in time order
    this.clock = null; // the AudioContext whose currentTime the frames are timed on
    this.playing = []; // [start, end] of each scheduled audio buffer, to know a frame is applied in playback
    this.stats = { framesApplied: 0, framesDuringPlayback: 0, maxOpen: 0, lastViseme: "sil" };
    this.draw(SHAPES.sil, "sil");
    const tick = () => { this.update(); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  }

  // Frames of one audio buffer that plays from `start` to `end` (AudioContext seconds); `base` is the
  // context time of the turn's sample 0, on which the frames' times count.
  schedule(clock, base, frames, start, end) {
    this.clock = clock;
    this.playing.push([start, end]);
    for (const frame of frames) this.frames.push({ at: base + frame.t, w: frame.w });
    this.frames.sort((a, b) => a.at - b.at);
  }

  clear() {
    this.frames = [];
    this.playing = [];
    this.draw(SHAPES.sil, "sil");
  }

  now() {
    return heardTime(this.clock);
  }

  update() {
    if (!this.clock || !this.frames.length) return;
    const now = this.now();
    let due = null;
    while (this.frames.length && this.frames[0].at <= now) due = this.frames.shift();
    if (due) this.apply(due.w, now);
    if (!this.frames.length && !this.playing.some(([, end]) => end > now)) {
      this.playing = [];
      this.draw(SHAPES.sil, "sil");
    }
  }

  apply(weights, now) {
    const total = weights.reduce((a, b) => a + b, 0);
    const blended = [0, 0, 0, 0, 0];
    let top = 0;
    weights.forEach((weight, i) => {
      if (weight > weights[top]) top = i;
      const shape = SHAPES[VISEMES[i]];
      for (let k = 0; k < 5; k++) blended[k] += (total ? weight / total : i === 0) * shape[k];
    });
    this.stats.framesApplied++;
    if (this.playing.some(([start, end]) => start <= now && now < end)) this.stats.framesDuringPlayback++;
    this.stats.maxOpen = Math.max(this.stats.maxOpen, blended[0]);
    this.stats.lastViseme = VISEMES[top];
    this.draw(blended, VISEMES[top]);
  }

  draw([open, wide, round, teeth, tongue], viseme) {
    const cx = 100, cy = 138;
    const w = 34 + 40 * wide - 16 * round, h = 3 + 38 * open;
    const lip = 4 + 3 * round;
    const outer = (dx, dy) =>
      `M${cx - dx},${cy} C${cx - dx / 2},${cy - dy} ${cx + dx / 2},${cy - dy} ${cx + dx},${cy} ` +
      `C${cx + dx / 2},${cy + dy} ${cx - dx / 2},${cy + dy} ${cx - dx},${cy}Z`;
    const $ = (id) => this.svg.querySelector(id);
    $("#lips").setAttribute("d", outer(w / 2 + lip, h / 2 + lip + 2));
    $("#mouth-inside").setAttribute("d", h > 4 ? outer(w / 2, h / 2) : "");
    const teethShown = teeth > 0.5 && h > 4;
    Object.entries({ x: cx - w / 3, y: cy - h / 2, width: (2 * w) / 3, height: teethShown ? Math.min(6, h / 2) : 0 })
      .forEach(([k, v]) => $("#teeth").setAttribute(k, v));
    Object.entries({ cx, cy: cy + h / 4, rx: tongue > 0.5 && h > 6 ? w / 4 : 0, ry: h / 5 })
      .forEach(([k, v]) => $("#tongue").setAttribute(k, v));
    this.svg.dataset.open = open.toFixed(3);
    this.svg.dataset.viseme = viseme;
    if (this.label) this.label.textContent = viseme;
  }
}
