"""Faithfulness evaluation: perturbations, metrics (pure functions), bootstrap, the runner."""

from .faithfulness import METRICS, average_precision, log_odds, mean_drop, top_k_f1
from .stats import bootstrap_ci

__all__ = ["METRICS", "average_precision", "bootstrap_ci", "log_odds", "mean_drop", "top_k_f1"]
