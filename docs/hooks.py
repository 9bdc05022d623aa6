"""mkdocs hook: publish the committed benchmark results that live outside ``docs/``.

The pages in ``docs/`` link to ``../benchmarks/results/*.md`` (so the links also work when the
files are read on a code host). This hook adds those files (and the figures next to them) to the
site under the same repository-relative paths and rewrites such links for the site, so a broken
link still fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
#: repository files published next to the docs pages (paths relative to the repository root)
EXTERNAL = ["benchmarks/results/*.md", "benchmarks/results/*.png", "results/*/*.png"]
_LINK = re.compile(r"(\]\()((?:\.\./)+)([^)\s#]+)")


def _external() -> list[str]:
    return sorted({p.relative_to(ROOT).as_posix() for g in EXTERNAL for p in ROOT.glob(g)})


def on_files(files, config):
    for rel in _external():
        files.append(File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    """``../benchmarks/results/x.md`` from ``docs/page.md`` -> ``benchmarks/results/x.md``."""
    here = posixpath.dirname(page.file.src_uri)
    depth = len(here.split("/")) if here else 0
    published = set(_external())

    def fix(m: re.Match) -> str:
        ups = len(m.group(2)) // 3
        target = m.group(3)
        if ups != depth + 1 or target not in published:
            return m.group(0)
        return m.group(1) + "../" * depth + target

    return _LINK.sub(fix, markdown)
