"""Make the README pictures with the default model: docs/img/heatmap.png (the HTML heat-map
rendered by headless Chromium) and docs/img/flow.png (the flow figure). The explorer screenshot
comes from the browser test (tests/test_browser.py writes .ci-artefacts/explorer.png).

Usage: python examples/screenshots.py   (needs Chromium at /usr/bin/chromium)
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import gaflow
from gaflow.flow.constructions import DEFAULT_METHOD

TEXT = "although this dog is not cute, it is very smart."
OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model, tok = gaflow.load_model()
    methods = (DEFAULT_METHOD, "agf", "gae", "integrated_gradients")  # the default first
    exps = [gaflow.explain(model, tok, TEXT, method=m, keep_flows=m == DEFAULT_METHOD)
            for m in methods]
    page = Path(tempfile.mkdtemp()) / "heatmap.html"
    page.write_text(exps[0].to_html(exps[1:], title="gaflow · minilm-sst2"))
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", f"--screenshot={OUT / 'heatmap.png'}",
         "--window-size=900,500", page.as_uri()],
        check=True, capture_output=True,
    )
    exps[0].flow_figure(top_k=60).save(OUT / "flow.png", overwrite=True)
    print(f"wrote {OUT / 'heatmap.png'} and {OUT / 'flow.png'}")


if __name__ == "__main__":
    main()
