"""Reward model on preference pairs: r(x, y) = w . h_last(x, y), trained with -log sigma(r(x,y+) - r(x,y-)).

The backbone is any Hugging Face model (the bundled MiniLM encoder by default, or a causal LM); the
scalar head reads the hidden state of the last real token, i.e. the end-of-sequence token we append.
With a causal-LM backbone an imitation loss beta * NLL(y+ | x) can be added (Ouyang et al. 2022 mix
a language-modelling term in the same way to keep the backbone a good LM).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from rlhf.config import RewardConfig
from rlhf.data import PreferenceDataError, PreferencePair
from rlhf.modeling import assert_causal, disable_dropout, fit_embeddings, load_tokenizer, minilm_path, position_ids
from rlhf.runtime import (
    add_lora,
    enable_checkpointing,
    make_accelerator,
    make_optimizer,
    merged,
    micro_batches,
    optimizer_step,
    shard,
    unwrap,
)
from rlhf.utils import JsonlLogger

__all__ = ["RewardConfig", "RewardModel", "evaluate", "pair_loss", "train_reward_model"]
HEAD_FILE, META_FILE = "reward_head.safetensors", "reward_config.json"


class RewardModel(nn.Module):
    """Backbone + scalar head. `model` is an AutoModel, or an AutoModelForCausalLM when the LM head is
    needed (imitation loss), possibly wrapped in LoRA adapters; scores always come from the base
    transformer's last hidden state. `max_length` is the sequence length it was trained with, saved with
    it and used whenever it scores."""

    def __init__(self, model, tokenizer, head: nn.Linear | None = None, max_length: int = 512):
        super().__init__()
        self.model, self.tokenizer, self.max_length = disable_dropout(model), tokenizer, max_length
        fit_embeddings(self.core, tokenizer)
        hidden = model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.n_embd
        self.head = head if head is not None else nn.Linear(hidden, 1)
        if head is None:
            nn.init.normal_(self.head.weight, std=1 / math.sqrt(hidden + 1))
            nn.init.zeros_(self.head.bias)
        self.head.float()  # a scalar head is tiny: always fp32, whatever the backbone's dtype

    @property
    def core(self):
        """The HF model under any LoRA wrapper."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def has_lm_head(self) -> bool:
        return self.core.get_output_embeddings() is not None

    @classmethod
    def from_backbone(cls, path: str | os.PathLike | None = None, with_lm_head: bool = False,
                      dtype: torch.dtype = torch.float32, max_length: int = 512) -> RewardModel:
        """Fresh head on a pretrained backbone (default: the bundled MiniLM encoder), in `dtype`."""
        path = str(path or minilm_path())
        tok = load_tokenizer(path)
        loader = AutoModelForCausalLM if with_lm_head else AutoModel
        model = loader.from_pretrained(path, dtype=dtype)
        if with_lm_head:  # the imitation loss predicts y+ token by token: a bidirectional model sees its targets
            assert_causal(model, f"imitation loss on {path}")
        return cls(model, tok, max_length=max_length)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> RewardModel:
        """Load a reward model saved by `save_pretrained`, or a HF `*ForSequenceClassification` with one
        label and a `score` head (the usual decoder reward model), or else put a fresh head on `path`."""
        path = Path(path)
        if (path / META_FILE).is_file():
            meta = json.loads((path / META_FILE).read_text())
            loader = AutoModelForCausalLM if meta["with_lm_head"] else AutoModel
            model, tok = loader.from_pretrained(str(path), dtype=dtype), load_tokenizer(path)
            head = nn.Linear(meta["hidden_size"], 1)
            head.load_state_dict(load_file(str(path / HEAD_FILE)))
            return cls(model, tok, head, meta.get("max_length", 512))
        config = AutoConfig.from_pretrained(str(path))
        if any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])):
            clf = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=dtype)
            if getattr(clf.config, "num_labels", 0) != 1 or not isinstance(getattr(clf, "score", None), nn.Linear):
                raise ValueError(f"{path}: a reward model needs one label and a linear `score` head")
            max_length = getattr(clf.config, "max_position_embeddings", None) or 512
            return cls(clf.base_model, load_tokenizer(path), clf.score, min(max_length, 2048))
        return cls.from_backbone(path, with_lm_head=False, dtype=dtype)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """HF files of the backbone (LoRA adapters merged in), tokenizer, head, and the max length."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model = merged(self.model)
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(path / HEAD_FILE))
        meta = {"with_lm_head": self.has_lm_head, "hidden_size": self.head.in_features, "max_length": self.max_length}
        (path / META_FILE).write_text(json.dumps(meta))

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        base = self.core.base_model  # the transformer without any LM head (LoRA layers, if any, are inside)
        return base(input_ids=input_ids, attention_mask=attention_mask,
                    position_ids=position_ids(attention_mask)).last_hidden_state  # [B, L, H]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, per_token: bool = False,
                imitation_starts: torch.Tensor | None = None):
        """Score [B] read at the last real token (the end-of-sequence token; left or right pads); with
        `per_token`, a scalar at every position [B, L] (PPO's values); with `imitation_starts` [B], also the
        imitation NLL of the tokens from there on. Everything trained goes through here (one DDP forward)."""
        h = self.hidden(input_ids, attention_mask)  # [B, L, H]
        if per_token:
            return self.head(h.float()).squeeze(-1)
        last = (attention_mask * torch.arange(attention_mask.shape[1], device=attention_mask.device)).argmax(-1)
        r = self.head(h[torch.arange(h.shape[0], device=h.device), last].float()).squeeze(-1)  # [B]
        if imitation_starts is None:
            return r
        return r, self.imitation_nll(h, input_ids, attention_mask, imitation_starts)

    def values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self(input_ids, attention_mask, per_token=True)

    def encode(self, prompts: list[str], responses: list[str], max_length: int | None = None):
        """Right-padded ids and mask on the model's device, and where each response starts (for the imitation
        loss). Each row is the tokenizer's chat template over (user: prompt, assistant: response) when it has
        one, else [start] + prompt + response + [end]. Too long (default: the model's own `max_length`): the
        prompt loses its oldest tokens first (the response is what is judged), then the response its tail."""
        max_length = max_length or self.max_length
        rows, starts = zip(*(self._row(p, r, max_length) for p, r in zip(prompts, responses, strict=True)),
                           strict=True)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        return ids.to(self.device), mask.to(self.device), torch.tensor(starts, device=self.device)

    def _row(self, prompt: str, response: str, max_length: int) -> tuple[list[int], int]:
        tok = self.tokenizer
        chat = bool(getattr(tok, "chat_template", None))
        if chat:
            overhead = len(self._chat("", "")[0])  # tokens the template puts around the two turns
        else:
            overhead = 1 + (tok.bos_token_id is not None)  # [start] ... [end]
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tok(response, add_special_tokens=False)["input_ids"][: max(max_length - overhead, 1)]
        room = max_length - overhead - len(r_ids)
        p_ids = p_ids[len(p_ids) - room:] if room > 0 else []
        if chat:
            ids, start = self._chat(tok.decode(p_ids), tok.decode(r_ids))
            cut = max(len(ids) - max_length, 0)  # re-tokenising can shift a few tokens: cut the oldest
            return ids[cut:], max(start - cut, 0)
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        return bos + p_ids + r_ids + [tok.eos_token_id], len(bos) + len(p_ids)

    def _chat(self, prompt: str, response: str) -> tuple[list[int], int]:
        """The conversation's ids under the chat template, and the length of its part before the response."""
        tok = self.tokenizer
        user = [{"role": "user", "content": prompt}]
        head = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        full = tok.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=False)
        ids = tok(full, add_special_tokens=False)["input_ids"]
        return ids, len(tok(head, add_special_tokens=False)["input_ids"])

    @torch.no_grad()
    def score_texts(self, prompts: list[str], responses: list[str], batch_size: int = 32,
                    max_length: int | None = None) -> torch.Tensor:
        """Scores [N] (fp32, on the model's device), at the model's own max length unless given."""
        out = []
        for i in range(0, len(prompts), batch_size):
            ids, mask, _ = self.encode(prompts[i: i + batch_size], responses[i: i + batch_size], max_length)
            out.append(self(ids, mask).float())
        return torch.cat(out) if out else torch.zeros(0, device=self.device)

    def imitation_nll(self, h: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                      starts: torch.Tensor) -> torch.Tensor:
        """Mean NLL of the response tokens (incl. the end token) under the backbone's LM head,
        from hidden states h [B, L, H] already computed for the score."""
        logits = self.core.get_output_embeddings()(h[:, :-1]).float()  # [B, L-1, V]
        pos = torch.arange(1, ids.shape[1], device=ids.device)[None]
        keep = (pos >= starts[:, None]) & mask[:, 1:].bool()  # targets that are response tokens
        nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # [B, L-1]
        return (nll * keep).sum() / keep.sum().clamp(min=1)


def _batches(pairs: list[PreferencePair], batch_size: int, rng: random.Random | None):
    order = list(range(len(pairs)))
    if rng is not None:
        rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        yield [pairs[j] for j in order[i: i + batch_size]]


def pair_loss(model, batch: list[PreferencePair], max_length: int | None = None, imitation_coef: float = 0.0):
    """Pairwise logistic loss on one batch; chosen and rejected go through the backbone together."""
    n, rm = len(batch), unwrap(model)
    prompts = [p.prompt for p in batch] * 2
    ids, mask, starts = rm.encode(prompts, [p.chosen for p in batch] + [p.rejected for p in batch], max_length)
    if imitation_coef > 0:
        starts[n:] = ids.shape[1]  # no imitation targets in the rejected half
        r, nll = model(ids, mask, imitation_starts=starts)  # [2B], NLL of y+ given x
    else:
        r = model(ids, mask)  # [2B]
    margin = r[:n] - r[n:]  # r(x, y+) - r(x, y-)
    loss = -F.logsigmoid(margin).mean()
    stats = {"loss/pairwise": loss.item()}
    if imitation_coef > 0:
        loss = loss + imitation_coef * nll
        stats["loss/imitation"] = nll.item()
    stats.update({"loss/total": loss.item(), "accuracy": (margin > 0).float().mean().item(),
                  "margin": margin.mean().item()})
    return loss, stats


@torch.no_grad()
def evaluate(model, pairs: list[PreferencePair], batch_size: int = 16, max_length: int | None = None) -> dict:
    """Held-out pairwise accuracy (ties count as wrong), mean margin and loss, at the model's max length."""
    rm = unwrap(model).eval()
    n = correct = 0
    margin_sum = loss_sum = 0.0
    for batch in _batches(pairs, batch_size, None):
        c = rm.score_texts([p.prompt for p in batch], [p.chosen for p in batch], batch_size, max_length)
        r = rm.score_texts([p.prompt for p in batch], [p.rejected for p in batch], batch_size, max_length)
        m = c - r
        n, correct = n + len(batch), correct + (m > 0).sum().item()
        margin_sum += m.sum().item()
        loss_sum += -F.logsigmoid(m).sum().item()
    return {"eval/accuracy": correct / max(n, 1), "eval/margin": margin_sum / max(n, 1),
            "eval/loss": loss_sum / max(n, 1), "eval/pairs": n}


def train_reward_model(model: RewardModel, train: list[PreferencePair], test: list[PreferencePair],
                       cfg: RewardConfig, log_path: str | os.PathLike | None = None,
                       progress: bool = True) -> list[dict]:
    """Train in place (LoRA adapters, when asked, are added here and merged on save); returns (and appends
    to `log_path`) one metrics dict per optimiser step and per evaluation."""
    if not train:
        raise PreferenceDataError("no usable training pairs")
    if cfg.imitation_coef > 0:
        if not model.has_lm_head:
            raise ValueError("imitation_coef > 0 needs a causal-LM backbone loaded with its LM head")
        assert_causal(model.core, "imitation loss")
    acc = make_accelerator(cfg)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model.max_length = cfg.max_length  # saved with the model: scoring later uses what training saw
    if cfg.lora_r > 0:
        model.model = add_lora(model.model, cfg, causal_lm=False)  # the head stays fully trainable
    if cfg.gradient_checkpointing:
        enable_checkpointing(model.model)
    n_updates = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    opt, sched = make_optimizer(model.parameters(), cfg, n_updates, cfg.weight_decay)
    ddp, opt = acc.prepare(model, opt)
    logger = JsonlLogger(log_path if acc.is_main_process else None)
    history, step = [], 0
    bar = tqdm(total=n_updates, desc="reward model", disable=not progress or not acc.is_main_process)
    for epoch in range(cfg.epochs):
        for batch in _batches(train, cfg.batch_size, rng):
            t0 = time.perf_counter()
            ddp.train()  # dropout is off; train mode only switches gradient checkpointing on
            parts, batch = [], shard(batch, acc)
            for idx in micro_batches(torch.arange(len(batch)), min(cfg.gradient_accumulation_steps, len(batch))):
                micro = [batch[i] for i in idx.tolist()]
                loss, part = pair_loss(ddp, micro, cfg.max_length, cfg.imitation_coef)
                acc.backward(loss * len(micro) / len(batch))  # the step's gradient = the mean over the batch
                parts.append((len(micro), part))
            stats = {k: sum(w * p[k] for w, p in parts) / len(batch) for k in parts[0][1]}
            stats["grad_norm"] = optimizer_step(acc, opt, sched, cfg.max_grad_norm)
            step += 1
            stats.update({"step": step, "epoch": epoch, "lr": sched.get_last_lr()[0],
                          "time/update_s": time.perf_counter() - t0})
            history.append(logger.log(stats))
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss/total']:.3f}", acc=f"{stats['accuracy']:.2f}")
            if test and cfg.eval_every and step % cfg.eval_every == 0:
                history.append(logger.log({"step": step, **evaluate(ddp, test, 2 * cfg.batch_size)}))
        if test and not cfg.eval_every:
            history.append(logger.log({"step": step, "epoch": epoch, **evaluate(ddp, test, 2 * cfg.batch_size)}))
    bar.close()
    model.eval()
    return history
