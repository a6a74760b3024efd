// Evaluations: start one (task, protocol, K), watch its progress, then its table and plots:
// method comparison with intervals, accuracy against K (from evaluations that differ only in K),
// and off-policy estimates where the report carries them.
import { api } from "./api.js";
import { badge, errorBox, h, intervalChart, interval, lineChart, note, num, pct, show, table, when } from "./ui.js";

const POLL_MS = 700;
const LABELS = { random: "random prompt", botr_train: "best prompt on training (BoTr)",
  botr_test: "best prompt on test (optimistic)", llm_confidence: "LLM self-confidence", prompt_oirl: "Prompt-OIRL",
  prompt_oirl_argmax: "Prompt-OIRL without fallback", oracle: "oracle (any prompt right)" };
const SHORT = { random: "random", botr_train: "BoTr", botr_test: "BoTr on test", llm_confidence: "LLM confidence",
  prompt_oirl: "Prompt-OIRL", prompt_oirl_argmax: "no fallback", oracle: "oracle" };
let timers = [];
let shown = 0;  // which detail view is current: an older one's poll stops writing

function later(fn, ms) { timers.push(setTimeout(fn, ms)); }

function describe(params) {
  const p = params || {};
  return [p.task, p.policy ? `policy ${p.policy}` : p.protocol, p.k ? `K=${p.k}` : null, p.held_out ? "held-out prompts" : null,
    p.max_queries ? `${p.max_queries} queries` : null].filter(Boolean).join(" · ");
}

function methodTable(report) {
  const rows = Object.entries(report.methods).map(([m, v]) => h("tr", { class: m.startsWith("prompt_oirl") ? "chosen" : "" },
    h("td", {}, LABELS[m] || m), h("td", { class: "num" }, num(v.accuracy)),
    h("td", {}, v.ci95_vs_botr ? interval(v.ci95_vs_botr) : "", v.significant_vs_botr
      ? h("span", { class: "muted small" }, ` (${v.significant_vs_botr === "no" ? "not significant" : v.significant_vs_botr + " BoTr"})`) : null),
    h("td", { class: "num" }, v.pgr !== undefined ? num(v.pgr) : ""),
    h("td", { class: "muted small" }, v.fallback_rate !== undefined ? `fallback on ${pct(v.fallback_rate)} of queries` : v.note || "")));
  return table(["method", "accuracy", "95% CI of the difference vs BoTr", "gap recovered (PGR)", ""], rows, { class: "methods" });
}

function methodChart(report) {
  const botr = report.methods.botr_train?.accuracy;
  const items = Object.entries(report.methods).filter(([, v]) => v.accuracy !== null && v.accuracy !== undefined)
    .map(([m, v]) => ({ label: SHORT[m] || m, value: v.accuracy, highlight: m.startsWith("prompt_oirl"),
      lo: v.ci95_vs_botr && botr !== undefined ? botr + v.ci95_vs_botr[0] : undefined,
      hi: v.ci95_vs_botr && botr !== undefined ? botr + v.ci95_vs_botr[1] : undefined }));
  return intervalChart(items, { title: `Test accuracy on ${report.n_test} queries (Prompt-OIRL: 95% interval vs BoTr)` });
}

// Off-policy estimates: {policy, n, estimates: {ips, snips, dm, dr: {value, ci95}}, unavailable?,
// logged_reward?}, wherever the report puts them (an off-policy report is one itself).
function opeBlocks(report) {
  const found = [];
  const visit = (x) => {
    if (!x || typeof x !== "object") return;
    if (Array.isArray(x)) { x.forEach(visit); return; }
    if (x.estimates && typeof x.estimates === "object") { found.push(x); return; }
    for (const [k, v] of Object.entries(x)) if (k !== "methods" && k !== "subsets") visit(v);
  };
  visit(report);
  return found.map((o) => {
    const entries = Object.entries(o.estimates).filter(([, e]) => e && e.value !== undefined && e.value !== null);
    const items = entries.map(([k, e]) => ({ label: k.toUpperCase(), value: e.value, lo: e.ci95?.[0], hi: e.ci95?.[1],
      highlight: true }));
    if (typeof o.logged_reward === "number") items.push({ label: "logged (μ)", value: o.logged_reward });
    const values = items.flatMap((it) => [it.value, it.lo, it.hi]).filter((v) => typeof v === "number");
    const missing = Object.entries(o.unavailable || {});
    return h("div", { class: "ope" },
      h("h3", {}, `Off-policy estimates${o.policy ? ` of policy “${o.policy}”` : ""}${o.n !== undefined ? ` (${o.n} logged decisions)` : ""}`),
      o.prompt ? h("p", { class: "muted" }, "the constant prompt: ", h("span", { class: "prompt-text" }, o.prompt)) : null,
      typeof o.logged_reward === "number" ? note(`The logging policy's observed mean reward: ${num(o.logged_reward)}`
        + (o.ess !== undefined ? `; effective sample size ${num(o.ess, 0)}.` : ".")) : null,
      o.vs_botr ? note(`Against BoTr on the same decisions: ${o.vs_botr.estimator.toUpperCase()} difference `
        + `${num(o.vs_botr.difference)} ${interval(o.vs_botr.ci95)}.`) : null,
      items.length ? intervalChart(items, { min: Math.min(0, ...values), max: Math.max(1, ...values),
        title: "estimated value of the policy, 95% interval" }) : null,
      entries.length ? table(["estimator", "value", "95% CI"], entries.map(([k, e]) => h("tr", {}, h("td", {}, k.toUpperCase()),
        h("td", { class: "num" }, num(e.value)), h("td", {}, interval(e.ci95))))) : null,
      missing.length ? h("ul", { class: "plain unavailable" }, missing.map(([k, why]) => h("li", { class: "muted" },
        h("strong", {}, `${k.toUpperCase()} unavailable: `), why))) : null);
  });
}

function kCurve(evaluation, all) {
  const p = evaluation.params || {};
  const same = all.filter((e) => e.status === "succeeded" && e.report?.information === "full"
    && e.params?.task === p.task && e.params?.protocol === p.protocol && !!e.params?.held_out === !!p.held_out
    && (e.params?.max_queries ?? null) === (p.max_queries ?? null) && !e.params?.prompts);
  const byK = new Map();
  for (const e of same) if (!byK.has(e.report.k)) byK.set(e.report.k, e.report);  // newest first: keep the newest
  const ks = [...byK.keys()].sort((a, b) => a - b);
  if (ks.length < 2) return null;
  const methods = ["prompt_oirl", "botr_train", "random", "oracle"].filter((m) => ks.every((k) => byK.get(k).methods[m]?.accuracy != null));
  return lineChart(methods.map((m) => ({ name: SHORT[m] || m, points: ks.map((k) => [k, byK.get(k).methods[m].accuracy]) })),
    { title: `Accuracy against K (${p.task}, ${p.protocol})`, xLabel: "K = training prompts", xTicks: ks });
}

function reportView(evaluation, all) {
  const r = evaluation.report;
  if (!r.methods && r.estimates) {  // an off-policy report of one policy
    return [h("p", { class: "muted" }, `task ${r.task ?? evaluation.params?.task} · ${r.n_queries ?? "?"} held-out queries`
      + ` · ${r.n_held_out_observations ?? "?"} held-out observations`), ...opeBlocks(r), plotFigure(evaluation)];
  }
  const head = h("p", { class: "muted" }, `${r.dataset} · protocol ${r.protocol} · K=${r.k} · ${r.n_test} test queries`
    + (r.n_test_questions ? ` (${r.n_test_questions} distinct questions)` : "") + ` · backend ${r.backend}`);
  const parts = [head];
  if (r.information === "partial") {
    parts.push(h("div", { class: "warn-box" }, r.unavailable));
    if (r.held_out_log_loss) {
      const l = r.held_out_log_loss;
      parts.push(table(["held-out log loss", "value"], [
        h("tr", {}, h("td", {}, "reward model"), h("td", { class: "num" }, num(l.reward_model, 4))),
        h("tr", {}, h("td", {}, "per-prompt base rate"), h("td", { class: "num" }, num(l.prompt_base_rate, 4)))]),
      note(`${l.n_observations} held-out observations on ${l.n_queries} queries.`));
    }
  } else {
    parts.push(methodTable(r), methodChart(r));
  }
  parts.push(...opeBlocks(r));
  const ceiling = r.repeat_headroom;
  if (ceiling?.n_texts) {
    parts.push(note(`Repeat ceiling: picking per query from its other tries gains ${num(ceiling.gain)} `
      + `${interval(ceiling.ci95)} over the default prompt (${ceiling.n_held_out_tries} held-out tries of `
      + `${ceiling.n_texts} repeated queries): the most per-query selection can give on these logs.`));
  } else if (ceiling?.note) {
    parts.push(note(`Repeat ceiling: ${ceiling.note}.`));
  }
  const curve = r.information === "full" ? kCurve(evaluation, all) : null;
  if (curve) parts.push(curve);
  parts.push(plotFigure(evaluation));
  return parts;
}

function plotFigure(evaluation) {
  if (!evaluation.plot_url) return null;
  return h("figure", {}, h("img", { src: evaluation.plot_url, alt: "evaluation chart", class: "plot" }),
    h("figcaption", { class: "muted small" }, "The service's own chart (PNG): ", h("a", { href: evaluation.plot_url }, "open")));
}

function headline(r) {
  if (!r) return "";
  if (r.methods?.prompt_oirl?.accuracy != null) {
    return `Prompt-OIRL ${num(r.methods.prompt_oirl.accuracy)} · BoTr ${num(r.methods.botr_train?.accuracy)}`;
  }
  const best = ["dr", "snips", "ips", "dm"].find((k) => r.estimates?.[k]);
  if (best) return `${best.toUpperCase()} ${num(r.estimates[best].value)} ${interval(r.estimates[best].ci95)}`;
  return r.information === "partial" ? "partial logs: log loss only" : "";
}

function progressView(e) {
  return h("div", { class: "progress-line" },
    h("progress", { max: 1, value: e.progress || 0 }), ` ${e.status} · ${pct(e.progress || 0)}`);
}

function detail(box, id, refreshList) {
  const mine = ++shown;
  const step = async () => {
    if (mine !== shown) return;
    let e;
    try {
      e = await api(`/v1/evaluations/${encodeURIComponent(id)}`);
    } catch (err) {
      if (mine === shown) box.replaceChildren(errorBox(err, () => detail(box, id, refreshList)));
      return;
    }
    if (mine !== shown) return;
    const title = h("h2", {}, `Evaluation ${e.id.slice(0, 8)} `, badge(e.status, e.status === "succeeded" ? "good" : e.status === "failed" ? "bad" : "info"),
      h("span", { class: "muted small" }, ` ${describe(e.params)} · started ${when(e.created_at)}`));
    if (e.status === "queued" || e.status === "running") {
      box.replaceChildren(title, progressView(e));
      later(step, POLL_MS);
    } else if (e.status === "failed") {
      box.replaceChildren(title, errorBox(new Error(e.error || "the job failed without saying why")));
      refreshList();
    } else {
      let all = [];
      try { all = (await api("/v1/evaluations?limit=100")).evaluations; } catch { /* the K curve is optional */ }
      box.replaceChildren(title, ...reportView(e, all));
      refreshList();
    }
  };
  box.replaceChildren(h("p", { class: "loading" }, "loading…"));
  step();
}

// The form follows the request body's schema (the library's EvaluationParams, from /openapi.json):
// choices such as protocol, or a policy to estimate off-policy, appear as the service offers them.
async function evaluationSchema() {
  try {
    const doc = await api("/openapi.json");
    const ref = doc.paths["/v1/evaluations"].post.requestBody.content["application/json"].schema.$ref;
    return doc.components.schemas[ref.split("/").pop()].properties || {};
  } catch {
    return { protocol: { enum: ["grouped", "paper"], default: "grouped" } };  // docs switched off: the basics
  }
}

function choices(prop) {
  if (!prop) return null;
  if (prop.enum) return prop.enum;
  const withEnum = (prop.anyOf || []).find((p) => p.enum);
  return withEnum ? withEnum.enum : null;
}

const SUGGESTIONS = { policy: ["champion", "challenger", "botr", "uniform"] };  // also v<version>, prompt:<id>
const CHOICE_HINTS = { grouped: "grouped (no test question seen in training)", paper: "paper (the logs' own split)" };

function choiceField(name, prop) {
  const options = choices(prop);
  if (!options) {
    const list = `eval-${name}-choices`;
    return h("span", {}, h("input", { type: "text", id: `eval-${name}`, name, list, "aria-label": name,
      placeholder: name === "policy" ? "unset: offline protocol" : "default", title: prop.description || "" }),
    h("datalist", { id: list }, (SUGGESTIONS[name] || []).map((v) => h("option", { value: v }))));
  }
  const optional = !prop.enum || prop.default === null || prop.default === undefined;
  return h("select", { id: `eval-${name}`, name, "aria-label": name, title: prop.description || "" },
    optional ? h("option", { value: "" }, "default") : null,
    options.map((o) => h("option", { value: o, selected: o === prop.default }, CHOICE_HINTS[o] || o)));
}

function startForm(tasks, schema, preset, onStarted) {
  const task = h("select", { id: "eval-task", "aria-label": "task" },
    tasks.map((t) => h("option", { value: t.name, selected: t.name === preset }, t.name)));
  const extra = ["protocol", "policy"].filter((n) => schema[n]).map((n) => [n, choiceField(n, schema[n])]);
  const k = h("input", { type: "number", id: "eval-k", min: 1, max: 6, placeholder: "all", class: "short", "aria-label": "K" });
  const heldOut = h("input", { type: "checkbox", id: "eval-held-out" });
  const maxQ = h("input", { type: "number", id: "eval-max-queries", min: 10, placeholder: "all", class: "short", "aria-label": "max queries" });
  const status = h("div", { class: "status" });
  const submit = async (ev) => {
    ev.preventDefault();
    const body = { task: task.value, held_out: heldOut.checked };
    if (schema.n_boot) body.n_boot = 1000;  // enough for a 95% interval on a page; the API's default is 2000
    for (const [name] of extra) {
      const value = ev.target.querySelector(`[name=${name}]`).value.trim();
      if (value) body[name] = value;
    }
    if (k.value) body.k = Number(k.value);
    if (maxQ.value) body.max_queries = Number(maxQ.value);
    status.replaceChildren(h("span", { class: "loading" }, "starting…"));
    try {
      const job = await api("/v1/evaluations", { method: "POST", body, admin: true });
      status.replaceChildren();
      onStarted(job.id);
    } catch (err) { status.replaceChildren(errorBox(err)); }
  };
  return h("form", { class: "card form", id: "eval-form", onsubmit: submit },
    h("h2", {}, "Start an evaluation"),
    h("div", { class: "row" }, h("label", {}, "task ", task), extra.map(([n, field]) => h("label", {}, `${n} `, field)),
      h("label", {}, "K training prompts ", k), h("label", {}, "queries ", maxQ),
      h("label", {}, heldOut, " offer held-out prompts at test time (benchmark tasks)")),
    h("button", { type: "submit", id: "eval-start" }, "evaluate"), status);
}

export function render(root, [presetTask]) {
  timers = [];
  const formBox = h("div"), detailBox = h("div", { id: "eval-detail" }), listBox = h("div");
  const open = (id) => detail(detailBox, id, refreshList);
  function refreshList() {
    show(listBox, async () => {
      const { evaluations } = await api("/v1/evaluations?limit=30");
      if (!evaluations.length) return note("No evaluation yet.");
      return table(["started", "what", "status", "result", ""], evaluations.map((e) => h("tr", { "data-eval": e.id },
        h("td", {}, when(e.created_at)), h("td", {}, describe(e.params)),
        h("td", {}, badge(e.status, e.status === "succeeded" ? "good" : e.status === "failed" ? "bad" : "info")),
        h("td", { class: "num" }, headline(e.report)),
        h("td", {}, h("button", { class: "small", onclick: () => open(e.id) }, "open")))), { class: "evaluations" });
    });
  }
  root.append(h("h1", {}, "Evaluations"),
    note("Offline evaluation on a task's logs: every method on the same test queries, with a 95% paired-bootstrap "
      + "interval against the best training prompt. Starting one needs the admin token; it runs as a background job."),
    formBox, detailBox, h("h2", {}, "Recent evaluations"), listBox);
  show(formBox, async () => {
    const [{ tasks }, schema] = await Promise.all([api("/v1/tasks"), evaluationSchema()]);
    return startForm(tasks, schema, presetTask, open);
  });
  refreshList();
  return () => { timers.forEach(clearTimeout); timers = []; };
}
