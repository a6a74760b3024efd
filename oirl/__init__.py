"""Prompt-OIRL: query-dependent prompt evaluation and optimisation from offline logs."""

__version__ = "0.1.0"
