"""Combinations that used to run silently wrong: each test here failed before the fix it names."""

import pytest
import torch
from test_rlhf_reward import a_rich_pairs
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForSequenceClassification

from rlhf.config import PPOConfig, RewardConfig
from rlhf.modeling import (
    char_tokenizer,
    encode_queries,
    eos_ids,
    logprobs_of,
    response_mask,
    sample,
    save_model,
    tiny_causal_lm,
)
from rlhf.ppo import PPOTrainer
from rlhf.reward import RewardModel, train_reward_model

PROMPTS = ["abc", "hello", "bad", "cafe"]


def zero(prompts, texts):
    return torch.zeros(len(texts))


def ppo(tok, value, tmp_path):
    cfg = PPOConfig(output_dir=str(tmp_path), batch_size=4, mini_batch_size=4, max_new_tokens=4)
    return PPOTrainer(cfg, tiny_causal_lm(tok), tok, value, zero, PROMPTS, progress=False)


def test_a_bidirectional_value_model_is_refused(tok, tmp_path):
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, pad_token_id=tok.pad_token_id))
    with pytest.raises(ValueError, match="bidirectional"):
        ppo(tok, RewardModel(bert, tok), tmp_path)
    ppo(tok, RewardModel(tiny_causal_lm(tok, seed=1).base_model, tok), tmp_path)  # a decoder is fine


def test_imitation_loss_on_the_default_encoder_is_refused():
    with pytest.raises(ValueError, match="bidirectional"):
        RewardModel.from_backbone(with_lm_head=True)  # MiniLM as a BERT "LM head model" sees its own targets


def test_value_model_must_share_the_policy_vocabulary(tok, tmp_path):
    other = char_tokenizer("abcdefghxyz ")
    with pytest.raises(ValueError, match="vocabulary"):
        ppo(tok, RewardModel(tiny_causal_lm(other).base_model, other), tmp_path)


def test_a_reward_model_whose_tokenizer_gains_a_pad_is_resized(tmp_path):
    t = char_tokenizer("abcdefgh ", with_pad=False)
    clf = LlamaForSequenceClassification(LlamaConfig(vocab_size=len(t), hidden_size=32, intermediate_size=64,
                                                     num_hidden_layers=1, num_attention_heads=2, num_labels=1,
                                                     eos_token_id=t.eos_token_id, bos_token_id=t.bos_token_id))
    save_model(clf.to(torch.bfloat16), t, tmp_path / "clf")
    rm = RewardModel.from_pretrained(tmp_path / "clf")
    assert rm.tokenizer.pad_token_id == len(t)  # a new id, past the saved embedding table
    scores = rm.score_texts(["ab", "ab"], ["c", "cdefgh"])  # padding row 0 used to raise IndexError
    assert torch.allclose(scores[:1], rm.score_texts(["ab"], ["c"]), atol=1e-5)


@pytest.fixture
def pad_loving_model(tok):
    """A real tiny model pushed to put most probability on the pad token."""
    model = tiny_causal_lm(tok, seed=0)

    def boost(module, args, out):
        out = out.clone()
        out[..., tok.pad_token_id] += 20.0
        return out

    model.lm_head.register_forward_hook(boost)
    return model


def test_pad_is_never_sampled_and_not_in_the_logprobs(tok, pad_loving_model):
    q, qm = encode_queries(tok, ["ab", "cd", "ef", "gh"], 8)
    r = sample(pad_loving_model, q, qm, 8, 1.0, tok.eos_token_id, tok.pad_token_id, torch.Generator().manual_seed(0))
    m = response_mask(r, tok.eos_token_id)
    assert not (r[m] == tok.pad_token_id).any()
    with torch.no_grad():
        logp = logprobs_of(pad_loving_model, q, qm, r, m, 1.0, pad_id=tok.pad_token_id)
    assert torch.isfinite(logp).all() and logp[m].mean() > -4  # with the pad's mass included it was ~ -20


def test_every_eos_id_of_the_generation_config_ends_a_response(tok):
    model = tiny_causal_lm(tok, seed=0)
    h = tok.convert_tokens_to_ids("h")
    model.generation_config.eos_token_id = [tok.eos_token_id, h]  # e.g. Llama 3's <|eot_id|>
    ends = eos_ids(tok, model)
    assert ends == sorted([tok.eos_token_id, h])
    q, qm = encode_queries(tok, ["ab"] * 16, 8)
    r = sample(model, q, qm, 12, 1.0, ends, tok.pad_token_id, torch.Generator().manual_seed(0))
    m = response_mask(r, ends)
    stopped = 0
    for row, keep in zip(r, m, strict=True):
        hits = (row == h).nonzero()
        if len(hits):
            first = hits[0, 0]
            assert keep[: first + 1].all() and not keep[first + 1:].any()
            assert (row[first + 1:] == tok.pad_token_id).all()
            stopped += 1
    assert stopped > 0


def test_reward_model_scores_with_the_max_length_it_was_trained_with(tok, tmp_path):
    rm = RewardModel(tiny_causal_lm(tok, seed=0).base_model, tok)
    train_reward_model(rm, a_rich_pairs(16, 0), [], RewardConfig(max_length=12, batch_size=8), progress=False)
    rm.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert loaded.max_length == 12
    ids, _, _ = loaded.encode(["abc" * 20], ["defg" * 20])
    assert ids.shape[1] == 12
    long = ["abcdefgh" * 10]
    assert torch.allclose(loaded.score_texts(long, long), loaded.score_texts(long, long, max_length=12))


def test_prompts_use_the_chat_template_when_the_tokenizer_has_one(tok):
    tok.chat_template = ("{% for m in messages %}h{{ m['content'] }}h{% endfor %}"
                         "{% if add_generation_prompt %}g{% endif %}")
    q, _ = encode_queries(tok, ["ab", "abcdefgh"], 3)
    assert tok.decode(q[0][q[0] != tok.pad_token_id]) == "habhg"
    assert tok.decode(q[1]) == "hfghhg"  # the prompt is cut to its last 3 tokens, the template kept whole


def test_reward_model_scores_the_conversation_in_its_chat_template(tok):
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'user' %}h{% else %}g{% endif %}"
                         "{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}g{% endif %}")
    rm = RewardModel(tiny_causal_lm(tok, seed=0).base_model, tok, max_length=5)
    ids, mask, starts = rm.encode(["ab"], ["cd"], max_length=16)
    assert tok.decode(ids[0]) == "habgcd" and starts.tolist() == [4]
    ids, _, starts = rm.encode(["abcdef"], ["cd"])  # its own max length: the prompt keeps its last token
    assert tok.decode(ids[0]) == "hfgcd" and starts.tolist() == [3]
