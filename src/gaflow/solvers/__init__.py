"""Flow solvers. They know layered graphs and nothing about transformers."""

from .api import FlowSolution, solve_flow

__all__ = ["FlowSolution", "solve_flow"]
