"""Tokenizer/model plumbing: pad != EOS, loading local HF directories, sampling, temperature, padding."""

import math

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from rlhf.modeling import (
    encode_queries,
    load_causal_lm,
    logprobs_of,
    minilm_path,
    prepare_tokenizer,
    response_mask,
    sample,
    save_model,
    tiny_causal_lm,
)


def test_pad_is_made_distinct_from_eos():
    from tokenizers import Tokenizer, models

    # GPT-2's habit, pad = EOS, would mask the EOS the policy must learn to emit
    t = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<eos>": 1}, unk_token="a")),
                                eos_token="<eos>", pad_token="<eos>")
    t, added = prepare_tokenizer(t)
    assert added and t.pad_token_id == 2 and t.eos_token_id == 1
    model = tiny_causal_lm(t)
    assert model.get_input_embeddings().num_embeddings == 3


def test_bert_wordpiece_tokenizer_gets_bos_and_eos():
    t, added = prepare_tokenizer(PreTrainedTokenizerFast.from_pretrained(minilm_path()))
    assert not added and (t.bos_token, t.eos_token, t.pad_token) == ("[CLS]", "[SEP]", "[PAD]")


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_save_and_load_tiny_model_from_a_local_directory(tmp_path, tok, arch):
    model = tiny_causal_lm(tok, arch=arch, seed=3)
    save_model(model, tok, tmp_path / arch)
    loaded, tok2 = load_causal_lm(tmp_path / arch)
    assert tok2.pad_token_id != tok2.eos_token_id and not loaded.training
    q, qm = encode_queries(tok2, ["abc"], 8)
    r = torch.tensor([[5, 6, tok2.eos_token_id]])
    m = response_mask(r, tok2.eos_token_id)
    with torch.no_grad():
        assert torch.allclose(logprobs_of(model, q, qm, r, m, 1.0), logprobs_of(loaded, q, qm, r, m, 1.0))


def test_response_mask_keeps_first_eos_only():
    r = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 5, 5, 5]])
    assert response_mask(r, eos_id=2).int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_sampling_pads_after_eos_and_is_seeded(tok):
    model = tiny_causal_lm(tok, seed=0)
    q, qm = encode_queries(tok, ["ab", "hello there"], 16)
    draw = [sample(model, q, qm, 12, 1.0, tok.eos_token_id, tok.pad_token_id, torch.Generator().manual_seed(1))
            for _ in range(2)]
    assert torch.equal(draw[0], draw[1])
    for row in draw[0]:
        eos = (row == tok.eos_token_id).nonzero()
        if len(eos):
            assert (row[eos[0, 0] + 1:] == tok.pad_token_id).all()


def test_left_padding_does_not_change_logprobs(tok):
    model = tiny_causal_lm(tok, arch="llama", seed=0)
    r = torch.tensor([[5, 6, 7], [7, 6, 5]])
    m = response_mask(r, tok.eos_token_id)
    with torch.no_grad():
        q, qm = encode_queries(tok, ["ab", "a much longer prompt"], 32)  # row 0 is left-padded
        both = logprobs_of(model, q, qm, r, m, 1.0)
        q0, qm0 = encode_queries(tok, ["ab"], 32)
        alone = logprobs_of(model, q0, qm0, r[:1], m[:1], 1.0)
    assert torch.allclose(both[0], alone[0], atol=1e-5)


def test_logprobs_are_of_the_tempered_distribution(tok):
    model = tiny_causal_lm(tok, seed=0)
    q, qm = encode_queries(tok, ["ab"], 8)
    r = torch.tensor([[5]])
    m = response_mask(r, tok.eos_token_id)
    with torch.no_grad():
        logits = model(input_ids=q, attention_mask=qm).logits[0, -1]
        for t in (0.5, 1.0, 2.0):
            expected = torch.log_softmax(logits / t, -1)[5].item()
            assert logprobs_of(model, q, qm, r, m, t).item() == pytest.approx(expected, abs=1e-5)
    assert not math.isclose(logprobs_of(model, q, qm, r, m, 0.5).item(), logprobs_of(model, q, qm, r, m, 2.0).item())


def test_dropout_is_off(tok):
    model = tiny_causal_lm(tok)
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
