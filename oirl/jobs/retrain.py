"""Training a task's challenger: its logs -> a model bundle, judged against the champion, registered.

The one path behind ``oirl train``, ``POST /admin/retrain`` and ``oirl serve --bootstrap``:

1. Read the task's training-split observations from the store (optionally one LLM's).
2. Hold out the questions whose hash (task, normalised text) falls under ``holdout_fraction``:
   a fixed rule, so every model of the task holds out the same questions and a champion
   never trained on the questions a later challenger is judged on (with different fractions
   the gate uses the questions both held out).
3. Fit the reward model on the rest, calibrate its safe policy.
4. Judge challenger and champion on the same held-out queries, drawn from the union of both
   models' LLM scopes (``oirl.evaluate.gate``); record numbers, interval and verdict. With
   ``gate_decisions="fresh"`` only the observations logged after the champion was trained count: the
   same held-out questions judge every challenger, so a champion picked for a lucky margin on them
   would otherwise keep that margin against all later ones.
5. Save the bundle and register it (alias ``challenger``) in one transaction at the very end,
   so a crash midway leaves no trace in the registry.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from oirl.jobs.data import store_logs
from oirl.jobs.runner import JobError, json_safe
from oirl.registry import ModelRegistry
from oirl.registry.live import LoadedModel
from oirl.reward.train import CALIBRATION_FOLDS
from oirl.store.registry_repo import CHALLENGER
from oirl.validation import JsonObject, LlmName, StrictInt, TaskName

# Fewer distinct training questions than this cannot hold a validation split and a model worth judging
# (a one-row task used to fail inside numpy: "zero-size array to reduction operation maximum").
MIN_TRAIN_QUESTIONS = 20
TRAIN_TMP_PREFIX = "oirl-train-"  # a crash leaves these in the temp dir; services sweep old ones at start
Backend = Literal["lightgbm", "xgboost", "mlp", "heads"]
Features = Literal["concat+knn", "concat", "concat+product"]


@dataclass(config=ConfigDict(extra="forbid"))
class RetrainParams:
    """What to train: the request body of ``POST /admin/retrain`` and the options of ``oirl train``."""

    task: TaskName | None = Field(None, description="Task whose logs to train on (default: the default task).")
    llm: LlmName | None = Field(None, description="Only this LLM's observations (default: every LLM of the task).")
    backend: Backend = Field("lightgbm", description="Reward-model backend.")
    params: JsonObject | None = Field(None, description="Backend parameters overriding its defaults.")
    features: Features = Field("concat+knn", description="Pair features; the measured default is concat+knn.")
    holdout_fraction: float = Field(0.2, gt=0, lt=1, description="Share of questions held out to judge the "
                                                                  "challenger against the champion.")
    max_queries: StrictInt | None = Field(None, ge=10,
                                          description="Train on a seeded subsample of this many questions.")
    seed: StrictInt = Field(0, description="Seeds the subsample, the validation split and the backend.")
    propensity_clip: float | None = Field(None, gt=0, le=1, description="Weight each observation by 1/max(propensity, "
                                          "clip) to undo the logging policy's preferences (unset: unweighted).")
    calibration_folds: StrictInt = Field(
        CALIBRATION_FOLDS, ge=0, le=20, description="On partial logs with propensities, calibrate the safe policy on "
        "out-of-fold scores of every training question, for this many extra fits (0: on the 10% validation split).")
    trust_level: float = Field(0.95, ge=0.5, lt=1.0, description="Partial logs with propensities: the one-sided "
                               "confidence that trusting the model gains, required before it may override the "
                               "default prompt (lower: trusts sooner, errs more often).")
    gate_decisions: Literal["all", "fresh"] = Field(
        "all", description="Judge against the champion on every held-out observation (all), or only on those logged "
                           "after the champion was trained (fresh), where they cover OIRL_GATE_MIN_QUERIES questions: "
                           "a champion chosen for a lucky margin on the held-out questions does not keep it.")


def holdout_mask(task: str, questions: pd.Series, fraction: float) -> np.ndarray:
    """True for questions held out: sha256(task, normalised text) in the lowest ``fraction``."""
    from oirl.evaluate import normalise_question

    def unit(text: str) -> float:
        h = hashlib.sha256(f"{task}\0{normalise_question(text)}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64

    units = {q: unit(q) for q in questions.unique()}
    return questions.map(units).to_numpy() < fraction


def subsample_questions(logs: pd.DataFrame, max_queries: int | None, seed: int) -> pd.DataFrame:
    if max_queries is None:
        return logs
    unique = np.sort(logs["query"].unique())
    if len(unique) <= max_queries:
        return logs
    keep = np.random.default_rng(seed).choice(unique, size=max_queries, replace=False)
    return logs[logs["query"].isin(keep)]


def judge(trained_model, policy, embedder, held: pd.DataFrame, champion: LoadedModel | None,
          min_queries: int, seed: int, min_lower_bound: float = -0.02) -> dict:
    """The gate: both policies on the same held-out queries (see ``oirl.evaluate.gate``)."""
    from oirl.evaluate.gate import HeldOutLogs, compare, is_provisional, verdict
    from oirl.select import apply_policy

    table = HeldOutLogs.from_logs(held)
    q_emb, p_emb = embedder.encode(table.queries), embedder.encode(table.prompts)
    ours_scores = trained_model.score(q_emb, p_emb)  # (n_q, n_p)
    theirs_scores = champion.bundle.model.score(q_emb, p_emb) if champion is not None else None
    # One q̂ for both sides (the challenger's, which exists even without a champion): DR stays unbiased
    # whatever q̂ is, and a shared q̂ keeps the paired difference free of one model's own optimism.
    ours = table.value_terms(apply_policy(ours_scores, table.prompts, policy).choice, ours_scores)
    theirs = (table.value_terms(apply_policy(theirs_scores, table.prompts, champion.bundle.policy).choice,
                                ours_scores) if champion is not None else None)
    usable = ~np.isnan(ours)
    gate: dict = {"n_held_out_queries": len(table.queries), "n_held_out_observations": int(len(held))}
    if usable.any():
        gate.update(metric="value", method=table.method(), n_queries=int(usable.sum()),
                    **compare(ours[usable], None if theirs is None else theirs[usable], higher_is_better=True,
                              seed=seed))
    else:
        gate.update(metric="log_loss", n_queries=len(table.queries),
                    method="no query has full information or propensities: reward-model log loss instead",
                    **compare(table.log_loss_terms(ours_scores),
                              None if theirs_scores is None else table.log_loss_terms(theirs_scores),
                              higher_is_better=False, seed=seed))
    provisional = champion is not None and is_provisional(champion.bundle.metrics)
    return gate | {"champion_provisional": provisional} | verdict(gate, champion is not None, min_queries,
                                                                  min_lower_bound, provisional)


def fresh_held_out(held: pd.DataFrame, champion: LoadedModel | None,
                   min_queries: int) -> tuple[pd.DataFrame, int | None]:
    """The held-out observations logged after the champion's training data (ids above its
    ``max_observation_id``), and that cut-off; all of them, and None, when there is no champion or the fresh
    ones cover fewer than ``min_queries`` questions (a gate on too few would refuse anyway)."""
    cutoff = (champion.bundle.data_scope or {}).get("max_observation_id") if champion is not None else None
    if cutoff is None:
        return held, None
    fresh = held[held["observation_id"] > cutoff]
    return (fresh, int(cutoff)) if fresh["query"].nunique() >= min_queries else (held, None)


def retrain(factory, registry: ModelRegistry, embedder, params: RetrainParams, champion: LoadedModel | None = None,
            job_id: str | None = None, progress=lambda f: None, alias: str | None = CHALLENGER,
            min_gate_queries: int = 30, min_lower_bound: float = -0.02, client=None):
    """Train, judge against ``champion`` (the task's), register. Returns (VersionInfo, metrics).

    ``client``: a ``distributed.Client``: the reward model trains on its cluster (``oirl.distributed``; pass a
    ``ClusterEmbedder`` to embed there too). A deployment choice, so not part of ``RetrainParams``."""
    from oirl.distributed import ClusterError
    from oirl.registry.bundle import ModelBundle, save_bundle
    from oirl.reward import fit_reward_model
    from oirl.select import calibrate_policy
    from oirl.store import tasks_repo

    task = params.task
    with factory() as s:
        row = tasks_repo.get_task(s, task) if task else None
        if row is None:
            raise JobError(f"task {task!r} does not exist (tasks: {', '.join(tasks_repo.task_names(s)) or 'none'})")
        candidates = [p.text for p, _ in tasks_repo.task_prompts(s, row.id, active_only=True)]
    logs = store_logs(factory, task=task, split="train")
    scope = logs if params.llm is None else logs[logs["llm"] == params.llm]
    if scope.empty:
        raise JobError(f"no training observations in task {task!r} for llm={params.llm!r}")
    held_mask = holdout_mask(task, scope["query"], params.holdout_fraction)
    train = subsample_questions(scope[~held_mask], params.max_queries, params.seed)
    if train["query"].nunique() < MIN_TRAIN_QUESTIONS:
        raise JobError(f"task {task!r} has {train['query'].nunique()} training question(s) once "
                       f"{params.holdout_fraction:.0%} of its {scope['query'].nunique()} are held out for the gate; "
                       f"training needs at least {MIN_TRAIN_QUESTIONS}: log more observations first")
    progress(0.1)
    try:
        trained = fit_reward_model(train, embedder, backend=params.backend, params=params.params,
                                   features=params.features, random_state=params.seed,
                                   propensity_clip=params.propensity_clip, client=client,
                                   calibration_folds=params.calibration_folds)
    except (ValueError, ClusterError) as exc:  # bad backend parameters or combination: the user's mistake
        raise JobError(str(exc)) from exc
    policy = calibrate_policy(trained, level=params.trust_level)
    progress(0.7)

    if champion is not None and champion.info.embedder_revision != embedder.identity.revision:
        champion = None  # its scores live in another embedding space; recorded below
    gate_fraction, gate_llms = params.holdout_fraction, None
    if champion is not None:
        theirs = champion.bundle.data_scope
        gate_fraction = min(gate_fraction, (theirs.get("holdout") or {}).get("fraction", gate_fraction))
        if params.llm is not None and theirs.get("llm") is not None:
            gate_llms = {params.llm, theirs["llm"]}  # union of both scopes
    pool = logs if gate_llms is None else logs[logs["llm"].isin(gate_llms)]
    held = pool[holdout_mask(task, pool["query"], gate_fraction)]
    if held.empty:
        raise JobError(f"no held-out questions in task {task!r}; raise holdout_fraction or log more questions")
    held, since = fresh_held_out(held, champion, min_gate_queries) if params.gate_decisions == "fresh" else (held, None)
    gate = judge(trained.model, policy, embedder, held, champion, min_gate_queries, params.seed, min_lower_bound)
    if gate_fraction < params.holdout_fraction:  # honoured for training; the gate can only use the common share
        gate["held_out_note"] = (f"trained with {params.holdout_fraction:.0%} of questions held out, judged on the "
                                 f"{gate_fraction:.0%} the champion also never trained on")
    gate.update(champion_version=champion.version if champion is not None else None, held_out_fraction=gate_fraction,
                held_out_llms=sorted(gate_llms) if gate_llms else "all", gate_decisions=params.gate_decisions,
                held_out_since_observation=since)
    if champion is not None and params.llm is not None and champion.bundle.llm is None and gate["verdict"] == "pass":
        gate.update(verdict="narrower_scope", provisional=True,
                    reason=f"trained on llm {params.llm!r} only, while the champion serves every LLM of the task; "
                           "force to accept")
    progress(0.85)
    data_scope = {
        "task": task, "llm": params.llm, "split": "train", "n_observations": int(len(scope)),
        "n_train_observations": int(len(train)), "n_train_queries": int(train["query"].nunique()),
        "llms": sorted(scope["llm"].unique().tolist()), "train_prompts": trained.table.prompts,
        "holdout": {"rule": "sha256(task, normalised question)", "fraction": params.holdout_fraction},
        "max_observation_id": int(logs["observation_id"].max()), "retrain_params": asdict(params),
    }
    metrics = json_safe({"gate": gate, "validation": policy.validation, "default_prompt": policy.default_prompt,
                         "margin_threshold": policy.margin_threshold,  # null: never trusts the model over the default
                         "validation_log_loss": trained.model.validation_log_loss_})
    bundle = ModelBundle(trained.model, policy, task, candidates or trained.table.prompts, data_scope, metrics)
    with tempfile.TemporaryDirectory(prefix=TRAIN_TMP_PREFIX) as tmp:
        out = save_bundle(bundle, Path(tmp) / "model")
        info = registry.register(out, job_id=job_id, alias=alias)
    progress(1.0)
    return info, metrics
