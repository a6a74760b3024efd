"""Exploration policies: exact propensities, inactive prompts never explored, the default floor,
and draws that follow π."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from oirl.select.explore import Exploration, action_probabilities, draw, uniform_from_id

modes = st.builds(Exploration, mode=st.sampled_from(["greedy", "epsilon", "softmax"]),
                  epsilon=st.floats(0, 1), temperature=st.floats(0.001, 10), default_floor=st.floats(0, 1))


@st.composite
def problems(draw_):
    n = draw_(st.integers(1, 12))
    scores = np.array(draw_(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
    mask = np.array(draw_(st.lists(st.booleans(), min_size=n, max_size=n)))
    greedy = draw_(st.integers(0, n - 1))
    default = draw_(st.one_of(st.none(), st.integers(0, n - 1)))
    return scores, greedy, mask, default


@settings(max_examples=300, deadline=None)
@given(problems(), modes)
def test_a_distribution_that_never_explores_inactive_prompts(problem, exploration):
    scores, greedy, mask, default = problem
    pi = action_probabilities(scores, greedy, mask, exploration, default)
    assert pi.shape == scores.shape and np.all(pi >= 0) and pi.sum() == pytest.approx(1.0)
    allowed = mask.copy()
    allowed[greedy] = True
    if default is not None and exploration.default_floor > 0:
        allowed[default] = True
    assert np.all(pi[~allowed] == 0), "an inactive prompt got traffic"
    if default is not None:
        assert pi[default] >= exploration.default_floor - 1e-12


def test_epsilon_greedy_is_exact():
    pi = action_probabilities(np.array([0.2, 0.9, 0.5, 0.4]), greedy=1, explorable=np.array([1, 1, 1, 0], bool),
                              exploration=Exploration(mode="epsilon", epsilon=0.3))
    np.testing.assert_allclose(pi, [0.1, 0.8, 0.1, 0.0])


def test_softmax_follows_scores_and_greedy_is_one_hot():
    scores = np.array([0.2, 0.3, 0.1])
    pi = action_probabilities(scores, 1, np.ones(3, bool), Exploration(mode="softmax", temperature=0.1))
    expected = np.exp(scores / 0.1) / np.exp(scores / 0.1).sum()
    np.testing.assert_allclose(pi, expected)
    np.testing.assert_array_equal(action_probabilities(scores, 2, np.ones(3, bool), Exploration()), [0, 0, 1])


def test_default_floor_rescales_the_others():
    pi = action_probabilities(np.array([0.1, 0.9, 0.5]), 1, np.ones(3, bool),
                              Exploration(mode="epsilon", epsilon=0.3, default_floor=0.5), default_index=0)
    # before the floor: [0.1, 0.8, 0.1]; the default gets 0.5, the others share 0.5 as 8:1
    np.testing.assert_allclose(pi, [0.5, 0.5 * 0.8 / 0.9, 0.5 * 0.1 / 0.9])


def test_draws_follow_pi_and_are_fixed_by_the_id():
    pi = np.array([0.0, 0.7, 0.2, 0.1, 0.0])
    ids = [uuid.UUID(int=i).hex for i in range(20_000)]
    counts = np.bincount([draw(pi, i) for i in ids], minlength=5) / len(ids)
    np.testing.assert_allclose(counts, pi, atol=0.012)  # ~4 standard errors
    assert counts[0] == counts[4] == 0
    assert draw(pi, ids[7]) == draw(pi, ids[7])
    assert 0 <= uniform_from_id("x") < 1


def test_settings_are_validated():
    with pytest.raises(ValidationError):
        Exploration(mode="thompson")
    with pytest.raises(ValidationError):
        Exploration(mode="epsilon", epsilon=1.5)
    with pytest.raises(ValidationError):
        Exploration(mode="softmax", temperature=0)
    assert not Exploration(mode="epsilon", epsilon=0).explores and Exploration(mode="softmax").explores
