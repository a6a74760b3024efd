"""GRPO: group-relative advantages and the loss, a known synthetic reward rises with bounded KL."""

import pytest
import torch

from rlhf.config import GRPOConfig
from rlhf.grpo import GRPOTrainer, group_advantages, grpo_loss
from rlhf.modeling import tiny_causal_lm
from rlhf.utils import read_jsonl, undocumented_fields

PROMPTS = ["abc", "hello", "bad", "cafe", "dead", "beef", "face", "ace"]


def a_fraction(prompts, texts):
    return torch.tensor([t.count("a") / max(len(t), 1) for t in texts])


def test_group_advantages_are_relative_to_the_group():
    s = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])  # two groups of 3
    adv = group_advantages(s, 3)
    assert torch.allclose(adv[:3], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-3)
    assert torch.equal(adv[3:], torch.zeros(3))  # no signal in a group of equal scores, and no NaN
    assert torch.allclose(group_advantages(s, 3, scale=False)[:3], torch.tensor([-1.0, 0.0, 1.0]))


def test_on_policy_loss_is_minus_the_advantage_plus_kl():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    mask = torch.ones(1, 2, dtype=torch.bool)
    loss, _ = grpo_loss(logp, logp.detach(), logp.detach(), torch.tensor([0.7]), mask, 0.2, kl_coef=0.5)
    assert loss.item() == pytest.approx(-0.7)  # ratio 1 and KL 0 at the reference
    loss.backward()
    assert torch.allclose(logp.grad, torch.full((1, 2), -0.35))  # d/dlogp of -A*ratio averaged over 2 tokens


def test_grpo_raises_synthetic_reward_with_bounded_kl(tok, tmp_path):
    cfg = GRPOConfig(output_dir=str(tmp_path), total_updates=20, batch_size=4, group_size=4, mini_batch_size=4,
                     grpo_epochs=2,
                     max_new_tokens=8, lr=3e-3, kl_coef=0.04)
    history = GRPOTrainer(cfg, tiny_causal_lm(tok, seed=0), tok, a_fraction, PROMPTS, progress=False).train()
    first = sum(h["objective/scores"] for h in history[:3]) / 3
    last = sum(h["objective/scores"] for h in history[-3:]) / 3
    assert last > first + 0.3, (first, last)
    assert max(h["objective/kl"] for h in history) < 10.0
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 20 and (tmp_path / "policy" / "config.json").is_file()


def test_every_config_field_is_documented():
    assert undocumented_fields(GRPOConfig) == []


def test_resume_continues_exactly(tok, tmp_path):
    def trainer(out, updates, resume=False):
        cfg = GRPOConfig(output_dir=str(out), total_updates=updates, batch_size=2, group_size=2, mini_batch_size=4,
                         max_new_tokens=4, lr=3e-3, resume=resume)
        return GRPOTrainer(cfg, tiny_causal_lm(tok, seed=0), tok, a_fraction, PROMPTS, progress=False)

    straight = trainer(tmp_path / "a", 4).train()
    trainer(tmp_path / "b", 2).train()
    tail = trainer(tmp_path / "b", 4, resume=True).train()
    assert [h["update"] for h in tail] == [3, 4]
    for a, b in zip(straight[2:], tail, strict=True):
        for key in ("objective/scores", "objective/kl", "loss/policy"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
