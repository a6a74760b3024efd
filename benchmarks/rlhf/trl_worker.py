"""Runs inside a TRL virtual environment: TRL's PPOTrainer (1.12.0), RewardTrainer, DPOTrainer or GRPOTrainer
on the shared assets.

Usage (from rlhf_vs_trl.py): python trl_worker.py {ppo|rm|dpo|grpo} <assets dir> <updates> <threads>
Prints one JSON line: seconds per update and peak memory. Uses only TRL's public API.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from rss_probe import PeakRSS, summarise_times  # noqa: E402


def main() -> None:
    mode, assets, updates, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    spec = json.loads((assets / "spec.json").read_text())
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self):
            self.times, self.last = [], None

        def on_train_begin(self, args, state, control, **kw):
            self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            self.times.append(now - self.last)
            self.last = now

    clock = Clock()
    tok = AutoTokenizer.from_pretrained(str(assets / "policy"))
    out = tempfile.mkdtemp()
    common = dict(output_dir=out, report_to="none", use_cpu=True, save_strategy="no", logging_steps=1,
                  seed=spec["seed"], learning_rate=spec["lr"], dataloader_num_workers=0)
    if mode == "ppo":
        from trl.experimental.ppo import PPOConfig, PPOTrainer

        p = spec["ppo"]
        tok.padding_side = "left"
        ids = [[tok.bos_token_id] + tok(x, add_special_tokens=False)["input_ids"][-p["max_prompt_length"]:]
               for x in spec["prompts"]]  # BOS + the last tokens of the prompt, exactly as ours encodes queries
        ds = Dataset.from_dict({"input_ids": ids})
        args = PPOConfig(**common, per_device_train_batch_size=p["batch_size"], gradient_accumulation_steps=1,
                         num_mini_batches=p["batch_size"] // p["mini_batch_size"], num_ppo_epochs=p["ppo_epochs"],
                         response_length=p["max_new_tokens"], temperature=p["temperature"], kl_coef=p["kl_coef"],
                         missing_eos_penalty=p["missing_eos_penalty"], stop_token="eos", num_sample_generations=0,
                         local_rollout_forward_batch_size=p["batch_size"], total_episodes=p["batch_size"] * updates,
                         cliprange=p["cliprange"], cliprange_value=p["cliprange_value"], vf_coef=p["vf_coef"],
                         gamma=p["gamma"], lam=p["lam"])
        policy = AutoModelForCausalLM.from_pretrained(str(assets / "policy"))
        ref = AutoModelForCausalLM.from_pretrained(str(assets / "policy"))
        reward = AutoModelForSequenceClassification.from_pretrained(str(assets / "reward"), num_labels=1)
        value = AutoModelForSequenceClassification.from_pretrained(str(assets / "reward"), num_labels=1)
        trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                             value_model=value, train_dataset=ds, callbacks=[clock])
    elif mode == "dpo":
        from trl import DPOConfig, DPOTrainer

        d = spec["dpo"]
        ds = Dataset.from_list(spec["pairs"])
        args = DPOConfig(**common, per_device_train_batch_size=d["batch_size"], max_steps=updates, beta=d["beta"],
                         loss_type="sigmoid", max_length=d["max_prompt_length"] + d["max_response_length"],
                         disable_dropout=True)
        model = AutoModelForCausalLM.from_pretrained(str(assets / "policy"))
        ref = AutoModelForCausalLM.from_pretrained(str(assets / "policy"))
        trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=tok,
                             callbacks=[clock])
    elif mode == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        g = spec["grpo"]
        n = g["prompts_per_update"] * g["group_size"]
        ds = Dataset.from_dict({"prompt": spec["prompts"]})
        args = GRPOConfig(**common, per_device_train_batch_size=n, generation_batch_size=n,
                          num_generations=g["group_size"], max_completion_length=g["max_new_tokens"],
                          temperature=g["temperature"], top_p=1.0, top_k=0, beta=g["beta"], num_iterations=1,
                          max_steps=updates, disable_dropout=True)
        reward = AutoModelForSequenceClassification.from_pretrained(str(assets / "reward"), num_labels=1)
        trainer = GRPOTrainer(model=str(assets / "policy"), reward_funcs=reward, args=args, train_dataset=ds,
                              processing_class=tok, reward_processing_classes=tok, callbacks=[clock])
    else:
        from trl import RewardConfig, RewardTrainer

        r = spec["rm"]
        ds = Dataset.from_list(spec["pairs"])
        args = RewardConfig(**common, per_device_train_batch_size=r["batch_size"], max_length=r["max_length"],
                            max_steps=updates, disable_dropout=True, center_rewards_coefficient=None)
        model = AutoModelForSequenceClassification.from_pretrained(str(assets / "reward"), num_labels=1)
        trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock])
    with PeakRSS() as mem:
        trainer.train()
    print(json.dumps({"impl": f"trl {trl.__version__}", "mode": mode, **summarise_times(clock.times),
                      **mem.report(), "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
