"""One interface and one registry for every attribution method: the flows and the baselines.

A method is an object with a name, a kind (``"flow"`` or ``"baseline"``), a one-line
description and :meth:`Method.attribute`, which takes one padded batch (:class:`Request`) and
returns :class:`Attributions`. :func:`gaflow.explain` is tokenize -> ``method.attribute`` ->
:class:`~gaflow.result.Explanation`, whatever the method; :func:`register_method` adds a method
(a :class:`Method` object, or a plain baseline function) the same way for every kind.

Sign convention, for every method in one place: a **positive score means the token supports the
explained (target) class**: removing it lowers the target logit / probability, or flow reaches the
output through it. Attention- and flow-based methods are >= 0 by construction; gradient methods
(``grad_input``, ``integrated_gradients``, ``cat``, ``attcat``) and ``occlusion`` can be negative.
Scores are per token, special tokens included, over the real (non-padding) tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError, UnknownNameError

#: the options of :func:`gaflow.explain` that some methods take, with their defaults
OPTION_DEFAULTS: dict[str, Any] = {
    "outputs": "all", "mu": None, "rtol": 1e-6, "keep_flows": False, "backend": "numpy",
    "device": None,
}


@dataclass
class Request:
    """One padded batch as :meth:`Method.attribute` receives it.

    Attributes:
        model, tokenizer: the classifier (eval mode, eager attention) and its tokenizer.
        inputs: tokenizer output on the model's device (``input_ids``, ``attention_mask``, ...).
        target: the requested class index for every example, ``None`` = each one's prediction.
        mask: (B, t) bool, real tokens.
        special: (B, t) bool, special tokens ([CLS], [SEP], ...) among the real ones.
        options: the method's options (:data:`OPTION_DEFAULTS` keys it accepts).
    """

    model: torch.nn.Module
    tokenizer: object
    inputs: dict[str, torch.Tensor]
    target: int | None
    mask: np.ndarray
    special: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)

    def real(self, b: int) -> np.ndarray:
        return np.flatnonzero(self.mask[b])


@dataclass
class Batch:
    """One padded batch as a baseline *function* sees it (the target resolved).

    Attributes:
        model, tokenizer, inputs, mask, special: as in :class:`Request`.
        targets: (B,) resolved target class per example.
    """

    model: torch.nn.Module
    tokenizer: object
    inputs: dict[str, torch.Tensor]
    targets: list[int]
    mask: np.ndarray
    special: np.ndarray

    def real(self, b: int) -> np.ndarray:
        return np.flatnonzero(self.mask[b])


@dataclass
class Attributions:
    """What a method returns for a batch of B examples.

    Attributes:
        logits: (B, C) float64 class logits of the unperturbed inputs.
        targets: (B,) the explained class of each example.
        scores: per example, (n_real,) float64 scores over its real tokens.
        values: per example, the total (the flow value for a flow; the score sum otherwise).
        flows: per example, the (L, t, t) edge flows, or ``None``.
        solver: per example, the routing's record (iterations, convergence), or ``None``.
        config: the method's settings, recorded on every :class:`~gaflow.result.Explanation`.
    """

    logits: np.ndarray
    targets: np.ndarray
    scores: list[np.ndarray]
    values: list[float]
    flows: list[np.ndarray | None] | None = None
    solver: list[dict | None] | None = None
    config: dict[str, Any] = field(default_factory=dict)


class Method:
    """Base of every attribution method.

    Subclasses set ``kind`` and ``options`` (the names in :data:`OPTION_DEFAULTS` they take)
    and implement :meth:`attribute`.
    """

    kind: str = "baseline"
    options: tuple[str, ...] = ()
    #: added to the refusal of an option the method does not take: what to use instead
    hint: str = ""

    def __init__(self, name: str, description: str = "", reference: str = ""):
        self.name, self.description, self.reference = name, description, reference

    def attribute(self, request: Request) -> Attributions:  # pragma: no cover - interface
        raise NotImplementedError

    def check_options(self, given: dict[str, Any]) -> None:
        """Refuse an option set away from its default that this method does not take."""
        extra = [k for k, v in given.items() if k not in self.options and v != OPTION_DEFAULTS[k]]
        if extra:
            takes = (f"it takes only {', '.join(self.options)}" if self.options else
                     "it takes none of explain's method options (outputs, mu, rtol, "
                     "keep_flows, backend, device)")
            raise InputError(
                f"{', '.join(extra)} {'does' if len(extra) == 1 else 'do'} not apply to the "
                f"{self.kind} {self.name!r} ({self.summary()}); {takes}{self.hint}"
            )

    def summary(self) -> str:
        """One line: what the method is."""
        return self.description or self.reference or self.kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.summary()}>"


def method_options(method: Method, **given) -> dict[str, Any]:
    """The options of :data:`OPTION_DEFAULTS` for ``method``: each checked by the rule of
    :mod:`gaflow.validate`, one set away from its default that the method does not take refused
    (:meth:`Method.check_options`); returns those the method takes. The one check of
    :func:`gaflow.explain`, :class:`gaflow.captum.GAF` and ``explain_dataset``."""
    from .. import validate

    unknown = sorted(set(given) - set(OPTION_DEFAULTS))
    if unknown:
        raise InputError(f"unknown options {unknown}; known: {', '.join(OPTION_DEFAULTS)}")
    opts = {**OPTION_DEFAULTS, **given}
    opts.update(outputs=validate.explain_outputs(opts["outputs"]), mu=validate.mu(opts["mu"]),
                rtol=validate.rtol(opts["rtol"]),
                keep_flows=validate.flag(opts["keep_flows"], "keep_flows"))
    method.check_options(opts)
    validate.device(validate.backend(opts["backend"]), opts["device"])
    return {k: v for k, v in opts.items() if k in method.options}


MethodFn = Callable[[Batch], list[np.ndarray]]


class Baseline(Method):
    """A baseline given as a function ``fn(batch: Batch) -> per-example scores``: one forward
    pass gives the logits and resolves the targets, then ``fn`` scores the tokens."""

    kind = "baseline"

    def __init__(self, name: str, fn: MethodFn, reference: str = "", description: str = ""):
        super().__init__(name, description or reference, reference)
        self.fn = fn

    def attribute(self, request: Request) -> Attributions:
        from ..capture import resolve_targets

        model = request.model
        model.eval()
        with torch.no_grad():
            logits = model(**request.inputs).logits
        targets = resolve_targets(logits, [request.target] * request.mask.shape[0])
        batch = Batch(model, request.tokenizer, request.inputs, [int(t) for t in targets],
                      request.mask, request.special)
        scores = [np.asarray(s, dtype=np.float64) for s in self.fn(batch)]
        return Attributions(
            logits=logits.detach().double().cpu().numpy(), targets=np.asarray(targets),
            scores=scores, values=[float(s.sum()) for s in scores],
        )


#: every registered method by name, in registration order (:func:`method_names` lists the flows
#: first, the default leading)
METHODS: dict[str, Method] = {}


def register_method(method: Method | str, fn: MethodFn | None = None, reference: str = "", *,
                    overwrite: bool = False) -> Method:
    """Add a method usable as ``gaflow.explain(..., method=name)``, the CLI and the explorer.

    Args:
        method: a :class:`Method` object, or the name of a baseline given by ``fn``.
        fn: for a name, ``fn(batch: Batch) -> list of (n_real,) score arrays``.
        reference: for a name, where the method comes from (shown by ``gaflow methods``).
        overwrite: replace a method of the same name.
    """
    if isinstance(method, str):
        if not method:
            raise InputError("a method needs a non-empty string name")
        if not callable(fn):
            raise InputError(f"method {method!r} needs a function fn(batch) -> scores")
        method = Baseline(method, fn, reference)
    elif not isinstance(method, Method) or fn is not None:
        raise InputError("register_method takes a Method object, or a name and a function")
    if not isinstance(method.name, str) or not method.name:
        raise InputError("a method needs a non-empty string name")
    if method.name in METHODS and not overwrite:
        raise InputError(f"method {method.name!r} exists; pass overwrite=True to replace it")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method ``name`` (:class:`~gaflow.errors.UnknownNameError` otherwise)."""
    _load_builtins()
    if not isinstance(name, str) or name not in METHODS:
        raise UnknownNameError(f"unknown method {name!r}; known: {', '.join(method_names())}")
    return METHODS[name]


def method_names(kind: str | None = None) -> list[str]:
    """Registered method names, flows first (the default leads); ``kind`` filters."""
    _load_builtins()
    flows = [n for n, m in METHODS.items() if m.kind == "flow"]
    from ..flow.constructions import DEFAULT_METHOD

    flows.sort(key=lambda n: n != DEFAULT_METHOD)  # stable: registration order otherwise
    names = flows + [n for n, m in METHODS.items() if m.kind != "flow"]
    return names if kind is None else [n for n in names if METHODS[n].kind == kind]


def _load_builtins() -> None:
    from .. import methods  # noqa: F401  (the package registers the built-in methods)


def target_logits(logits: torch.Tensor, targets: Sequence[int]) -> torch.Tensor:
    """Sum over the batch of each example's target logit (one backward gives every gradient)."""
    idx = torch.tensor(list(targets), device=logits.device)
    return logits.gather(1, idx[:, None]).sum()


def attentions_of(batch: Batch, grad: bool = False):
    """Forward pass with attentions and hidden states; the model's outputs."""
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        out = batch.model(**batch.inputs, output_attentions=True, output_hidden_states=True)
    return out
