"""Opening a report in a real headless browser: Debian's Chromium (``/usr/bin/chromium``)
driven by Playwright's Python package, with the flags that keep it off the network.
``open_report`` yields the page and what it saw: console errors and every request."""
import contextlib
import os
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium():
    """Playwright's sync API, or a skip saying what is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    api = pytest.importorskip("playwright.sync_api",
                              reason="playwright is not installed (pip install playwright)")
    return api.sync_playwright


@contextlib.contextmanager
def open_report(path, width=1400, height=900):
    """The report at ``path`` open in Chromium: yields (page, errors, requests)."""
    sync_playwright = chromium()
    errors, requests = [], []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True,
            viewport={"width": width, "height": height})
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"file://{path}")
            yield page, errors, requests
        finally:
            browser.close()
