"""Checks of user inputs, shared by :func:`gaflow.explain`, :func:`gaflow.solve_flow`, the CLI and
the explorer, so that one input gets one rule and one message everywhere.

Every check raises a :class:`~gaflow.errors.InputError` (or :class:`UnknownNameError` for a
name) that says what was wrong and what to pass instead; none computes anything expensive.
"""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from pathlib import Path

import numpy as np

from .errors import InputError, UnknownNameError


def is_int(value) -> bool:
    """A Python or NumPy integer, booleans excluded (``True`` is not the position 1)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value) -> bool:
    """A Python or NumPy real number (``np.float32(0.1)`` included), booleans excluded."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def texts(text) -> tuple[bool, list[str]]:
    """``(single, texts)`` of explain's ``text``: one string or a non-empty list (any ordered
    iterable) of strings.

    A string must be non-blank and valid Unicode (no lone surrogates); bytes must be decoded
    first."""
    if isinstance(text, str):
        single, items = True, [text]
    elif isinstance(text, bytes | bytearray):
        raise InputError("text is bytes; decode it first, e.g. text.decode('utf-8')")
    elif isinstance(text, Iterable) and not isinstance(text, Mapping | Set):
        single, items = False, list(text)  # a list, tuple, array, Series, generator
    else:
        raise InputError(
            f"text must be a string or a list of strings, got {type(text).__name__}"
        )
    if not items:
        raise InputError("no text to explain: pass a string or a non-empty list of strings")
    for k, t in enumerate(items):
        if isinstance(t, bytes | bytearray):
            raise InputError(f"text #{k} is bytes; decode it first, e.g. text.decode('utf-8')")
        if not isinstance(t, str):
            raise InputError(f"text #{k} is a {type(t).__name__}, not a string")
        if not t.strip():
            raise InputError(f"text #{k} is empty or whitespace only")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"text #{k} is not valid Unicode: a lone surrogate {t[exc.start]!r} at "
                f"character {exc.start} (decode the source with errors='replace')"
            ) from None
    return single, items


def flag(value, name: str) -> bool:
    """A yes/no option: ``True`` or ``False`` only (a string such as ``"False"`` is truthy)."""
    if not isinstance(value, bool | np.bool_):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def name(value, what: str) -> str:
    """A name option (method, backend): a string."""
    if not isinstance(value, str):
        raise InputError(f"{what} must be a name (a string), got {value!r}")
    return value


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1 (bools and floats rejected)."""
    if not is_int(value) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def mu(value) -> float | None:
    """The barrier weight: ``None`` or a positive finite real number."""
    if value is None:
        return None
    if not is_real(value) or not np.isfinite(float(value)) or float(value) <= 0:
        raise InputError(f"mu must be a positive finite number or None, got {value!r}")
    return float(value)


def rtol(value) -> float:
    """The solver accuracy: a real number in (0, 1)."""
    if not is_real(value) or not 0 < float(value) < 1:
        raise InputError(f"rtol must be a number in (0, 1), got {value!r}")
    return float(value)


def positions(value, name: str = "outputs") -> list[int] | None:
    """A list of token positions: ``None`` or a sequence (list, tuple, range, 1-D integer array)
    of integers. Floats (``1.7`` and ``1.0`` alike), bools, strings and a bare integer are
    rejected; the range is checked by :func:`check_range` once the token count is known."""
    if value is None:
        return None
    if is_int(value):
        raise InputError(f"{name} must be a list of token positions, got the number {value!r}; "
                         f"write [{int(value)}]")
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise InputError(f"{name} must be a 1-D list of positions, got shape {value.shape}")
        value = list(value)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InputError(f"{name} must be a list of integer token positions, got {value!r}")
    items = list(value)
    if not items:
        raise InputError(f"{name} must name at least one token position (or be None for all)")
    for p in items:
        if not is_int(p):
            raise InputError(f"{name} must be integer token positions, got {p!r} "
                             f"({type(p).__name__})")
    return [int(p) for p in items]


def check_range(pos: list[int] | None, n_tokens: int, name: str = "output position") -> None:
    """Every position ``p`` must satisfy ``-n_tokens <= p < n_tokens``."""
    for p in pos or ():
        if not -n_tokens <= p < n_tokens:
            raise InputError(f"{name} {p} is out of range for {n_tokens} tokens")


def explain_outputs(value) -> str | list[int]:
    """explain's ``outputs``: ``"all"``, ``"first"`` or a list of positions (see
    :func:`positions`)."""
    if isinstance(value, str):
        if value in ("all", "first"):
            return value
        raise InputError(f"outputs must be 'all', 'first' or a list of positions, got {value!r}")
    if value is None:
        raise InputError("outputs must be 'all', 'first' or a list of positions, got None")
    return positions(value)


def max_length(value, n_special: int, model_limit: int) -> int:
    """explain's token limit: ``None`` (the model's limit) or an int that leaves room for at
    least one text token beside the ``n_special`` tokens the tokenizer adds. A value above the
    model's limit (what its position embeddings take) means that limit: longer texts are then
    refused, or cut and reported ``truncated``, as with ``None``."""
    if value is None:
        return model_limit
    if not is_int(value) or value < 1:
        raise InputError(f"max_length must be a positive integer or None, got {value!r}")
    if value <= n_special:
        raise InputError(
            f"max_length={value} leaves no room for text: the tokenizer adds {n_special} "
            f"special tokens, so max_length must be at least {n_special + 1}"
        )
    return min(int(value), model_limit)


def backend(value) -> str:
    """A flow-solver backend name (:data:`gaflow.solvers.api.BACKENDS`)."""
    from .solvers.api import BACKENDS

    if not isinstance(value, str) or value not in BACKENDS:
        raise InputError(f"unknown backend {value!r}; known: {', '.join(BACKENDS)}")
    return value


def device(backend: str, value):
    """``None`` or a usable torch device for ``backend="torch"``; anything else is an error
    that names the device (``"bogus"``, ``"cuda"`` without CUDA, ``"cuda:3"`` of 1 GPU)."""
    if value is None:
        return None
    if backend != "torch":
        raise InputError("device applies to backend='torch' only")
    import torch

    if not isinstance(value, str | torch.device):
        raise InputError(f"device must be a string such as 'cpu' or 'cuda', got {value!r}")
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(
            f"unknown device {str(value)!r}: use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(value)!r} was asked for, but torch sees no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {str(value)!r}: torch sees only "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type not in ("cpu", "mps", "xpu"):
        raise InputError(f"device {str(value)!r}: the solver runs on 'cpu', 'cuda' (also 'mps', "
                         "'xpu'), not on a device of type " + repr(dev.type))
    elif dev.type != "cpu":
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"device {str(value)!r} is not usable here: {first}") from None
    return dev


def real_capacities(c, where: str = "capacities"):
    """Refuse complex capacities before any cast could drop imaginary parts;
    return ``c`` unchanged otherwise."""
    if hasattr(c, "is_complex"):  # a torch tensor
        if c.is_complex():
            raise InputError(f"{where} must be real numbers, got a complex tensor ({c.dtype})")
        return c
    if np.iscomplexobj(c):
        raise InputError(f"{where} must be real numbers, got complex values; pass .real or "
                         "abs() explicitly")
    return c


def target(config, value) -> int | None:
    """A requested class: ``None`` (the predicted one), a class index (int, or a string of
    digits) or a label name of ``config.label2id`` (case and surrounding spaces ignored)."""
    if value is None:
        return None
    n = getattr(config, "num_labels", None)
    if is_int(value):
        idx = int(value)
    elif isinstance(value, str):
        label2id = {str(k).strip().lower(): int(v)
                    for k, v in (getattr(config, "label2id", None) or {}).items()}
        key = value.strip().lower()
        if key in label2id:
            return label2id[key]
        if re.fullmatch(r"[+-]?\d+", key):
            idx = int(key)
        else:
            names = ", ".join(str(k) for k in (getattr(config, "label2id", None) or {}))
            raise UnknownNameError(
                f"unknown target label {value!r}; the model's labels are {names} "
                "(or pass a class index)"
            )
    else:
        raise InputError(f"target must be a class index or label name, got {value!r}")
    if isinstance(n, int) and n > 0 and not 0 <= idx < n:
        raise InputError(f"target {idx} out of range for a model with {n} classes")
    return idx


def output_path(path, force: bool = False) -> Path:
    """A file ``-o`` may write: not a folder, in an existing writable folder, and not an
    existing file unless ``force``. Checked before anything is computed."""
    p = Path(path)
    if str(path) == "" or p.is_dir():
        raise InputError(f"{str(path) or 'the output path'!s} is a folder; give a file name, "
                         f"e.g. {p / 'explanation.json'}")
    parent = p.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: the folder {parent} does not exist")
    if p.exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"cannot write {path}: permission denied")
    return p


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


def looks_like_hub_id(name: str) -> bool:
    """Whether ``name`` has the form of a Hugging Face hub id (``name`` or ``org/name``)."""
    return bool(_HUB_ID.fullmatch(name)) and ".." not in name and "--" not in name


def model_location(name: str) -> Path | None:
    """For a model name that is not a zoo name: the local folder (checked: it holds a
    ``config.json``), or ``None`` when ``name`` can only be a hub id. A path that does not exist
    and cannot be a hub id is an error that says so."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(
                f"model folder {name!r} holds no config.json: pass a folder written by "
                "`gaflow train`, or a model directory with config.json, the weights and the "
                "tokenizer files"
            )
        return path
    if path.exists():
        raise InputError(f"model path {name!r} is a file; pass the folder that holds it")
    if not looks_like_hub_id(name) or name.startswith((".", "~")):
        raise InputError(f"model path {name!r} does not exist")
    return None
