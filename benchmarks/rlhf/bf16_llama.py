"""A bf16 Llama-architecture checkpoint through every `rlhf` command: does it run, and do the weights move?

Builds a small Llama (saved in bf16, tokenizer without a pad token, as current checkpoints come), then runs
`rlhf train-rm`, `sft`, `dpo`, `ppo`, `raft`, `grpo` on it as subprocesses, each for 5 optimiser steps at its
default learning rate, with `--mixed-precision no` and `bf16`, and reports the share of the trained model's
weight entries that changed. For comparison, RAFT is also run the way it ran before fp32 master weights
(weights and AdamW in bf16), in-process.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/rlhf/bf16_llama.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from rlhf.config import RAFTConfig  # noqa: E402
from rlhf.modeling import char_tokenizer, load_causal_lm, save_model, tiny_causal_lm  # noqa: E402
from rlhf.raft import RAFTTrainer  # noqa: E402
from rlhf.reward import RewardModel  # noqa: E402

ALPHABET = "abcdefghijklmnopqrstuvwxyz "


def weights(path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(path.glob("*.safetensors")):
        if f.name != "reward_head.safetensors":
            out.update({k: v.float() for k, v in load_file(str(f)).items()})
    return out


def changed_share(before: dict, after: dict) -> tuple[float, int]:
    """Share of the weight entries that differ, and how many entries were compared. Embedding rows added for the
    pad token are left out (they did not exist before); a backbone is saved without the `model.` prefix."""
    if not any(k in before for k in after):
        before = {k.removeprefix("model."): v for k, v in before.items()}
    keys = [k for k in after if k in before]
    pairs = [(before[k], after[k][: before[k].shape[0]]) for k in keys]
    n = sum(b.numel() for b, _ in pairs)
    return sum((b != a).sum().item() for b, a in pairs) / n, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/rlhf_bf16_llama.json")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="rlhf_bf16_"))
    tok = char_tokenizer(ALPHABET, with_pad=False)
    model = tiny_causal_lm(tok, arch="llama", hidden=args.hidden, layers=args.layers, heads=4, seed=0)
    model.config.pad_token_id = None
    save_model(model.to(torch.bfloat16), tok, work / "llama")
    n_params = sum(p.numel() for p in model.parameters())
    rng = random.Random(0)
    words = ["good answer", "great reply", "bad answer", "awful reply", "fine", "nope"]
    rows = [{"prompt": f"question {rng.choice('abcdefgh')}{i}", "chosen": rng.choice(words[:2]) + " " * (i % 3),
             "rejected": rng.choice(words[2:])} for i in range(64)]
    (work / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rm = RewardModel.from_backbone(work / "llama")
    rm.to(torch.bfloat16).save_pretrained(work / "rm_bf16")  # a bf16 reward model for ppo/raft/grpo
    base = weights(work / "llama")

    common = ["--policy", str(work / "llama"), "--max-prompt-length", "16"]
    rl = ["--reward-model", str(work / "rm_bf16"), "--prompts", str(work / "pairs.jsonl"), "--max-new-tokens", "8"]
    commands = {
        "train-rm": ["--data", str(work / "pairs.jsonl"), "--backbone", str(work / "llama"), "--batch-size", "8",
                     "--max-pairs", "40", "--max-length", "32"],
        "sft": [*common, "--data", str(work / "pairs.jsonl"), "--batch-size", "8", "--max-examples", "40"],
        "dpo": [*common, "--data", str(work / "pairs.jsonl"), "--batch-size", "8", "--max-pairs", "40"],
        "ppo": [*common, *rl, "--total-updates", "5", "--batch-size", "4", "--mini-batch-size", "4",
                "--ppo-epochs", "1"],
        "raft": [*common, *rl, "--iterations", "5", "--batch-size", "4", "--k", "2", "--mini-batch-size", "4",
                 "--sft-epochs", "1"],
        "grpo": [*common, *rl, "--total-updates", "5", "--batch-size", "2", "--group-size", "2",
                 "--mini-batch-size", "4"],
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    results = []
    for precision in ("no", "bf16"):
        for name, flags in commands.items():
            out = work / f"{name}_{precision}"
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "rlhf.cli", name, *flags, "--output-dir", str(out),
                                   "--mixed-precision", precision], cwd=ROOT, env=env, capture_output=True, text=True)
            row = {"command": f"rlhf {name}", "mixed_precision": precision, "exit_code": proc.returncode,
                   "seconds": round(time.perf_counter() - t0, 1)}
            if proc.returncode == 0:
                trained = out if name == "train-rm" else out / "policy"
                share, n = changed_share(base, weights(trained))
                steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
                row.update({"optimizer_steps": sum(1 for s in steps if "grad_norm" in s) or len(steps),
                            "share_of_weights_changed": round(share, 4), "entries_compared": n})
            else:
                row["error"] = proc.stderr.strip().splitlines()[-1:]
            print(json.dumps(row), flush=True)
            results.append(row)

    # the old way, for comparison: RAFT on the weights as loaded in bf16, AdamW state in bf16 too
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    policy, ptok = load_causal_lm(work / "llama", dtype=torch.bfloat16)
    before = {n: p.detach().float().clone() for n, p in policy.named_parameters()}
    rm = RewardModel.from_pretrained(work / "rm_bf16")
    cfg = RAFTConfig(output_dir=str(work / "raft_pure_bf16"), iterations=5, batch_size=4, k=2, mini_batch_size=4,
                     sft_epochs=1, max_new_tokens=8, max_prompt_length=16)
    prompts = [r["prompt"] for r in rows]
    trainer = RAFTTrainer(cfg, policy, ptok, rm.score_texts, prompts, progress=False)
    for _ in range(5):
        trainer.step()
    after = {n: p.detach().float() for n, p in trainer.policy.named_parameters()}
    share = sum((before[n] != after[n]).sum().item() for n in before) / sum(v.numel() for v in before.values())
    row = {"command": "RAFT with bf16 weights and optimiser (before this change)", "mixed_precision": "pure bf16",
           "optimizer_steps": 5, "share_of_weights_changed": round(share, 4)}
    print(json.dumps(row))
    results.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "model": f"Llama architecture, hidden {args.hidden}, {args.layers} layers, {n_params} parameters, saved in "
                 "bf16; char tokenizer without a pad token (one is added and the embeddings resized)",
        "steps": "5 optimiser steps per command at its default learning rate",
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(), "results": results},
        indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
