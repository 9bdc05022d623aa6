"""gaflow: Generalized Attention Flow attributions for Transformer models.

Public names (stable): :func:`explain`, :func:`solve_flow`, :func:`load_model`,
:class:`Explanation`, :class:`FlowSolution`, :func:`register_tensor`, :func:`register_flow`,
:func:`explain_generation`, :class:`GenerationExplanation`.
"""

from .api import explain, load_model
from .errors import ConvergenceWarning, GaflowError, InputError, ModelError, UnknownNameError
from .flow.constructions import register_flow
from .flow.tensors import register_tensor
from .generation import GenerationExplanation, explain_generation
from .result import Explanation
from .solvers import FlowSolution, solve_flow

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "Explanation",
    "GenerationExplanation",
    "FlowSolution",
    "GaflowError",
    "InputError",
    "ModelError",
    "UnknownNameError",
    "__version__",
    "explain",
    "explain_generation",
    "load_model",
    "register_flow",
    "register_tensor",
    "solve_flow",
]
