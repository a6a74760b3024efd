"""Supervised fine-tuning on (prompt, response) examples, in one file: the usual start of an RLHF pipeline.

Loss: mean next-token NLL of the response tokens and the EOS that ends them, given the prompt (prompt tokens
are context, never targets). The prompt goes through the tokenizer's chat template when it has one, exactly
as PPO / RAFT / GRPO / DPO will present it later.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rlhf.config import SFTConfig
from rlhf.data import PreferenceDataError
from rlhf.modeling import encode_queries, encode_responses, logprobs_of
from rlhf.ppo import masked_mean
from rlhf.runtime import (
    add_lora,
    enable_checkpointing,
    make_accelerator,
    make_optimizer,
    micro_batches,
    optimizer_step,
    save_policy,
    shard,
)
from rlhf.utils import JsonlLogger

__all__ = ["SFTConfig", "SFTTrainer", "build_trainer"]
Example = tuple[str, str]  # (prompt, response)


class SFTTrainer:
    def __init__(self, cfg: SFTConfig, policy, tokenizer, train: list[Example], test: list[Example],
                 progress: bool = True):
        if not train:
            raise PreferenceDataError("no training examples")
        self.acc = acc = make_accelerator(cfg)
        self.cfg, self.tok, self.train_set, self.test_set, self.progress = cfg, tokenizer, train, test, progress
        policy = add_lora(policy, cfg, causal_lm=True)
        if cfg.gradient_checkpointing:
            enable_checkpointing(policy)
        self.steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
        opt, self.sched = make_optimizer(policy.parameters(), cfg, self.steps)
        self.policy, self.opt = acc.prepare(policy, opt)
        self.out = Path(cfg.output_dir)
        self.logger = JsonlLogger(self.out / "metrics.jsonl" if acc.is_main_process else None)

    def nll(self, examples: list[Example]) -> torch.Tensor:
        """Mean NLL per response token (incl. EOS) over the batch."""
        cfg, tok = self.cfg, self.tok
        q, qm = encode_queries(tok, [p for p, _ in examples], cfg.max_prompt_length, self.acc.device)  # [B, Lq]
        r, rm = encode_responses(tok, [y for _, y in examples], cfg.max_response_length, tok.eos_token_id,
                                 self.acc.device)  # [B, R]
        return -masked_mean(logprobs_of(self.policy, q, qm, r, rm, 1.0, pad_id=tok.pad_token_id), rm)

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.policy.eval()
        total = n = 0.0
        for i in range(0, len(self.test_set), self.cfg.batch_size):
            batch = self.test_set[i: i + self.cfg.batch_size]
            total, n = total + self.nll(batch).item() * len(batch), n + len(batch)
        return {"eval/nll": total / max(n, 1), "eval/examples": int(n)}

    def train(self) -> list[dict]:
        cfg, acc = self.cfg, self.acc
        rng = random.Random(cfg.seed)
        history, step = [], 0
        if self.test_set:
            history.append(self.logger.log({"step": 0, **self.evaluate()}))
        bar = tqdm(total=self.steps, desc="sft", disable=not self.progress or not acc.is_main_process)
        for epoch in range(cfg.epochs):
            order = list(range(len(self.train_set)))
            rng.shuffle(order)
            for start in range(0, len(order), cfg.batch_size):
                t0 = time.perf_counter()
                batch = [self.train_set[j] for j in order[start: start + cfg.batch_size]]
                self.policy.train()  # dropout is off; train() switches gradient checkpointing on
                loss_sum, batch = 0.0, shard(batch, acc)
                for idx in micro_batches(torch.arange(len(batch)), min(cfg.gradient_accumulation_steps, len(batch))):
                    loss = self.nll([batch[i] for i in idx.tolist()])
                    acc.backward(loss * len(idx) / len(batch))
                    loss_sum += loss.item() * len(idx)
                norm = optimizer_step(acc, self.opt, self.sched, cfg.max_grad_norm)
                step += 1
                history.append(self.logger.log({"step": step, "epoch": epoch, "loss/sft": loss_sum / len(batch),
                                                "grad_norm": norm, "lr": self.sched.get_last_lr()[0],
                                                "time/update_s": time.perf_counter() - t0}))
                bar.update(1)
            if self.test_set:
                history.append(self.logger.log({"step": step, "epoch": epoch, **self.evaluate()}))
        bar.close()
        if acc.is_main_process:
            save_policy(self.policy, self.tok, self.out / "policy")
        return history


def build_trainer(cfg: SFTConfig, progress: bool = True) -> SFTTrainer:
    from rlhf.data import cap, load_sft_examples, split_by_key
    from rlhf.modeling import load_causal_lm
    from rlhf.runtime import check_dir, trained_dtype

    check_dir(cfg.policy, "--policy")
    examples = load_sft_examples(cfg.data)
    train, test = split_by_key(examples, lambda e: e[0], cfg.test_fraction, cfg.seed) if cfg.test_fraction > 0 \
        else (examples, [])
    policy, tok = load_causal_lm(cfg.policy, dtype=trained_dtype(cfg))
    return SFTTrainer(cfg, policy, tok, cap(train, cfg.max_examples, cfg.seed), test, progress)
