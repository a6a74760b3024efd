"""Training time and test accuracy: the default reward model vs the reference XGBoost configuration.

Both are trained on the same rows and the same features (paper split, prompts 0-5,
embeddings already cached), and both are scored the paper's way on the paper test split
(argmax over the 6 prompts, logged correctness of the chosen prompt). The reference
configuration is XGBoost max_depth 10, eta 0.001, 2000 rounds. If ``--reference-rounds`` is
below 2000, its time is also extrapolated linearly to 2000 rounds (boosting cost per round
is roughly constant at a fixed depth) and the accuracy is that of the shorter run — stated
in the JSON.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train_speed.py --root /work/shared/data --dataset gsm8k
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from oirl.datasets.benchmark import load_benchmark  # noqa: E402
from oirl.embed import make_embedder  # noqa: E402
from oirl.evaluate import chosen_outcomes, outcome_matrix, split_logs  # noqa: E402
from oirl.reward import PromptRewardModel, TrainingTable, fit_reward_model  # noqa: E402
from oirl.reward.backends import XGBoostBackend, default_threads  # noqa: E402
from oirl.select import best_of_n  # noqa: E402
from oirl.settings import get_settings  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def paper_accuracy(model, logs, embedder) -> float:
    split = split_logs(logs, "paper", list(range(6)))
    outcomes = outcome_matrix(logs, split.test_queries, list(range(6)))
    texts = logs.drop_duplicates("query_index").set_index("query_index").loc[split.test_queries, "query"]
    prompts = logs.drop_duplicates("prompt_index").set_index("prompt_index").loc[list(range(6)), "prompt"]
    scores = model.score(embedder.encode(texts.tolist()), embedder.encode(prompts.tolist()))
    return float(chosen_outcomes(outcomes, best_of_n(scores, prompts.tolist()).choice).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--dataset", default="gsm8k")
    ap.add_argument("--reference-rounds", type=int, default=2000)
    ap.add_argument("--features", default="concat+knn")
    args = ap.parse_args()
    root = args.root or get_settings().resolved_benchmark_dir
    embedder = make_embedder(get_settings())
    logs = load_benchmark(args.dataset, root)
    train = logs[(logs["split"] == "train") & (logs["prompt_index"] < 6)]
    embedder.encode(sorted(set(logs["query"])) + sorted(set(logs["prompt"])))  # warm the cache, untimed

    t0 = time.perf_counter()
    trained = fit_reward_model(train, embedder, features=args.features)
    default_s = time.perf_counter() - t0
    default_acc = paper_accuracy(trained.model, logs, embedder)
    print(f"default: {default_s:.1f} s, accuracy {default_acc:.4f}", flush=True)

    # The reference: one XGBoost fit on the same aggregated, weighted rows and features, no early stopping.
    table = TrainingTable.from_logs(train)
    q_vec, p_vec = embedder.encode(table.queries), embedder.encode(table.prompts)
    pair, label, weight = table.weighted_rows()
    ref_params = XGBoostBackend.reference(args.reference_rounds).params
    ref = PromptRewardModel(backend="xgboost", params=ref_params, features=args.features, validation_fraction=0.0,
                            refit=False, embedder=embedder.identity.to_dict())
    t0 = time.perf_counter()
    ref.fit(q_vec[table.query_id[pair]], p_vec[table.prompt_id[pair]], label, sample_weight=weight,
            groups=table.query_id[pair])
    ref_s = time.perf_counter() - t0
    ref_acc = paper_accuracy(ref, logs, embedder)
    print(f"reference: {ref_s:.1f} s for {args.reference_rounds} rounds, accuracy {ref_acc:.4f}", flush=True)

    result = {
        "dataset": args.dataset,
        "features": args.features,
        "n_training_outcomes": int(len(train)),
        "n_training_rows_after_merging": int(len(pair)),
        "threads": default_threads(),
        "cpu_count": os.cpu_count(),
        "default": {"backend": "lightgbm", "params": trained.model.backend_.params, "rounds": trained.model.n_rounds_,
                    "seconds": round(default_s, 1), "paper_test_accuracy_argmax": default_acc,
                    "note": "includes the early-stopping fit on 90% and the refit on all rows"},
        "reference": {"backend": "xgboost", "params": ref_params, "rounds_run": args.reference_rounds,
                      "seconds": round(ref_s, 1),
                      "seconds_extrapolated_to_2000_rounds": round(ref_s * 2000 / args.reference_rounds, 1),
                      "paper_test_accuracy_argmax": ref_acc,
                      "note": "accuracy of the run actually made" + (
                          "" if args.reference_rounds == 2000 else f" ({args.reference_rounds} rounds, not 2000)")},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"train_speed_{args.dataset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
