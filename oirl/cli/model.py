"""`oirl train`, `oirl evaluate`, `oirl select`: the same library calls as the HTTP API, on the store.

`train` takes the fields of ``RetrainParams`` (the body of ``POST /admin/retrain``) and
registers a challenger exactly as the service's job does; `evaluate` takes those of
``EvaluationParams`` (the body of ``POST /v1/evaluations``); `select` serves from the
task's champion and its active prompts, like ``POST /v1/select``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from oirl.cli.common import fail, open_store, user_errors

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the default embedder ships with the package; never download

TaskOpt = Annotated[str | None, typer.Option(
    "--task", "-t", help="Task (see `oirl tasks list`); default: OIRL_DEFAULT_TASK, or the only task.")]
LlmOpt = Annotated[str | None, typer.Option(help="Only this LLM's observations (default: every LLM of the task).")]
BackendOpt = Annotated[str, typer.Option(help="Reward-model backend: lightgbm (default), xgboost, mlp, or heads (a "
                                              "head per prompt: for a few hundred tries per prompt).")]
FeaturesOpt = Annotated[str, typer.Option(
    help="Pair features: concat+knn (default, measured best), concat (the paper's) or concat+product.")]
SeedOpt = Annotated[int, typer.Option(help="Seeds subsamples, the validation split and the backend.")]
MaxQueriesOpt = Annotated[int | None, typer.Option(help="Use a seeded subsample of this many questions (speed).")]
ParamsOpt = Annotated[str | None, typer.Option(
    "--params", help='Backend parameters as JSON, e.g. \'{"n_rounds": 300}\'.')]


def _params_json(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--params is not valid JSON: {exc.msg}", code=2)
    if not isinstance(value, dict):
        fail("--params must be a JSON object such as '{\"n_rounds\": 300}'", code=2)
    return value


def _build(cls, **fields):
    """The library's parameter dataclass, or a clear error naming the bad option."""
    from pydantic import ValidationError

    try:
        return cls(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                             for e in exc.errors())
        fail(problems, code=2)


def _task(factory, name: str | None) -> str:
    from oirl.settings import get_settings
    from oirl.tasks import TaskError, resolve_task

    with user_errors(TaskError):
        return resolve_task(factory, name, get_settings().default_task)


def _registry(factory):
    from oirl.registry import ModelRegistry
    from oirl.settings import get_settings

    return ModelRegistry.from_settings(factory, get_settings())


def _champion(registry, task: str):
    """The task's champion, loaded (None if it has none)."""
    from oirl.registry import ArtefactChecksumError, load_version
    from oirl.reward import ArtefactError

    version = registry.alias(task, "champion")
    if version is None:
        return None
    with user_errors(ArtefactChecksumError, ArtefactError):
        return load_version(registry, version)


def train(task: TaskOpt = None, llm: LlmOpt = None, backend: BackendOpt = "lightgbm",
          features: FeaturesOpt = "concat+knn", params: ParamsOpt = None,
          holdout_fraction: Annotated[float, typer.Option(
              help="Share of questions held out to judge the new model against the champion.")] = 0.2,
          max_queries: MaxQueriesOpt = None, seed: SeedOpt = 0,
          propensity_clip: Annotated[float | None, typer.Option(
              help="Weight each observation by 1/max(propensity, CLIP) to undo the logging policy's preferences "
                   "(e.g. 0.05; default: unweighted).")] = None,
          calibration_folds: Annotated[int, typer.Option(
              help="Partial logs with propensities: calibrate the safe policy on out-of-fold scores of every "
                   "training question, for this many extra fits (0: on the 10% validation split only).")] = 5,
          trust_level: Annotated[float, typer.Option(
              help="Partial logs with propensities: one-sided confidence that trusting the model gains before it "
                   "may override the default prompt.")] = 0.95,
          gate_decisions: Annotated[str, typer.Option(
              help="all: judge against the champion on every held-out observation; fresh: only on those logged "
                   "after the champion was trained (where they cover OIRL_GATE_MIN_QUERIES questions).")] = "all",
          dask: Annotated[str | None, typer.Option(
              "--dask", metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786): embed on its workers and train with LightGBM's / XGBoost's "
                   "Dask estimators (default: OIRL_DASK_SCHEDULER; unset: this process).")] = None) -> None:
    """Train a reward model on a task's logs and register it as the task's challenger.

    The same code as POST /admin/retrain: held-out questions judge it against the current
    champion (the gate); promote it with `oirl models promote VERSION`."""
    from oirl.distributed import ClusterError, training_engine
    from oirl.jobs import JobError, RetrainParams, retrain
    from oirl.settings import get_settings

    factory = open_store()
    chosen = _task(factory, task)
    p = _build(RetrainParams, task=chosen, llm=llm, backend=backend, params=_params_json(params), features=features,
               holdout_fraction=holdout_fraction, max_queries=max_queries, seed=seed,
               propensity_clip=propensity_clip, calibration_folds=calibration_folds, trust_level=trust_level,
               gate_decisions=gate_decisions)
    registry = _registry(factory)
    settings = get_settings()
    with user_errors(ClusterError, JobError), training_engine(settings, dask, p.backend) as (embedder, client):
        where = f" on the Dask cluster at {client.scheduler.address}" if client is not None else ""
        typer.echo(f"training a {p.backend} reward model on task {chosen!r} ({p.features} features){where} ...")
        info, metrics = retrain(factory, registry, embedder, p, champion=_champion(registry, chosen),
                                min_gate_queries=settings.gate_min_queries,
                                min_lower_bound=settings.gate_min_lower_bound, client=client)
    typer.echo(f"registered v{info.id} as challenger of task {chosen!r}")
    typer.echo(f"gate: {describe_gate(metrics['gate'])}")
    evidence = (metrics.get("validation") or {}).get("default_prompt_evidence")
    if evidence:
        typer.echo(f"default prompt: {describe_default(evidence)}")
    typer.echo(next_step(metrics, info.id, registry.alias(chosen, "champion")))


def describe_default(e: dict) -> str:
    """How sure the logs are of the default prompt (``oirl.reward.train.default_prompt_evidence``)."""
    head = f"{e['prompt']!r}, value {e['value']:.3f} on {e['tries']} tries"
    if "runner_up" not in e:
        return head
    lo, hi = e["lead_ci95"]
    sure = "" if lo > 0 else "; uncertain: the interval includes no lead, log more tries of both"
    return (f"{head}; ahead of {e['runner_up']!r} ({e['runner_up_value']:.3f} on {e['runner_up_tries']} tries) by "
            f"{e['lead']:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}], the best again in {e['p_same_best']:.0%} of bootstrap "
            f"resamples{sure}")


def next_step(metrics: dict, version: int, champion: int | None) -> str:
    """The promotion hint after training: the command when the registry would accept it, else why not
    and what to do (the registry's own rule, ``check_gate``, decides)."""
    from oirl.registry.registry import PromotionRefused, check_gate

    if champion is not None:
        try:
            check_gate(metrics, version, champion)
        except PromotionRefused as refused:
            return (f"not promotable yet: {refused}. Log more observations and retrain, or override: "
                    f"oirl models promote {version} --force")
    return f"promote with: oirl models promote {version}"


def describe_gate(gate: dict) -> str:
    """One line: verdict, metric, values and the interval of the difference."""
    if not gate:
        return "no gate recorded"
    ci = gate.get("ci95")
    theirs = "" if gate.get("champion") is None else (
        f" vs champion v{gate.get('champion_version')} {gate['champion']:.4f}"
        f" (difference {gate['difference']:+.4f}, 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}])")
    standing = " (provisional)" if gate.get("verdict") == "pass" and gate.get("provisional") else ""
    return (f"{gate.get('verdict')}{standing}: {gate.get('metric')} {gate.get('challenger', float('nan')):.4f}{theirs} "
            f"on {gate.get('n_queries')} held-out queries ({gate.get('method')}). {gate.get('reason', '')}"
            + (f" ({gate['held_out_note']})" if gate.get("held_out_note") else ""))


def evaluate(task: TaskOpt = None, llm: LlmOpt = None,
             protocol: Annotated[str, typer.Option(
                 help="grouped (split by question text: honest generalisation) or paper (the logs' own split).")
             ] = "grouped",
             k: Annotated[int | None, typer.Option("--k", help="Benchmark tasks: train on the first K of prompts 0-5 "
                                                               "(default 6).")] = None,
             prompts: Annotated[str | None, typer.Option(
                 help="Benchmark tasks: comma-separated training prompt indices, e.g. 0,1,2.")] = None,
             all_subsets: Annotated[bool, typer.Option(
                 help="Benchmark tasks: average over every K-subset of prompts 0-5, as the paper does.")] = False,
             held_out: Annotated[bool, typer.Option(
                 "--held-out", help="Benchmark tasks: choose among all 16 prompts on test.")] = False,
             backend: BackendOpt = "lightgbm", features: FeaturesOpt = "concat+knn", params: ParamsOpt = None,
             max_queries: MaxQueriesOpt = None, seed: SeedOpt = 0,
             policy: Annotated[str | None, typer.Option(
                 help="Off-policy evaluation of one policy on the logged decisions with propensities (IPS, SNIPS, "
                      "DM, DR with 95% intervals): champion, challenger, v<version>, prompt:<id>, botr or uniform.")
             ] = None,
             json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
             plot: Annotated[Path | None, typer.Option(help="Write the method-comparison chart (PNG) here.")] = None,
             k_curve: Annotated[Path | None, typer.Option(
                 help="Benchmark tasks: also evaluate K = 1..k and draw accuracy against K (PNG) here.")] = None,
             ) -> None:
    """Evaluate prompt-selection methods offline on a task's logs and print a table.

    The same code as POST /v1/evaluations. With full information (every candidate logged
    per test query) every method's accuracy is compared on the same queries; on partial
    logs the report says what cannot be estimated and why."""
    from oirl.embed import make_embedder
    from oirl.evaluate import render_table
    from oirl.evaluate.report import render_estimates
    from oirl.jobs import EvaluationParams, JobError, run_evaluation
    from oirl.settings import get_settings

    factory = open_store()
    chosen = _task(factory, task)
    indices = None
    if prompts is not None:
        try:
            indices = [int(x) for x in prompts.split(",") if x.strip()]
        except ValueError:
            fail(f"bad prompt list {prompts!r}: expected comma-separated integers such as 0,1,2", code=2)
    p = _build(EvaluationParams, task=chosen, llm=llm, protocol=protocol, k=k, prompts=indices,
               all_subsets=all_subsets, held_out=held_out, backend=backend, features=features,
               params=_params_json(params), max_queries=max_queries, seed=seed, policy=policy)
    settings = get_settings()
    with user_errors(JobError):
        result = run_evaluation(factory, make_embedder(settings, progress=True), p,
                                benchmark_dir=settings.resolved_benchmark_dir, registry=_registry(factory))
    report = result["report"]
    typer.echo(render_estimates(report) if policy else render_table(report))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        typer.echo(f"report: {json_out}")
    if plot:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(base64.b64decode(result["plot_png_base64"]))
        typer.echo(f"plot: {plot}")
    if k_curve and (policy or report.get("information") != "full"):
        fail("--k-curve needs full-information logs (every candidate logged on test queries)", code=2)
    if k_curve:
        from dataclasses import asdict

        from oirl.evaluate import plot_accuracy_vs_k

        curve, embedder = [], make_embedder(settings)
        for kk in range(1, report["k"] + 1):
            params_k = EvaluationParams(**{**asdict(p), "k": kk, "prompts": None})
            with user_errors(JobError):
                curve.append(run_evaluation(factory, embedder, params_k,
                                            benchmark_dir=settings.resolved_benchmark_dir)["report"])
            typer.echo(f"K={kk}: Prompt-OIRL {curve[-1]['methods']['prompt_oirl']['accuracy']:.3f}")
        plot_accuracy_vs_k(curve, k_curve)
        typer.echo(f"accuracy against K: {k_curve}")


def select(query: Annotated[str, typer.Argument(help="The query to choose a prompt for.")],
           task: TaskOpt = None,
           candidates: Annotated[list[str] | None, typer.Option(
               "--candidates", "-c", help="Candidate prompt text (repeat the option); default: the task's "
                                          "active prompts.")] = None,
           top_k: Annotated[int | None, typer.Option(help="Show only the best K of the ranking.", min=1)] = None,
           allow_unseen: Annotated[bool, typer.Option(
               "--allow-unseen", help="Let a candidate the model has no observations of be chosen (by default "
                                      "it is ranked, marked, and a prompt with evidence is chosen first).")] = False,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Rank candidate prompts for a query with the task's champion; no LLM is called."""
    from oirl.embed import make_embedder
    from oirl.select import select_prompts
    from oirl.store import tasks_repo

    if not query.strip():
        fail("the query is empty", code=2)
    factory = open_store()
    chosen = _task(factory, task)
    registry = _registry(factory)
    champion = _champion(registry, chosen)
    if champion is None:
        fail(f"task {chosen!r} has no champion model: `oirl train --task {chosen}`, then "
             "`oirl models promote VERSION`", code=2)
    with factory() as s:
        active = [p.text for p, _ in tasks_repo.task_prompts(s, tasks_repo.get_task(s, chosen).id, active_only=True)]
    texts = list(dict.fromkeys(candidates)) if candidates else active
    if not texts:
        fail(f"task {chosen!r} has no active prompts: pass --candidates TEXT or `oirl tasks add-prompt`", code=2)
    embedder = make_embedder(champion.bundle.embedder.get("name") or None)
    with user_errors(ValueError):
        result = select_prompts(champion.model, embedder, [query], texts, champion.policy, top_k=top_k,
                                allow_unseen=allow_unseen)[0]
    result.update(task=chosen, model_version=champion.version)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    why = f"  (fallback to the default prompt: {result['fallback_reason']})" if result["fallback"] else ""
    typer.echo(f"task {chosen} · model v{champion.version} · chosen: {result['prompt']!r}  "
               f"P(correct)={result['p_correct']:.3f}{why}")
    for rank, r in enumerate(result["ranking"], 1):
        mark = "" if r["seen"] else "  (unseen: no observations)"
        typer.echo(f"{rank:3d}. {r['p_correct']:.3f}  {r['prompt']}{mark}")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the top-level app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("select")(select)
