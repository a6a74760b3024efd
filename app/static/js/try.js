// Try a query: choose the task, edit the candidates (registered prompts or free text), and see the
// ranking with P(correct) on one 0..1 scale, the fallback / exploration flags, unseen prompts marked.
import { api } from "./api.js";
import { badge, errorBox, h, note, num, probabilityBar, show, table } from "./ui.js";

const EXAMPLE = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
  + "How many clips did Natalia sell altogether in April and May?";

function freeTextRow(list, value = "") {
  const input = h("input", { type: "text", class: "wide free-text", value, placeholder: "any prompt text (need not be registered)",
    "aria-label": "free-text candidate" });
  const row = h("li", { class: "free" }, input, h("button", { type: "button", class: "link", onclick: () => row.remove() }, "remove"));
  list.append(row);
  input.focus();
}

function candidatesEditor(task) {
  const registered = h("ul", { class: "plain candidates", id: "registered" }, task.prompts.map((p) => h("li", {},
    h("label", {}, h("input", { type: "checkbox", value: String(p.id), checked: p.active, class: "cand" }),
      ` #${p.id} `, p.name ? h("strong", {}, `${p.name} `) : null, h("span", { class: "prompt-text" }, p.text),
      p.active ? null : h("span", { class: "muted small" }, " (inactive)")))));
  const free = h("ul", { class: "plain candidates", id: "free" });
  return {
    element: h("div", { class: "editor" },
      h("h3", {}, "Candidates"),
      task.prompts.length ? registered : note("This task has no registered prompts: add free-text candidates."),
      free,
      h("button", { type: "button", id: "add-free", class: "small", onclick: () => freeTextRow(free) }, "+ free-text candidate")),
    value: () => [
      ...[...registered.querySelectorAll("input.cand:checked")].map((c) => ({ id: Number(c.value) })),
      ...[...free.querySelectorAll("input.free-text")].filter((i) => i.value.trim()).map((i) => ({ text: i.value })),
    ],
  };
}

function answerView(a) {
  const flags = [
    badge(`model v${a.model_version}`, "info"),
    a.fallback ? badge(`fallback: the safe default (${a.fallback_reason || "the model was not trusted"})`, "warn")
      : badge("the model's own choice", "good"),
    a.explored === true ? badge(`explored (propensity ${num(a.propensity)})`, "warn") : null,
    a.explored === false && a.propensity !== undefined ? badge(`greedy (propensity ${num(a.propensity)})`) : null,
    a.decision_id ? h("span", { class: "muted small" }, ` decision ${a.decision_id}`) : null,
  ];
  const chosenText = a.prompt.text;
  const rows = a.ranking.map((r, i) => h("tr", { class: r.prompt.text === chosenText ? "chosen" : "" },
    h("td", { class: "num" }, String(i + 1)),
    h("td", { class: "bar-cell" }, probabilityBar(r.p_correct)),
    h("td", {}, h("span", { class: "prompt-text" }, r.prompt.text), " ",
      r.prompt.text === chosenText ? badge("chosen", "good") : null, " ",
      r.prompt.id === null ? badge("unseen: not a registered prompt, scored through its embedding", "unseen")
        : h("span", { class: "muted small" }, `#${r.prompt.id}`))));
  return [
    h("p", { class: "flags" }, flags),
    h("p", {}, "Use: ", h("strong", { class: "prompt-text", id: "chosen-prompt" }, chosenText),
      ` (P(correct) ${num(a.p_correct)})`),
    table(["#", "P(correct), 0 to 1", "prompt"], rows, { class: "ranking", id: "ranking" }),
  ];
}

export function render(root, [presetTask]) {
  const form = h("div"), result = h("div", { id: "result", "aria-live": "polite" });
  root.append(h("h1", {}, "Try a query"),
    note("The service scores every candidate with the task's champion reward model (no LLM call) and picks the "
      + "best; bars share one 0–1 scale so values compare at a glance."), form, result);

  show(form, async () => {
    const { tasks } = await api("/v1/tasks");
    if (!tasks.length) return note("No task yet.");
    const select = h("select", { id: "task", "aria-label": "task" }, tasks.map((t) => h("option",
      { value: t.name, selected: t.name === presetTask }, t.name + (t.champion ? ` (model v${t.champion.version})` : " (no model yet)"))));
    const query = h("textarea", { id: "query", rows: 4, "aria-label": "query" }, EXAMPLE);
    const editorBox = h("div");
    let editor;
    const pick = () => {
      editor = candidatesEditor(tasks.find((t) => t.name === select.value));
      editorBox.replaceChildren(editor.element);
    };
    select.addEventListener("change", pick);
    pick();
    const run = async (e) => {
      e?.preventDefault();
      result.replaceChildren(h("p", { class: "loading" }, "ranking…"));
      try {
        const a = await api("/v1/select", { method: "POST", body: { task: select.value, query: query.value, candidates: editor.value() } });
        result.replaceChildren(...answerView(a));
      } catch (err) {
        result.replaceChildren(errorBox(err));
      }
    };
    query.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(e); });
    return h("form", { class: "card form", id: "try-form", onsubmit: run },
      h("label", {}, "Task ", select), h("label", { class: "block" }, "Query", query), editorBox,
      h("button", { type: "submit", id: "rank" }, "rank the candidates"));
  });
  return null;
}
