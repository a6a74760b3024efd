// Models: versions per task with aliases, data scope, metrics and artefact checksum; promote and
// roll back with the admin token; the champion alias's history.
import { api } from "./api.js";
import { gateSummary } from "./gate.js";
import { badge, errorBox, h, note, num, show, table, when } from "./ui.js";

function scope(data) {
  if (!data || !Object.keys(data).length) return h("span", { class: "muted" }, "–");
  const parts = [];
  if (data.llm !== undefined) parts.push(`LLM ${data.llm ?? "any"}`);
  if (data.n_train_observations !== undefined) parts.push(`${data.n_train_observations.toLocaleString()} observations`);
  if (data.n_train_queries !== undefined) parts.push(`${data.n_train_queries.toLocaleString()} queries`);
  if (data.holdout?.fraction !== undefined) parts.push(`held out ${(100 * data.holdout.fraction).toFixed(0)}%`);
  return h("details", {}, h("summary", {}, parts.join(" · ") || "data scope"),
    h("pre", {}, JSON.stringify(data, null, 1)));
}

function otherMetrics(metrics) {
  const rest = Object.entries(metrics || {}).filter(([k]) => k !== "gate");
  if (!rest.length) return null;
  return h("details", {}, h("summary", {}, "metrics"),
    h("ul", { class: "plain" }, rest.map(([k, v]) => h("li", {}, `${k}: ${typeof v === "number" ? num(v, 4) : JSON.stringify(v)}`))));
}

function promoteControls(v, status, redraw) {
  const reason = h("input", { type: "text", placeholder: "reason (optional)", maxLength: 200, class: "reason",
    "aria-label": `reason to promote v${v.version}` });
  const force = h("input", { type: "checkbox", class: "force" });
  const go = async () => {
    status.replaceChildren(h("span", { class: "loading" }, `promoting v${v.version}…`));
    try {
      const move = await api(`/admin/models/${v.version}/promote`,
        { method: "POST", body: { force: force.checked, reason: reason.value }, admin: true });
      redraw(`v${move.version} is now the champion of ${move.task}` + (move.previous ? ` (was v${move.previous})` : ""));
    } catch (err) { status.replaceChildren(errorBox(err)); }
  };
  return h("div", { class: "actions" }, reason, h("label", { class: "small" }, force, " skip the gate"),
    h("button", { class: "small promote", onclick: go }, "promote"));
}

function versionRow(v, serving, status, redraw) {
  const champion = v.aliases.includes("champion");
  return h("tr", { "data-version": v.version, class: champion ? "chosen" : "" },
    h("td", { class: "num" }, h("strong", {}, `v${v.version}`)),
    h("td", {}, v.aliases.map((a) => badge(a, a === "champion" ? "good" : "")),
      serving === v.version ? badge("serving here", "info") : null),
    h("td", {}, when(v.created_at), h("div", { class: "muted small" }, `${v.backend} · ${v.embedder}`)),
    h("td", {}, scope(v.data_snapshot)),
    h("td", {}, gateSummary(v.metrics?.gate), otherMetrics(v.metrics)),
    h("td", {}, h("code", { title: v.artefact_sha256, class: "sha" }, v.artefact_sha256.slice(0, 12) + "…")),
    h("td", {}, champion ? h("span", { class: "muted small" }, "champion") : promoteControls(v, status, redraw)));
}

function history(task) {
  const box = h("div");
  show(box, async () => {
    const { events } = await api(`/v1/tasks/${encodeURIComponent(task)}/history`);
    if (!events.length) return note("The champion alias has not moved yet.");
    return table(["when", "champion", "was", "why"], events.map((e) => h("tr", {},
      h("td", {}, when(e.at)), h("td", {}, `v${e.version}`), h("td", {}, e.previous ? `v${e.previous}` : "–"),
      h("td", {}, e.reason || "–"))), { class: "history" });
  });
  return box;
}

function taskSection(task, versions, aliases, serving, message, redraw) {
  const status = h("div", { class: "status" }, message ? h("div", { class: "ok" }, message) : null);
  const rollback = async () => {
    status.replaceChildren(h("span", { class: "loading" }, "rolling back…"));
    try {
      const move = await api("/admin/models/rollback", { method: "POST", body: { task }, admin: true });
      redraw(`${move.task}: champion back to v${move.version} (was v${move.previous})`);
    } catch (err) { status.replaceChildren(errorBox(err)); }
  };
  const champ = aliases.champion;
  return h("section", { class: "card", "data-task": task },
    h("h2", {}, task, " ", h("span", { class: "muted small" },
      champ ? `champion v${champ}` : "no champion", aliases.challenger ? ` · challenger v${aliases.challenger}` : "",
      serving ? ` · this worker serves v${serving}` : "")),
    h("div", { class: "actions" }, h("button", { class: "rollback", onclick: rollback }, "roll back the champion")),
    status,
    table(["version", "aliases", "made", "data scope", "gate and metrics", "SHA-256", ""],
      versions.map((v) => versionRow(v, serving, status, redraw)), { class: "versions" }),
    h("h3", {}, "Champion history"), history(task));
}

export function render(root, [only]) {
  const body = h("div");
  const draw = (message) => show(body, async () => {
    const data = await api("/v1/models");
    const tasks = [...new Set([...Object.keys(data.aliases), ...data.versions.map((v) => v.task).filter(Boolean)])].sort();
    if (!tasks.length) return note("No model version yet: train one with POST /admin/retrain or `oirl train`.");
    return tasks.filter((t) => !only || t === only).map((t) => taskSection(t, data.versions.filter((v) => v.task === t),
      data.aliases[t] || {}, data.serving[t], message && message.includes(t) ? message : null, draw));
  });
  root.append(h("h1", {}, "Models", only ? h("span", { class: "muted" }, ` · ${only} `) : null,
    only ? h("a", { href: "#/models", class: "small" }, "all tasks") : null),
    note("Every version is immutable and checksummed. Promotion moves a task's champion alias (atomic; every "
      + "worker swaps within a poll) and is refused unless the gate passed against the current champion; "
      + "rollback returns to the champion before the last promotion. Both need the admin token."), body);
  draw();
  return null;
}
