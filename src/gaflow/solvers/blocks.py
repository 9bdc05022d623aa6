"""Blocks of the (L, t, t) edge arrays, sized for the CPU cache.

Every Newton step of the NumPy solver makes some twenty elementwise passes over ``(L, t, t)``
arrays (conductances, gradients, residuals, the line search, the objective). Each is done block
by block, so that its temporaries stay in the cache instead of streaming ``8 L t^2`` bytes
(25 MB at ``L = 12, t = 512``) through memory several times. Reductions are added block by block,
which changes only their rounding.
"""

from __future__ import annotations

import numpy as np

# Target size of one block of one (L, t, t) float64 array. Measured on the 2-core machine of
# benchmarks/results/solver.md: the conductance formulas over L = 12, t = 512 took 89 ms in
# blocks of 2 MiB, 71 ms in 1 MiB, 15 ms in 512 KiB and 17 ms in 256 KiB; a whole solve at
# L = 12, t = 128 took 1.01 s in 2 MiB blocks and 0.75 s in 512 KiB ones (one thread, as used here).
BLOCK_BYTES = 1 << 19

Block = tuple[slice, slice]


def layer_blocks(n_layers: int, t: int) -> list[Block]:
    """Blocks ``(layers, rows)`` of an (L, t, t) array, each about ``BLOCK_BYTES`` large.

    Several whole layers per block while a layer is smaller than that, else one layer cut into
    ranges of receiving rows. ``a[block]`` is the block of an (L, t, t) array ``a``, and also of
    an (L, t) array indexed by (layer, receiving token).
    """
    layer_bytes = 8 * t * t
    if layer_bytes <= BLOCK_BYTES:
        per = BLOCK_BYTES // layer_bytes
        return [(slice(k, min(k + per, n_layers)), slice(None)) for k in range(0, n_layers, per)]
    rows = max(1, BLOCK_BYTES // (8 * t))
    return [(slice(k, k + 1), slice(i, min(i + rows, t)))
            for k in range(n_layers) for i in range(0, t, rows)]


def add_by_layer(parts: list[np.ndarray], blocks: list[Block], shape: tuple) -> np.ndarray:
    """Sum per-block ``(layers, t)`` arrays into one (L, t) array (row blocks of a layer add)."""
    if len(parts) == 1:  # one block holds every layer
        return parts[0]
    out = np.zeros(shape)
    for part, (layers, _) in zip(parts, blocks, strict=True):
        out[layers] += part
    return out
