"""Corpus scale on Ray: ``gaflow explain-dataset`` and ``gaflow bench --workers``.

Needs the ``ray`` extra (``pip install 'gaflow[ray]'``). Modules: :mod:`.runtime` (Ray session,
install message), :mod:`.inputs` (dataset name or CSV / JSONL / Parquet file), :mod:`.records`
(Parquet output folder and schema), :mod:`.explain` (:func:`explain_dataset`), :mod:`.bench`
(the benchmark's examples x methods on Ray actors), :mod:`.cli` (the subcommand).
"""

from .explain import RunSummary, explain_dataset

__all__ = ["RunSummary", "explain_dataset"]
