"""Offline evaluation as a job: the core's ``oirl.evaluate.evaluate`` on logs from the store.

The result keeps the report dict (the metrics table) and a PNG bar chart, base64-encoded,
so any worker sharing the store can answer ``GET /v1/evaluations/{id}/plot.png`` without
a shared filesystem.
"""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, field_validator
from pydantic.dataclasses import dataclass

from oirl.evaluate.offpolicy import POLICY_PATTERN, POLICY_RULE
from oirl.jobs.data import store_logs
from oirl.jobs.retrain import Backend, Features
from oirl.jobs.runner import JobError
from oirl.validation import JsonObject, LlmName, StrictInt, TaskName


@dataclass(config=ConfigDict(extra="forbid"))
class EvaluationParams:
    """What to evaluate: the request body of ``POST /v1/evaluations`` and the options of ``oirl evaluate``."""

    task: TaskName | None = Field(None, description="Task whose logs to evaluate on (default: the default task).")
    llm: LlmName | None = Field(None, description="Only this LLM's observations (default: every LLM).")
    protocol: Literal["grouped", "paper"] = Field(
        "grouped", description="grouped: split by question text, no test question seen in training; paper: the "
                               "logs' own train/test split (the benchmark's published one).")
    k: StrictInt | None = Field(None, ge=1, le=6, description="Benchmark tasks: train on the first K of prompts 0-5 "
                                                        "(default 6). Other tasks use every logged prompt.")
    prompts: list[StrictInt] | None = Field(None, description="Benchmark tasks: explicit training prompt indices.")
    all_subsets: bool = Field(False, description="Benchmark tasks: average over every K-subset of prompts 0-5.")
    held_out: bool = Field(False, description="Benchmark tasks: also offer the 10 held-out prompts at test time.")
    backend: Backend = "lightgbm"
    params: JsonObject | None = Field(None, description="Backend parameters overriding its defaults.")
    features: Features = Field("concat+knn", description="Pair features; the measured default is concat+knn.")
    seed: StrictInt = 0
    n_boot: StrictInt = Field(2000, ge=100, le=20000, description="Bootstrap resamples for the intervals.")
    max_queries: StrictInt | None = Field(None, ge=10, description="Evaluate on a seeded subsample of queries.")
    test_fraction: float | None = Field(None, gt=0, lt=1, description="grouped protocol: share of questions "
                                                                      "tested (default: the paper split's share).")
    policy: str | None = Field(None, pattern=POLICY_PATTERN, description=(
        "Off-policy evaluation of one policy on the logged decisions with propensities (IPS, SNIPS, DM, DR): "
        + POLICY_RULE + ". Unset: the offline protocol above."))

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str | None) -> str | None:
        # e.g. v2147483648: past the store's version ids, refused here rather than by the database
        from oirl.evaluate.offpolicy import parse_policy

        if value is not None:
            parse_policy(value)  # a PolicyError is a ValueError: pydantic reports it as a 422
        return value


def benchmark_confidence(task: str, logs: pd.DataFrame, benchmark_dir: Path | None) -> pd.DataFrame | None:
    """LLM self-confidence of a benchmark task's test queries, indexed like ``store_logs`` (query
    id x prompt index); None when the task is not a benchmark one or the files are not here."""
    from oirl.datasets.benchmark import DATASETS, SPECS, load_confidence

    if task not in DATASETS or benchmark_dir is None or not Path(benchmark_dir).is_dir():
        return None
    try:
        conf = load_confidence(task, benchmark_dir)  # (n_test, 16), rows = line index - n_train
    except (OSError, ValueError):
        return None
    lines = logs.drop_duplicates("query_index").set_index("query_index")["external_key"].astype(int)
    row = lines - SPECS[task].n_train
    row = row[(row >= 0) & (row < len(conf))]
    return pd.DataFrame(conf[row.to_numpy()], index=row.index)


def run_evaluation(factory, embedder, p: EvaluationParams, progress=lambda f: None,
                   benchmark_dir: Path | None = None, registry=None) -> dict:
    from oirl.evaluate import evaluate

    logs = store_logs(factory, task=p.task, llm=p.llm)
    if logs.empty:
        raise JobError(f"no observations in the store for task={p.task!r}, llm={p.llm!r}")
    if p.policy is not None:
        report = run_policy_evaluation(factory, registry, embedder, logs, p)
        report.pop("_terms", None)
        return {"report": report, "plot_png_base64": base64.b64encode(plot_estimates(report)).decode()}
    if p.max_queries is not None:
        ids = np.sort(logs["query_index"].unique())
        if len(ids) > p.max_queries:
            keep = np.random.default_rng(p.seed).choice(ids, size=p.max_queries, replace=False)
            logs = logs[logs["query_index"].isin(keep)]
    progress(0.05)
    try:
        report = evaluate(logs, embedder, dataset=p.task, protocol=p.protocol, k=p.k, prompts=p.prompts,
                          all_subsets=p.all_subsets, held_out=p.held_out,
                          confidence=benchmark_confidence(p.task, logs, benchmark_dir),
                          backend=p.backend, params=p.params, features=p.features,
                          seed=p.seed, n_boot=p.n_boot, test_fraction=p.test_fraction,
                          progress=lambda done, total: progress(0.05 + 0.85 * done / total))
    except (ValueError, KeyError) as exc:
        raise JobError(f"evaluation cannot run on these logs: {exc}") from exc
    report["task"] = p.task
    report["repeat_headroom"] = headroom_of(logs, p.n_boot, p.seed)
    if report.get("information") == "partial" and registry is not None and logs["propensity"].notna().any():
        report["policies"] = compare_policies(factory, registry, embedder, logs, p)
    png = plot_policies(report) if report.get("policies") else plot_methods(report)
    return {"report": report, "plot_png_base64": base64.b64encode(png).decode()}


COMPARED = ("champion", "challenger", "botr", "uniform")


def compare_policies(factory, registry, embedder, logs: pd.DataFrame, p: EvaluationParams) -> dict:
    """On logs with propensities, the answer to "is it better?": champion, challenger, BoTr and uniform on the
    same held-out decisions (IPS, SNIPS, DM, DR with 95% intervals and ESS), and each one's DR (else IPS)
    difference to BoTr with a paired 95% interval over whole queries. A policy that cannot be judged
    (no challenger, say) is listed with the reason."""
    from oirl.evaluate.metrics import paired_bootstrap_ci

    out, terms = {}, {}
    for name in COMPARED:
        try:
            report = run_policy_evaluation(factory, registry, embedder, logs, replace(p, policy=name))
        except JobError as exc:
            out[name] = {"unavailable": str(exc)}
            continue
        terms[name] = report.pop("_terms", None)
        out[name] = report
    base = terms.get("botr")
    for name, t in terms.items():
        if name == "botr" or base is None or t is None:
            continue
        kind = "dr" if "dr" in t and "dr" in base else "ips"
        lo, hi = paired_bootstrap_ci(t[kind], base[kind], n_boot=min(p.n_boot, 2000), seed=p.seed,
                                     groups=t["_groups"])
        out[name]["vs_botr"] = {"estimator": kind, "difference": float(t[kind].mean() - base[kind].mean()),
                                "ci95": [lo, hi]}
    return out


def plot_policies(report: dict) -> bytes:
    """Each compared policy's DR (else IPS) estimate with its 95% interval (BoTr and uniform in grey)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.4), dpi=100)
    ax = fig.subplots()
    shown = [(n, r) for n, r in report["policies"].items() if r.get("estimates")]
    for i, (name, r) in enumerate(shown):
        e = r["estimates"].get("dr") or r["estimates"]["ips"]
        lo, hi = e["ci95"] or (e["value"], e["value"])
        ax.errorbar(i, e["value"], yerr=[[e["value"] - lo], [hi - e["value"]]], fmt="o", capsize=5,
                    color="tab:gray" if name in ("botr", "uniform") else "tab:orange")
    ax.set_xticks(range(len(shown)), [n for n, _ in shown])
    ax.set_xlim(-0.5, max(len(shown), 1) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_ylabel("estimated value (DR, else IPS)")
    ax.set_title(f"{report.get('task')}: policies on the held-out logged decisions")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def headroom_of(logs: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """The repeat ceiling of the logs against their best prompt (``oirl.evaluate.headroom``). BoTr is chosen
    on every try here, held-out ones included: if anything that flatters the default, not the ceiling."""
    from oirl.evaluate.headroom import repeat_headroom
    from oirl.reward.train import best_prompt_by_value

    return repeat_headroom(logs, best_prompt_by_value(logs), n_boot=min(n_boot, 2000), seed=seed)


def run_policy_evaluation(factory, registry, embedder, logs: pd.DataFrame, p: EvaluationParams) -> dict:
    """Off-policy estimates of ``p.policy`` on the task's held-out logged decisions (``oirl.evaluate.offpolicy``)."""
    from oirl.evaluate.offpolicy import PolicyError, evaluate_policy, parse_policy
    from oirl.jobs.retrain import holdout_mask
    from oirl.registry import VersionNotFound
    from oirl.registry.live import load_version
    from oirl.store import tasks_repo
    from oirl.store.logs import decision_candidates

    if registry is None:
        raise JobError("off-policy evaluation needs the model registry")
    kind, number = parse_policy(p.policy)
    aliases = registry.aliases(p.task).get(p.task, {})

    def load(version: int | None, what: str):
        if version is None:
            raise JobError(f"task {p.task!r} has no {what}")
        try:
            loaded = load_version(registry, version, p.task)
        except VersionNotFound as exc:
            raise JobError(str(exc)) from exc
        if loaded.info.embedder_revision != embedder.identity.revision:
            raise JobError(f"v{version} was trained on another embedder ({loaded.info.embedder}); evaluate it with "
                           "that embedder")
        if loaded.task != p.task:
            raise JobError(f"v{version} is a model of task {loaded.task!r}, not {p.task!r}")
        return loaded

    evaluated = None
    if kind in ("champion", "challenger"):
        evaluated = load(aliases.get(kind), kind)
    elif kind == "version":
        evaluated = load(number, f"version {number}")
    champion = load(aliases["champion"], "champion") if "champion" in aliases else evaluated
    fraction = ((champion.bundle.data_scope.get("holdout") or {}).get("fraction", 0.2) if champion else 0.2)
    held_mask = holdout_mask(p.task, logs["query"], fraction)
    held, train = logs[held_mask], logs[~held_mask & (logs["split"] == "train")]
    with factory() as s:
        task_row = tasks_repo.get_task(s, p.task)
        known = [pr.text for pr, _ in tasks_repo.task_prompts(s, task_row.id)]
        offered = decision_candidates(s, held["decision_id"].dropna())
        prompt_text = None
        if kind == "prompt":
            found = [pr.text for pr, _ in tasks_repo.task_prompts(s, task_row.id) if pr.id == number]
            if not found:
                raise JobError(f"prompt {number} is not a prompt of task {p.task!r} (oirl tasks show {p.task})")
            prompt_text = found[0]
    prompts = list(dict.fromkeys(known + logs["prompt"].tolist()))
    try:
        report = evaluate_policy(held, train, prompts, offered, p.policy, embedder,
                                 model=evaluated.model if evaluated else None,
                                 policy=evaluated.policy if evaluated else None,
                                 q_model=champion.model if champion else None, prompt_text=prompt_text,
                                 n_boot=min(p.n_boot, 2000), seed=p.seed)
    except PolicyError as exc:
        raise JobError(str(exc)) from exc
    return report | {"task": p.task, "information": "off-policy", "held_out_fraction": fraction,
                     "version": evaluated.version if evaluated else None,
                     "q_model_version": champion.version if champion else None}


def plot_estimates(report: dict) -> bytes:
    """Each off-policy estimate with its 95% interval, beside the logging policy's mean reward."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), dpi=100)
    ax = fig.subplots()
    names = list(report.get("estimates", {}))
    for i, name in enumerate(names):
        e = report["estimates"][name]
        lo, hi = e["ci95"] or (e["value"], e["value"])
        ax.errorbar(i, e["value"], yerr=[[e["value"] - lo], [hi - e["value"]]], fmt="o", capsize=5)
    if "logged_reward" in report:
        ax.axhline(report["logged_reward"], color="gray", linestyle="--", label="logging policy (observed)")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xticks(range(len(names)), [n.upper() for n in names])
    ax.set_xlim(-0.5, max(len(names), 1) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_ylabel("estimated value (mean reward)")
    ax.set_title(f"{report.get('task')}: policy {report['policy']} (n={report['n']}, ESS={report.get('ess', 0):.0f})")
    if not names:
        ax.text(0, 0.5, "no estimate: see the report's `unavailable`", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_methods(report: dict) -> bytes:
    """Accuracy per method on the same test queries, with Prompt-OIRL's 95% interval vs BoTr."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a service
    from matplotlib.figure import Figure

    methods = [(m, v) for m, v in report["methods"].items() if v.get("accuracy") is not None]
    fig = Figure(figsize=(7, 3.6), dpi=100)
    ax = fig.subplots()
    if report.get("information") == "partial":  # no accuracies to draw: say why, in the picture
        import textwrap

        ax.axis("off")
        ax.text(0.0, 1.0, "\n".join(textwrap.wrap(report["unavailable"], 90)), va="top", fontsize=8,
                transform=ax.transAxes)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    names = [m for m, _ in methods]
    acc = [v["accuracy"] for _, v in methods]
    colors = ["tab:orange" if m.startswith("prompt_oirl") else "tab:gray" for m in names]
    ax.bar(names, acc, color=colors)
    botr = report["methods"].get("botr_train", {}).get("accuracy")
    for i, (_, v) in enumerate(methods):
        if "ci95_vs_botr" in v and botr is not None:  # interval of the difference, drawn around BoTr + diff
            lo, hi = v["ci95_vs_botr"]
            ax.errorbar(i, v["accuracy"], yerr=[[v["accuracy"] - (botr + lo)], [(botr + hi) - v["accuracy"]]],
                        color="black", capsize=4)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{report['dataset']} / {report['protocol']} / k={report['k']} (n={report['n_test']})")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
