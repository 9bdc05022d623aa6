"""Information tensors and the layered flow graph."""

from .graph import LayeredGraph, build_graph
from .tensors import INFORMATION_TENSORS, information_tensor, register_tensor

__all__ = [
    "INFORMATION_TENSORS",
    "LayeredGraph",
    "build_graph",
    "information_tensor",
    "register_tensor",
]
