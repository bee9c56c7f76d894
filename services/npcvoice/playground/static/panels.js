// The side panels: what the NPC remembers of the player, and the persona's conversation tests.

import { $, el } from "./dom.js";

export async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

export class MemoryPanel {
  constructor(where) {
    this.where = where; // () => [npcId, playerId]
    this.snapshot = null;
  }

  path() {
    const [npc, player] = this.where();
    return `/api/memory/${encodeURIComponent(npc)}/${encodeURIComponent(player)}`;
  }

  async refresh() { this.render(await api("GET", this.path())); }
  async reset() { this.render(await api("DELETE", this.path())); }
  async import(file) { this.render(await api("PUT", this.path(), JSON.parse(await file.text()))); }

  export() {
    const [npc, player] = this.where();
    const blob = new Blob([JSON.stringify(this.snapshot, null, 1)], { type: "application/json" });
    const link = el("a");
    link.href = URL.createObjectURL(blob);
    link.download = `memory-${npc}-${player}.json`;
    link.click();
    URL.revokeObjectURL(link.href);
  }

  render({ ok, data }) {
    const box = $("memory");
    if (!ok) { box.replaceChildren(el("p", "status bad", data.error || "memory unavailable")); return; }
    this.snapshot = data;
    const turns = data.turns || [], facts = data.player_facts || [];
    const facts_ = facts.length ? el("ul") : el("p", "empty", "no facts");
    facts.forEach((fact) => facts_.append(el("li", "", fact)));
    const list = turns.length ? el("ol") : el("p", "empty", "no lines remembered");
    turns.forEach((turn) => list.append(el("li", "", `${turn.role}: ${turn.text}${turn.interrupted ? " (interrupted)" : ""}`)));
    const relation = el("dl");
    for (const [name, value] of [["affinity", data.affinity], ["trust", data.trust], ["lines", turns.length]]) {
      relation.append(el("dt", "", name), el("dd", "", typeof value === "number" ? String(+value.toFixed(2)) : "0"));
    }
    box.dataset.turns = turns.length;
    box.replaceChildren(
      el("h3", "", "Relationship"), relation,
      el("h3", "", "Summary"), data.summary ? el("p", "", data.summary) : el("p", "empty", "no summary yet"),
      el("h3", "", "Facts the player told"), facts_,
      el("h3", "", "Recent lines"), list,
    );
  }
}

export class ScriptsPanel {
  constructor(npc) { this.npc = npc; }

  async list() {
    const { ok, data } = await api("GET", `/api/scripts/${encodeURIComponent(this.npc())}`);
    const names = ok ? data.scripts : [];
    $("scripts-status").textContent = names.length ? `${names.length} script(s): ${names.join(", ")}` : "no scripts";
    $("scripts-status").className = "status";
    $("scripts").replaceChildren();
  }

  async run() {
    $("scripts-status").textContent = "running…";
    const { ok, data } = await api("POST", `/api/scripts/${encodeURIComponent(this.npc())}`);
    if (!ok) { $("scripts-status").textContent = data.error; $("scripts-status").className = "status bad"; return; }
    const passed = data.scripts.reduce((n, s) => n + s.passed, 0), total = data.scripts.reduce((n, s) => n + s.total, 0);
    $("scripts-status").textContent = `${passed} of ${total} lines passed`;
    $("scripts-status").className = `status ${passed === total ? "ok" : "bad"}`;
    const table = el("table", "grid");
    table.append(el("thead"));
    table.tHead.append(el("tr"));
    ["script", "player", "NPC", "result"].forEach((h) => table.tHead.rows[0].append(el("th", "", h)));
    const body = el("tbody");
    for (const script of data.scripts) {
      for (const line of script.lines) {
        const row = el("tr");
        const result = line.passed ? "pass" : `fail: ${line.failed.join("; ")}`;
        row.append(el("td", "", script.script), el("td", "", line.say), el("td", "", line.reply),
          el("td", line.passed ? "pass" : "fail", result));
        body.append(row);
      }
    }
    table.append(body);
    $("scripts").replaceChildren(table, ...data.errors.map((e) => el("p", "status bad", e)));
  }
}
