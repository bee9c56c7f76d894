// Runs on the audio thread: the microphone at the context's rate in, 16 kHz PCM16 out, 100 ms a message.
class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.targetRate = options.processorOptions.targetRate;
    this.step = sampleRate / this.targetRate; // input samples per output sample
    this.position = 0; // where the next output sample falls, in the current input block
    this.previous = 0; // the last input sample of the block before, to interpolate across blocks
    this.out = new Int16Array(this.targetRate / 10);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    // Linear interpolation is enough for speech recognition at 16 kHz (the gateway resamples anything).
    while (this.position < input.length) {
      const i = Math.floor(this.position);
      const before = i === 0 ? this.previous : input[i - 1];
      const fraction = this.position - i;
      const value = before + (input[i] - before) * fraction;
      this.out[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(value * 32767)));
      if (this.filled === this.out.length) {
        this.port.postMessage(this.out.buffer, [this.out.buffer]);
        this.out = new Int16Array(this.targetRate / 10);
        this.filled = 0;
      }
      this.position += this.step;
    }
    this.position -= input.length;
    this.previous = input[input.length - 1];
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
