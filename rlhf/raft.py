"""RAFT: reward-ranked fine-tuning (Dong et al. 2023), in one file.

Each iteration: sample K responses per prompt, score them with the reward model, keep the best per
prompt (or the global top fraction of all samples), and fine-tune the policy on what was kept with the
ordinary next-token loss on response tokens. No value model, no ratios: best-of-K distilled into pi.
The KL to the frozen initial policy is measured (not penalised) to show how far the policy drifts.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rlhf.config import RAFTConfig
from rlhf.modeling import encode_queries, eos_ids, logprobs_of, response_mask, sample
from rlhf.ppo import RewardFn, kl_k1, kl_k3, masked_mean
from rlhf.runtime import (
    adapters_off,
    add_lora,
    enable_checkpointing,
    load_trainable_state,
    make_accelerator,
    make_optimizer,
    micro_batches,
    optimizer_step,
    save_policy,
    trainable_state,
)
from rlhf.utils import JsonlLogger, seed_everything

__all__ = ["RAFTConfig", "RAFTTrainer", "build_trainer"]


class RAFTTrainer:
    """Policy (causal LM) + a KL reference for measurement (the policy with adapters off under LoRA)."""

    def __init__(self, cfg: RAFTConfig, policy, tokenizer, reward_fn: RewardFn, prompts: list[str],
                 ref_policy=None, progress: bool = True):
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError("the policy tokenizer needs a pad token distinct from EOS (see rlhf.modeling)")
        if cfg.keep not in ("best", "top"):
            raise ValueError("keep must be 'best' or 'top'")
        if not prompts:
            raise ValueError("no prompts to train on")
        self.acc = acc = make_accelerator(cfg)
        self.cfg, self.tok, self.reward_fn, self.prompts, self.progress = cfg, tokenizer, reward_fn, prompts, progress
        self.eos = eos_ids(tokenizer, policy)
        if ref_policy is None and cfg.lora_r == 0:
            ref_policy = copy.deepcopy(policy)
        policy = add_lora(policy, cfg, causal_lm=True)
        if cfg.gradient_checkpointing:
            enable_checkpointing(policy)
        kept = cfg.batch_size if cfg.keep == "best" else max(1, round(cfg.top_fraction * cfg.batch_size * cfg.k))
        steps = cfg.iterations * cfg.sft_epochs * math.ceil(kept / cfg.mini_batch_size)
        opt, self.sched = make_optimizer(policy.parameters(), cfg, steps)
        self.policy, self.opt = acc.prepare(policy, opt)
        self.ref = None if ref_policy is None else acc.prepare_model(ref_policy.eval().requires_grad_(False),
                                                                    evaluation_mode=True)
        self.generator = seed_everything(cfg.seed + acc.process_index, acc.device)
        self.iteration = 0
        self.out = Path(cfg.output_dir)
        self.logger = JsonlLogger(self.out / "metrics.jsonl" if acc.is_main_process else None)
        if cfg.resume and (self.out / "checkpoint").is_dir():
            self.load_checkpoint(self.out / "checkpoint")

    def next_prompts(self) -> list[str]:
        g = self.generator
        idx = torch.randint(len(self.prompts), (self.cfg.batch_size,), generator=g, device=g.device)
        return [self.prompts[i] for i in idx.tolist()]

    @torch.no_grad()
    def sample_and_rank(self, prompts: list[str]) -> tuple[dict, dict]:
        cfg, tok, pad = self.cfg, self.tok, self.tok.pad_token_id
        self.policy.eval()
        prompts_k = [p for p in prompts for _ in range(cfg.k)]  # [B*K], K consecutive copies per prompt
        query, qmask = encode_queries(tok, prompts_k, cfg.max_prompt_length, self.acc.device)
        responses = sample(self.policy, query, qmask, cfg.max_new_tokens, cfg.temperature, self.eos, pad,
                           self.generator)  # [B*K, R]
        mask = response_mask(responses, self.eos)
        responses = responses.masked_fill(~mask, pad)
        is_eos = torch.isin(responses, torch.tensor(self.eos, device=responses.device))
        texts = [tok.decode(r[m & ~e], skip_special_tokens=True)
                 for r, m, e in zip(responses, mask, is_eos, strict=True)]
        raw = torch.as_tensor(self.reward_fn(prompts_k, texts), dtype=torch.float32).reshape(-1).to(query.device)
        has_eos = is_eos.any(-1)
        scores = raw - cfg.missing_eos_penalty * (~has_eos).float()
        if cfg.keep == "best":
            offsets = torch.arange(len(prompts), device=query.device) * cfg.k
            keep = scores.view(len(prompts), cfg.k).argmax(-1) + offsets  # [B]
        else:
            keep = scores.topk(max(1, round(cfg.top_fraction * len(scores)))).indices
        logp = logprobs_of(self.policy, query, qmask, responses, mask, cfg.temperature, pad_id=pad)
        if self.ref is not None:
            ref_logp = logprobs_of(self.ref, query, qmask, responses, mask, cfg.temperature, pad_id=pad)
        else:
            with adapters_off(self.policy):
                ref_logp = logprobs_of(self.policy, query, qmask, responses, mask, cfg.temperature, pad_id=pad)
        m = mask.float()
        stats = {"objective/scores": raw.mean().item(), "objective/scores_kept": raw[keep].mean().item(),
                 "objective/kl": (kl_k1(logp, ref_logp) * m).sum(1).mean().item(),
                 "objective/kl_k3": (kl_k3(logp, ref_logp) * m).sum(1).mean().item(),
                 "objective/eos_rate": has_eos.float().mean().item(),
                 "objective/response_length": m.sum(1).mean().item()}
        kept = dict(query=query[keep], qmask=qmask[keep], responses=responses[keep], mask=mask[keep])
        stats["sample"] = texts[keep[0].item()]
        return kept, stats

    def finetune(self, kept: dict) -> dict:
        cfg, g = self.cfg, self.generator
        self.policy.train()  # dropout is off; train() switches gradient checkpointing on
        n, losses, norms = kept["query"].shape[0], [], []
        for _ in range(cfg.sft_epochs):
            for mini in torch.randperm(n, generator=g, device=g.device).split(cfg.mini_batch_size):
                for idx in micro_batches(mini, min(cfg.gradient_accumulation_steps, len(mini))):
                    logp = logprobs_of(self.policy, kept["query"][idx], kept["qmask"][idx], kept["responses"][idx],
                                       kept["mask"][idx], temperature=1.0, pad_id=self.tok.pad_token_id)
                    loss = -masked_mean(logp, kept["mask"][idx])  # NLL of response tokens incl. EOS
                    self.acc.backward(loss * len(idx) / len(mini))
                    losses.append(loss.item())
                norms.append(optimizer_step(self.acc, self.opt, self.sched, cfg.max_grad_norm))
        return {"loss/sft": sum(losses) / len(losses), "grad_norm": sum(norms) / len(norms)}

    def step(self) -> dict:
        t0 = time.perf_counter()
        kept, stats = self.sample_and_rank(self.next_prompts())
        stats.update(self.finetune(kept))
        self.iteration += 1
        stats.update({"update": self.iteration, "lr": self.sched.get_last_lr()[0],
                      "time/update_s": time.perf_counter() - t0})
        return self.logger.log(stats)

    def train(self) -> list[dict]:
        history = []
        bar = tqdm(total=self.cfg.iterations, initial=self.iteration, desc="raft",
                   disable=not self.progress or not self.acc.is_main_process)
        while self.iteration < self.cfg.iterations:
            history.append(self.step())
            bar.update(1)
            if self.cfg.save_every and self.iteration % self.cfg.save_every == 0:
                self.save_checkpoint(self.out / "checkpoint")
        bar.close()
        self.save_checkpoint(self.out / "checkpoint")
        if self.acc.is_main_process:
            save_policy(self.policy, self.tok, self.out / "policy")
            (self.out / "config.json").write_text(json.dumps(asdict(self.cfg), indent=1))
        return history

    def save_checkpoint(self, path: Path) -> None:
        if not self.acc.is_main_process:
            return
        path.mkdir(parents=True, exist_ok=True)
        state = {"policy": trainable_state(self.policy), "optimizer": self.opt.state_dict(),
                 "scheduler": self.sched.state_dict(), "generator": self.generator.get_state(),
                 "iteration": self.iteration}
        torch.save(state, path / "state.pt.tmp")
        (path / "state.pt.tmp").replace(path / "state.pt")  # atomic: a crash never leaves half a checkpoint

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path / "state.pt", weights_only=False)
        load_trainable_state(self.policy, state["policy"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.iteration = state["iteration"]


def build_trainer(cfg: RAFTConfig, progress: bool = True) -> RAFTTrainer:
    from rlhf.data import load_prompts
    from rlhf.modeling import load_causal_lm
    from rlhf.ppo import load_reward_fn
    from rlhf.runtime import check_dir, frozen_dtype, trained_dtype

    check_dir(cfg.policy, "--policy")
    check_dir(cfg.reward_model, "--reward-model")
    prompts = load_prompts(cfg.prompts)
    policy, tok = load_causal_lm(cfg.policy, dtype=trained_dtype(cfg))
    ref = None if cfg.lora_r > 0 else load_causal_lm(cfg.policy, tok, dtype=frozen_dtype(cfg))[0]
    return RAFTTrainer(cfg, policy, tok, load_reward_fn(cfg.reward_model, cfg), prompts, ref, progress)
