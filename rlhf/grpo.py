"""GRPO: group relative policy optimisation (Shao et al. 2024, DeepSeekMath), in one file.

PPO without a value model: for each prompt sample a group of G responses, score them, and use the score
relative to the group as every token's advantage:
    A_i = (s_i - mean(s_1..G)) / (std(s_1..G) + eps)         (Dr. GRPO, Liu et al. 2025: without the std)
Loss per response token, averaged over each response's tokens, then over responses:
    -min(rho_t A_i, clip(rho_t, 1 - eps, 1 + eps) A_i) + beta * KL_k3(pi || pi_ref)_t,   rho_t = pi / pi_old
The KL to the reference sits in the loss (not in the reward, as in PPO), estimated per token with k3.
With one pass per rollout (grpo_epochs = 1) pi_old = pi and the clip never binds: it is REINFORCE with a
group baseline plus a KL term. The reference is a frozen copy, or under LoRA the policy with adapters off.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rlhf.config import GRPOConfig
from rlhf.modeling import encode_queries, eos_ids, logprobs_of, response_mask, sample
from rlhf.ppo import RewardFn, kl_k1, kl_k3
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

__all__ = ["GRPOConfig", "GRPOTrainer", "build_trainer", "group_advantages", "grpo_loss"]


def group_advantages(scores: torch.Tensor, group_size: int, scale: bool = True) -> torch.Tensor:
    """Scores [B*G] (G consecutive responses per prompt) -> advantages [B*G] relative to their group."""
    s = scores.view(-1, group_size)  # [B, G]
    adv = s - s.mean(-1, keepdim=True)
    if scale:
        adv = adv / (s.std(-1, keepdim=True) + 1e-4)  # a group of equal scores gives 0, not NaN
    return adv.reshape(-1)


def grpo_loss(logp, old_logp, ref_logp, adv, mask, cliprange: float, kl_coef: float):
    """Per-token clipped surrogate + beta * k3 KL [b, R], mean over each response's tokens, then over responses."""
    m = mask.float()
    ratio = (logp - old_logp).exp()
    a = adv[:, None]  # [b, 1]: one advantage for every token of a response
    surrogate = torch.min(ratio * a, ratio.clamp(1 - cliprange, 1 + cliprange) * a)
    kl = kl_k3(logp, ref_logp)
    per_token = -surrogate + kl_coef * kl  # [b, R]
    loss = ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()
    with torch.no_grad():
        clipfrac = (((ratio - 1).abs() > cliprange).float() * m).sum() / m.sum().clamp(min=1)
    return loss, {"policy/clipfrac": clipfrac.item(), "policy/kl_k3": ((kl * m).sum(-1)).mean().item()}


class GRPOTrainer:
    def __init__(self, cfg: GRPOConfig, policy, tokenizer, reward_fn: RewardFn, prompts: list[str],
                 ref_policy=None, progress: bool = True):
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError("the policy tokenizer needs a pad token distinct from EOS (see rlhf.modeling)")
        if cfg.group_size < 2:
            raise ValueError("group_size must be >= 2: advantages are relative to the group")
        if (cfg.batch_size * cfg.group_size) % cfg.mini_batch_size:
            raise ValueError("batch_size * group_size must be a multiple of mini_batch_size")
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
        steps = cfg.total_updates * cfg.grpo_epochs * (cfg.batch_size * cfg.group_size // cfg.mini_batch_size)
        opt, self.sched = make_optimizer(policy.parameters(), cfg, steps)
        self.policy, self.opt = acc.prepare(policy, opt)
        self.ref = None if ref_policy is None else acc.prepare_model(ref_policy.eval().requires_grad_(False),
                                                                    evaluation_mode=True)
        self.generator = seed_everything(cfg.seed + acc.process_index, acc.device)
        self.update_idx = 0
        self.out = Path(cfg.output_dir)
        self.logger = JsonlLogger(self.out / "metrics.jsonl" if acc.is_main_process else None)
        if cfg.resume and (self.out / "checkpoint").is_dir():
            self.load_checkpoint(self.out / "checkpoint")

    def next_prompts(self) -> list[str]:
        g = self.generator
        idx = torch.randint(len(self.prompts), (self.cfg.batch_size,), generator=g, device=g.device)
        return [self.prompts[i] for i in idx.tolist()]

    @torch.no_grad()
    def rollout(self, prompts: list[str]) -> dict:
        cfg, tok, pad = self.cfg, self.tok, self.tok.pad_token_id
        self.policy.eval()
        prompts_g = [p for p in prompts for _ in range(cfg.group_size)]  # [B*G], G consecutive per prompt
        query, qmask = encode_queries(tok, prompts_g, cfg.max_prompt_length, self.acc.device)
        responses = sample(self.policy, query, qmask, cfg.max_new_tokens, cfg.temperature, self.eos, pad,
                           self.generator)  # [B*G, R]
        mask = response_mask(responses, self.eos)
        responses = responses.masked_fill(~mask, pad)
        is_eos = torch.isin(responses, torch.tensor(self.eos, device=responses.device))
        texts = [tok.decode(r[m & ~e], skip_special_tokens=True)
                 for r, m, e in zip(responses, mask, is_eos, strict=True)]
        raw = torch.as_tensor(self.reward_fn(prompts_g, texts), dtype=torch.float32).reshape(-1).to(query.device)
        has_eos = is_eos.any(-1)
        scores = raw - cfg.missing_eos_penalty * (~has_eos).float()
        adv = group_advantages(scores, cfg.group_size, cfg.scale_rewards)  # [B*G]
        old_logp = logprobs_of(self.policy, query, qmask, responses, mask, cfg.temperature, pad_id=pad)
        if self.ref is not None:
            ref_logp = logprobs_of(self.ref, query, qmask, responses, mask, cfg.temperature, pad_id=pad)
        else:
            with adapters_off(self.policy):
                ref_logp = logprobs_of(self.policy, query, qmask, responses, mask, cfg.temperature, pad_id=pad)
        m = mask.float()
        stats = {"objective/scores": raw.mean().item(),
                 "objective/score_std_in_group": scores.view(-1, cfg.group_size).std(-1).mean().item(),
                 "objective/kl": (kl_k1(old_logp, ref_logp) * m).sum(1).mean().item(),
                 "objective/kl_k3": (kl_k3(old_logp, ref_logp) * m).sum(1).mean().item(),
                 "objective/eos_rate": has_eos.float().mean().item(),
                 "objective/response_length": m.sum(1).mean().item()}
        return dict(query=query, qmask=qmask, responses=responses, mask=mask, old_logp=old_logp, ref_logp=ref_logp,
                    adv=adv, stats=stats, texts=texts)

    def optimise(self, batch: dict) -> dict:
        cfg, g, pad = self.cfg, self.generator, self.tok.pad_token_id
        self.policy.train()  # dropout is off; train() switches gradient checkpointing on
        n, agg = batch["query"].shape[0], {}
        for _ in range(cfg.grpo_epochs):
            for mini in torch.randperm(n, generator=g, device=g.device).split(cfg.mini_batch_size):
                for idx in micro_batches(mini, cfg.gradient_accumulation_steps):
                    q, qm, r, m = (batch[k][idx] for k in ("query", "qmask", "responses", "mask"))
                    logp = logprobs_of(self.policy, q, qm, r, m, cfg.temperature, pad_id=pad)
                    loss, stats = grpo_loss(logp, batch["old_logp"][idx], batch["ref_logp"][idx], batch["adv"][idx],
                                            m, cfg.cliprange, cfg.kl_coef)
                    self.acc.backward(loss * len(idx) / len(mini))
                    for k, v in {"loss/policy": loss.item(), **stats}.items():
                        agg.setdefault(k, []).append(v)
                agg.setdefault("grad_norm", []).append(optimizer_step(self.acc, self.opt, self.sched,
                                                                      cfg.max_grad_norm))
        return {k: sum(v) / len(v) for k, v in agg.items()}

    def step(self) -> dict:
        t0 = time.perf_counter()
        batch = self.rollout(self.next_prompts())
        stats = {**batch["stats"], **self.optimise(batch)}
        self.update_idx += 1
        stats.update({"update": self.update_idx, "lr": self.sched.get_last_lr()[0],
                      "time/update_s": time.perf_counter() - t0, "sample": batch["texts"][0]})
        return self.logger.log(stats)

    def train(self) -> list[dict]:
        history = []
        bar = tqdm(total=self.cfg.total_updates, initial=self.update_idx, desc="grpo",
                   disable=not self.progress or not self.acc.is_main_process)
        while self.update_idx < self.cfg.total_updates:
            s = self.step()
            history.append(s)
            bar.update(1)
            bar.set_postfix(score=f"{s['objective/scores']:.3f}", kl=f"{s['objective/kl']:.2f}")
            if self.cfg.save_every and self.update_idx % self.cfg.save_every == 0:
                self.save_checkpoint(self.out / "checkpoint")
        bar.close()
        self.save_checkpoint(self.out / "checkpoint")
        if self.acc.is_main_process:
            save_policy(self.policy, self.tok, self.out / "policy")
        return history

    def save_checkpoint(self, path: Path) -> None:
        """Trained parameters (all, or the LoRA adapters), optimiser, schedule and RNG, written atomically."""
        if not self.acc.is_main_process:
            return
        path.mkdir(parents=True, exist_ok=True)
        state = {"policy": trainable_state(self.policy), "optimizer": self.opt.state_dict(),
                 "scheduler": self.sched.state_dict(), "generator": self.generator.get_state(),
                 "update": self.update_idx}
        torch.save(state, path / "state.pt.tmp")
        (path / "state.pt.tmp").replace(path / "state.pt")

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path / "state.pt", weights_only=False)
        load_trainable_state(self.policy, state["policy"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.update_idx = state["update"]


def build_trainer(cfg: GRPOConfig, progress: bool = True) -> GRPOTrainer:
    from rlhf.data import load_prompts
    from rlhf.modeling import load_causal_lm
    from rlhf.ppo import load_reward_fn
    from rlhf.runtime import check_dir, frozen_dtype, trained_dtype

    check_dir(cfg.policy, "--policy")
    check_dir(cfg.reward_model, "--reward-model")
    prompts = load_prompts(cfg.prompts)
    policy, tok = load_causal_lm(cfg.policy, dtype=trained_dtype(cfg))
    ref = None if cfg.lora_r > 0 else load_causal_lm(cfg.policy, tok, dtype=frozen_dtype(cfg))[0]
    return GRPOTrainer(cfg, policy, tok, load_reward_fn(cfg.reward_model, cfg), prompts, ref, progress)
