"""The documentation: the site builds with ``mkdocs build --strict`` and the tutorial executes.

Both need the ``docs`` extra (``pip install -e ".[docs]"``) and skip, saying so, without it. CI
installs it, so there a broken link, a missing reference, a docstring that does not render or a
failing notebook cell is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gaflow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def _need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    _need("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


def test_site_builds_strictly(site):
    for page in ("index.html", "api/index.html", "tutorial/index.html", "results/index.html",
                 "benchmarks/results/solver/index.html"):
        assert (site / page).is_file(), page


def test_api_reference_lists_every_public_name(site):
    html = (site / "api" / "index.html").read_text(encoding="utf-8")
    missing = [n for n in gaflow.__all__
               if not n.startswith("_") and f'id="gaflow.{n}"' not in html]
    assert not missing, f"add a '::: gaflow.NAME' line to docs/api.md for: {missing}"


def test_tutorial_is_committed_with_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "execute docs/tutorial.ipynb in place"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]


def test_tutorial_executes(tmp_path, monkeypatch):
    _need("nbclient", "nbformat", "ipykernel")
    import nbformat
    from nbclient import NotebookClient

    # the kernel runs this checkout's package with this interpreter, offline
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent),
                                                os.environ.get("PATH", "")]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    kinds = {k for o in outputs for k in o.get("data", {})}
    assert {"text/html", "image/svg+xml"} <= kinds  # the heat-map and the flow graph
