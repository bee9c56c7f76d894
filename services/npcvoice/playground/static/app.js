// The playground page: pick an NPC, edit its persona, talk to it, see its memory and run its tests.

import { Conversation } from "./conversation.js";
import { $ } from "./dom.js";
import { PersonaEditor } from "./editor.js";
import { Face } from "./face.js";
import { MemoryPanel, ScriptsPanel, api } from "./panels.js";
import { ReplyPlayer } from "./player.js";

const npcId = () => $("npc").value;
const playerId = () => $("player").value.trim() || "playground";

function status(id, text, kind = "") {
  $(id).textContent = text;
  $(id).className = `status ${kind}`;
}

const face = new Face($("face"), $("viseme"));
// A scene's second NPC has a face of its own (a copy of the first's drawing).
const secondSvg = $("face").cloneNode(true);
secondSvg.id = "face2";
secondSvg.setAttribute("aria-label", "the second NPC's mouth");
$("second").prepend(secondSvg);
const second = new Face(secondSvg, null);
const faces = new Map();
const player = new ReplyPlayer(faces);
const withId = () => $("with").value;
const memory = new MemoryPanel(() => [npcId(), playerId()]);
const scripts = new ScriptsPanel(npcId);
const conversation = new Conversation(player, {
  onTurnEnd: () => memory.refresh(),
  onStatus: (text, kind) => status("connection", text, kind),
});

let checking = null;
const editor = new PersonaEditor({
  textarea: $("persona"), gutter: $("gutter"), markers: $("markers"),
  completions: $("completions"), problems: $("problems"),
  onChange: () => {
    // Validate as the writer types, a moment after the last key.
    clearTimeout(checking);
    status("persona-status", "");
    checking = setTimeout(check, 400);
  },
});

async function check() {
  const { ok, data } = await api("POST", `/api/personas/${npcId()}/check`, { text: editor.text });
  if (ok) editor.show(data.problems);
  status("persona-status", ok && !data.problems.length ? "valid" : "invalid", ok && !data.problems.length ? "ok" : "bad");
}

async function save() {
  clearTimeout(checking);
  const { ok, data } = await api("PUT", `/api/personas/${npcId()}`, { text: editor.text });
  if (ok) {
    editor.show([]);
    status("persona-status", "saved: the suite uses it from the next line", "ok");
    await loadNpcs(npcId());
  } else if (data.problems) {
    editor.show(data.problems);
    status("persona-status", "not saved: fix the marked lines (the NPC keeps its last good version)", "bad");
  } else {
    status("persona-status", data.error || "not saved", "bad");
  }
}

async function loadNpcs(selected) {
  const { ok, data } = await api("GET", "/api/npcs");
  if (!ok) { status("connection", data.error || "gateway unavailable", "bad"); return; }
  $("npc").replaceChildren(...data.npcs.map((npc) => new Option(`${npc.display_name} (${npc.npc_id})`, npc.npc_id)));
  const wanted = selected || new URLSearchParams(location.search).get("npc");
  if (wanted && data.npcs.some((npc) => npc.npc_id === wanted)) $("npc").value = wanted;
  const partner = withId() || new URLSearchParams(location.search).get("with") || "";
  $("with").replaceChildren(new Option("nobody", ""), ...data.npcs.map((npc) => new Option(npc.display_name, npc.npc_id)));
  if (data.npcs.some((npc) => npc.npc_id === partner)) $("with").value = partner;
}

async function selectNpc() {
  const { ok, data } = await api("GET", `/api/personas/${npcId()}`);
  editor.text = ok ? data.text : `# ${data.error}`;
  $("persona-file").textContent = ok ? `${npcId()}.yaml` : "";
  editor.show([]);
  status("persona-status", "");
  $("memory-player").textContent = playerId();
  openConversation();
  await Promise.all([memory.refresh(), scripts.list()]);
}

// The conversation: with the NPC alone, or a scene with a second one, each mouth moved by its own lines.
function openConversation() {
  const partner = withId() && withId() !== npcId() ? withId() : "";
  faces.clear();
  faces.set(npcId(), face);
  if (partner) faces.set(partner, second);
  $("second").hidden = $("exchange-form").hidden = !partner;
  $("second-name").textContent = partner ? $("with").selectedOptions[0].textContent : "";
  conversation.open(npcId(), playerId(), partner);
}

$("npc").onchange = selectNpc;
$("with").onchange = openConversation;
$("exchange-form").onsubmit = (event) => {
  event.preventDefault();
  const about = $("exchange").value.trim();
  if (about) conversation.exchange(about);
  $("exchange").value = "";
};
$("player").onchange = selectNpc;
$("save").onclick = save;
$("say-form").onsubmit = (event) => {
  event.preventDefault();
  const text = $("say").value.trim();
  if (text) conversation.say(text);
  $("say").value = "";
};
const ptt = $("ptt");
const hold = (held) => (event) => {
  event.preventDefault();
  ptt.classList.toggle("held", held);
  conversation.talk(held).catch((error) => status("mic-status", `microphone: ${error.message}`, "bad"));
};
ptt.onpointerdown = hold(true);
ptt.onpointerup = ptt.onpointerleave = (event) => { if (ptt.classList.contains("held")) hold(false)(event); };
$("open-mic").onchange = (event) => {
  conversation.openMic(event.target.checked)
    .then(() => status("mic-status", event.target.checked ? "listening (speak to interrupt)" : ""))
    .catch((error) => status("mic-status", `microphone: ${error.message}`, "bad"));
};
$("memory-refresh").onclick = () => memory.refresh();
// A conversation holds the memory it started with: after a reset or an import, start a new one with it.
const restart = () => openConversation();
$("memory-reset").onclick = () => memory.reset().then(restart);
$("memory-export").onclick = () => memory.export();
$("memory-import").onchange = (event) => {
  if (event.target.files[0]) memory.import(event.target.files[0]).then(restart);
};
$("scripts-run").onclick = () => scripts.run();

// What the tests read: how much audio was played and how many viseme frames moved the mouth meanwhile.
window.playground = { face, second, player, conversation, editor, memory };

const settings = await api("GET", "/api/settings");
$("player").value = new URLSearchParams(location.search).get("player") || settings.data.player_id || "playground";
editor.schema = (await api("GET", "/api/schema")).data;
await loadNpcs();
if (npcId()) await selectNpc();
document.body.dataset.ready = "true";
