"""Runs in the project venv: our PPO, reward-model, DPO or GRPO training on the shared assets (see rlhf_vs_trl.py).

Usage: python ours_worker.py {ppo|rm|dpo|grpo} <assets dir> <updates> <threads>; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]  # the repo root (for `rlhf`) and this folder
from rss_probe import PeakRSS, summarise_times  # noqa: E402

from rlhf.data import PreferencePair  # noqa: E402
from rlhf.ppo import PPOConfig, PPOTrainer  # noqa: E402
from rlhf.reward import RewardConfig, RewardModel, train_reward_model  # noqa: E402


def main() -> None:
    mode, assets, updates, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    spec = json.loads((assets / "spec.json").read_text())
    if mode == "ppo":
        from rlhf.modeling import load_causal_lm

        p = spec["ppo"]
        cfg = PPOConfig(**p, lr=spec["lr"], seed=spec["seed"], total_updates=updates, output_dir=tempfile.mkdtemp())
        policy, tok = load_causal_lm(assets / "policy")
        ref, _ = load_causal_lm(assets / "policy", tok)
        rm = RewardModel.from_pretrained(assets / "reward").eval().requires_grad_(False)
        value = RewardModel.from_pretrained(assets / "reward")  # value model initialised from the RM, as TRL does
        trainer = PPOTrainer(cfg, policy, tok, value, rm.score_texts, spec["prompts"], ref, progress=False)
        with PeakRSS() as mem:
            history = trainer.train()
    elif mode in ("dpo", "grpo"):
        from rlhf.config import DPOConfig, GRPOConfig
        from rlhf.dpo import DPOTrainer
        from rlhf.grpo import GRPOTrainer
        from rlhf.modeling import load_causal_lm

        policy, tok = load_causal_lm(assets / "policy")
        ref, _ = load_causal_lm(assets / "policy", tok)
        out = tempfile.mkdtemp()
        if mode == "dpo":
            d = spec["dpo"]
            pairs = [PreferencePair(x["prompt"], x["chosen"], x["rejected"]) for x in spec["pairs"]]
            pairs = (pairs * (updates * d["batch_size"] // len(pairs) + 1))[: updates * d["batch_size"]]
            cfg = DPOConfig(output_dir=out, lr=spec["lr"], seed=spec["seed"], batch_size=d["batch_size"],
                            beta=d["beta"], max_prompt_length=d["max_prompt_length"],
                            max_response_length=d["max_response_length"])
            trainer = DPOTrainer(cfg, policy, tok, pairs, [], ref, progress=False)
        else:
            g = spec["grpo"]
            rm = RewardModel.from_pretrained(assets / "reward").eval().requires_grad_(False)
            cfg = GRPOConfig(output_dir=out, lr=spec["lr"], seed=spec["seed"], total_updates=updates,
                             batch_size=g["prompts_per_update"], group_size=g["group_size"],
                             mini_batch_size=g["prompts_per_update"] * g["group_size"], grpo_epochs=1,
                             max_prompt_length=g["max_prompt_length"], max_new_tokens=g["max_new_tokens"],
                             temperature=g["temperature"], kl_coef=g["beta"], missing_eos_penalty=0.0)
            trainer = GRPOTrainer(cfg, policy, tok, rm.score_texts, spec["prompts"], ref, progress=False)
        with PeakRSS() as mem:
            history = trainer.train()
    else:
        r = spec["rm"]
        model = RewardModel.from_pretrained(assets / "reward")
        pairs = [PreferencePair(x["prompt"], x["chosen"], x["rejected"]) for x in spec["pairs"]]
        n = updates * r["batch_size"]
        pairs = (pairs * (n // len(pairs) + 1))[:n]  # exactly `updates` batches, like TRL's max_steps
        cfg = RewardConfig(batch_size=r["batch_size"], max_length=r["max_length"], lr=spec["lr"], seed=spec["seed"])
        with PeakRSS() as mem:
            history = train_reward_model(model, pairs, [], cfg, progress=False)
    times = [h["time/update_s"] for h in history if "time/update_s" in h]
    print(json.dumps({"impl": "ours", "mode": mode, **summarise_times(times), **mem.report(),
                      "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
