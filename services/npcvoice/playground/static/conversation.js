// One conversation with the NPC over the suite's public WebSocket endpoint, /v1/converse, in its JSON
// subprotocol, as a web game would speak it: each frame is one ConverseRequest or ConverseResponse in
// protobuf's JSON mapping (field names as in protos/, bytes as base64). Typed lines and microphone audio
// go out; reply text, audio, visemes, emotions, actions, interruptions and each turn's latency come in.

import { $, el } from "./dom.js";
import { Microphone } from "./mic.js";

const PROTOCOL = "npcvoice.v1.json";
const INPUT_RATE = 16000; // the microphone's worklet resamples to this
// The OVR weights' field names in a VisemeFrame, in the order the face's mouth table uses.
const OVR = ["sil", "pp", "ff", "th", "dd", "kk", "ch", "ss", "nn", "rr", "aa", "e", "ih", "oh", "ou"];
// The edge closes with 4000 + the gateway's gRPC status code; these are the ones a writer may meet.
const STATUS = { 3: "INVALID_ARGUMENT", 5: "NOT_FOUND", 8: "RESOURCE_EXHAUSTED", 14: "UNAVAILABLE", 16: "UNAUTHENTICATED" };

function base64(bytes) {
  let text = "";
  const view = new Uint8Array(bytes);
  for (let i = 0; i < view.length; i += 0x8000) text += String.fromCharCode(...view.subarray(i, i + 0x8000));
  return btoa(text);
}

function unbase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

export class Conversation {
  constructor(player, { onTurnEnd, onStatus }) {
    this.player = player;
    this.onTurnEnd = onTurnEnd;
    this.onStatus = onStatus;
    this.socket = null;
    this.replies = new Map(); // turn index -> the transcript entry of the NPC's reply
    this.names = new Map(); // npc_id -> display name, of the NPCs in the conversation
    this.spoken = new Map(); // turn index -> the transcript entry of the player's spoken line
    this.latencyRows = new Map(); // turn index -> its row in the latency table
    this.interim = null;
    this.turnsEnded = 0;
    this.mic = new Microphone((pcm) => this.send({ audio: base64(pcm) }));
    this.playbackTimer = setInterval(() => this.reportPlayback(), 100);
  }

  // A conversation with npcId, or a scene of npcId and withId.
  open(npcId, playerId, withId = "") {
    this.close();
    this.npcId = npcId;
    this.names = new Map();
    const url = new URL("/v1/converse", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url, PROTOCOL);
    socket.onopen = () => {
      this.onStatus("connected", "ok");
      // Voice replies as PCM16 at the voice's own rate (Web Audio plays any rate), OVR visemes only, the
      // microphone as PCM16 at 16 kHz, interim transcripts to show while the writer talks.
      this.send({ config: {
        npc_id: npcId, player_id: playerId, reply_mode: "REPLY_MODE_VOICE",
        scene_npc_ids: withId ? [npcId, withId] : [],
        input_audio: { encoding: "AUDIO_ENCODING_PCM16", sample_rate_hz: INPUT_RATE },
        output_audio: { encoding: "AUDIO_ENCODING_PCM16" },
        visemes: { frame_set: "FRAME_SET_OVR" },
        interim_transcripts: true,
      } });
    };
    socket.onclose = (event) => { if (this.socket === socket) this.closed(event); };
    socket.onmessage = (message) => this.receive(JSON.parse(message.data));
    this.socket = socket;
    $("transcript").replaceChildren();
    $("latency").tBodies[0].replaceChildren();
    this.replies.clear();
    this.spoken.clear();
    this.latencyRows.clear();
  }

  close() {
    if (this.socket) { const socket = this.socket; this.socket = null; socket.close(); }
    this.player.stop();
  }

  say(text) {
    this.player.unlock();
    this.line("player", "you", text);
    this.send({ text });
  }

  send(request) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(request));
  }

  // Push-to-talk: audio flows while held; letting go ends the utterance at once.
  async talk(held) {
    this.player.unlock();
    await this.mic.start();
    this.mic.sending = held || $("open-mic").checked;
    if (!held && !$("open-mic").checked) this.send({ end_of_speech: {} });
  }

  // Open mic: audio flows all the time, and the gateway's voice activity detection ends each utterance.
  async openMic(on) {
    this.player.unlock();
    if (on) await this.mic.start();
    this.mic.sending = on;
  }

  reportPlayback() {
    if (this.player.busy()) this.send({ playback: this.player.played() });
  }

  // One ConverseResponse: its one event field names the handler (an event newer than this page is ignored).
  receive(response) {
    for (const [kind, event] of Object.entries(response)) {
      const handler = this[`on_${kind}`];
      if (handler) handler.call(this, event);
    }
  }

  // The edge closed the conversation: 1000 when it ended, 4000 + a gRPC status code for the gateway's error.
  closed(event) {
    if (event.code === 1000 || event.code === 1005) {
      this.line("system", "", event.reason || "the conversation ended");
      this.onStatus("disconnected", "bad");
      return;
    }
    const code = event.code >= 4000 ? STATUS[event.code - 4000] || `status ${event.code - 4000}` : `closed ${event.code}`;
    this.line("system", "", `error: ${code}: ${event.reason || "the connection was lost"}`);
    this.onStatus(`error: ${code}`, "bad");
  }

  // A scene: the NPCs talk to each other, in turns, about what the writer asks.
  exchange(about) {
    const other = [...this.names.keys()].find((id) => id !== this.npcId);
    if (other) this.send({ speak: { instruction: about, npc_id: this.npcId, to_npc_id: other, lines: 4 } });
  }

  on_started(event) {
    $("npc-name").textContent = event.display_name;
    this.names.set(event.npc_id, event.display_name);
    for (const member of event.scene) this.names.set(member.npc_id, member.display_name);
    // Each NPC's greeting: the scene's, or the one NPC's.
    for (const member of event.scene.length ? event.scene : [event]) {
      const remembered = member.remembered_turns ? ` (remembers ${member.remembered_turns} lines)` : "";
      this.line("system", "", `${member.display_name}: “${member.greeting}”${remembered}`);
    }
  }

  on_speaking(event) {
    // The player's voice was detected: stop the reply audio still playing, as a game would (a turn the
    // gateway finished sending may still be playing here: its Interruption comes after its TurnEnd).
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

  reply(index, npcId = "") {
    if (!this.replies.has(index)) {
      this.replies.set(index, this.line("npc", this.names.get(npcId) || $("npc-name").textContent, ""));
      $("emotion").textContent = "–";
      $("actions").replaceChildren();
    }
    return this.replies.get(index);
  }

  on_reply_text(event) {
    this.reply(event.turn_index, event.npc_id).querySelector(".text").textContent += event.delta;
    this.scroll();
  }

  on_audio(event) {
    this.reply(event.turn_index, event.npc_id);
    const chunk = {
      turn_index: event.turn_index,
      npc_id: event.npc_id,
      sample_rate: event.format.sample_rate_hz,
      start_sample: Number(event.start_sample), // an int64: a string in protobuf's JSON
      frames: event.visemes.map((frame) => ({ t: frame.time_seconds, w: OVR.map((name) => frame.ovr[name]) })),
    };
    this.player.play(chunk, unbase64(event.audio));
  }

  on_emotion(event) {
    const entry = this.reply(event.turn_index, event.npc_id); // first: a new reply clears the last one's badges
    const badge = $("emotion");
    badge.textContent = event.emotion;
    badge.className = `badge emotion-${event.emotion}`;
    entry.append(el("span", `badge emotion-${event.emotion}`, event.emotion));
  }

  on_action(event) {
    const params = Object.entries(event.parameters || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    const text = params ? `${event.name} ${params}` : event.name;
    const entry = this.reply(event.turn_index, event.npc_id);
    $("actions").append(el("span", "badge action", text));
    entry.append(el("span", "badge action", text));
  }

  on_interruption(event) {
    this.player.stop();
    const entry = this.reply(event.turn_index);
    entry.append(el("span", "heard", `interrupted — heard: “${event.heard_text}”`));
    // A reply sent in full before it played is talked over after its TurnEnd: its row says so now.
    const row = this.latencyRows.get(event.turn_index);
    if (row) row.lastChild.textContent = "interrupted";
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
    this.latencyRows.set(event.turn_index, row);
    this.turnsEnded++;
    this.onTurnEnd(event);
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
