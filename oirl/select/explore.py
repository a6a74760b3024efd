"""Exploration: a distribution over the candidates around the safe choice, with exact propensities.

The service must sometimes try a prompt other than its best guess, or its logs only ever
show its own choices and a better prompt can never be discovered. Each mode turns one
query's scores and the safe policy's choice g into a distribution π over the candidates;
the served prompt is drawn from π and π(drawn) is logged as the propensity that
off-policy evaluation and inverse-propensity training divide by.

    greedy   π = 1[a = g]                                            (no exploration)
    epsilon  π(a) = (1 − ε) 1[a = g] + ε / |E|  for a ∈ E             (ε-greedy)
    softmax  π(a) ∝ exp(r̂(q, a) / T)            for a ∈ E ∪ {g}       (Boltzmann)

E is the set of *explorable* candidates: a task's active prompts. Inactive prompts and
free-text candidates are never explored (a caller's own text can still be the greedy
choice). ``default_floor`` f then keeps at least f of the traffic on the safe default:
if π(default) < f, the default gets f and the others share 1 − f in their proportions.

The draw is a pure function of the decision id (u = SHA-256(id) as a number in [0, 1)),
so a logged decision can be re-derived exactly, and the same id never draws twice.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

Mode = Literal["greedy", "epsilon", "softmax"]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Exploration:
    """A task's exploration setting: the body of ``PUT /v1/tasks/{name}/exploration`` and the options
    of ``oirl tasks explore``."""

    mode: Mode = Field("greedy", description="greedy: always the safe choice; epsilon: ε-greedy; softmax: "
                                             "Boltzmann over the reward model's scores.")
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="epsilon mode: share of traffic spread uniformly "
                                                            "over the active prompts.")
    # 0.02, not 0.05: on the loop benchmark T = 0.05 explored 83% of GSM8K rounds and served 0.044
    # below always-BoTr (benchmarks/results/loop_softmax_t005_before_botr_clip.md); with 2,000 uniform
    # rounds before the first model, 0.01 and 0.02 never fell significantly below it on GSM8K (6 runs,
    # loop_summary.md). Neither reliably beat it on SVAMP or MAWPS: greedy stays the default mode.
    temperature: float = Field(0.02, gt=0.0, le=100.0, description="softmax mode: T; scores are P(correct) in "
                                                                  "[0, 1], so 0.02 prefers a 0.04 lead e²:1.")
    default_floor: float = Field(0.0, ge=0.0, le=1.0, description="Least share of traffic kept on the safe "
                                                                  "default prompt (when it is a candidate).")

    @property
    def explores(self) -> bool:
        return self.mode == "softmax" or (self.mode == "epsilon" and self.epsilon > 0)


GREEDY = Exploration()


def action_probabilities(scores: np.ndarray, greedy: int, explorable: np.ndarray, exploration: Exploration,
                         default_index: int | None = None) -> np.ndarray:
    """π over one query's ``(n_c,)`` candidates; ``greedy`` is the safe policy's choice and
    ``explorable`` a ``(n_c,)`` bool mask (the task's active prompts). Sums to 1."""
    n = len(scores)
    pi = np.zeros(n)
    support = np.asarray(explorable, dtype=bool).copy()
    if exploration.mode == "greedy" or not support.any():
        pi[greedy] = 1.0
    elif exploration.mode == "epsilon":
        pi[support] = exploration.epsilon / support.sum()
        pi[greedy] += 1.0 - exploration.epsilon
    else:  # softmax over the explorable candidates and the greedy choice
        support[greedy] = True
        z = np.where(support, np.asarray(scores, dtype=np.float64) / exploration.temperature, -np.inf)
        w = np.exp(z - z[support].max())
        pi = w / w.sum()
    floor = exploration.default_floor
    if default_index is not None and floor > 0 and pi[default_index] < floor:
        rest = 1.0 - pi[default_index]
        pi = pi * ((1.0 - floor) / rest)
        pi[default_index] = floor
    return pi


def uniform_from_id(decision_id: str) -> float:
    """A number in [0, 1) fixed by the decision id (its SHA-256's first 8 bytes)."""
    return int.from_bytes(hashlib.sha256(decision_id.encode("utf-8")).digest()[:8], "big") / 2.0**64


def draw(pi: np.ndarray, decision_id: str) -> int:
    """The candidate index the decision id draws from π (inverse CDF)."""
    cdf = np.cumsum(pi)
    u = uniform_from_id(decision_id) * cdf[-1]  # cdf[-1] is 1 up to rounding
    return int(min(np.searchsorted(cdf, u, side="right"), len(pi) - 1))
