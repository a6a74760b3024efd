"""Run by test_rlhf_distributed.py under `torch.distributed.run` (2 CPU processes, gloo): PPO and DPO under DDP.

Each rank writes rank<i>.json with a checksum of its trained weights and what it sampled.
"""

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
from rlhf.config import DPOConfig, PPOConfig  # noqa: E402
from rlhf.dpo import build_trainer as build_dpo  # noqa: E402
from rlhf.ppo import build_trainer as build_ppo  # noqa: E402


def checksum(model) -> float:
    inner = model.module if hasattr(model, "module") else model
    return sum(p.double().sum().item() for p in inner.parameters())


def main() -> None:
    root = Path(sys.argv[1])
    common = dict(policy=str(root / "policy"), cpu=True, max_new_tokens=4)
    ppo = build_ppo(PPOConfig(**common, reward_model=str(root / "rm"), prompts=str(root / "prompts.jsonl"),
                              output_dir=str(root / "ppo"), total_updates=2, batch_size=4, mini_batch_size=2,
                              ppo_epochs=1, lr=1e-3), progress=False)
    history = ppo.train()
    from rlhf.modeling import load_causal_lm

    result = {"initial_policy": checksum(load_causal_lm(root / "policy")[0]),
              "processes": ppo.acc.num_processes, "ddp": type(ppo.policy).__name__,
              "ppo_policy": checksum(ppo.policy), "ppo_value": checksum(ppo.value_model),
              "ppo_scores": history[-1]["objective/scores"]}
    dpo = build_dpo(DPOConfig(policy=str(root / "policy"), cpu=True, data=str(root / "pairs.jsonl"),
                              output_dir=str(root / "dpo"), batch_size=4, lr=1e-3, max_pairs=8), progress=False)
    dpo.train()
    result["dpo_policy"] = checksum(dpo.policy)
    (root / f"rank{ppo.acc.process_index}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
