"""DPO (Rafailov et al. 2023) and its IPO variant (Azar et al. 2023), in one file.

No reward model and no sampling: the policy's log-likelihood ratio to a frozen reference is an implicit reward
    r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x))        (log-probs summed over the response tokens + EOS)
fitted directly to the preference pairs (x, y+, y-). With h = (log pi - log pi_ref)(y+) - (log pi - log pi_ref)(y-):
    DPO: L = -log sigma(beta * h)
    IPO: L = (h - 1 / (2 tau))^2, tau = beta     (a squared loss: the margin stops at 1/(2 tau), it does not
                                                   run to infinity on deterministic preferences)
The reference is the initial policy: a frozen copy, or under LoRA the policy with its adapters switched off.
Evaluation on held-out pairs: reward accuracy (r(x,y+) > r(x,y-); 0 before training, where r = 0) and
log-likelihood accuracy (log pi(y+|x) > log pi(y-|x)), meaningful before and after.
"""

from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rlhf.config import DPOConfig
from rlhf.data import PreferenceDataError, PreferencePair
from rlhf.modeling import encode_queries, encode_responses, logprobs_of
from rlhf.runtime import (
    adapters_off,
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

__all__ = ["DPOConfig", "DPOTrainer", "build_trainer", "preference_loss"]


def preference_loss(logp_c: torch.Tensor, logp_r: torch.Tensor, ref_c: torch.Tensor, ref_r: torch.Tensor,
                    beta: float, loss: str = "sigmoid") -> tuple[torch.Tensor, dict]:
    """DPO / IPO loss from sequence log-probs [B] of chosen and rejected under policy and reference."""
    h = (logp_c - ref_c) - (logp_r - ref_r)  # [B]
    if loss == "sigmoid":
        losses = -F.logsigmoid(beta * h)
    elif loss == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"loss must be sigmoid or ipo, got {loss!r}")
    r_c, r_r = beta * (logp_c - ref_c).detach(), beta * (logp_r - ref_r).detach()
    stats = {"rewards/chosen": r_c.mean().item(), "rewards/rejected": r_r.mean().item(),
             "rewards/margin": (r_c - r_r).mean().item(), "rewards/accuracy": (r_c > r_r).float().mean().item()}
    return losses.mean(), stats


class DPOTrainer:
    def __init__(self, cfg: DPOConfig, policy, tokenizer, train: list[PreferencePair], test: list[PreferencePair],
                 ref_policy=None, progress: bool = True):
        if not train:
            raise PreferenceDataError("no usable training pairs")
        self.acc = acc = make_accelerator(cfg)
        self.cfg, self.tok, self.train_pairs, self.test_pairs, self.progress = cfg, tokenizer, train, test, progress
        if ref_policy is None and cfg.lora_r == 0:
            ref_policy = copy.deepcopy(policy)
        policy = add_lora(policy, cfg, causal_lm=True)
        if cfg.gradient_checkpointing:
            enable_checkpointing(policy)
        self.steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
        opt, self.sched = make_optimizer(policy.parameters(), cfg, self.steps)
        self.policy, self.opt = acc.prepare(policy, opt)
        self.ref = None if ref_policy is None else acc.prepare_model(ref_policy.eval().requires_grad_(False),
                                                                    evaluation_mode=True)
        self.out = Path(cfg.output_dir)
        self.logger = JsonlLogger(self.out / "metrics.jsonl" if acc.is_main_process else None)

    def sequence_logps(self, model, pairs: list[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log pi(y|x) of the chosen [B] and the rejected [B] responses, in one forward pass of 2B rows."""
        cfg, tok, n = self.cfg, self.tok, len(pairs)
        q, qm = encode_queries(tok, [p.prompt for p in pairs] * 2, cfg.max_prompt_length, self.acc.device)
        r, rm = encode_responses(tok, [p.chosen for p in pairs] + [p.rejected for p in pairs],
                                 cfg.max_response_length, tok.eos_token_id, self.acc.device)  # [2B, R]
        logp = logprobs_of(model, q, qm, r, rm, 1.0, pad_id=tok.pad_token_id).sum(-1)  # [2B]
        return logp[:n], logp[n:]

    @torch.no_grad()
    def ref_logps(self, pairs):
        if self.ref is not None:
            return self.sequence_logps(self.ref, pairs)
        with adapters_off(self.policy):
            return self.sequence_logps(self.policy, pairs)

    @torch.no_grad()
    def evaluate(self, pairs: list[PreferencePair] | None = None) -> dict:
        pairs = self.test_pairs if pairs is None else pairs
        self.policy.eval()
        n = reward_ok = logp_ok = 0
        margin = 0.0
        for i in range(0, len(pairs), self.cfg.batch_size):
            batch = pairs[i: i + self.cfg.batch_size]
            (lc, lr), (rc, rr) = self.sequence_logps(self.policy, batch), self.ref_logps(batch)
            h = (lc - rc) - (lr - rr)
            n, reward_ok, logp_ok = n + len(batch), reward_ok + (h > 0).sum().item(), logp_ok + (lc > lr).sum().item()
            margin += self.cfg.beta * h.sum().item()
        return {"eval/reward_accuracy": reward_ok / max(n, 1), "eval/logp_accuracy": logp_ok / max(n, 1),
                "eval/margin": margin / max(n, 1), "eval/pairs": n}

    def train(self) -> list[dict]:
        cfg, acc = self.cfg, self.acc
        rng = random.Random(cfg.seed)
        history, step = [], 0
        if self.test_pairs:
            history.append(self.logger.log({"step": 0, **self.evaluate()}))
        bar = tqdm(total=self.steps, desc=f"dpo ({cfg.loss})", disable=not self.progress or not acc.is_main_process)
        for epoch in range(cfg.epochs):
            order = list(range(len(self.train_pairs)))
            rng.shuffle(order)
            for start in range(0, len(order), cfg.batch_size):
                t0 = time.perf_counter()
                batch = [self.train_pairs[j] for j in order[start: start + cfg.batch_size]]
                self.policy.train()  # dropout is off; train() switches gradient checkpointing on
                parts, batch = [], shard(batch, acc)
                for idx in micro_batches(torch.arange(len(batch)), min(cfg.gradient_accumulation_steps, len(batch))):
                    micro = [batch[i] for i in idx.tolist()]
                    ref_c, ref_r = self.ref_logps(micro)
                    logp_c, logp_r = self.sequence_logps(self.policy, micro)
                    loss, part = preference_loss(logp_c, logp_r, ref_c, ref_r, cfg.beta, cfg.loss)
                    acc.backward(loss * len(micro) / len(batch))
                    parts.append((len(micro), {"loss": loss.item(), **part}))
                stats = {k: sum(w * p[k] for w, p in parts) / len(batch) for k in parts[0][1]}
                stats["grad_norm"] = optimizer_step(acc, self.opt, self.sched, cfg.max_grad_norm)
                step += 1
                stats.update({"step": step, "epoch": epoch, "lr": self.sched.get_last_lr()[0],
                              "time/update_s": time.perf_counter() - t0})
                history.append(self.logger.log(stats))
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats['rewards/accuracy']:.2f}")
                if self.test_pairs and cfg.eval_every and step % cfg.eval_every == 0:
                    history.append(self.logger.log({"step": step, **self.evaluate()}))
            if self.test_pairs and not cfg.eval_every:
                history.append(self.logger.log({"step": step, "epoch": epoch, **self.evaluate()}))
        bar.close()
        if acc.is_main_process:
            save_policy(self.policy, self.tok, self.out / "policy")
        return history


def build_trainer(cfg: DPOConfig, progress: bool = True) -> DPOTrainer:
    """Policy (+ reference unless LoRA) from `cfg.policy`; pairs split by prompt, training side capped."""
    from rlhf.data import cap, load_pairs, split_by_group
    from rlhf.modeling import load_causal_lm
    from rlhf.runtime import check_dir, frozen_dtype, trained_dtype

    check_dir(cfg.policy, "--policy")
    pairs = load_pairs(cfg.source, cfg.data, cfg.max_pairs_per_query or None, cfg.seed)
    if not pairs:
        raise PreferenceDataError(f"{cfg.data}: no usable preference pairs left after cleaning")
    train, test = split_by_group(pairs, cfg.test_fraction, cfg.seed) if cfg.test_fraction > 0 else (pairs, [])
    train = cap(train, cfg.max_pairs, cfg.seed)
    policy, tok = load_causal_lm(cfg.policy, dtype=trained_dtype(cfg))
    ref = None if cfg.lora_r > 0 else load_causal_lm(cfg.policy, tok, dtype=frozen_dtype(cfg))[0]
    return DPOTrainer(cfg, policy, tok, train, test, ref, progress)
