"""Background jobs (retraining, evaluation) persisted in the store; no HTTP here."""

from oirl.jobs.evaluation import EvaluationParams, run_evaluation
from oirl.jobs.retrain import RetrainParams, retrain
from oirl.jobs.runner import JobContext, JobError, JobLost, JobRunner

EVALUATION, RETRAIN = "evaluation", "retrain"

__all__ = [
    "EVALUATION",
    "RETRAIN",
    "EvaluationParams",
    "JobContext",
    "JobError",
    "JobLost",
    "JobRunner",
    "RetrainParams",
    "retrain",
    "run_evaluation",
]
