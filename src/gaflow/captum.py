"""A captum-style front door: ``GAF(model).attribute(input_ids, target=...)`` returns a tensor.

For code built around captum (``captum.attr``): :class:`GAF` is a ``captum.attr.Attribution``
whose :meth:`GAF.attribute` takes token ids (as a captum ``LayerIntegratedGradients`` on the
embeddings would) and returns one score per token, (B, t), zero at padding. Any registered
method works (``method=``); the default is the default flow of :func:`gaflow.explain`, whose
scores it returns exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from captum.attr import Attribution

from . import validate
from .api import control_ids
from .capture import ensure_eager
from .errors import InputError
from .flow.constructions import DEFAULT_METHOD
from .methods import Request, get_method
from .methods.base import method_options


class GAF(Attribution):
    """Token attributions of a sequence classifier by a gaflow method, captum style.

    Args:
        model: a Hugging Face sequence classifier (switched to eager attention if needed).
        method: a registered method (``gaflow methods``); default ``agf_cp``.
        tokenizer: needed by the baselines that replace tokens (``integrated_gradients``,
            ``occlusion``, ...) and to mark special tokens; the flows do without.
        **options: the method's options of :func:`gaflow.explain` (``outputs``, ``mu``, ...).
    """

    def __init__(self, model: torch.nn.Module, method: str = DEFAULT_METHOD, tokenizer=None,
                 **options):
        super().__init__(model)
        self.model, self.tokenizer = model, tokenizer
        self.method = get_method(validate.name(method, "method"))
        self.options = method_options(self.method, **options)  # explain's checks
        if self.method.kind != "flow" and tokenizer is None:
            raise InputError(f"the baseline {method!r} needs the tokenizer: GAF(model, "
                             f"{method!r}, tokenizer=tokenizer)")

    def has_convergence_delta(self) -> bool:
        return False

    def attribute(self, inputs: torch.Tensor, target: int | Sequence[int] | torch.Tensor |
                  None = None, attention_mask: torch.Tensor | None = None,
                  token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Scores for every token of a batch of token ids.

        Args:
            inputs: (B, t) integer token ids, special tokens included (as the tokenizer
                returns them).
            target: the class to explain: one index for all, one per example (list or
                tensor), or ``None`` for each example's predicted class.
            attention_mask: (B, t), 1 for real tokens (default: all real).
            token_type_ids: (B, t), passed to the model when given.

        Returns:
            (B, t) float tensor on ``inputs``' device: each real token's score (the same as
            :func:`gaflow.explain` gives), 0 at padding.
        """
        ids = self._check(inputs, "inputs")
        n, t = ids.shape
        mask = (torch.ones_like(ids) if attention_mask is None
                else self._check(attention_mask, "attention_mask", (n, t)))
        model_inputs = {"input_ids": ids, "attention_mask": mask}
        if token_type_ids is not None:
            model_inputs["token_type_ids"] = self._check(token_type_ids, "token_type_ids", (n, t))
        targets = self._targets(target, n)
        real = mask.bool().cpu().numpy()
        special = self._special(ids) & real
        ensure_eager(self.model)
        device = next(self.model.parameters()).device
        out = torch.zeros(n, t, dtype=torch.float64)
        for tgt in dict.fromkeys(targets):  # one pass per distinct requested target
            rows = [b for b in range(n) if targets[b] == tgt]
            sub = {k: v[rows].to(device) for k, v in model_inputs.items()}
            res = self.method.attribute(Request(self.model, self.tokenizer, sub, tgt, real[rows],
                                                special[rows], self.options))
            for k, b in enumerate(rows):
                out[b, torch.from_numpy(np.flatnonzero(real[b]))] = torch.from_numpy(
                    np.asarray(res.scores[k], dtype=np.float64))
        return out.to(inputs.device)

    @staticmethod
    def _check(x, what: str, shape: tuple[int, int] | None = None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.dtype.is_floating_point \
                or x.dtype == torch.bool or x.shape[1] == 0:
            raise InputError(f"{what} must be a (batch, tokens) integer tensor, got "
                             f"{getattr(x, 'shape', type(x).__name__)} "
                             f"{getattr(x, 'dtype', '')}".rstrip())
        if shape is not None and tuple(x.shape) != shape:
            raise InputError(f"{what} has shape {tuple(x.shape)}, inputs {shape}")
        return x

    def _targets(self, target, n: int) -> list[int | None]:
        if isinstance(target, torch.Tensor | np.ndarray):
            target = target.tolist()  # a 0-d tensor or array gives one number
        if isinstance(target, np.generic):
            target = target.item()
        if target is None or isinstance(target, int | str):
            one = validate.target(self.model.config, target)
            return [one] * n
        if not isinstance(target, Sequence):
            raise InputError(f"target must be a class (index or label), one per example (a "
                             f"list or tensor) or None, got {type(target).__name__}")
        target = list(target)
        if len(target) != n:
            raise InputError(f"target has {len(target)} entries for {n} examples")
        return [validate.target(self.model.config, x) for x in target]

    def _special(self, ids: torch.Tensor) -> np.ndarray:
        if self.tokenizer is None:
            return np.zeros(tuple(ids.shape), dtype=bool)
        return np.isin(ids.cpu().numpy(), sorted(control_ids(self.tokenizer)))
