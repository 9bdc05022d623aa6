"""Library exceptions. Each message says what went wrong and how to fix it."""

from __future__ import annotations


class GaflowError(Exception):
    """Base class of every error raised by gaflow."""


class InputError(GaflowError, ValueError):
    """A user input (text, capacities, option) is invalid."""


class ModelError(GaflowError, RuntimeError):
    """The model cannot provide what the method needs (attentions, gradients, labels)."""


class UnknownNameError(GaflowError, KeyError):
    """A name (method, information tensor, target label) is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class ConvergenceWarning(UserWarning):
    """The solver stopped before reaching its accuracy contract."""


class EmptyFlowWarning(UserWarning):
    """No flow reaches the output: every score of the explanation is 0."""
