"""What a result records about its making: :func:`versions`."""

from __future__ import annotations

import platform
from functools import lru_cache
from importlib import metadata

PACKAGES = ("gaflow", "torch", "transformers", "numpy", "scipy")


@lru_cache(maxsize=1)
def _lookup() -> tuple[tuple[str, str], ...]:
    out = [("python", platform.python_version())]
    for pkg in PACKAGES:
        try:
            out.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:  # pragma: no cover
            out.append((pkg, "unknown"))
    return tuple(out)


def versions() -> dict[str, str]:
    """Python's and the main packages' versions (``gaflow``, ``torch``, ``transformers``,
    ``numpy``, ``scipy``), as recorded in every result's ``config["versions"]``; looked up once
    per process."""
    return dict(_lookup())
