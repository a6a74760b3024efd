"""Runs inside benchmarks/.venv-vw: Vowpal Wabbit's cb_explore_adf on the stream benchmarks/loop.py saved.

Shared features: the question's MiniLM embedding (namespace S); action features: the prompt's id
(namespace A); -q SA gives each prompt its own linear model of the embedding. The loop's exploration:
ε-greedy with its ε, or softmax with λ = 1/T (VW's p ∝ exp(−λ·cost) with cost = 1 − reward is the
loop's exp(P(correct)/T)), or greedy (ε = 0). VW learns online after every round. Prints the
per-round rewards as JSON.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import vowpalwabbit


def main(path: str) -> None:
    data = np.load(path)
    q_emb, outcomes = data["q_emb"], data["outcomes"]
    mode, eps, seed = str(data["mode"]), float(data["epsilon"]), int(data["seed"])
    k = outcomes.shape[1]
    rng = np.random.default_rng(seed)
    explore = {"epsilon": f"--epsilon {eps}", "greedy": "--epsilon 0",
               "softmax": f"--softmax --lambda {1.0 / float(data['temperature'])} --epsilon 0"}[mode]
    vw = vowpalwabbit.Workspace(f"--cb_explore_adf {explore} -q SA --quiet --random_seed {seed}")
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
