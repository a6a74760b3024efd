"""RAFT: reward-ranked fine-tuning (Dong et al. 2023), in one file.

Each iteration: sample K responses per prompt, score them with the reward model, keep the best per
prompt (or the global top fraction of all samples), and fine-tune the policy on what was kept with the
ordinary next-token loss on response tokens. No value model, no ratios: best-of-K distilled into pi.
The KL to the frozen initial policy is measured (not penalised) to show how far the policy drifts.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rlhf.modeling import encode_queries, logprobs_of, response_mask, sample
from rlhf.ppo import RewardFn, kl_k1, kl_k3, masked_mean
from rlhf.utils import JsonlLogger, seed_everything


@dataclass
class RAFTConfig:
    policy: str = ""
    """local HF causal LM directory: the policy's initial weights (and the KL reference)"""
    reward_model: str = ""
    """reward model directory (saved by `rlhf train-rm`, or a HF *ForSequenceClassification)"""
    prompts: str = ""
    """JSONL file whose lines have a `prompt` field (a preference-pairs file works)"""
    output_dir: str = "runs/raft"
    """where metrics.jsonl and the final policy go"""
    seed: int = 0
    """seed of sampling, shuffling and prompt order"""
    iterations: int = 20
    """sample -> rank -> fine-tune rounds"""
    batch_size: int = 16
    """prompts per iteration"""
    k: int = 4
    """responses sampled per prompt"""
    keep: str = "best"
    """'best' = the best response of each prompt; 'top' = the global top `top_fraction` of all samples"""
    top_fraction: float = 0.25
    """fraction of all samples kept when keep = 'top'"""
    sft_epochs: int = 2
    """passes over the kept samples per iteration"""
    mini_batch_size: int = 8
    """kept samples per gradient step"""
    lr: float = 1e-5
    """AdamW learning rate"""
    max_prompt_length: int = 64
    """prompt tokens kept (the most recent ones)"""
    max_new_tokens: int = 24
    """response length cap"""
    temperature: float = 1.0
    """sampling temperature (KL is measured at this temperature too)"""
    missing_eos_penalty: float = 1.0
    """subtracted from the score of responses that never emit EOS, before ranking"""
    max_grad_norm: float = 1.0
    """global gradient-norm clip"""


class RAFTTrainer:
    def __init__(self, cfg: RAFTConfig, policy, tokenizer, reward_fn: RewardFn, prompts: list[str],
                 ref_policy=None, progress: bool = True):
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError("the policy tokenizer needs a pad token distinct from EOS (see rlhf.modeling)")
        if cfg.keep not in ("best", "top"):
            raise ValueError("keep must be 'best' or 'top'")
        if not prompts:
            raise ValueError("no prompts to train on")
        self.cfg, self.policy, self.tok, self.reward_fn = cfg, policy.eval(), tokenizer, reward_fn
        self.prompts, self.progress = prompts, progress
        self.ref = (ref_policy if ref_policy is not None else copy.deepcopy(policy)).eval().requires_grad_(False)
        self.generator = seed_everything(cfg.seed)
        self.opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
        self.iteration = 0
        self.out = Path(cfg.output_dir)
        self.logger = JsonlLogger(self.out / "metrics.jsonl")

    def next_prompts(self) -> list[str]:
        idx = torch.randint(len(self.prompts), (self.cfg.batch_size,), generator=self.generator)
        return [self.prompts[i] for i in idx.tolist()]

    @torch.no_grad()
    def sample_and_rank(self, prompts: list[str]) -> tuple[dict, dict]:
        cfg, tok = self.cfg, self.tok
        prompts_k = [p for p in prompts for _ in range(cfg.k)]  # [B*K], K consecutive copies per prompt
        query, qmask = encode_queries(tok, prompts_k, cfg.max_prompt_length)
        responses = sample(self.policy, query, qmask, cfg.max_new_tokens, cfg.temperature, tok.eos_token_id,
                           tok.pad_token_id, self.generator)  # [B*K, R]
        mask = response_mask(responses, tok.eos_token_id)
        responses = responses.masked_fill(~mask, tok.pad_token_id)
        texts = [tok.decode(r[m & (r != tok.eos_token_id)], skip_special_tokens=True)
                 for r, m in zip(responses, mask, strict=True)]
        raw = torch.as_tensor(self.reward_fn(prompts_k, texts), dtype=torch.float32).reshape(-1)
        has_eos = (responses == tok.eos_token_id).any(-1)
        scores = raw - cfg.missing_eos_penalty * (~has_eos).float()
        if cfg.keep == "best":
            keep = scores.view(len(prompts), cfg.k).argmax(-1) + torch.arange(len(prompts)) * cfg.k  # [B]
        else:
            keep = scores.topk(max(1, round(cfg.top_fraction * len(scores)))).indices
        logp = logprobs_of(self.policy, query, qmask, responses, mask, cfg.temperature)
        ref_logp = logprobs_of(self.ref, query, qmask, responses, mask, cfg.temperature)
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
        n, losses = kept["query"].shape[0], []
        for _ in range(self.cfg.sft_epochs):
            for idx in torch.randperm(n, generator=self.generator).split(self.cfg.mini_batch_size):
                logp = logprobs_of(self.policy, kept["query"][idx], kept["qmask"][idx], kept["responses"][idx],
                                   kept["mask"][idx], temperature=1.0)
                loss = -masked_mean(logp, kept["mask"][idx])  # NLL of response tokens incl. EOS
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.max_grad_norm)
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)  # free the gradients before the next forward pass
                losses.append(loss.item())
        return {"loss/sft": sum(losses) / len(losses)}

    def step(self) -> dict:
        t0 = time.perf_counter()
        kept, stats = self.sample_and_rank(self.next_prompts())
        stats.update(self.finetune(kept))
        self.iteration += 1
        stats.update({"update": self.iteration, "time/update_s": time.perf_counter() - t0})
        return self.logger.log(stats)

    def train(self) -> list[dict]:
        history = []
        for _ in tqdm(range(self.cfg.iterations), desc="raft", disable=not self.progress):
            history.append(self.step())
        self.policy.save_pretrained(str(self.out / "policy"))
        self.tok.save_pretrained(str(self.out / "policy"))
        (self.out / "config.json").write_text(json.dumps(asdict(self.cfg), indent=1))
        return history


def build_trainer(cfg: RAFTConfig, progress: bool = True) -> RAFTTrainer:
    from rlhf.data import load_prompts
    from rlhf.modeling import load_causal_lm
    from rlhf.reward import RewardModel

    policy, tok = load_causal_lm(cfg.policy)
    ref, _ = load_causal_lm(cfg.policy, tok)
    rm = RewardModel.from_pretrained(cfg.reward_model).eval().requires_grad_(False)
    return RAFTTrainer(cfg, policy, tok, rm.score_texts, load_prompts(cfg.prompts), ref, progress)

