"""PPO end to end on tiny models: a known synthetic reward rises, KL stays bounded, runs repeat and resume."""

import json

import pytest
import torch

from rlhf.modeling import load_causal_lm, tiny_causal_lm
from rlhf.ppo import PPOConfig, PPOTrainer, build_trainer
from rlhf.reward import RewardModel
from rlhf.utils import read_jsonl, undocumented_fields


def a_fraction(prompts, texts):
    """The known synthetic reward: fraction of 'a' characters in the response (1/9 at random)."""
    return torch.tensor([t.count("a") / max(len(t), 1) for t in texts])


PROMPTS = ["abc", "hello", "bad", "cafe", "dead", "beef", "face", "ace"]


def make_trainer(tok, out, reward_fn=None, **overrides):
    cfg = PPOConfig(output_dir=str(out), batch_size=16, mini_batch_size=8, ppo_epochs=4, max_new_tokens=8,
                    temperature=1.0, lr=3e-3, kl_coef=0.1, **overrides)
    policy = tiny_causal_lm(tok, seed=0)
    value = RewardModel(tiny_causal_lm(tok, seed=1).base_model, tok)
    return PPOTrainer(cfg, policy, tok, value, reward_fn or a_fraction, PROMPTS, progress=False)


def test_ppo_raises_synthetic_reward_with_bounded_kl(tok, tmp_path):
    trainer = make_trainer(tok, tmp_path, total_updates=25)
    history = trainer.train()
    first = sum(h["objective/scores"] for h in history[:3]) / 3
    last = sum(h["objective/scores"] for h in history[-3:]) / 3
    assert last > first + 0.4, (first, last)  # starts near 1/9, ends near 1
    assert max(h["objective/kl"] for h in history) < 8.0  # 8 tokens at most: bounded by the penalty
    logged = read_jsonl(tmp_path / "metrics.jsonl")
    assert len(logged) == 25
    for key in ("objective/kl", "objective/scores", "policy/approxkl", "policy/clipfrac", "val/clipfrac",
                "loss/policy", "loss/value", "objective/kl_coef", "objective/eos_rate"):
        assert key in logged[-1]
    assert (tmp_path / "policy" / "config.json").is_file()


def test_reference_stays_frozen(tok, tmp_path):
    trainer = make_trainer(tok, tmp_path, total_updates=2)
    ref_before = [p.clone() for p in trainer.ref.parameters()]
    trainer.train()
    assert all(torch.equal(a, b) for a, b in zip(ref_before, trainer.ref.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(ref_before, trainer.policy.parameters(), strict=True))


def test_missing_eos_is_penalised(tok, tmp_path):
    trainer = make_trainer(tok, tmp_path, missing_eos_penalty=5.0, normalize_scores=False, score_clip=0)
    batch = trainer.rollout(PROMPTS * 2)
    no_eos = ~(batch["responses"] == tok.eos_token_id).any(-1)
    assert no_eos.any()
    s = batch["stats"]
    assert s["objective/scores_penalised"] == pytest.approx(s["objective/scores"] - 5.0 * no_eos.float().mean())


def test_adaptive_kl_coefficient_moves_toward_target(tok, tmp_path):
    trainer = make_trainer(tok, tmp_path, total_updates=6, adaptive_kl=True, kl_target=0.01, kl_horizon=100)
    history = trainer.train()
    assert history[-1]["objective/kl_coef"] > 0.1  # KL above a tiny target -> the penalty grows


def test_same_seed_same_run(tok, tmp_path):
    runs = [make_trainer(tok, tmp_path / str(i), total_updates=3).train() for i in range(2)]
    strip = [[{k: v for k, v in h.items() if not k.startswith("time/")} for h in r] for r in runs]
    assert strip[0] == strip[1]
    other = make_trainer(tok, tmp_path / "2", total_updates=3, seed=1).train()
    assert other[-1]["objective/scores"] != runs[0][-1]["objective/scores"]


def test_resume_continues_exactly(tok, tmp_path):
    straight = make_trainer(tok, tmp_path / "a", total_updates=4).train()
    make_trainer(tok, tmp_path / "b", total_updates=2).train()
    resumed = make_trainer(tok, tmp_path / "b", total_updates=4, resume=True)
    assert resumed.update_idx == 2
    tail = resumed.train()
    assert [h["update"] for h in tail] == [3, 4]
    for a, b in zip(straight[2:], tail, strict=True):
        for key in ("objective/scores", "objective/kl", "loss/policy", "loss/value"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key


def test_build_from_directories(tok, tiny_policy_dir, tmp_path):
    """The CLI path: policy, reward model and prompts from disk, any local HF causal LM."""
    rm_dir = tmp_path / "rm"
    RewardModel(tiny_causal_lm(tok, seed=5).base_model, tok).save_pretrained(rm_dir)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    cfg = PPOConfig(policy=str(tiny_policy_dir), reward_model=str(rm_dir), prompts=str(prompts),
                    output_dir=str(tmp_path / "run"), total_updates=2, batch_size=4, mini_batch_size=2,
                    ppo_epochs=1, max_new_tokens=4)
    build_trainer(cfg, progress=False).train()
    policy, _ = load_causal_lm(tmp_path / "run" / "policy")
    assert policy.config.vocab_size == len(tok)


def test_every_config_field_is_documented():
    assert undocumented_fields(PPOConfig) == []


def test_rejects_pad_equal_to_eos(tok, tmp_path):
    tok.pad_token = tok.eos_token
    with pytest.raises(ValueError, match="distinct from EOS"):
        make_trainer(tok, tmp_path)
