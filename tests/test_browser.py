"""A real browser drives ``gaflow serve``: headless Chromium via Playwright, default model.

Skipped when Chromium or Playwright is missing, unless GAFLOW_REQUIRE_BROWSER=1 (set by CI), where
a missing browser is a failure. The screenshot path is printed (CI keeps it as an artefact).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GAFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTEFACTS = Path(os.environ.get("GAFLOW_ARTEFACTS", Path(__file__).parents[1] / ".ci-artefacts"))


def _need_browser():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM}")
    if missing:
        msg = "browser test needs " + " and ".join(missing)
        if os.environ.get("GAFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    _need_browser()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gaflow.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                pytest.fail(f"gaflow serve exited: {proc.stdout.read()}")
            try:
                urllib.request.urlopen(url + "api/info", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail("gaflow serve did not answer within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_explorer_in_chromium(server):
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(server)
            page.wait_for_function("document.querySelectorAll('#method option').length >= 3")
            assert page.text_content("#model") == "minilm-sst2"
            page.fill("#text", "a gorgeous, witty, seductive movie.")
            page.click("#go")
            page.wait_for_selector("#heatmap .tok", timeout=60_000)
            assert "prediction: positive" in page.text_content("#prediction")
            tokens = page.locator("#heatmap .subwords .tok")
            assert tokens.count() == 10  # [CLS] a gorgeous , witty , seductive movie . [SEP]
            backgrounds = {tokens.nth(k).evaluate("e => getComputedStyle(e).backgroundColor")
                           for k in range(tokens.count())}
            assert len(backgrounds) > 3  # coloured by score, not one flat colour
            assert page.locator("#flow svg line.edge").count() > 10
            assert " s" in page.text_content("#meta")
            # a bad input gets its message, not a crash
            page.fill("#text", "   ")
            page.click("#go")
            page.wait_for_function("document.querySelector('#error').textContent.length > 0")
            assert "empty" in page.text_content("#error")
            page.fill("#text", "a gorgeous, witty, seductive movie.")
            page.click("#go")
            page.wait_for_function("document.querySelector('#error').textContent === '' && "
                                   "!document.querySelector('#go').disabled")
            assert page.text_content("#meta").endswith(" s")
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTEFACTS / "explorer.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nexplorer screenshot: {shot}")
        finally:
            browser.close()
