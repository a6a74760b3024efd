"""Offline evaluation as a job: the core's ``oirl.evaluate.evaluate`` on logs from the store.

The result keeps the report dict (the metrics table) and a PNG bar chart, base64-encoded,
so any worker sharing the store can answer ``GET /v1/evaluations/{id}/plot.png`` without
a shared filesystem.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np

from oirl.jobs.data import store_logs
from oirl.jobs.runner import JobError


@dataclass
class EvaluationParams:
    dataset: str
    llm: str | None = None
    protocol: str = "paper"
    k: int = 6
    prompts: list[int] | None = None
    held_out: bool = False
    backend: str = "lightgbm"
    params: dict | None = None
    features: str = "concat+knn"
    """Pair features; the library default, as measured in benchmarks/results/quality.md."""
    seed: int = 0
    n_boot: int = 2000
    max_queries: int | None = None
    """Evaluate on a seeded subsample of this many queries (speed; None: all)."""
    test_fraction: float | None = None
    """``grouped`` protocol: share of questions tested (None: the paper split's share)."""


def run_evaluation(factory, embedder, p: EvaluationParams, progress=lambda f: None) -> dict:
    from oirl.evaluate import evaluate

    logs = store_logs(factory, dataset=p.dataset, llm=p.llm)
    if logs.empty:
        raise JobError(f"no logs in the store for dataset={p.dataset!r}, llm={p.llm!r}")
    if p.max_queries is not None:
        ids = np.sort(logs["query_index"].unique())
        if len(ids) > p.max_queries:
            keep = np.random.default_rng(p.seed).choice(ids, size=p.max_queries, replace=False)
            logs = logs[logs["query_index"].isin(keep)]
    progress(0.05)
    try:
        report = evaluate(logs, embedder, dataset=p.dataset, protocol=p.protocol, k=p.k, prompts=p.prompts,
                          held_out=p.held_out, backend=p.backend, params=p.params, features=p.features,
                          seed=p.seed, n_boot=p.n_boot, test_fraction=p.test_fraction,
                          progress=lambda done, total: progress(0.05 + 0.85 * done / total))
    except (ValueError, KeyError) as exc:
        raise JobError(f"evaluation cannot run on these logs: {exc}") from exc
    png = plot_methods(report)
    return {"report": report, "plot_png_base64": base64.b64encode(png).decode()}


def plot_methods(report: dict) -> bytes:
    """Accuracy per method on the same test queries, with Prompt-OIRL's 95% interval vs BoTr."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a service
    from matplotlib.figure import Figure

    methods = [(m, v) for m, v in report["methods"].items() if v.get("accuracy") is not None]
    fig = Figure(figsize=(7, 3.6), dpi=100)
    ax = fig.subplots()
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
