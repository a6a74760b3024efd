"""Off-policy evaluation on a task's logs: which target policy, on which decisions, with which model.

- **Decisions**: the held-out observations (the same question-hash rule that every model of the
  task holds out, so none was trained on them) that carry a propensity. A decision the service
  made offered the candidates it recorded; an imported observation is taken to have offered
  every prompt of the task that the logs know.
- **Target policies** (``policy``): ``champion`` or ``challenger`` (the task's alias), ``v12`` (a
  model version), each with its safe policy over the decision's candidates; ``prompt:ID`` (always
  that prompt); ``botr`` (the best prompt on the training part, by self-normalised IPS where
  propensities are logged, else by mean); ``uniform``.
- **q̂** for DM and DR: the reward model of the task's champion (trained on questions outside the
  held-out share), or of the evaluated version when there is no champion.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from oirl.evaluate.ope import LoggedDecisions, deterministic, estimate, terms, uniform

POLICY_RULE = "champion, challenger, v<version>, prompt:<id>, botr or uniform"
POLICY_PATTERN = r"^(champion|challenger|v?\d+|prompt:\d+|botr|uniform)$"


class PolicyError(ValueError):
    """The policy cannot be evaluated on these logs; ``str()`` is fit for a user."""


def arrange(held: pd.DataFrame, prompts: list[str], offered: dict[str, list[str]]) -> LoggedDecisions:
    """``held``: observations with ``prompt``, ``reward``, ``propensity``, ``decision_id``, ``query``;
    ``offered``: decision id -> candidate texts it had. Every other row offered all ``prompts``."""
    col = {p: j for j, p in enumerate(prompts)}
    available = np.ones((len(held), len(prompts)), dtype=bool)
    for i, did in enumerate(held["decision_id"].tolist()):
        if did is not None and did in offered:
            available[i] = False
            available[i, [col[t] for t in offered[did] if t in col]] = True
    chosen = held["prompt"].map(col).to_numpy()
    available[np.arange(len(held)), chosen] = True  # what was served was certainly available
    return LoggedDecisions(chosen=chosen, reward=held["reward"].to_numpy(dtype=float),
                           propensity=held["propensity"].to_numpy(dtype=float), available=available,
                           groups=pd.factorize(held["query"])[0])


def model_policy(model, policy, q_emb: np.ndarray, p_emb: np.ndarray, prompts: list[str],
                 available: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(π, scores): the model's safe choice among each decision's available prompts."""
    from oirl.select import apply_policy

    scores = model.score(q_emb, p_emb)  # (n, K)
    choice = np.empty(len(scores), dtype=int)
    patterns, rows_of = np.unique(available, axis=0, return_inverse=True)
    for k, pattern in enumerate(patterns):  # usually one pattern: every decision offered the same prompts
        rows = np.flatnonzero(rows_of.ravel() == k)
        cols = np.flatnonzero(pattern)
        chosen = apply_policy(scores[np.ix_(rows, cols)], [prompts[c] for c in cols], policy)
        choice[rows] = cols[chosen.choice]
    return deterministic(choice, len(prompts)), scores


def best_training_prompt(train: pd.DataFrame, prompts: list[str]) -> str:
    """BoTr on possibly partial logs, by the same rule as training (``best_prompt_by_value``)."""
    from oirl.reward.train import best_prompt_by_value

    rows = train[train["prompt"].isin(prompts)]
    if rows.empty:
        raise PolicyError("no training observation of any candidate prompt: BoTr is undefined")
    return best_prompt_by_value(rows)


def parse_policy(spec: str) -> tuple[str, int | None]:
    if not re.match(POLICY_PATTERN, spec):
        raise PolicyError(f"unknown policy {spec!r}; use {POLICY_RULE}")
    if spec.startswith("prompt:"):
        return "prompt", int(spec.split(":", 1)[1])
    if spec.lstrip("v").isdigit():
        from oirl.validation import DB_INT_MAX

        number = int(spec.lstrip("v"))
        if not 1 <= number <= DB_INT_MAX:
            raise PolicyError(f"no model version {number}: versions are numbered 1 to {DB_INT_MAX}")
        return "version", number
    return spec, None


def evaluate_policy(held: pd.DataFrame, train: pd.DataFrame, prompts: list[str], offered: dict[str, list[str]],
                    target: str, embedder, *, model=None, policy=None, q_model=None, prompt_text: str | None = None,
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """The report of one target policy on the held-out decisions (see the module docstring).
    ``model``/``policy``: the evaluated version's; ``q_model``: the reward model behind DM and DR."""
    kind, _ = parse_policy(target)
    usable = held[held["propensity"].notna() & held["prompt"].isin(prompts)]
    report = {"policy": target, "n_held_out_observations": int(len(held)), "n": int(len(usable))}
    if usable.empty:
        why = ("no held-out observation carries a propensity (the probability the logging policy chose its "
               "prompt); log `propensity` with your observations, or judge the service's own decisions "
               "through POST /v1/feedback")
        return report | {"estimates": {}, "unavailable": {e: why for e in ("ips", "snips", "dm", "dr")}}
    logs = arrange(usable, prompts, offered)
    queries = usable["query"].tolist()
    q_emb, p_emb = embedder.encode(queries), embedder.encode(prompts)
    if kind in ("champion", "challenger", "version"):
        pi, _ = model_policy(model, policy, q_emb, p_emb, prompts, logs.available)
    elif kind == "uniform":
        pi = uniform(logs.available)
    else:
        text = prompt_text if kind == "prompt" else best_training_prompt(train, prompts)
        report["prompt"] = text
        pi = deterministic(np.full(len(usable), prompts.index(text)), len(prompts))
        missing = ~logs.available[:, prompts.index(text)]
        if missing.any():
            raise PolicyError(f"the prompt was not a candidate of {int(missing.sum())} logged decisions; a constant "
                              "policy can only be judged where it was available")
    q_hat = q_model.score(q_emb, p_emb) if q_model is not None else None
    out = estimate(logs, pi, q_hat, n_boot=n_boot, seed=seed)
    # per-decision terms, for paired differences between policies judged on these same decisions
    out["_terms"] = {name: t for name, t in terms(logs, pi, q_hat).items()} | {"_groups": logs.groups}
    out["unavailable"] = {e: (f"{why} (no champion model)" if q_model is None else why)
                          for e, why in out["unavailable"].items()}
    logging_mean = float(usable["reward"].mean())
    return report | out | {"logged_reward": logging_mean, "n_queries": int(usable["query"].nunique()),
                           "n_prompts": len(prompts)}
