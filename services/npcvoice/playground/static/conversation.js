// One conversation with the NPC over the playground's WebSocket: typed lines and microphone audio out;
// reply text, audio, visemes, emotions, actions, interruptions and each turn's latency in.

import { $, el } from "./dom.js";
import { Microphone } from "./mic.js";

export class Conversation {
  constructor(player, { onTurnEnd, onStatus }) {
    this.player = player;
    this.onTurnEnd = onTurnEnd;
    this.onStatus = onStatus;
    this.socket = null;
    this.pendingAudio = null; // an audio event waits for its PCM, the binary message after it
    this.replies = new Map(); // turn index -> the transcript entry of the NPC's reply
    this.spoken = new Map(); // turn index -> the transcript entry of the player's spoken line
    this.interim = null;
    this.turnsEnded = 0;
    this.mic = new Microphone((pcm) => this.sendBinary(pcm));
    this.playbackTimer = setInterval(() => this.reportPlayback(), 100);
  }

  open(npcId, playerId) {
    this.close();
    const url = new URL("/ws/converse", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = new URLSearchParams({ npc: npcId, player: playerId }).toString();
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => this.onStatus("connected", "ok");
    socket.onclose = () => { if (this.socket === socket) this.onStatus("disconnected", "bad"); };
    socket.onmessage = (message) => this.receive(message.data);
    this.socket = socket;
    $("transcript").replaceChildren();
    $("latency").tBodies[0].replaceChildren();
    this.replies.clear();
    this.spoken.clear();
  }

  close() {
    if (this.socket) { const socket = this.socket; this.socket = null; socket.close(); }
    this.player.stop();
  }

  say(text) {
    this.player.unlock();
    this.line("player", "you", text);
    this.sendJson({ type: "text", text });
  }

  sendJson(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  sendBinary(data) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(data);
  }

  // Push-to-talk: audio flows while held; letting go ends the utterance at once.
  async talk(held) {
    this.player.unlock();
    await this.mic.start();
    this.mic.sending = held || $("open-mic").checked;
    if (!held && !$("open-mic").checked) this.sendJson({ type: "end_of_speech" });
  }

  // Open mic: audio flows all the time, and the gateway's voice activity detection ends each utterance.
  async openMic(on) {
    this.player.unlock();
    if (on) await this.mic.start();
    this.mic.sending = on;
  }

  reportPlayback() {
    if (this.player.busy()) this.sendJson({ type: "playback", ...this.player.played() });
  }

  receive(data) {
    if (data instanceof ArrayBuffer) {
      if (this.pendingAudio) this.player.play(this.pendingAudio, data);
      this.pendingAudio = null;
      return;
    }
    const event = JSON.parse(data);
    const handler = this[`on_${event.type}`];
    if (handler) handler.call(this, event);
  }

  on_started(event) {
    $("npc-name").textContent = event.display_name;
    const remembered = event.remembered_turns ? ` (remembers ${event.remembered_turns} lines)` : "";
    this.line("system", "", `${event.display_name}: “${event.greeting}”${remembered}`);
  }

  on_speaking(event) {
    // The player's voice was detected: stop the reply audio still playing, as a game would (the gateway
    // interrupts only a turn it is still running; audio it finished sending may still be playing here).
    if (this.player.busy() && this.player.turn.index !== event.turn_index) this.player.stop();
  }

  on_transcript(event) {
    this.on_speaking(event); // (for a gateway that does not send the speaking event yet)
    if (!event.is_final) {
      if (!this.interim) this.interim = this.line("player interim", "you", "");
      this.interim.lastChild.textContent = event.text + "…";
      return;
    }
    if (this.interim) this.interim.remove();
    this.interim = null;
    this.spoken.set(event.turn_index, this.line("player", "you (spoken)", event.text));
  }

  reply(index) {
    if (!this.replies.has(index)) {
      this.replies.set(index, this.line("npc", $("npc-name").textContent, ""));
      $("emotion").textContent = "–";
      $("actions").replaceChildren();
    }
    return this.replies.get(index);
  }

  on_reply_text(event) {
    this.reply(event.turn_index).querySelector(".text").textContent += event.delta;
    this.scroll();
  }

  on_audio(event) {
    this.reply(event.turn_index);
    this.pendingAudio = event;
  }

  on_emotion(event) {
    const entry = this.reply(event.turn_index); // first: a new reply clears the badges of the last one
    const badge = $("emotion");
    badge.textContent = event.emotion;
    badge.className = `badge emotion-${event.emotion}`;
    entry.append(el("span", `badge emotion-${event.emotion}`, event.emotion));
  }

  on_action(event) {
    const params = Object.entries(event.parameters || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    const text = params ? `${event.name} ${params}` : event.name;
    const entry = this.reply(event.turn_index);
    $("actions").append(el("span", "badge action", text));
    entry.append(el("span", "badge action", text));
  }

  on_interruption(event) {
    this.player.stop();
    const entry = this.reply(event.turn_index);
    entry.append(el("span", "heard", `interrupted — heard: “${event.heard_text}”`));
  }

  on_refused(event) {
    // The suite was at capacity: nothing of this turn was said or remembered; the writer may say it again.
    this.line("system", "", `busy: say it again in ${event.retry_after_seconds || 1} s (${event.reason})`);
  }

  on_turn_end(event) {
    if (event.continued) {
      // The player went on after a pause: this line was only its start, and the next turn shows it whole.
      this.spoken.get(event.turn_index)?.remove();
      this.replies.get(event.turn_index)?.remove();
    }
    const ms = (seconds) => (seconds ? Math.round(seconds * 1000) : "–");
    const latency = event.latency || {};
    const row = el("tr");
    for (const value of [event.turn_index, ms(latency.transcript_seconds), ms(latency.first_token_seconds),
      ms(latency.first_audio_seconds), ms(latency.total_seconds), event.interrupted ? "interrupted" : ""]) {
      row.append(el("td", "", String(value)));
    }
    $("latency").tBodies[0].append(row);
    this.turnsEnded++;
    this.onTurnEnd(event);
  }

  on_error(event) {
    this.line("system", "", `error: ${event.code}: ${event.message}`);
    this.onStatus(`error: ${event.code}`, "bad");
  }

  on_closed(event) {
    this.line("system", "", event.reason);
  }

  line(kind, who, text) {
    const item = el("li", kind);
    if (who) item.append(el("span", "who", who));
    item.append(el("span", "text", text));
    $("transcript").append(item);
    this.scroll();
    return item;
  }

  scroll() {
    const list = $("transcript");
    list.scrollTop = list.scrollHeight;
  }
}
