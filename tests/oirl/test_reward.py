"""Reward model: features, weighted aggregation, backends, neighbour features, artefacts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from toy_logs import FAST, fruit_logs

from oirl.embed import HashingBagOfWordsEmbedder
from oirl.reward import (
    ArtefactError,
    PromptRewardModel,
    TrainingTable,
    aggregate_outcomes,
    fit_reward_model,
    pair_features,
)
from oirl.reward.features import grid_features
from oirl.reward.neighbours import NeighbourMemory


def test_pair_and_grid_features():
    q = np.arange(6, dtype=np.float32).reshape(2, 3)
    p = np.ones((2, 3), np.float32)
    assert pair_features(q, p).shape == (2, 6)
    np.testing.assert_array_equal(pair_features(q, p, "concat+product")[:, 6:], q * p)
    g = grid_features(q, np.eye(3, dtype=np.float32))  # query-major: (q0,p0),(q0,p1),(q0,p2),(q1,p0),...
    assert g.shape == (6, 6)
    np.testing.assert_array_equal(g[4], np.r_[q[1], [0, 1, 0]])
    with pytest.raises(ValueError, match="unknown feature set"):
        pair_features(q, p, "bogus")


def test_aggregation_keeps_the_loss_identical():
    logs = pd.DataFrame({"query": ["a", "a", "a", "b"], "prompt": ["x", "x", "x", "x"],
                         "correct": [True, False, True, False]})
    agg = aggregate_outcomes(logs)
    assert agg.set_index("query").loc["a", ["n_correct", "n_total"]].tolist() == [2, 3]
    table = TrainingTable.from_logs(logs)
    pair, label, weight = table.weighted_rows()
    # "a": one positive row of weight 2 and one negative of weight 1; "b": one negative of weight 1.
    assert sorted(zip(pair.tolist(), label.tolist(), weight.tolist(), strict=True)) == [
        (0, 0.0, 1.0), (0, 1.0, 2.0), (1, 0.0, 1.0)]
    np.testing.assert_allclose(table.prompt_success(), [0.5])


def test_neighbour_memory_never_shows_a_query_its_own_outcome():
    q = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    p = np.array([[1, 0]], np.float32)
    rates = np.array([[1.0], [0.0], [0.5]], np.float32)
    mem = NeighbourMemory(q, p, rates, k=1, temperature=0.05)
    feats = mem.rows(np.array([0, 1]), np.array([0, 0]))
    # Query 0's nearest other query is the identical query 1 (rate 0), and vice versa.
    np.testing.assert_allclose(feats[:, 0], [0.0, 1.0])
    np.testing.assert_allclose(mem.grid(np.array([[0, 1]], np.float32), p)[0, 0, 0], 0.5)


MLP_SMALL = {"n_rounds": 40, "hidden": 32, "batch_size": 16, "lr": 3e-3, "early_stopping_rounds": 40}


@pytest.mark.parametrize("backend,params", [("lightgbm", FAST), ("xgboost", {"n_rounds": 60}), ("mlp", MLP_SMALL),
                                            ("heads", None)])
@pytest.mark.parametrize("features", ["concat", "concat+knn"])
def test_backends_learn_which_prompt_suits_which_query(backend, params, features, tmp_path):
    emb = HashingBagOfWordsEmbedder(32)
    trained = fit_reward_model(fruit_logs(), emb, backend=backend, params=params, features=features)
    model = trained.model
    assert model.n_features_in_ == 64 + (4 if features.endswith("knn") else 0)
    q = emb.encode(["apple question 998 about apples and number 998",
                    "banana question 999 about bananas and number 999"])
    prompts = emb.encode(["Use the apple method: ", "Use the banana method: "])
    s = model.score(q, prompts)
    assert s.shape == (2, 2) and s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    proba = model.predict_proba(q, prompts)
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba[:, 1], np.diag(s), rtol=1e-5)

    model.save(tmp_path / "m", metrics={"auc": 1.0})
    loaded = PromptRewardModel.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(q, prompts), s, rtol=1e-6)
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["backend"] == backend and meta["params"]["embedder"]["name"] == "hashing-bow-32"
    assert meta["metrics"] == {"auc": 1.0} and len(meta["artefact_sha256"]) == 64
    assert meta["library_versions"]["numpy"] and meta["training_summary"]["n_groups"] == 80


def one_prompt_per_query_logs(n_queries: int, seed: int = 0) -> pd.DataFrame:
    """Partial logs: each fruit question tried once with one of the two prompts, at random."""
    full = fruit_logs(n_queries // 2, seed)
    pick = np.random.default_rng(seed).integers(0, 2, full["query_index"].nunique())
    return full[full["prompt_index"].to_numpy() == pick[full["query_index"].to_numpy()]]


@pytest.mark.parametrize("n_queries", [40, 200])
def test_heads_learn_from_one_prompt_per_query(n_queries):
    from oirl.reward.heads import HeadsBackend

    emb = HashingBagOfWordsEmbedder(32)
    model = fit_reward_model(one_prompt_per_query_logs(n_queries), emb, backend="heads", features="concat").model
    q = emb.encode(["apple question 998 about apples and number 998",
                    "banana question 999 about bananas and number 999"])
    s = model.score(q, emb.encode(["Use the apple method: ", "Use the banana method: "]))
    assert s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    # The penalty is a fixed prior: the same λ pulls the heads harder on fewer observations.
    backend = model.backend_
    assert isinstance(backend, HeadsBackend) and backend.lambda_ == 30.0
    assert np.abs(backend.H_).sum() > 0


def test_heads_score_an_unseen_prompt_like_its_nearest_known_one():
    emb = HashingBagOfWordsEmbedder(32)
    model = fit_reward_model(fruit_logs(), emb, backend="heads", features="concat").model
    q = emb.encode(["apple question 998 about apples and number 998"])
    known = emb.encode(["Use the apple method: ", "Use the banana method: "])
    near = emb.encode(["Use the apple method please: "])  # not a training prompt
    s_known, s_near = model.score(q, known)[0], model.score(q, near)[0, 0]
    assert s_near > s_known[1]
    with pytest.raises(ValueError, match="do not hold two"):
        model.backend_.predict(np.zeros((1, 10)))


def test_load_refuses_a_tampered_artefact(tmp_path):
    trained = fit_reward_model(fruit_logs(10), HashingBagOfWordsEmbedder(16), params=FAST)
    trained.model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    with open(tmp_path / "m" / meta["artefact_file"], "a") as fh:
        fh.write("\n")
    with pytest.raises(ArtefactError, match="does not match"):
        PromptRewardModel.load(tmp_path / "m")
    with pytest.raises(ArtefactError, match="no metadata.json"):
        PromptRewardModel.load(tmp_path)


def test_unfitted_model_and_wrong_dimension_fail_clearly():
    with pytest.raises(RuntimeError, match="not fitted"):
        PromptRewardModel().score(np.zeros((1, 4)), np.zeros((1, 4)))
    trained = fit_reward_model(fruit_logs(10), HashingBagOfWordsEmbedder(16), params=FAST, features="concat")
    with pytest.raises(ValueError, match="expects 16"):
        trained.model.score(np.zeros((1, 8)), np.zeros((1, 8)))


def test_validation_split_groups_by_query():
    trained = fit_reward_model(fruit_logs(), HashingBagOfWordsEmbedder(16), params=FAST)
    val = trained.model.validation_mask_
    pair, _, _ = trained.table.weighted_rows()
    qid = trained.table.query_id[pair]
    assert not set(qid[val]) & set(qid[~val])
    assert trained.validation_scores.shape == (8, 2)  # 10% of 80 queries x 2 prompts


def test_propensity_weights_and_weighted_aggregation():
    import pandas as pd

    from oirl.reward.train import TrainingTable, aggregate_outcomes, propensity_weights

    logs = pd.DataFrame({"query": ["a", "a", "b"], "prompt": ["x", "x", "y"], "reward": [1.0, 0.0, 1.0],
                         "propensity": [0.5, 0.01, 0.25]})
    w = propensity_weights(logs, clip=0.05)  # 1/0.5, 1/0.05 (clipped), 1/0.25 -> scaled to mean 1
    raw = np.array([2.0, 20.0, 4.0])
    np.testing.assert_allclose(w, raw / raw.mean())
    agg = aggregate_outcomes(logs, w).set_index(["query", "prompt"])
    assert agg.loc[("a", "x"), "n_correct"] == pytest.approx(w[0])
    assert agg.loc[("a", "x"), "n_total"] == pytest.approx(w[0] + w[1])
    assert propensity_weights(logs.assign(propensity=[0.5, None, 0.2]), 0.05) is None  # incomplete: no weights
    # BoTr by self-normalised IPS: the logging policy mostly tried y on easy questions and x on hard ones,
    # so y's plain mean flatters it; weighted by 1/μ the comparison is as if both had been tried everywhere
    easy, hard = [f"easy {i}" for i in range(5)], [f"hard {i}" for i in range(5)]
    biased = pd.DataFrame({"query": easy[:4] + hard[:1] + hard[1:5] + easy[4:],
                           "prompt": ["y"] * 5 + ["x"] * 5,
                           "reward": [1, 1, 1, 1, 0] + [0, 0, 0, 1] + [1.0],
                           "propensity": [0.9] * 4 + [0.1] + [0.9] * 3 + [0.9] + [0.1]})
    plain = TrainingTable.from_logs(biased)
    assert plain.prompts[plain.best_prompt()] == "y"  # 0.8 against 0.4
    snips = TrainingTable.from_logs(biased, propensity_weights(biased, 1e-6))
    assert snips.prompts[snips.best_prompt()] == "x"


def test_botr_is_not_decided_by_a_lucky_try_with_a_tiny_propensity():
    """Softmax exploration logs propensities down to 0.0003; unclipped, one lucky try of a prompt the
    logger disfavoured outweighs a hundred ordinary ones and makes it BoTr."""
    from oirl.reward.train import TrainingTable, best_prompt_by_value, propensity_weights

    rng = np.random.default_rng(0)
    rows = [{"query": f"q{i}", "prompt": "x", "reward": float(rng.random() < 0.6), "propensity": 0.5}
            for i in range(100)]
    rows += [{"query": f"q{i}", "prompt": "y", "reward": float(rng.random() < 0.4), "propensity": 0.5}
             for i in range(100)]
    rows.append({"query": "q100", "prompt": "y", "reward": 1.0, "propensity": 0.0005})
    logs = pd.DataFrame(rows)
    unclipped = TrainingTable.from_logs(logs, propensity_weights(logs, 1e-6))
    assert unclipped.prompts[unclipped.best_prompt()] == "y"  # what the rule was before
    assert best_prompt_by_value(logs) == "x"
    assert best_prompt_by_value(logs.drop(columns="propensity")) == "x"  # plain means without propensities


def test_the_default_prompts_evidence_says_how_sure_the_logs_are():
    from oirl.reward.train import default_prompt_evidence

    rng = np.random.default_rng(0)

    def logs(p_a: float, p_b: float, n: int) -> pd.DataFrame:
        rows = [{"query": f"q{i}", "prompt": prompt, "reward": float(rng.random() < p)}
                for i in range(n) for prompt, p in (("A: ", p_a), ("B: ", p_b))]
        return pd.DataFrame(rows)

    clear = default_prompt_evidence(logs(0.8, 0.3, 200))
    assert clear["prompt"] == "A: " and clear["runner_up"] == "B: " and clear["tries"] == 200
    assert clear["lead_ci95"][0] > 0.3 and clear["p_same_best"] == 1.0
    close = default_prompt_evidence(logs(0.52, 0.50, 100))
    assert close["lead_ci95"][0] < 0 < close["lead_ci95"][1] and close["p_same_best"] < 0.95
    assert "runner_up" not in default_prompt_evidence(logs(0.5, 0.5, 10).query("prompt == 'A: '"))
