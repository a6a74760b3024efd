// Tasks: each task's champion and challenger with their gate numbers, its candidate prompts
// (activate / deactivate / add, with the admin token) and its exploration setting.
import { api } from "./api.js";
import { gateSummary } from "./gate.js";
import { badge, errorBox, h, note, show, table, when } from "./ui.js";

function describeExploration(e) {
  const parts = [`mode ${e.mode}`];
  if (e.mode === "epsilon" && e.epsilon !== undefined) parts.push(`ε = ${e.epsilon}`);
  if (e.mode === "softmax" && e.temperature !== undefined) parts.push(`temperature ${e.temperature}`);
  if (e.default_floor) parts.push(`at least ${(100 * e.default_floor).toFixed(0)}% on the safe default`);
  return parts.join(" · ");
}

// The task's exploration setting, and a form to change it (PUT /v1/tasks/{name}/exploration).
function exploration(task, status, redraw) {
  const e = task.exploration;
  if (!e) return h("span", { class: "muted" }, "not reported by this service (greedy choice)");
  const field = (name, value, attrs) => h("label", { class: "small" }, `${name} `,
    h("input", { type: "number", class: "short", name, value: String(value ?? ""), step: "any", ...attrs }));
  const mode = h("select", { name: "mode", "aria-label": "exploration mode" },
    ["greedy", "epsilon", "softmax"].map((m) => h("option", { value: m, selected: m === e.mode }, m)));
  const form = h("form", { class: "inline explore-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = { mode: mode.value };
    for (const name of ["epsilon", "temperature", "default_floor"]) {
      const v = form.querySelector(`input[name=${name}]`).value;
      if (v !== "") body[name] = Number(v);
    }
    status.replaceChildren(h("span", { class: "loading" }, "saving…"));
    try {
      await api(`/v1/tasks/${encodeURIComponent(task.name)}/exploration`, { method: "PUT", body, admin: true });
      redraw();
    } catch (err) { status.replaceChildren(errorBox(err)); }
  } }, mode, field("epsilon", e.epsilon, { min: 0, max: 1 }), field("temperature", e.temperature, { min: 0 }),
  field("default_floor", e.default_floor, { min: 0, max: 1 }), h("button", { type: "submit", class: "small" }, "set"));
  return h("span", {}, h("span", { class: "explore-now" }, describeExploration(e)),
    h("details", {}, h("summary", { class: "small" }, "change"), form));
}

function aliasRow(task, label, alias) {
  if (!alias) return h("tr", {}, h("th", {}, label), h("td", { colspan: 2, class: "muted" }, "none"));
  return h("tr", {}, h("th", {}, label),
    h("td", {}, h("a", { href: `#/models/${encodeURIComponent(task.name)}` }, `v${alias.version}`),
      h("div", { class: "muted small" }, when(alias.created_at))),
    h("td", {}, gateSummary(alias.gate)));
}

function promptRows(task, status, redraw) {
  return task.prompts.map((p) => {
    const toggle = async () => {
      status.replaceChildren(h("span", { class: "loading" }, "saving…"));
      try {
        await api(`/v1/tasks/${encodeURIComponent(task.name)}/prompts/${p.id}`,
          { method: "PATCH", body: { active: !p.active }, admin: true });
        redraw();
      } catch (err) { status.replaceChildren(errorBox(err)); }
    };
    return h("tr", { class: p.active ? "" : "inactive", "data-prompt": p.id },
      h("td", { class: "num" }, String(p.id)),
      h("td", {}, p.name ? h("strong", {}, p.name + " ") : null, h("span", { class: "prompt-text" }, p.text)),
      h("td", {}, p.active ? badge("active", "good") : badge("inactive")),
      h("td", {}, h("button", { onclick: toggle, class: "small" }, p.active ? "deactivate" : "activate")));
  });
}

function addPromptForm(task, status, redraw) {
  const text = h("input", { type: "text", placeholder: "a new candidate prompt", class: "wide", "aria-label": "new prompt" });
  return h("form", { class: "inline add-prompt", onsubmit: async (e) => {
    e.preventDefault();
    if (!text.value.trim()) return;
    status.replaceChildren(h("span", { class: "loading" }, "saving…"));
    try {
      await api(`/v1/tasks/${encodeURIComponent(task.name)}/prompts`, { method: "POST", body: { text: text.value }, admin: true });
      redraw();
    } catch (err) { status.replaceChildren(errorBox(err)); }
  } }, text, h("button", { type: "submit", class: "small" }, "add prompt"));
}

function taskCard(task, redraw) {
  const status = h("div", { class: "status" });
  return h("section", { class: "card", "data-task": task.name },
    h("h2", {}, task.name, " ", h("span", { class: "muted small" }, task.llm ? `LLM ${task.llm}` : "LLM not declared")),
    task.description ? h("p", {}, task.description) : null,
    h("p", { class: "muted" }, `${task.n_observations.toLocaleString()} logged observations · created ${when(task.created_at)} · `,
      h("a", { href: `#/try/${encodeURIComponent(task.name)}` }, "try a query"), " · ",
      h("a", { href: `#/models/${encodeURIComponent(task.name)}` }, "models"), " · ",
      h("a", { href: `#/evaluations/${encodeURIComponent(task.name)}` }, "evaluate")),
    table(["alias", "version", "gate"], [aliasRow(task, "champion", task.champion), aliasRow(task, "challenger", task.challenger)],
      { class: "aliases" }),
    h("div", { class: "exploration" }, h("strong", {}, "Exploration: "), exploration(task, status, redraw)),
    h("h3", {}, `Candidate prompts (${task.prompts.filter((p) => p.active).length} active of ${task.prompts.length})`),
    table(["id", "prompt", "", ""], promptRows(task, status, redraw), { class: "prompts" }),
    addPromptForm(task, status, redraw), status);
}

export function render(root) {
  const body = h("div");
  const draw = () => show(body, async () => {
    const { tasks } = await api("/v1/tasks");
    if (!tasks.length) return note("No task yet. Create one with POST /v1/tasks or `oirl tasks create`, "
      + "or start the service with --bootstrap to import the benchmark tasks.");
    return tasks.map((t) => taskCard(t, draw));
  });
  root.append(h("h1", {}, "Tasks"),
    note("Which model serves each task, why it was promoted (its gate against the champion it replaced, "
      + "on held-out questions), and the prompts it chooses from. Changes need the admin token."), body);
  draw();
  return null;
}
