"""Offline evaluation of prompt-selection policies on logged outcomes.

``evaluate(logs, embedder, dataset=..., protocol="paper"|"grouped", k=6, ...)`` returns the
report dict (methods' accuracy, Prompt-OIRL's 95% paired-bootstrap interval against BoTr,
PGR); ``render_table`` and ``plot_accuracy_vs_k`` present it.
"""

from oirl.evaluate.metrics import (
    best_single_index,
    chosen_outcomes,
    oracle_outcomes,
    paired_bootstrap_ci,
    pgr,
    random_outcomes,
)
from oirl.evaluate.report import plot_accuracy_vs_k, render_table
from oirl.evaluate.run import METHODS, evaluate, outcome_matrix
from oirl.evaluate.splits import PROTOCOLS, Split, normalise_question, split_logs

__all__ = [
    "METHODS",
    "PROTOCOLS",
    "Split",
    "best_single_index",
    "chosen_outcomes",
    "evaluate",
    "normalise_question",
    "oracle_outcomes",
    "outcome_matrix",
    "paired_bootstrap_ci",
    "plot_accuracy_vs_k",
    "render_table",
    "pgr",
    "random_outcomes",
    "split_logs",
]
