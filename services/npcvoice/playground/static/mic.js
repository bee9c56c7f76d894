// The microphone: getUserMedia -> AudioWorklet -> 16 kHz PCM16 chunks handed to `send`.

export class Microphone {
  constructor(send) {
    this.send = send;
    this.context = null;
    this.stream = null;
    this.sending = false; // push-to-talk held, or open mic on
    this.stats = { chunksSent: 0 };
  }

  // Once: a second press while the first still waits for the browser's permission shares it.
  start() {
    if (!this.starting) this.starting = this.open().catch((error) => { this.starting = null; throw error; });
    return this.starting;
  }

  async open() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("/static/mic-worklet.js");
    const node = new AudioWorkletNode(this.context, "pcm16-capture", { processorOptions: { targetRate: 16000 } });
    node.port.onmessage = (event) => {
      if (!this.sending) return;
      this.stats.chunksSent++;
      this.send(event.data);
    };
    this.context.createMediaStreamSource(this.stream).connect(node);
    // A node that reaches no output is not always pulled; a silent gain keeps it running.
    const mute = this.context.createGain();
    mute.gain.value = 0;
    node.connect(mute).connect(this.context.destination);
  }

  stop() {
    this.sending = false;
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.context) this.context.close();
    this.context = null;
    this.stream = null;
    this.starting = null;
  }
}
