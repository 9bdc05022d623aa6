"""Plain-text views of explanations (terminal output of ``gaflow explain --generate``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..result import GenerationExplanation


def generation_table(exp: GenerationExplanation, top: int = 3) -> str:
    """Plain-text table: each generated token with its ``top`` contributing tokens (shares)."""
    lines = [f"{exp.method} attention flow · {exp.architecture} · prompt: {exp.prompt!r}",
             f"{'#':>3}  {'generated':<14} {'flow':>10}  top contributors (share of the flow)"]
    shares = exp.shares()
    for r, tok in enumerate(exp.generated):
        order = np.argsort(-shares[r], kind="stable")[:top]
        who = ", ".join(f"{exp.tokens[j]}@{j} {shares[r, j]:.0%}" for j in order
                        if shares[r, j] > 0)
        lines.append(f"{r:>3}  {tok:<14} {exp.flow_values[r]:>10.4g}  {who}")
    return "\n".join(lines) + "\n"
