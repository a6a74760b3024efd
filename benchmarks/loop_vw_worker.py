"""Runs inside benchmarks/.venv-vw: Vowpal Wabbit's cb_explore_adf on the stream benchmarks/loop.py saved.

Shared features: the question's MiniLM embedding (namespace S); action features: the prompt's id
(namespace A); -q SA gives each prompt its own linear model of the embedding. ε-greedy with the
loop's ε; VW learns online after every round (cost = 1 − reward). Prints the per-round rewards as JSON.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import vowpalwabbit


def main(path: str) -> None:
    data = np.load(path)
    q_emb, outcomes = data["q_emb"], data["outcomes"]
    eps, seed = float(data["epsilon"]), int(data["seed"])
    k = outcomes.shape[1]
    rng = np.random.default_rng(seed)
    vw = vowpalwabbit.Workspace(f"--cb_explore_adf --epsilon {eps} -q SA --quiet --random_seed {seed}")
    actions = [f"|A p{a}" for a in range(k)]
    rewards = []
    for t in range(len(q_emb)):
        shared = "shared |S " + " ".join(f"{i}:{v:.5f}" for i, v in enumerate(q_emb[t]))
        pmf = np.asarray(vw.predict([shared] + actions), dtype=float)
        pmf = pmf / pmf.sum()
        a = int(rng.choice(k, p=pmf))
        r = float(outcomes[t, a])
        labelled = [shared] + [f"0:{1.0 - r}:{pmf[a]} {actions[j]}" if j == a else actions[j] for j in range(k)]
        vw.learn(labelled)
        rewards.append(r)
    vw.finish()
    json.dump(rewards, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
