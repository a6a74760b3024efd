"""Learning from partial logs: does inverse-propensity weighting help? Measured where the truth is known.

Production-shaped logs are built from the real benchmark logs: each training question is tried
once (30% of them twice) with a prompt drawn from a *biased* logging policy, the kind a team's
production policy is: softmax over a weak reward model trained on 100 questions (temperature 0.05),
mixed with 10% uniform exploration; every row keeps its propensity. On these logs the reward model is
trained (a) on the observations as they come and (b) weighted by 1/max(propensity, clip). Both are
judged on the test questions with full information (every prompt's true outcome), beside BoTr and
the model trained on the full logs; paired bootstrap intervals against the unweighted model. Also:
the safe policy calibrated on the 10% split only (``calibration_folds=0``, the default before
out-of-fold calibration) and the ``heads`` backend.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/partial_logs.py --root /work/shared/data

Writes benchmarks/results/partial_logs.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from oirl.datasets.benchmark import DATASETS, TRAINING_PROMPTS, load_benchmark  # noqa: E402
from oirl.embed import make_embedder  # noqa: E402
from oirl.evaluate.metrics import paired_bootstrap_ci  # noqa: E402
from oirl.reward import fit_reward_model  # noqa: E402
from oirl.select import apply_policy, best_of_n, calibrate_policy  # noqa: E402
from oirl.select.explore import Exploration, action_probabilities  # noqa: E402
from oirl.settings import get_settings  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PROMPTS = [p.text for p in TRAINING_PROMPTS]


def production_logs(texts, outcomes, train_idx, embedder, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weak_q = rng.choice(train_idx, 100, replace=False)
    rows = [{"query": texts[i], "prompt": PROMPTS[j], "reward": outcomes[i, j]} for i in weak_q
            for j in range(len(PROMPTS))]
    weak = fit_reward_model(pd.DataFrame(rows), embedder, params={"n_rounds": 50}, random_state=seed)
    order = [weak.table.prompts.index(p) for p in PROMPTS]
    scores = weak.model.score(embedder.encode([texts[i] for i in train_idx]),
                              embedder.encode(weak.table.prompts))[:, order]
    soft = Exploration(mode="softmax", temperature=0.05)
    uniform_mix = 0.1
    out = []
    for n, i in enumerate(train_idx):
        pi = action_probabilities(scores[n], int(scores[n].argmax()), np.ones(len(PROMPTS), bool), soft)
        pi = (1 - uniform_mix) * pi + uniform_mix / len(PROMPTS)
        for _ in range(1 + (rng.random() < 0.3)):
            j = int(rng.choice(len(PROMPTS), p=pi))
            out.append({"query": texts[i], "prompt": PROMPTS[j], "reward": outcomes[i, j], "propensity": pi[j]})
    return pd.DataFrame(out)


def choices(trained, embedder, texts, tau_estimator: str = "dr") -> tuple[np.ndarray, np.ndarray]:
    """(safe choice, argmax choice) on ``texts``, as indices into PROMPTS; τ calibrated off-policy
    with ``tau_estimator`` where the validation logs are partial."""
    policy = calibrate_policy(trained, offpolicy_estimator=tau_estimator)
    order = [trained.table.prompts.index(p) for p in PROMPTS]
    scores = trained.model.score(embedder.encode(texts), embedder.encode(trained.table.prompts))[:, order]
    return apply_policy(scores, PROMPTS, policy).choice, best_of_n(scores, PROMPTS).choice


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--clip", type=float, default=0.05)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    root = args.root or get_settings().resolved_benchmark_dir
    embedder = make_embedder(get_settings())
    reports, started = [], time.perf_counter()
    for dataset in args.datasets.split(","):
        logs = load_benchmark(dataset, root)
        logs = logs[logs["prompt_index"] < 6]
        grid = logs.pivot_table(index="query_index", columns="prompt", values="correct", aggfunc="mean")[PROMPTS]
        first = logs.drop_duplicates("query_index").set_index("query_index").loc[grid.index]
        texts, outcomes = first["query"].tolist(), grid.to_numpy(dtype=float)
        train_idx = np.flatnonzero((first["split"] == "train").to_numpy())
        test_idx = np.flatnonzero((first["split"] == "test").to_numpy())
        test_texts, truth = [texts[i] for i in test_idx], outcomes[test_idx]
        full_rows = pd.DataFrame([{"query": texts[i], "prompt": PROMPTS[j], "reward": outcomes[i, j]}
                                  for i in train_idx for j in range(len(PROMPTS))])
        full_safe, _ = choices(fit_reward_model(full_rows, embedder), embedder, test_texts)
        botr = int(outcomes[train_idx].mean(axis=0).argmax())
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            prod = production_logs(texts, outcomes, train_idx, embedder, seed)
            rows = {"botr (full logs)": truth[:, botr], "full-information model (safe)": truth[np.arange(len(truth)),
                                                                                             full_safe]}
            for name, clip in (("unweighted", None), (f"ips clip {args.clip}", args.clip)):
                trained = fit_reward_model(prod, embedder, random_state=seed, propensity_clip=clip)
                safe, argmax = choices(trained, embedder, test_texts)
                rows[f"{name} (safe)"] = truth[np.arange(len(truth)), safe]
                rows[f"{name} (argmax)"] = truth[np.arange(len(truth)), argmax]
                rows[f"{name} default"] = truth[:, PROMPTS.index(trained.default_prompt)]
                if clip is None:  # τ valued by IPS instead of DR: the calibration before stop 18
                    rows[f"{name} (safe, IPS τ)"] = truth[np.arange(len(truth)),
                                                          choices(trained, embedder, test_texts, "ips")[0]]
                    # τ on the 10% validation split only (the default before out-of-fold calibration)
                    split = fit_reward_model(prod, embedder, random_state=seed, calibration_folds=0)
                    rows[f"{name} (safe, split τ)"] = truth[np.arange(len(truth)),
                                                            choices(split, embedder, test_texts)[0]]
                    heads = fit_reward_model(prod, embedder, backend="heads", random_state=seed)
                    heads_safe, heads_argmax = choices(heads, embedder, test_texts)
                    rows["heads (safe)"] = truth[np.arange(len(truth)), heads_safe]
                    rows["heads (argmax)"] = truth[np.arange(len(truth)), heads_argmax]
            base = rows["unweighted (safe)"]
            report = {"dataset": dataset, "seed": seed, "n_logged": len(prod), "n_test": len(truth),
                      "logged_mean_reward": float(prod["reward"].mean()), "seconds": round(time.perf_counter() - t0),
                      "methods": {k: {"accuracy": float(v.mean()),
                                      "ci95_vs_unweighted_safe": list(paired_bootstrap_ci(v, base, n_boot=1000))}
                                  for k, v in rows.items()}}
            reports.append(report)
            print(json.dumps(report), flush=True)
    meta = {"seconds": round(time.perf_counter() - started), "clip": args.clip, "seeds": args.seeds,
            "embedder": embedder.identity.key}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "partial_logs.json").write_text(json.dumps({"meta": meta, "reports": reports}, indent=1) + "\n")
    (RESULTS / "partial_logs.md").write_text(markdown(reports, meta))
    print(markdown(reports, meta))


def markdown(reports: list[dict], meta: dict) -> str:
    methods = list(reports[0]["methods"])
    lines = ["# Learning from partial logs: unweighted vs inverse-propensity weighted training", "",
             f"Generated by `benchmarks/partial_logs.py` in {meta['seconds']} s; {meta['seeds']} seeds of the "
             "biased logging policy; test accuracy with full information (paper split). Mean over seeds; "
             "in brackets the mean of the per-seed 95% paired-bootstrap interval against the unweighted "
             "model's safe policy.", "", "| dataset | " + " | ".join(methods) + " |",
             "| --- |" + " --- |" * len(methods)]
    for dataset in dict.fromkeys(r["dataset"] for r in reports):
        group = [r for r in reports if r["dataset"] == dataset]
        cells = []
        for m in methods:
            acc = np.mean([r["methods"][m]["accuracy"] for r in group])
            lo = np.mean([r["methods"][m]["ci95_vs_unweighted_safe"][0] for r in group])
            hi = np.mean([r["methods"][m]["ci95_vs_unweighted_safe"][1] for r in group])
            cells.append(f"{acc:.3f} [{lo:+.3f}, {hi:+.3f}]")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
