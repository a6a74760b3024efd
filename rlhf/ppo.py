"""PPO for language models (Ziegler et al. 2019; Ouyang et al. 2022), in one file.

One update = one rollout + several epochs of shuffled minibatches over it:
  1. sample responses y ~ pi(.|x) at temperature T; cut after the first EOS, pad with a pad token != EOS
  2. score s = RM(x, y) read at the EOS token; responses without EOS get `missing_eos_penalty` subtracted;
     s is normalised with running moments and clipped
  3. per-token reward r_t = -kl_coef * (log pi - log pi_ref)_t  (+ s on the last response token)
  4. GAE (gamma = 1, lambda = 0.95) over response tokens with a separate value model; whitened advantages
  5. clipped surrogate + clipped value loss, log-probs divided by T for policy and reference alike
The KL coefficient is fixed or adapted toward a target KL (Ziegler et al.'s proportional controller).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rlhf.config import PPOConfig
from rlhf.modeling import (
    assert_causal,
    check_same_vocab,
    encode_queries,
    eos_ids,
    logprobs_of,
    response_mask,
    sample,
)
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

__all__ = ["PPOConfig", "PPOTrainer", "build_trainer"]

RewardFn = Callable[[list[str], list[str]], torch.Tensor]  # (prompts, responses) -> scores [B]


# ---------------------------------------------------------------------------- the maths, on tensors
def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1e-8)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance over the masked entries."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    return masked_mean((x - mean) ** 2, mask) * n / (n - 1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked entries only; pads neither count nor change."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate log p - log q for y ~ p (unbiased, can be negative)."""
    return logp - ref_logp


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 = (q/p - 1) - log(q/p) for y ~ p (unbiased, always >= 0)."""
    log_ratio = ref_logp - logp
    return log_ratio.exp() - 1 - log_ratio


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens [B, T].

    Values and rewards past a sequence's end are zeroed, so the value after the last real token is 0
    (the episode ends there). Returns (advantages, returns = advantages + values).
    """
    rewards, values = rewards * mask, values * mask
    last = torch.zeros_like(rewards[:, 0])
    adv = torch.zeros_like(rewards)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    adv = adv * mask
    return adv, adv + values


def policy_loss(logp, old_logp, advantages, mask, cliprange: float):
    """Clipped surrogate: mean over tokens of max(-A r, -A clip(r, 1-eps, 1+eps)), r = pi/pi_old."""
    ratio = (logp - old_logp).exp()
    loss1 = -advantages * ratio
    loss2 = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange)
    loss = masked_mean(torch.max(loss1, loss2), mask)
    with torch.no_grad():
        clipfrac = masked_mean((loss2 > loss1).float(), mask)
        approxkl = 0.5 * masked_mean((logp - old_logp) ** 2, mask)
    return loss, {"policy/clipfrac": clipfrac.item(), "policy/approxkl": approxkl.item(),
                  "val/ratio": masked_mean(ratio.detach(), mask).item()}


def value_loss(vpred, old_values, returns, mask, cliprange_value: float):
    """0.5 * max((v - R)^2, (clip(v, v_old - c, v_old + c) - R)^2), masked mean."""
    vclipped = old_values + (vpred - old_values).clamp(-cliprange_value, cliprange_value)
    loss1, loss2 = (vpred - returns) ** 2, (vclipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(loss1, loss2), mask)
    return loss, {"val/clipfrac": masked_mean((loss2 > loss1).float(), mask).item()}


class FixedKLController:
    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon) (Ziegler et al. 2019)."""

    def __init__(self, value: float, target: float, horizon: int):
        self.value, self.target, self.horizon = value, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon


class RunningMoments:
    """Running mean/std of scores (Chan et al.'s parallel update), for reward normalisation."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-8

    def update(self, x: torch.Tensor) -> None:
        b_mean, b_var, b_n = x.mean().item(), x.var(unbiased=False).item(), x.numel()
        delta, total = b_mean - self.mean, self.count + b_n
        self.var = (self.var * self.count + b_var * b_n + delta**2 * self.count * b_n / total) / total
        self.mean, self.count = self.mean + delta * b_n / total, total

    @property
    def std(self) -> float:
        return max(self.var, 1e-8) ** 0.5


# ---------------------------------------------------------------------------- the trainer
class PPOTrainer:
    """Policy (causal LM) + frozen reference + separate value model (a `RewardModel`-shaped scalar head).

    With LoRA (cfg.lora_r > 0) the reference is the policy with its adapters switched off: one base copy.
    """

    def __init__(self, cfg: PPOConfig, policy, tokenizer, value_model, reward_fn: RewardFn, prompts: list[str],
                 ref_policy=None, progress: bool = True):
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError("the policy tokenizer needs a pad token distinct from EOS (see rlhf.modeling)")
        if cfg.batch_size % cfg.mini_batch_size:
            raise ValueError("batch_size must be a multiple of mini_batch_size")
        if not prompts:
            raise ValueError("no prompts to train on")
        check_same_vocab(tokenizer, value_model.tokenizer, "value model")
        assert_causal(value_model.core, "value model")  # V(s_t) must not see the tokens after t
        self.acc = acc = make_accelerator(cfg)
        self.cfg, self.tok, self.reward_fn, self.prompts, self.progress = cfg, tokenizer, reward_fn, prompts, progress
        self.eos = eos_ids(tokenizer, policy)
        if ref_policy is None and cfg.lora_r == 0:
            ref_policy = copy.deepcopy(policy)
        policy = add_lora(policy, cfg, causal_lm=True)
        value_model.model = add_lora(value_model.model, cfg, causal_lm=False)
        if cfg.gradient_checkpointing:
            enable_checkpointing(policy)
            enable_checkpointing(value_model.model)
        steps = cfg.total_updates * cfg.ppo_epochs * (cfg.batch_size // cfg.mini_batch_size)
        opt, self.sched = make_optimizer(list(policy.parameters()) + list(value_model.parameters()), cfg, steps,
                                         eps=1e-5)
        self.policy, self.value_model, self.opt = acc.prepare(policy, value_model, opt)
        self.ref = None if ref_policy is None else acc.prepare_model(ref_policy.eval().requires_grad_(False),
                                                                    evaluation_mode=True)
        # each process samples its own responses to the same prompts (N processes: N x the responses)
        self.generator = seed_everything(cfg.seed + acc.process_index, acc.device)
        self.kl_ctl = (AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon) if cfg.adaptive_kl
                       else FixedKLController(cfg.kl_coef))
        self.moments = RunningMoments()
        self.update_idx = 0
        self.out = Path(cfg.output_dir)
        self.logger = JsonlLogger(self.out / "metrics.jsonl" if acc.is_main_process else None)
        if cfg.resume and (self.out / "checkpoint").is_dir():
            self.load_checkpoint(self.out / "checkpoint")

    def next_prompts(self) -> list[str]:
        """Prompt order is a function of (seed, update index) alone, so a resumed run sees the same batches."""
        n, b = len(self.prompts), self.cfg.batch_size
        per_epoch = max(1, n // b)
        epoch, k = divmod(self.update_idx, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch))
        idx = [perm[(k * b + i) % n].item() for i in range(b)]
        return [self.prompts[i] for i in idx]

    def ref_logprobs(self, *args, **kwargs) -> torch.Tensor:
        if self.ref is not None:
            return logprobs_of(self.ref, *args, **kwargs)
        with adapters_off(self.policy):  # LoRA: the reference is the base model
            return logprobs_of(self.policy, *args, **kwargs)

    @torch.no_grad()
    def rollout(self, prompts: list[str]) -> dict:
        cfg, tok, pad = self.cfg, self.tok, self.tok.pad_token_id
        self.policy.eval(), self.value_model.eval()
        query, qmask = encode_queries(tok, prompts, cfg.max_prompt_length, self.acc.device)  # [B, Lq]
        responses = sample(self.policy, query, qmask, cfg.max_new_tokens, cfg.temperature, self.eos, pad,
                           self.generator)  # [B, R]
        mask = response_mask(responses, self.eos)  # [B, R], True through the first EOS
        responses = responses.masked_fill(~mask, pad)
        logp = logprobs_of(self.policy, query, qmask, responses, mask, cfg.temperature, pad_id=pad)
        ref_logp = self.ref_logprobs(query, qmask, responses, mask, cfg.temperature, pad_id=pad)
        full_mask = torch.cat([qmask, mask.long()], dim=1)
        values = self.value_model(torch.cat([query, responses], 1), full_mask, per_token=True).float()
        values = values[:, query.shape[1] - 1: -1]  # [B, R]: V(state before each response token)

        is_eos = torch.isin(responses, torch.tensor(self.eos, device=responses.device))
        texts = [tok.decode(r[m & ~e], skip_special_tokens=True)
                 for r, m, e in zip(responses, mask, is_eos, strict=True)]
        raw_scores = torch.as_tensor(self.reward_fn(prompts, texts), dtype=torch.float32)
        raw_scores = raw_scores.reshape(-1).to(self.acc.device)  # [B]
        has_eos = is_eos.any(-1)
        scores = raw_scores - cfg.missing_eos_penalty * (~has_eos).float()
        if cfg.normalize_scores:
            self.moments.update(scores)
            scores = (scores - self.moments.mean) / self.moments.std
        if cfg.score_clip > 0:
            scores = scores.clamp(-cfg.score_clip, cfg.score_clip)

        m = mask.float()
        kl = kl_k1(logp, ref_logp) * m  # [B, R]
        rewards = -self.kl_ctl.value * kl
        last = mask.long().sum(-1) - 1  # index of the EOS (or of the final token when there is none)
        rewards[torch.arange(len(last), device=last.device), last] += scores
        adv, returns = gae(rewards, values, m, cfg.gamma, cfg.lam)
        adv = masked_whiten(adv, m)
        stats = {
            "objective/kl": kl.sum(1).mean().item(),
            "objective/kl_k3": (kl_k3(logp, ref_logp) * m).sum(1).mean().item(),
            "objective/scores": raw_scores.mean().item(),
            "objective/scores_penalised": (raw_scores - cfg.missing_eos_penalty * (~has_eos).float()).mean().item(),
            "objective/non_score_reward": (-self.kl_ctl.value * kl).sum(1).mean().item(),
            "objective/kl_coef": self.kl_ctl.value,
            "objective/eos_rate": has_eos.float().mean().item(),
            "objective/response_length": m.sum(1).mean().item(),
        }
        return dict(query=query, qmask=qmask, responses=responses, mask=mask, logp=logp, values=values,
                    adv=adv, returns=returns, stats=stats, texts=texts)

    def optimise(self, batch: dict) -> dict:
        cfg, pad = self.cfg, self.tok.pad_token_id
        self.policy.train(), self.value_model.train()  # dropout is off; train() switches checkpointing on
        agg: dict[str, list[float]] = {}
        for _ in range(cfg.ppo_epochs):
            perm = torch.randperm(cfg.batch_size, generator=self.generator, device=self.generator.device)
            for mini in perm.split(cfg.mini_batch_size):
                for idx in micro_batches(mini, cfg.gradient_accumulation_steps):
                    q, qm, r, m = (batch[k][idx] for k in ("query", "qmask", "responses", "mask"))
                    logp, entropy = logprobs_of(self.policy, q, qm, r, m, cfg.temperature, with_entropy=True,
                                                pad_id=pad)
                    vpred = self.value_model(torch.cat([q, r], 1), torch.cat([qm, m.long()], 1), per_token=True)
                    vpred = vpred[:, q.shape[1] - 1: -1].float()  # [b, R]
                    pg_loss, pg_stats = policy_loss(logp, batch["logp"][idx], batch["adv"][idx], m, cfg.cliprange)
                    vf_loss, vf_stats = value_loss(vpred, batch["values"][idx], batch["returns"][idx], m,
                                                   cfg.cliprange_value)
                    loss = pg_loss + cfg.vf_coef * vf_loss
                    self.acc.backward(loss * len(idx) / len(mini))  # the step's gradient = the minibatch mean
                    step_stats = {"loss/policy": pg_loss.item(), "loss/value": vf_loss.item(),
                                  "policy/entropy": masked_mean(entropy.detach(), m).item(), **pg_stats, **vf_stats}
                    for k, v in step_stats.items():
                        agg.setdefault(k, []).append(v)
                agg.setdefault("grad_norm", []).append(optimizer_step(self.acc, self.opt, self.sched,
                                                                      cfg.max_grad_norm))
        return {k: sum(v) / len(v) for k, v in agg.items()}

    def step(self) -> dict:
        t0 = time.perf_counter()
        batch = self.rollout(self.next_prompts())
        stats = {**batch["stats"], **self.optimise(batch)}
        self.kl_ctl.update(stats["objective/kl"], self.cfg.batch_size)
        self.update_idx += 1
        stats.update({"update": self.update_idx, "lr": self.sched.get_last_lr()[0],
                      "time/update_s": time.perf_counter() - t0, "sample": batch["texts"][0]})
        return self.logger.log(stats)

    def train(self) -> list[dict]:
        """Run to `total_updates`, checkpoint, and save the final policy (LoRA merged) to output_dir/policy."""
        history = []
        bar = tqdm(total=self.cfg.total_updates, initial=self.update_idx, desc="ppo",
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

    # ------------------------------------------------------------------------ checkpoint / resume
    def save_checkpoint(self, path: Path) -> None:
        """Trained parameters (all, or LoRA adapters + value head) and the trainer state, swapped in atomically."""
        if not self.acc.is_main_process:
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        torch.save({"policy": trainable_state(self.policy), "value": trainable_state(self.value_model)},
                   tmp / "trainable.pt")
        torch.save({"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                    "kl_coef": self.kl_ctl.value, "moments": vars(self.moments),
                    "generator": self.generator.get_state(), "update": self.update_idx}, tmp / "trainer_state.pt")
        (tmp / "config.json").write_text(json.dumps(asdict(self.cfg), indent=1))
        if path.exists():  # swap in the complete checkpoint only once it is fully written
            old = path.with_name(path.name + ".old")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)

    def load_checkpoint(self, path: Path) -> None:
        params = torch.load(path / "trainable.pt", weights_only=True)
        load_trainable_state(self.policy, params["policy"])
        load_trainable_state(self.value_model, params["value"])
        state = torch.load(path / "trainer_state.pt", weights_only=False)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.kl_ctl.value = state["kl_coef"]
        vars(self.moments).update(state["moments"])
        self.generator.set_state(state["generator"])
        self.update_idx = state["update"]


def build_trainer(cfg: PPOConfig, progress: bool = True) -> PPOTrainer:
    """Everything from paths: policy (+ reference unless LoRA) from `cfg.policy`, the reward model, the value model.

    Trained weights load in fp32, frozen ones (reference, reward model, a LoRA base) in the autocast dtype.
    """
    from rlhf.data import load_prompts
    from rlhf.modeling import load_causal_lm
    from rlhf.reward import RewardModel
    from rlhf.runtime import check_dir, frozen_dtype, trained_dtype

    check_dir(cfg.policy, "--policy")
    check_dir(cfg.reward_model, "--reward-model")
    if cfg.value_model:
        check_dir(cfg.value_model, "--value-model")
    prompts = load_prompts(cfg.prompts)
    policy, tok = load_causal_lm(cfg.policy, dtype=trained_dtype(cfg))
    ref = None if cfg.lora_r > 0 else load_causal_lm(cfg.policy, tok, dtype=frozen_dtype(cfg))[0]
    reward_fn = load_reward_fn(cfg.reward_model, cfg)
    # a reward-model directory keeps its trained head; a plain LM directory gets a fresh one
    value = (RewardModel.from_pretrained(cfg.value_model, dtype=trained_dtype(cfg)) if cfg.value_model
             else RewardModel.from_backbone(cfg.policy, dtype=trained_dtype(cfg)))
    return PPOTrainer(cfg, policy, tok, value, reward_fn, prompts, ref, progress)


def load_reward_fn(path: str, cfg) -> RewardFn:
    """A frozen reward model on the accelerator's device, in the autocast dtype, scoring at its own max length."""
    from transformers import AutoConfig

    from rlhf.reward import META_FILE, RewardModel
    from rlhf.runtime import frozen_dtype

    archs = AutoConfig.from_pretrained(path).architectures or []
    if not (Path(path) / META_FILE).is_file() and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ValueError(f"--reward-model {path} is not a reward model (no {META_FILE}, not a "
                         f"*ForSequenceClassification but {', '.join(archs) or 'unknown'}): its scores would be "
                         "a random head's; train one with `rlhf train-rm`")
    acc = make_accelerator(cfg)
    rm = RewardModel.from_pretrained(path, dtype=frozen_dtype(cfg)).eval().requires_grad_(False)
    rm = acc.prepare_model(rm, evaluation_mode=True)
    return rm.score_texts
