"""Held-out preference accuracy of DPO / IPO on real preference pairs (a measurement, not a test).

No pretrained causal LM can be had offline here, so the policy is a small Llama-architecture model with the
bundled MiniLM WordPiece tokenizer, first fine-tuned (`rlhf.sft`) on the training pairs' chosen AND rejected
responses: a language model of the domain that has seen no preference. Then DPO (or IPO) on the training
pairs. Measured on held-out pairs (split by question/prompt, never seen in training):
- log-likelihood accuracy: log pi(y+|x) > log pi(y-|x), before DPO (= after SFT) and after;
- implicit-reward accuracy: (log pi - log pi_ref)(y+) > (log pi - log pi_ref)(y-), after DPO.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/rlhf/dpo_accuracy.py --root /work/shared/data
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from rlhf.config import DPOConfig, SFTConfig  # noqa: E402
from rlhf.data import load_pairs, split_by_group  # noqa: E402
from rlhf.dpo import DPOTrainer  # noqa: E402
from rlhf.modeling import load_tokenizer, minilm_path, tiny_causal_lm  # noqa: E402
from rlhf.sft import SFTTrainer  # noqa: E402


def reset_accelerate() -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # one process, several trainers: each sets up its own run


def measure(name: str, pairs, args, loss: str) -> dict:
    train, test = split_by_group(pairs, 0.2, args.seed)
    available = len(train)
    if len(train) > args.max_train_pairs:
        train = random.Random(args.seed).sample(train, args.max_train_pairs)
    tok = load_tokenizer(minilm_path())
    policy = tiny_causal_lm(tok, arch="llama", hidden=args.hidden, layers=args.layers, heads=4,
                            max_positions=args.max_prompt + args.max_response + 8, seed=args.seed)
    out = Path(tempfile.mkdtemp(prefix="dpo_bench_"))
    t0 = time.perf_counter()
    sft_examples = [(p.prompt, p.chosen) for p in train] + [(p.prompt, p.rejected) for p in train]
    sft_cfg = SFTConfig(output_dir=str(out / "sft"), epochs=args.sft_epochs, batch_size=16, lr=1e-3,
                        max_prompt_length=args.max_prompt, max_response_length=args.max_response, seed=args.seed,
                        warmup_steps=10, lr_schedule="cosine")
    reset_accelerate()
    SFTTrainer(sft_cfg, policy, tok, sft_examples, [], progress=False).train()
    sft_seconds = time.perf_counter() - t0
    reset_accelerate()
    cfg = DPOConfig(output_dir=str(out / "dpo"), loss=loss, beta=args.beta, epochs=args.dpo_epochs,
                    batch_size=8, gradient_accumulation_steps=2, lr=args.lr, max_prompt_length=args.max_prompt,
                    max_response_length=args.max_response, seed=args.seed, warmup_steps=10)
    trainer = DPOTrainer(cfg, sft_policy(out / "sft" / "policy"), tok, train, test, progress=False)  # as saved
    t0 = time.perf_counter()
    history = trainer.train()
    evals = [h for h in history if "eval/pairs" in h]
    result = {"dataset": name, "loss": loss, "train_pairs_available": available, "train_pairs_used": len(train),
              "test_pairs": len(test), "test_groups": len({p.group_key for p in test}),
              "logp_accuracy_before_dpo": evals[0]["eval/logp_accuracy"],
              "logp_accuracy_after_dpo": evals[-1]["eval/logp_accuracy"],
              "reward_accuracy_after_dpo": evals[-1]["eval/reward_accuracy"],
              "reward_margin_after_dpo": evals[-1]["eval/margin"],
              "train_reward_accuracy_last_step": [h for h in history if "loss" in h][-1]["rewards/accuracy"],
              "sft_seconds": round(sft_seconds, 1), "dpo_seconds": round(time.perf_counter() - t0, 1),
              "config": asdict(cfg)}
    print(json.dumps({k: v for k, v in result.items() if k != "config"}), flush=True)
    return result


def sft_policy(path: Path):
    from rlhf.modeling import load_causal_lm

    return load_causal_lm(path)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="/work/shared/data", help="mirror directory laid out like shared/data")
    ap.add_argument("--out", default="benchmarks/results/rlhf_dpo_accuracy.json")
    ap.add_argument("--max-train-pairs", type=int, default=800)
    ap.add_argument("--max-prompt", type=int, default=64)
    ap.add_argument("--max-response", type=int, default=96)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--sft-epochs", type=int, default=2)
    ap.add_argument("--dpo-epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", default="gsm8k,hh")
    ap.add_argument("--losses", default="sigmoid,ipo")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = {"gsm8k": ("gsm8k llama-2 responses, 1 pair per question", lambda: load_pairs("gsm8k", args.root, 1, 0)),
            "hh": ("hh-rlhf harmless-base test file", lambda: load_pairs("hh", args.root))}
    results = []
    for key in args.datasets.split(","):
        name, load = data[key]
        pairs = load()
        for loss in args.losses.split(","):
            results.append(measure(name, pairs, args, loss))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "policy": f"Llama architecture, hidden {args.hidden}, {args.layers} layers, MiniLM WordPiece tokenizer, "
                  "SFT on the training pairs' chosen and rejected responses, then DPO/IPO",
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(), "threads": 1,
        "args": vars(args), "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
