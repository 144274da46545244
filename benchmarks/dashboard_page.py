"""The dashboard page of a published run: its size, and its load time in headless Chromium.

Load time is from the start of navigation to ``body[data-ready=true]`` (set by the page's script
once every panel has drawn), the median of ``LOADS`` loads, each in a fresh page, from disk,
with the network blocked. Chromium is Debian's (``apt-get install -y chromium``) or ``CHROMIUM``;
without it, or without Playwright, the size is still measured and the reason is recorded.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

LOADS = 3
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def measure(output: Path) -> dict[str, Any]:
    """``{"bytes", "load_seconds" | "not_loaded", "loads"}`` for ``output/report/dashboard.html``."""
    page = output / "report" / "dashboard.html"
    if not page.exists():
        return {"not_written": f"{page} is absent"}
    facts: dict[str, Any] = {"bytes": page.stat().st_size}
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        facts["not_loaded"] = "Playwright is absent (pip install -e '.[browser]')"
        return facts
    if not chromium:
        facts["not_loaded"] = "no Chromium (apt-get install -y chromium, or CHROMIUM=path)"
        return facts
    url = "file://" + str(page.resolve())
    seconds = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        try:
            for _ in range(LOADS):
                tab = browser.new_page(viewport={"width": 1300, "height": 900})
                tab.route("**/*", lambda r: r.continue_() if r.request.url == url else r.abort())
                started = time.monotonic()
                tab.goto(url)
                tab.wait_for_selector("body[data-ready=true]", timeout=120_000)
                seconds.append(time.monotonic() - started)
                tab.close()
        finally:
            browser.close()
    facts.update(load_seconds=round(statistics.median(seconds), 3), loads=[round(s, 3) for s in seconds])
    return facts


def describe(facts: dict[str, Any]) -> str:
    """One line for BENCHMARKS.md."""
    if "bytes" not in facts:
        return f"not measured: {facts.get('not_written')}"
    size = f"{facts['bytes'] / 1e6:.2f} MB"
    if "load_seconds" in facts:
        return (f"{size}, loaded in {facts['load_seconds']:.2f} s in headless Chromium "
                f"(median of {len(facts['loads'])} loads from disk)")
    return f"{size}; load time not measured: {facts['not_loaded']}"
