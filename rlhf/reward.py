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
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from rlhf.data import PreferenceDataError, PreferencePair
from rlhf.modeling import disable_dropout, load_tokenizer, minilm_path, position_ids
from rlhf.utils import JsonlLogger

HEAD_FILE, META_FILE = "reward_head.safetensors", "reward_config.json"


def _is_causal(config) -> bool:
    return any(a.endswith("ForCausalLM") for a in (config.architectures or []))


class RewardModel(nn.Module):
    """Backbone + scalar head. `model` is an AutoModel, or an AutoModelForCausalLM when the LM head is
    needed (imitation loss); scores always come from the base transformer's last hidden state."""

    def __init__(self, model, tokenizer, head: nn.Linear | None = None):
        super().__init__()
        self.model, self.tokenizer = disable_dropout(model), tokenizer
        hidden = model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.n_embd
        self.head = head if head is not None else nn.Linear(hidden, 1)
        if head is None:
            nn.init.normal_(self.head.weight, std=1 / math.sqrt(hidden + 1))
            nn.init.zeros_(self.head.bias)

    @property
    def has_lm_head(self) -> bool:
        return self.model.get_output_embeddings() is not None

    @classmethod
    def from_backbone(cls, path: str | os.PathLike | None = None, with_lm_head: bool = False) -> RewardModel:
        """Fresh head on a pretrained backbone (default: the bundled MiniLM encoder)."""
        path = str(path or minilm_path())
        tok = load_tokenizer(path)
        loader = AutoModelForCausalLM if with_lm_head else AutoModel
        model = loader.from_pretrained(path)
        if model.get_input_embeddings().num_embeddings < len(tok):
            model.resize_token_embeddings(len(tok))
        return cls(model, tok)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> RewardModel:
        """Load a reward model saved by `save_pretrained`, or a HF `*ForSequenceClassification` with one
        label and a `score` head (the usual decoder reward model), or else put a fresh head on `path`."""
        path = Path(path)
        if (path / META_FILE).is_file():
            meta = json.loads((path / META_FILE).read_text())
            loader = AutoModelForCausalLM if meta["with_lm_head"] else AutoModel
            model, tok = loader.from_pretrained(str(path)), load_tokenizer(path)
            head = nn.Linear(meta["hidden_size"], 1)
            head.load_state_dict(load_file(str(path / HEAD_FILE)))
            return cls(model, tok, head)
        config = AutoConfig.from_pretrained(str(path))
        if any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])):
            clf = AutoModelForSequenceClassification.from_pretrained(str(path))
            if getattr(clf.config, "num_labels", 0) != 1 or not isinstance(getattr(clf, "score", None), nn.Linear):
                raise ValueError(f"{path}: a reward model needs one label and a linear `score` head")
            return cls(clf.base_model, load_tokenizer(path), clf.score)
        return cls.from_backbone(path, with_lm_head=False)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(path / HEAD_FILE))
        meta = {"with_lm_head": self.has_lm_head, "hidden_size": self.head.in_features}
        (path / META_FILE).write_text(json.dumps(meta))

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        base = self.model.base_model  # the transformer without any LM head
        return base(input_ids=input_ids, attention_mask=attention_mask,
                    position_ids=position_ids(attention_mask)).last_hidden_state  # [B, L, H]

    def values(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """A scalar at every position [B, L] (what PPO's value model uses)."""
        return self.head(self.hidden(input_ids, attention_mask)).squeeze(-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Score [B], read at the last real token (the end-of-sequence token; works for left or right pads)."""
        h = self.hidden(input_ids, attention_mask)  # [B, L, H]
        last = (attention_mask * torch.arange(attention_mask.shape[1])).argmax(-1)  # [B]
        return self.head(h[torch.arange(h.shape[0]), last]).squeeze(-1)

    def encode(self, prompts: list[str], responses: list[str], max_length: int = 512):
        """[start] + prompt + response + [end], right-padded. Too long: the prompt loses its oldest tokens
        first (the response is what is judged), then the response its tail. Also returns where each
        response starts, for the imitation loss."""
        tok = self.tokenizer
        start = [tok.bos_token_id] if tok.bos_token_id is not None else []
        end = tok.eos_token_id
        rows, starts = [], []
        for p, r in zip(prompts, responses, strict=True):
            p_ids = tok(p, add_special_tokens=False)["input_ids"]
            r_ids = tok(r, add_special_tokens=False)["input_ids"][: max_length - len(start) - 1]
            room = max_length - len(start) - len(r_ids) - 1
            p_ids = p_ids[len(p_ids) - room:] if room > 0 else []
            rows.append(start + p_ids + r_ids + [end])
            starts.append(len(start) + len(p_ids))
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        return ids, mask, torch.tensor(starts)

    @torch.no_grad()
    def score_texts(self, prompts: list[str], responses: list[str], batch_size: int = 32,
                    max_length: int = 512) -> torch.Tensor:
        out = []
        for i in range(0, len(prompts), batch_size):
            ids, mask, _ = self.encode(prompts[i: i + batch_size], responses[i: i + batch_size], max_length)
            out.append(self(ids, mask))
        return torch.cat(out) if out else torch.zeros(0)

    def imitation_nll(self, h: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                      starts: torch.Tensor) -> torch.Tensor:
        """Mean NLL of the response tokens (incl. the end token) under the backbone's LM head,
        from hidden states h [B, L, H] already computed for the score."""
        logits = self.model.get_output_embeddings()(h[:, :-1]).float()  # [B, L-1, V]
        pos = torch.arange(1, ids.shape[1])[None]
        keep = (pos >= starts[:, None]) & mask[:, 1:].bool()  # targets that are response tokens
        nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # [B, L-1]
        return (nll * keep).sum() / keep.sum().clamp(min=1)


@dataclass
class RewardConfig:
    data: str = ""
    """preference data: a JSONL/HH file, or the mirror directory for the gsm8k / oirl-* sources"""
    source: str = "jsonl"
    """data format: jsonl | hh | gsm8k | oirl-gsm8k | oirl-svamp | oirl-mawps"""
    backbone: str = ""
    """local HF model directory for the backbone; empty = the bundled MiniLM encoder"""
    output_dir: str = "runs/reward"
    """where the trained reward model and metrics.jsonl go"""
    imitation_coef: float = 0.0
    """beta of the imitation loss on y+ (needs a causal-LM backbone)"""
    epochs: int = 1
    """passes over the training pairs"""
    batch_size: int = 8
    """pairs per update (each pair is two sequences)"""
    lr: float = 5e-5
    """AdamW learning rate"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    max_length: int = 256
    """tokens per sequence; the prompt is truncated from the left first"""
    test_fraction: float = 0.2
    """fraction of prompts/questions held out for evaluation"""
    max_pairs_per_query: int = 0
    """for gsm8k/oirl sources: keep at most this many pairs per question (0 = all)"""
    eval_every: int = 0
    """evaluate every this many updates (0 = at the end of each epoch only)"""
    seed: int = 0
    """seed of the split, the shuffling and the head initialisation"""


def _batches(pairs: list[PreferencePair], batch_size: int, rng: random.Random | None):
    order = list(range(len(pairs)))
    if rng is not None:
        rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        yield [pairs[j] for j in order[i: i + batch_size]]


def pair_loss(model: RewardModel, batch: list[PreferencePair], max_length: int, imitation_coef: float = 0.0):
    """Pairwise logistic loss on one batch; chosen and rejected go through the backbone together."""
    n = len(batch)
    prompts = [p.prompt for p in batch] * 2
    ids, mask, starts = model.encode(prompts, [p.chosen for p in batch] + [p.rejected for p in batch], max_length)
    h = model.hidden(ids, mask)  # [2B, L, H]
    last = (mask * torch.arange(mask.shape[1])).argmax(-1)
    r = model.head(h[torch.arange(2 * n), last]).squeeze(-1)  # [2B]
    margin = r[:n] - r[n:]  # r(x, y+) - r(x, y-)
    loss = -F.logsigmoid(margin).mean()
    stats = {"loss/pairwise": loss.item()}
    if imitation_coef > 0:
        nll = model.imitation_nll(h[:n], ids[:n], mask[:n], starts[:n])  # chosen half only
        loss = loss + imitation_coef * nll
        stats["loss/imitation"] = nll.item()
    stats.update({"loss/total": loss.item(), "accuracy": (margin > 0).float().mean().item(),
                  "margin": margin.mean().item()})
    return loss, stats


@torch.no_grad()
def evaluate(model: RewardModel, pairs: list[PreferencePair], batch_size: int = 16,
             max_length: int = 256) -> dict:
    """Held-out pairwise accuracy (ties count as wrong), mean margin and loss."""
    model.eval()
    n = correct = 0
    margin_sum = loss_sum = 0.0
    for batch in _batches(pairs, batch_size, None):
        c = model.score_texts([p.prompt for p in batch], [p.chosen for p in batch], batch_size, max_length)
        r = model.score_texts([p.prompt for p in batch], [p.rejected for p in batch], batch_size, max_length)
        m = c - r
        n, correct = n + len(batch), correct + (m > 0).sum().item()
        margin_sum += m.sum().item()
        loss_sum += -F.logsigmoid(m).sum().item()
    return {"eval/accuracy": correct / max(n, 1), "eval/margin": margin_sum / max(n, 1),
            "eval/loss": loss_sum / max(n, 1), "eval/pairs": n}


def train_reward_model(model: RewardModel, train: list[PreferencePair], test: list[PreferencePair],
                       cfg: RewardConfig, log_path: str | os.PathLike | None = None,
                       progress: bool = True) -> list[dict]:
    """Train in place; returns (and appends to `log_path`) one metrics dict per update and per evaluation."""
    if not train:
        raise PreferenceDataError("no usable training pairs")
    if cfg.imitation_coef > 0 and not model.has_lm_head:
        raise ValueError("imitation_coef > 0 needs a causal-LM backbone loaded with its LM head")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    logger = JsonlLogger(log_path)
    history, step = [], 0
    n_updates = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    bar = tqdm(total=n_updates, desc="reward model", disable=not progress)
    for epoch in range(cfg.epochs):
        for batch in _batches(train, cfg.batch_size, rng):
            t0 = time.perf_counter()
            loss, stats = pair_loss(model, batch, cfg.max_length, cfg.imitation_coef)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)  # free the gradients before the next forward pass
            step += 1
            stats.update({"step": step, "epoch": epoch, "time/update_s": time.perf_counter() - t0})
            history.append(logger.log(stats))
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss/total']:.3f}", acc=f"{stats['accuracy']:.2f}")
            if test and cfg.eval_every and step % cfg.eval_every == 0:
                history.append(logger.log({"step": step, **evaluate(model, test, 2 * cfg.batch_size,
                                                                     cfg.max_length)}))
        if test and not cfg.eval_every:
            history.append(logger.log({"step": step, "epoch": epoch,
                                       **evaluate(model, test, 2 * cfg.batch_size, cfg.max_length)}))
    bar.close()
    return history
