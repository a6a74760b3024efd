// How a model's promotion gate reads: metric and method, held-out size, both values, the
// 95% interval of the difference, and the verdict.
import { badge, h, interval, num } from "./ui.js";

const VERDICT_KIND = { pass: "good", worse: "bad", too_few_queries: "warn", narrower_scope: "warn", no_champion: "" };

export function gateSummary(gate) {
  if (!gate || !Object.keys(gate).length) return h("span", { class: "muted" }, "no gate recorded");
  const metric = gate.metric === "log_loss" ? "held-out log loss (lower is better)"
    : `${gate.method ? gate.method + " " : ""}${gate.metric || "value"}`;
  return h("div", { class: "gate" },
    badge(gate.verdict || "?", VERDICT_KIND[gate.verdict] || ""), " ",
    h("span", {}, `${metric}: ${num(gate.challenger)}`),
    gate.champion !== null && gate.champion !== undefined
      ? h("span", {}, ` vs champion v${gate.champion_version ?? "?"} ${num(gate.champion)}, difference ${num(gate.difference)} `
        + `95% CI ${interval(gate.ci95)}`) : null,
    h("span", { class: "muted" }, ` · ${gate.n_queries ?? "?"} held-out queries`),
    gate.reason && gate.verdict !== "pass" ? h("div", { class: "muted small" }, gate.reason) : null);
}
