"""`oirl train`, `oirl evaluate`, `oirl select` (reward model, offline evaluation, best-of-N)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from oirl.cli.common import ensure_benchmark, fail, user_errors

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the default embedder ships with the package; never download

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="Benchmark dataset: gsm8k, svamp or mawps.")]
BackendOpt = Annotated[str, typer.Option(help="Reward-model backend: lightgbm (default), xgboost or mlp.")]
PromptsOpt = Annotated[str | None, typer.Option(
    help="Comma-separated training prompt indices, e.g. 0,1,2 (benchmark prompts 0-5 have training logs).")]
MirrorOpt = Annotated[Path | None, typer.Option(
    help="Directory with the benchmark files in upstream layout; fetched into OIRL_BENCHMARK_DIR first.",
    exists=True, file_okay=False)]
SeedOpt = Annotated[int, typer.Option(help="Seed for validation and grouped splits, and the bootstrap.")]
OutOpt = Annotated[Path | None, typer.Option(
    help="Artefact directory (default: <artefact dir>/<dataset>-<backend>-<time>).")]
SplitOpt = Annotated[str, typer.Option(help="Logs to learn from: 'train' (the paper's training split) or 'all'.")]
FeaturesOpt = Annotated[str, typer.Option(
    help="Pair features: concat+knn (default), concat (the paper's) or concat+product.")]
ProtocolOpt = Annotated[str, typer.Option(help="paper (published split) or grouped (split by question text).")]
KOpt = Annotated[int, typer.Option("--k", help="Number of training prompts (the first K of 0-5).")]
AllSubsetsOpt = Annotated[bool, typer.Option(help="Average over every K-subset of prompts 0-5, as the paper does.")]
HeldOutOpt = Annotated[bool, typer.Option("--held-out", help="Train on prompts 0-5; choose among all 16 on test.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")]
PlotOpt = Annotated[Path | None, typer.Option(help="Write an accuracy-vs-K plot here (evaluates K = 1..k).")]
CandidatesOpt = Annotated[list[str] | None, typer.Option(
    "--candidates", "-c", help="Candidate prompt text (repeat the option); default: the model's training prompts.")]
ModelOpt = Annotated[Path | None, typer.Option(help="Reward-model artefact directory (default: the newest one).")]


def _check_dataset(dataset: str) -> str:
    from oirl.datasets.benchmark import DATASETS

    if dataset not in DATASETS:
        fail(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}", code=2)
    return dataset


def _check_backend(backend: str) -> str:
    from oirl.reward.backends import BACKENDS

    if backend not in BACKENDS:
        fail(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}", code=2)
    return backend


def parse_prompt_list(text: str | None, allowed: range = range(16)) -> list[int] | None:
    """'0,1,2' -> [0, 1, 2]; a clear error for anything else."""
    if text is None:
        return None
    try:
        out = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        fail(f"bad prompt list {text!r}: expected comma-separated integers such as 0,1,2", code=2)
    if not out or len(set(out)) != len(out) or any(p not in allowed for p in out):
        fail(f"bad prompt list {text!r}: need distinct indices in {allowed.start}..{allowed.stop - 1}", code=2)
    return out


def _load_logs(dataset: str, mirror: Path | None):
    from oirl.datasets.benchmark import BenchmarkFormatError, load_benchmark
    from oirl.datasets.fetch import BenchmarkFileError

    with user_errors(BenchmarkFileError, BenchmarkFormatError):
        root = ensure_benchmark(mirror)
        return load_benchmark(dataset, root), root


def train(dataset: DatasetOpt, backend: BackendOpt = "lightgbm", prompts: PromptsOpt = None,
          out: OutOpt = None, split: SplitOpt = "train", features: FeaturesOpt = "concat+knn",
          mirror: MirrorOpt = None, seed: SeedOpt = 0) -> None:
    """Train a reward model on a benchmark's logs and save it as a checksummed artefact directory."""
    from oirl.embed import make_embedder
    from oirl.reward import fit_reward_model
    from oirl.select import calibrate_policy
    from oirl.settings import get_settings

    _check_dataset(dataset)
    _check_backend(backend)
    chosen = parse_prompt_list(prompts, range(6)) or list(range(6))
    if split not in ("train", "all"):
        fail(f"--split must be 'train' or 'all', not {split!r}", code=2)
    logs, _ = _load_logs(dataset, mirror)
    rows = logs[logs["prompt_index"].isin(chosen) & ((logs["split"] == "train") | (split == "all"))]
    typer.echo(f"training {backend} on {len(rows)} {dataset} outcomes, prompts {chosen}")
    trained = fit_reward_model(rows, make_embedder(get_settings(), progress=True), backend=backend,
                               features=features, random_state=seed)
    policy = calibrate_policy(trained)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out or get_settings().resolved_artefact_dir / f"{dataset}-{backend}-{stamp}"
    trained.model.save(target, metrics={"validation_log_loss": trained.model.validation_log_loss_,
                                        "validation_policy": policy.validation},
                       extra={"selection_policy": policy.to_dict(), "prompts": trained.table.prompts,
                              "data": {"dataset": dataset, "split": split, "prompt_indices": chosen,
                                       "n_outcomes": int(len(rows)),
                                       "n_queries": int(rows["query_index"].nunique())}})
    typer.echo(f"saved {target}  (rounds {trained.model.n_rounds_}, validation log loss "
               f"{trained.model.validation_log_loss_:.4f}, default prompt {trained.default_prompt!r}, "
               f"margin threshold {policy.margin_threshold:.4f})")


def evaluate(dataset: DatasetOpt,
             protocol: ProtocolOpt = "paper", k: KOpt = 6, prompts: PromptsOpt = None,
             all_subsets: AllSubsetsOpt = False, held_out: HeldOutOpt = False, backend: BackendOpt = "lightgbm",
             features: FeaturesOpt = "concat+knn", json_out: JsonOpt = None, plot: PlotOpt = None,
             mirror: MirrorOpt = None, seed: SeedOpt = 0) -> None:
    """Evaluate prompt-selection methods offline on the same test queries and print a table."""
    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from oirl.datasets.benchmark import SPECS, load_confidence
    from oirl.embed import make_embedder
    from oirl.evaluate import PROTOCOLS, plot_accuracy_vs_k, render_table
    from oirl.evaluate import evaluate as run_evaluation
    from oirl.settings import get_settings

    _check_dataset(dataset)
    _check_backend(backend)
    if protocol not in PROTOCOLS:
        fail(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}", code=2)
    if not 1 <= k <= 6:
        fail(f"--k must be between 1 and 6, got {k}", code=2)
    chosen = parse_prompt_list(prompts, range(6))
    logs, root = _load_logs(dataset, mirror)
    spec = SPECS[dataset]
    test_index = np.arange(spec.n_train, spec.n_train + spec.n_test)
    confidence = pd.DataFrame(load_confidence(dataset, root), index=test_index)
    embedder = make_embedder(get_settings(), progress=True)
    ks = [k] if plot is None or held_out or chosen else list(range(1, k + 1))
    reports = []
    with tqdm(total=len(ks), desc="evaluate", unit="K", disable=len(ks) == 1) as bar:
        for kk in ks:
            with user_errors(ValueError):
                reports.append(run_evaluation(logs, embedder, dataset=dataset, protocol=protocol, k=kk,
                                              prompts=chosen, all_subsets=all_subsets, held_out=held_out,
                                              confidence=confidence,
                                              backend=backend, features=features, seed=seed))
            bar.update()
    report = dict(reports[-1])
    if len(reports) > 1:
        report["curve"] = [{"k": r["k"], "methods": r["methods"], "n_test": r["n_test"]} for r in reports]
    typer.echo(render_table(report))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        typer.echo(f"report: {json_out}")
    if plot:
        plot_accuracy_vs_k(reports, plot)
        typer.echo(f"plot: {plot}")


def _latest_artefact() -> Path:
    from oirl.settings import get_settings

    base = get_settings().resolved_artefact_dir
    found = sorted(base.glob("*/metadata.json"), key=lambda p: p.stat().st_mtime) if base.is_dir() else []
    if not found:
        fail(f"no reward model found under {base}; run `oirl train --dataset gsm8k` or pass --model DIR", code=2)
    return found[-1].parent


def select(query: Annotated[str, typer.Argument(help="The query to choose a prompt for.")],
           candidates: CandidatesOpt = None, model: ModelOpt = None,
           top_k: Annotated[int | None, typer.Option(help="Show only the best K of the ranking.")] = None,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Rank candidate prompts for a query by predicted P(correct); no LLM is called."""
    from oirl.embed import make_embedder
    from oirl.reward import ArtefactError, PromptRewardModel
    from oirl.select import SelectionPolicy, select_prompts
    from oirl.settings import get_settings

    if not query.strip():
        fail("the query is empty", code=2)
    directory = model or _latest_artefact()
    with user_errors(ArtefactError):
        reward_model = PromptRewardModel.load(directory)
    meta = reward_model.metadata_
    texts = list(candidates) if candidates else meta.get("prompts") or []
    if not texts:
        fail("no candidates: pass --candidates TEXT (repeatable)", code=2)
    policy = SelectionPolicy.from_dict(meta["selection_policy"]) if "selection_policy" in meta else None
    embedder = make_embedder(meta["params"]["embedder"]["name"] if meta["params"].get("embedder") else get_settings())
    with user_errors(ValueError):
        result = select_prompts(reward_model, embedder, [query], texts, policy, top_k=top_k)[0]
    result["model"] = str(directory)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"chosen: {result['prompt']!r}  P(correct)={result['p_correct']:.3f}"
               f"{'  (fallback to the best training prompt: low margin)' if result['fallback'] else ''}")
    for rank, r in enumerate(result["ranking"], 1):
        typer.echo(f"{rank:3d}. {r['p_correct']:.3f}  {r['prompt']}")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the top-level app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("select")(select)
