"""gaflow: Generalized Attention Flow attributions for Transformer models.

Public names (stable): :func:`explain`, :func:`solve_flow`, :func:`load_model`,
:class:`Explanation`, :class:`FlowSolution`, :func:`explain_generation`,
:class:`GenerationExplanation`; the method registry: :func:`list_methods`, :func:`register_method`,
:func:`register_flow`, :func:`register_tensor`, :class:`Method`; :func:`versions`;
:func:`explain_dataset` (on Ray: ``pip install 'gaflow[ray]'``).
"""

from .api import explain, load_model
from .errors import (
    ConvergenceWarning,
    EmptyFlowWarning,
    GaflowError,
    InputError,
    ModelError,
    UnknownNameError,
)
from .generation import GenerationExplanation, explain_generation
from .info import versions
from .methods import Method, list_methods, register_flow, register_method, register_tensor
from .result import Explanation
from .scale import explain_dataset
from .solvers import FlowSolution, solve_flow

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "EmptyFlowWarning",
    "Explanation",
    "FlowSolution",
    "GaflowError",
    "GenerationExplanation",
    "InputError",
    "Method",
    "ModelError",
    "UnknownNameError",
    "__version__",
    "explain",
    "explain_dataset",
    "explain_generation",
    "list_methods",
    "load_model",
    "register_flow",
    "register_method",
    "register_tensor",
    "solve_flow",
    "versions",
]
