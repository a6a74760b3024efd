// Live: selections per second, fallback and exploration share, cache hit rate, p50/p99 latency,
// and judged accuracy over time per task once feedback arrives. Polls GET /v1/live.
import { api } from "./api.js";
import { errorBox, h, lineChart, note, num, pct, table } from "./ui.js";

const POLL_MS = 2000;
const KEEP = 90;  // points of selections/s history drawn (3 minutes at one poll every 2 s)

function tile(label, value, hint) {
  return h("div", { class: "tile" }, h("div", { class: "tile-value" }, value), h("div", { class: "tile-label" }, label),
    hint ? h("div", { class: "muted small" }, hint) : null);
}

// Per task, from the decision log: every worker's decisions, so every worker shows the same rows.
function taskTable(tasks, models) {
  const names = Object.keys(tasks || {});
  if (!names.length) return null;
  return h("div", {}, h("h2", {}, "Per task, every worker (decision log, last minute)"),
    table(["task", "model here", "decisions / s", "decisions", "fallback share", "exploration share"],
      names.map((t) => h("tr", { "data-task": t }, h("td", {}, t), h("td", {}, models[t] ? `v${models[t]}` : "–"),
        h("td", { class: "num" }, num(tasks[t].per_second, 2)), h("td", { class: "num" }, String(tasks[t].decisions)),
        h("td", { class: "num" }, pct(tasks[t].fallback_share)), h("td", { class: "num" }, pct(tasks[t].exploration_share)))),
      { class: "task-rates" }));
}

function judgedCharts(judged) {
  const withData = Object.entries(judged).filter(([, pts]) => pts.length);
  if (!withData.length) {
    return note("Judged accuracy: no feedback yet. Once decisions are judged (POST /v1/feedback), each task's "
      + "accuracy over time is drawn here, from the store, so every worker shows the same picture.");
  }
  // x: minutes since the epoch, labelled as local clock time; at most 7 labels.
  const minutes = (p) => Math.round(Date.parse(p.at) / 60000);
  const xs = [...new Set(withData.flatMap(([, pts]) => pts.map(minutes)))].sort((a, b) => a - b);
  const step = Math.ceil(xs.length / 7);
  const clock = (m) => new Date(m * 60000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return lineChart(withData.map(([task, pts]) => ({ name: task, points: pts.map((p) => [minutes(p), p.accuracy]) })),
    { title: "Judged accuracy (mean reward of judged decisions, 5-minute buckets)", xLabel: "decision time",
      xTicks: xs.filter((_, i) => i % step === 0), xFormat: clock });
}

export function render(root) {
  const tiles = h("div", { class: "tiles", id: "live-tiles" }, h("p", { class: "loading" }, "loading…"));
  const rate = h("div"), perTask = h("div"), judged = h("div"), scope = h("p", { class: "muted small" }), problem = h("div");
  const history = [];
  let timer = null, stopped = false;
  const start = performance.now();

  const poll = async () => {
    try {
      const d = await api("/v1/live");
      problem.replaceChildren();
      tiles.replaceChildren(
        tile("selections / s", num(d.selections_per_second, 2), `${d.selections} in the last ${num(d.window_seconds, 0)} s`),
        tile("fallback share", pct(d.fallback_share), "safe default chosen"),
        tile("exploration share", pct(d.exploration_share), "not the greedy choice"),
        tile("cache hit rate", pct(d.cache_hit_rate), "answers served from cache"),
        tile("latency p50", d.latency_ms.p50 === null ? "–" : `${num(d.latency_ms.p50, 1)} ms`, "POST /v1/select"),
        tile("latency p99", d.latency_ms.p99 === null ? "–" : `${num(d.latency_ms.p99, 1)} ms`, "POST /v1/select"),
        tile("models", Object.entries(d.models).map(([t, v]) => `${t} v${v}`).join(", ") || "none", "served by this worker"));
      history.push([Math.round((performance.now() - start) / 1000), d.selections_per_second]);
      if (history.length > KEEP) history.shift();
      const peak = Math.max(1, ...history.map((p) => p[1]));
      rate.replaceChildren(history.length > 1
        ? lineChart([{ name: "selections/s", points: history }], { title: "Selections per second (this page's view)",
          xLabel: "seconds since the page opened", ymax: Math.ceil(peak), xTicks: [history[0][0], history.at(-1)[0]] })
        : note("The rate chart starts with the next reading."));
      if (d.store_error) {
        perTask.replaceChildren(h("div", { class: "warn-box", id: "store-error" }, d.store_error));
        judged.replaceChildren();
      } else {
        perTask.replaceChildren(...[taskTable(d.tasks, d.models)].filter(Boolean));
        judged.replaceChildren(judgedCharts(d.judged));
      }
      scope.textContent = `The tiles: ${d.scope}. The table and the judged accuracy: the store, the same on every worker.`;
    } catch (err) {
      problem.replaceChildren(errorBox(err));  // keep polling: it clears itself when the service answers
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  };
  root.append(h("h1", {}, "Live"), problem, tiles, scope, rate, perTask, judged);
  poll();
  return () => { stopped = true; clearTimeout(timer); };
}
