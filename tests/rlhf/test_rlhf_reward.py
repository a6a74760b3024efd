"""Reward model: learns a synthetic preference, save/load, imitation loss, HF reward-model checkpoints."""

import random

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from rlhf.data import PreferencePair
from rlhf.modeling import save_model, tiny_causal_lm
from rlhf.reward import RewardConfig, RewardModel, evaluate, pair_loss, train_reward_model
from rlhf.utils import read_jsonl, undocumented_fields


def a_rich_pairs(n: int, seed: int) -> list[PreferencePair]:
    """Synthetic preference: the response with more 'a' characters is preferred."""
    rng = random.Random(seed)
    pairs = []
    while len(pairs) < n:
        x, y = ("".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 8))) for _ in range(2))
        if x.count("a") != y.count("a"):
            chosen, rejected = (x, y) if x.count("a") > y.count("a") else (y, x)
            pairs.append(PreferencePair(rng.choice(["ab", "cd", "ef"]) + str(len(pairs)), chosen, rejected))
    return pairs


def tiny_rm(tok, with_lm_head=False, seed=0):
    model = tiny_causal_lm(tok, hidden=32, layers=2, seed=seed)
    return RewardModel(model if with_lm_head else model.base_model, tok)


def test_learns_synthetic_preference_to_90_percent_held_out(tok, tmp_path):
    torch.manual_seed(0)
    model = tiny_rm(tok)
    train, test = a_rich_pairs(512, seed=0), a_rich_pairs(200, seed=1)
    before = evaluate(model, test)["eval/accuracy"]
    cfg = RewardConfig(epochs=4, batch_size=16, lr=3e-3, max_length=32)
    history = train_reward_model(model, train, test, cfg, log_path=tmp_path / "m.jsonl", progress=False)
    after = history[-1]["eval/accuracy"]
    assert after >= 0.9 > before + 0.2, (before, after)
    logged = read_jsonl(tmp_path / "m.jsonl")
    assert {"loss/pairwise", "accuracy", "margin"} <= set(logged[0]) and logged[-1]["eval/accuracy"] == after


def test_default_minilm_backbone_learns_polite_over_rude():
    torch.manual_seed(0)
    model = RewardModel.from_backbone()  # the bundled all-MiniLM-L6-v2 encoder
    topics = ["the weather", "my taxes", "a recipe", "a poem", "math homework", "a trip", "the news", "music"]
    good = ["Sure, I'd be glad to help you with {}.", "Happy to help with {}, here is what I found."]
    bad = ["No. Figure out {} yourself, idiot.", "I refuse to talk about {}, go away."]
    pairs = [PreferencePair(f"Help with {t}?", g.format(t), b.format(t)) for t in topics for g in good for b in bad]
    train, test = pairs[:24], pairs[24:]
    cfg = RewardConfig(epochs=2, batch_size=8, lr=5e-5, max_length=32)
    history = train_reward_model(model, train, test, cfg, progress=False)
    assert history[-1]["eval/accuracy"] >= 0.9


def test_save_and_load_roundtrip(tok, tmp_path):
    model = tiny_rm(tok, seed=1)
    prompts, responses = ["ab", "cd"], ["aaa", "bbb"]
    model.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert torch.allclose(model.score_texts(prompts, responses), loaded.score_texts(prompts, responses))


def test_score_is_read_at_the_end_token_whatever_the_padding(tok):
    model = tiny_rm(tok, seed=2)
    alone = model.score_texts(["ab"], ["c"])
    padded = model.score_texts(["ab", "abcdefgh"], ["c", "abcdefgh"])  # row 0 gets right padding
    assert torch.allclose(alone, padded[:1], atol=1e-5)


def test_imitation_loss_needs_and_trains_the_lm_head(tok):
    pairs = a_rich_pairs(32, seed=0)
    with pytest.raises(ValueError, match="causal-LM backbone"):
        train_reward_model(tiny_rm(tok), pairs, [], RewardConfig(imitation_coef=0.5), progress=False)
    model = tiny_rm(tok, with_lm_head=True)
    _, before = pair_loss(model, pairs, 32, imitation_coef=1.0)
    train_reward_model(model, pairs, [], RewardConfig(epochs=6, batch_size=8, lr=3e-3, imitation_coef=1.0),
                       progress=False)
    _, after = pair_loss(model, pairs, 32, imitation_coef=1.0)
    assert after["loss/imitation"] < before["loss/imitation"] - 0.3


def test_loads_a_hf_sequence_classification_reward_model(tok, tmp_path):
    clf = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2,
                                                    num_labels=1, pad_token_id=tok.pad_token_id,
                                                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    clf.eval()
    save_model(clf, tok, tmp_path / "clf")
    rm = RewardModel.from_pretrained(tmp_path / "clf")
    ids, mask, _ = rm.encode(["ab"], ["cd"])
    with torch.no_grad():
        assert torch.allclose(rm(ids, mask), clf(input_ids=ids, attention_mask=mask).logits[:, 0], atol=1e-5)


def test_every_config_field_is_documented():
    assert undocumented_fields(RewardConfig) == []
