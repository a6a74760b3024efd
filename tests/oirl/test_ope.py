"""Off-policy estimators against hand-computed values and a simulated bandit with a known truth."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oirl.evaluate.ope import LoggedDecisions, deterministic, estimate, uniform


def test_hand_computed_example():
    # 3 decisions over 2 prompts; the target always picks prompt 1
    logs = LoggedDecisions(chosen=np.array([0, 1, 1]), reward=np.array([1.0, 1.0, 0.0]),
                           propensity=np.array([0.5, 0.5, 0.25]), available=np.ones((3, 2), bool))
    target = deterministic(np.array([1, 1, 1]), 2)
    q_hat = np.array([[0.5, 0.5], [0.2, 0.8], [0.4, 0.4]])
    out = estimate(logs, target, q_hat, n_boot=200)
    est = {k: v["value"] for k, v in out["estimates"].items()}
    w = np.array([0, 2, 4])
    assert est["ips"] == pytest.approx((0 + 2 * 1 + 4 * 0) / 3)
    assert est["snips"] == pytest.approx(2 / 6)
    assert est["dm"] == pytest.approx((0.5 + 0.8 + 0.4) / 3)
    assert est["dr"] == pytest.approx((0.5 + 0.8 + 0.4) / 3 + (0 + 2 * (1 - 0.8) + 4 * (0 - 0.4)) / 3)
    assert out["ess"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    for v in out["estimates"].values():
        assert v["ci95"][0] <= v["ci95"][1]


def _simulate(seed: int, n: int = 3000, k: int = 4, eps: float = 0.2):
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.1, 0.9, size=(n, k))  # true P(correct) per (query, prompt)
    greedy = rng.integers(0, k, n)  # the logging model's choice (not the best)
    mu = np.full((n, k), eps / k)
    mu[np.arange(n), greedy] += 1 - eps
    chosen = np.array([rng.choice(k, p=row) for row in mu])
    reward = (rng.random(n) < means[np.arange(n), chosen]).astype(float)
    logs = LoggedDecisions(chosen, reward, mu[np.arange(n), chosen], np.ones((n, k), bool))
    return logs, means


@pytest.mark.parametrize("seed", [0, 1])
def test_estimators_recover_the_truth_of_a_better_policy(seed):
    logs, means = _simulate(seed)
    n, k = means.shape
    best = means.argmax(axis=1)
    target = deterministic(best, k)
    truth = means[np.arange(n), best].mean()
    noisy_model = np.clip(means + np.random.default_rng(99).normal(0, 0.15, means.shape), 0, 1)
    out = estimate(logs, target, noisy_model, n_boot=300, seed=seed)
    for name in ("ips", "snips", "dr"):
        lo, hi = out["estimates"][name]["ci95"]
        assert lo - 0.01 <= truth <= hi + 0.01, (name, truth, out["estimates"][name])
    # DR with a decent model beats IPS's spread
    width = {e: np.diff(out["estimates"][e]["ci95"])[0] for e in ("ips", "dr")}
    assert width["dr"] < width["ips"]
    assert 0 < out["ess"] < n


def test_uniform_target_and_groups():
    logs, means = _simulate(3, n=2000)
    grouped = LoggedDecisions(logs.chosen, logs.reward, logs.propensity, logs.available,
                              groups=np.arange(2000) // 4)  # 500 queries, 4 decisions each
    out = estimate(grouped, uniform(logs.available), None, n_boot=300)
    assert abs(out["estimates"]["ips"]["value"] - means.mean()) < 0.05
    assert set(out["unavailable"]) == {"dm", "dr"} and "dr" not in out["estimates"]


def test_bad_logs_are_refused():
    with pytest.raises(ValueError, match="propensities"):
        LoggedDecisions(np.array([0]), np.array([1.0]), np.array([0.0]), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="one row per decision"):
        LoggedDecisions(np.array([0, 1]), np.array([1.0]), np.array([0.5]), np.ones((1, 2), bool))


@given(st.integers(1, 40), st.integers(2, 5), st.integers(0, 10_000))
def test_the_choice_terms_are_the_dr_terms_of_a_one_hot_target(n, k, seed):
    from oirl.evaluate.ope import choice_terms, terms

    rng = np.random.default_rng(seed)
    logs = LoggedDecisions(chosen=rng.integers(0, k, n), reward=rng.random(n), propensity=rng.uniform(0.05, 1, n),
                           available=np.ones((n, k), bool))
    choice, q_hat = rng.integers(0, k, n), rng.random((n, k))
    expected = terms(logs, deterministic(choice, k), q_hat)
    got_dr = choice_terms(choice, logs.chosen, logs.reward, logs.propensity, q_hat)
    got_ips = choice_terms(choice, logs.chosen, logs.reward, logs.propensity, None)
    np.testing.assert_allclose(got_dr, expected["dr"], rtol=1e-12)
    np.testing.assert_allclose(got_ips, expected["ips"], rtol=1e-12)
