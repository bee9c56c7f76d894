// The persona editor: a textarea with line numbers, the validator's problems marked at their lines, and
// key completion from the persona's JSON Schema (Ctrl+Space, or while typing a key).

const LINE = 18; // px, the CSS --line

export class PersonaEditor {
  constructor({ textarea, gutter, markers, completions, problems, onChange }) {
    Object.assign(this, { textarea, gutter, markers, completions, problemList: problems, onChange });
    this.schema = null;
    this.problems = [];
    this.choices = [];
    this.active = 0;
    textarea.addEventListener("input", () => { this.render(); this.onChange(); this.complete(false); });
    textarea.addEventListener("scroll", () => this.render());
    textarea.addEventListener("keydown", (event) => this.key(event));
    textarea.addEventListener("blur", () => setTimeout(() => this.hide(), 150));
  }

  get text() { return this.textarea.value; }

  set text(value) {
    this.textarea.value = value;
    this.problems = [];
    this.render();
  }

  show(problems) {
    this.problems = problems;
    this.problemList.replaceChildren(...problems.map((p) => {
      const item = document.createElement("li");
      item.textContent = `${p.line}:${p.column}: ${p.message}`;
      item.onclick = () => this.goTo(p.line, p.column);
      return item;
    }));
    this.render();
  }

  goTo(line, column) {
    const lines = this.text.split("\n");
    const offset = lines.slice(0, line - 1).reduce((sum, l) => sum + l.length + 1, 0) + column - 1;
    this.textarea.focus();
    this.textarea.setSelectionRange(offset, offset);
    this.textarea.scrollTop = Math.max(0, (line - 5) * LINE);
  }

  render() {
    const count = this.text.split("\n").length;
    const bad = new Map();
    for (const p of this.problems) bad.set(p.line, [...(bad.get(p.line) || []), p]);
    const numbers = [];
    for (let i = 1; i <= count; i++) {
      const n = document.createElement("div");
      n.textContent = i;
      if (bad.has(i)) { n.className = "error"; n.title = bad.get(i).map((p) => p.message).join("\n"); }
      numbers.push(n);
    }
    this.gutter.replaceChildren(...numbers);
    this.gutter.scrollTop = this.textarea.scrollTop;
    // A band on each line with a problem, and its message at the line's end.
    this.markers.replaceChildren(...[...bad].map(([line, list]) => {
      const band = document.createElement("div");
      band.className = "marker";
      band.dataset.line = line;
      band.style.top = `${6 + (line - 1) * LINE - this.textarea.scrollTop}px`;
      const message = document.createElement("span");
      message.textContent = list.map((p) => `${p.line}:${p.column}: ${p.message}`).join("; ");
      band.append(message);
      return band;
    }));
  }

  key(event) {
    if (event.ctrlKey && event.code === "Space") { event.preventDefault(); this.complete(true); return; }
    if (this.completions.hidden) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      this.active = (this.active + (event.key === "ArrowDown" ? 1 : -1) + this.choices.length) % this.choices.length;
      this.list();
    } else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      this.accept(this.choices[this.active]);
    } else if (event.key === "Escape") {
      this.hide();
    }
  }

  // The key being typed: only letters and underscores after the indentation (or "- ") of its line.
  typing() {
    const at = this.textarea.selectionStart;
    const before = this.text.slice(0, at);
    const row = before.split("\n").length - 1;
    const lineStart = before.lastIndexOf("\n") + 1;
    const match = /^(\s*(?:- )?)([A-Za-z_]*)$/.exec(before.slice(lineStart));
    if (!match) return null;
    // After "- " the key is the first of a list item: its path ends in the item, from the dash's column.
    const item = match[1].includes("-");
    const indent = item ? match[1].indexOf("-") : match[1].length;
    return { row, indent, item, column: match[1].length, word: match[2], from: lineStart + match[1].length, at };
  }

  complete(asked) {
    const typing = this.typing();
    if (!this.schema || !typing || (!asked && !typing.word)) { this.hide(); return; }
    const path = yamlPath(this.text.split("\n"), typing.row, typing.indent);
    const node = resolve(this.schema, this.schema, typing.item ? [...path, "[]"] : path);
    const properties = (node && node.properties) || {};
    this.choices = Object.keys(properties)
      .filter((key) => key.startsWith(typing.word) && key !== typing.word)
      .map((key) => ({
        key,
        description: properties[key].description || resolve(this.schema, properties[key], [])?.description || "",
      }));
    if (!this.choices.length) { this.hide(); return; }
    this.typed = typing;
    this.active = 0;
    const lineTop = 6 + (typing.row + 1) * LINE - this.textarea.scrollTop;
    this.completions.style.top = `${lineTop}px`;
    this.completions.style.left = `${8 + typing.column * 7.5}px`;
    this.list();
  }

  list() {
    this.completions.hidden = false;
    this.completions.replaceChildren(...this.choices.map((choice, i) => {
      const item = document.createElement("li");
      item.className = i === this.active ? "active" : "";
      item.dataset.key = choice.key;
      item.textContent = choice.key;
      const help = document.createElement("small");
      help.textContent = choice.description;
      item.append(help);
      item.onmousedown = (event) => { event.preventDefault(); this.accept(choice); };
      return item;
    }));
  }

  accept(choice) {
    const { from, at } = this.typed;
    this.textarea.setRangeText(`${choice.key}: `, from, at, "end");
    this.hide();
    this.render();
    this.onChange();
  }

  hide() { this.completions.hidden = true; }
}

// The keys above `row` (by indentation) that hold the key typed at `column`; "[]" marks a list item.
export function yamlPath(lines, row, column) {
  const path = [];
  let indent = column;
  for (let r = row - 1; r >= 0 && indent > 0; r--) {
    const m = /^(\s*)(- +)?(?:([A-Za-z_][\w-]*)\s*:\s*(#.*)?$|(.*))/.exec(lines[r]);
    if (!m || !lines[r].trim() || lines[r].trim().startsWith("#")) continue;
    const dash = m[1].length;
    const keyColumn = dash + (m[2] ? m[2].length : 0);
    if (m[2] && keyColumn === indent) { path.push("[]"); indent = dash; continue; } // a sibling in one item
    if (keyColumn < indent && m[3]) {
      path.push(m[3]);
      indent = keyColumn;
      if (m[2]) { path.push("[]"); indent = dash; }
    } else if (keyColumn < indent) {
      indent = keyColumn; // a line with a value: not a parent of ours
    }
  }
  return path.reverse();
}

// The schema node at `path`, following $ref, anyOf (optional fields) and array items.
export function resolve(root, node, path) {
  const unwrap = (n) => {
    for (let guard = 0; n && guard < 10; guard++) {
      if (n.$ref) n = n.$ref.split("/").slice(1).reduce((o, k) => o && o[k], root);
      else if (n.anyOf) n = n.anyOf.find((a) => a.$ref || a.properties || a.items) || n.anyOf[0];
      else break;
    }
    return n;
  };
  node = unwrap(node);
  for (const part of path) {
    if (!node) return null;
    node = unwrap(part === "[]" ? node.items : (node.properties || {})[part]);
  }
  return node;
}
