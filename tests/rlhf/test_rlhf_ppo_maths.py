"""The PPO maths on hand-computed values."""

import math

import pytest
import torch

from rlhf.ppo import (
    AdaptiveKLController,
    FixedKLController,
    RunningMoments,
    gae,
    kl_k1,
    kl_k3,
    masked_whiten,
    policy_loss,
    value_loss,
)


def test_gae_three_steps_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 9.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [1.0, 1.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # row 2 ends after two tokens: 9s are padding
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    # row 1: A2 = 1 - .7 = .3; A1 = (0 + .7 - .6) + .95 * .3 = .385; A0 = (.6 - .5) + .95 * .385 = .46575
    assert adv[0].tolist() == pytest.approx([0.46575, 0.385, 0.3])
    assert ret[0].tolist() == pytest.approx([0.96575, 0.985, 1.0])
    # row 2: the value after the last real token is 0 (episode over), padding contributes nothing
    assert adv[1].tolist() == pytest.approx([0.95, 1.0, 0.0])
    assert ret[1].tolist() == pytest.approx([1.95, 2.0, 0.0])


def test_gae_discount():
    adv, _ = gae(torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2), gamma=0.5, lam=1.0)
    assert adv[0].tolist() == pytest.approx([0.5, 1.0])


def test_masked_whiten_ignores_padding():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # mean 2, unbiased variance ((-1)^2 + 0 + 1^2) / 2 = 1
    assert masked_whiten(x, mask).tolist()[0] == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    assert masked_whiten(x, mask, shift_mean=False).tolist()[0] == pytest.approx([1.0, 2.0, 3.0, 0.0], abs=1e-6)


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert kl_k1(logp, ref).item() == pytest.approx(math.log(2))
    assert kl_k3(logp, ref).item() == pytest.approx(0.5 - 1 + math.log(2))  # q/p - 1 - log(q/p)
    assert kl_k1(ref, logp).item() < 0 < kl_k3(ref, logp).item()  # k1 can be negative, k3 never


def test_kl_estimators_are_unbiased():
    p = torch.distributions.Categorical(probs=torch.tensor([0.7, 0.2, 0.1]))
    q = torch.tensor([0.2, 0.3, 0.5]).log()
    true_kl = torch.distributions.kl_divergence(p, torch.distributions.Categorical(logits=q)).item()
    torch.manual_seed(0)
    y = p.sample((200_000,))
    logp, logq = p.log_prob(y), q[y]
    assert kl_k1(logp, logq).mean().item() == pytest.approx(true_kl, rel=0.02)
    assert kl_k3(logp, logq).mean().item() == pytest.approx(true_kl, rel=0.02)


def test_clipped_policy_loss_by_hand():
    old = torch.zeros(1, 4)
    logp = torch.tensor([[math.log(1.5), math.log(0.5), math.log(0.5), 5.0]])
    adv = torch.tensor([[1.0, 1.0, -1.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = policy_loss(logp, old, adv, mask, cliprange=0.2)
    # max(-A r, -A clip(r)): [-1.2 (clipped), -0.5, 0.8 (clipped)]; the masked token is ignored
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 0.8) / 3)
    assert stats["policy/clipfrac"] == pytest.approx(2 / 3)
    assert stats["policy/approxkl"] == pytest.approx(0.5 * (math.log(1.5) ** 2 + 2 * math.log(0.5) ** 2) / 3)


def test_clipped_value_loss_by_hand():
    vpred = torch.tensor([[0.5, 0.1, 7.0]])
    old, ret = torch.zeros(1, 3), torch.ones(1, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, stats = value_loss(vpred, old, ret, mask, cliprange_value=0.2)
    # token 1: clipped to .2 -> (0.2 - 1)^2 = .64 > .25; token 2: inside the range -> .81
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.81) / 2)
    assert stats["val/clipfrac"] == pytest.approx(0.5)


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(9.0, n_steps=100)  # error 0.5 clipped to 0.2 -> x (1 + 0.2 * 100 / 10000)
    assert ctl.value == pytest.approx(0.1 * 1.002)
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(6.6, n_steps=100)  # error 0.1
    assert ctl.value == pytest.approx(0.1 * 1.001)
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(0.0, n_steps=100)  # error -1 clipped to -0.2
    assert ctl.value == pytest.approx(0.1 * 0.998)
    fixed = FixedKLController(0.1)
    fixed.update(100.0, 100)
    assert fixed.value == 0.1


def test_running_moments_match_full_batch():
    torch.manual_seed(0)
    xs = [torch.randn(7) * 3 + 2, torch.randn(5) * 3 + 2, torch.randn(11) * 3 + 2]
    rm = RunningMoments()
    for x in xs:
        rm.update(x)
    allx = torch.cat(xs)
    assert rm.mean == pytest.approx(allx.mean().item(), rel=1e-5)
    assert rm.std == pytest.approx(allx.std(unbiased=False).item(), rel=1e-4)
