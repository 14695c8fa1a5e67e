"""Headless Chromium (Debian's package, driven by Playwright without a browser download) for the
page tests; `make test` installs the package when it is missing (scripts/ensure_chromium.sh)."""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Screenshots for the docs (docs/pages.md shows them); OFFLINE_EVAL_SCREENSHOTS moves them.
SCREENSHOTS = Path(os.environ.get("OFFLINE_EVAL_SCREENSHOTS", ROOT / "reports" / "screenshots"))
# The machine's network is closed: without these flags Chromium keeps trying Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def chromium_path() -> str:
    found = os.environ.get("OFFLINE_EVAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium not found: `make test` installs Debian's chromium package "
                    "(scripts/ensure_chromium.sh); or set OFFLINE_EVAL_CHROMIUM to a Chromium binary")
    return found


# Per module, not per session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it is open, and later tests that call asyncio.run() would find it.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A page with the console errors and uncaught exceptions it produced."""

    def __init__(self, page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        # Chromium's console says only "404"; keep which request failed.
        self.failed_requests: list[str] = []
        page.on("response", lambda r: self.failed_requests.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture()
def page(browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Page(context.new_page())
    context.close()


@pytest.fixture()
def serve(tmp_path):
    """serve(folder) -> base URL: the folder over HTTP on 127.0.0.1, as the Airflow plugin serves
    reports/ (pages use relative links, which file:// would hide)."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass
