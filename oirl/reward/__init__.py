"""Reward models r̂(q, p) = P(correct) over sentence embeddings.

- ``PromptRewardModel``: featurisation + backend (LightGBM default, XGBoost, torch MLP);
  ``fit`` / ``predict_proba`` / ``score(query_emb, prompt_embs) -> (n_q, n_p)`` /
  ``save(dir)`` / ``PromptRewardModel.load(dir)`` (checksum-verified).
- ``fit_reward_model(logs, embedder, ...)``: DataFrame of outcomes -> ``TrainedRewardModel``.
"""

from oirl.reward.artefact import ArtefactError, read_metadata
from oirl.reward.backends import BACKENDS, LightGBMBackend, XGBoostBackend, make_backend
from oirl.reward.features import FEATURE_SETS, pair_features
from oirl.reward.model import PromptRewardModel
from oirl.reward.train import TrainedRewardModel, TrainingTable, aggregate_outcomes, fit_reward_model

__all__ = [
    "BACKENDS",
    "FEATURE_SETS",
    "ArtefactError",
    "LightGBMBackend",
    "PromptRewardModel",
    "TrainedRewardModel",
    "TrainingTable",
    "XGBoostBackend",
    "aggregate_outcomes",
    "fit_reward_model",
    "make_backend",
    "pair_features",
    "read_metadata",
]
