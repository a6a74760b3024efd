"""Runs inside benchmarks/.venv-obp (Open Bandit Pipeline installed): OBP's IPS, SNIPS, DM and DR on
the arrays benchmarks/ope.py saved, printed as JSON (one dict per case, in order)."""

from __future__ import annotations

import json
import sys

import numpy as np
from obp.ope import DirectMethod, DoublyRobust, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting


def main(path: str) -> None:
    data = np.load(path)
    estimators = {"ips": InverseProbabilityWeighting(), "snips": SelfNormalizedInverseProbabilityWeighting(),
                  "dm": DirectMethod(), "dr": DoublyRobust()}
    out = []
    for i in range(int(data["n"])):
        action, reward, pscore = data[f"action_{i}"], data[f"reward_{i}"], data[f"pscore_{i}"]
        pi, q_hat = data[f"pi_{i}"][:, :, None], data[f"q_hat_{i}"][:, :, None]  # OBP: (n, K, positions)
        position = np.zeros(len(action), dtype=int)
        out.append({name: float(est.estimate_policy_value(
            reward=reward, action=action, pscore=pscore, action_dist=pi, position=position,
            estimated_rewards_by_reg_model=q_hat)) for name, est in estimators.items()})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
