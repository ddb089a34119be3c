"""The screenshots of the README and docs/report.md: the report of the demo's store, the live
review page, and its failing patterns with their best candidate fixes.

    selflearn demo                     # writes out/demo (a few minutes)
    python docs/screenshots.py         # writes docs/images/report.png, review.png and candidates.png

Needs Debian's chromium (``apt-get install chromium``) and Playwright (a dev dependency); the
review page runs on a copy of the demo's store, so the demo's own store is not changed.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--demo", type=Path, default=Path("out/demo"), help="the folder `selflearn demo` wrote"
    )
    parser.add_argument("--out", type=Path, default=IMAGES)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    store = args.demo / "demo.duckdb"
    if chromium is None:
        parser.error("chromium is not installed (apt-get install chromium)")
    if not store.exists():
        parser.error(f"no demo store at {store}: run `selflearn demo` first")
    import uvicorn
    from playwright.sync_api import sync_playwright

    from selflearn.service import ServiceConfig, create_app

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        subprocess.run(
            [sys.executable, "-m", "selflearn", "report", "--store", str(store), "--out", str(report)]
            + (["--rewriter", str(args.demo / "rewriter")] if (args.demo / "rewriter").exists() else []),
            check=True,
        )
        live = Path(tmp) / "live.duckdb"
        shutil.copy(store, live)
        port = _free_port()
        config = ServiceConfig(rewriter=args.demo / "rewriter", store=live, request_timeout_ms=5000)
        server = uvicorn.Server(uvicorn.Config(create_app(config), port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(report.as_uri())
                page.screenshot(path=str(args.out / "report.png"))
                page = browser.new_page(viewport={"width": 1500, "height": 700})
                page.goto(f"http://127.0.0.1:{port}/ui")
                page.evaluate("document.querySelector('#rules').scrollIntoView({block: 'start'})")
                page.evaluate("window.scrollBy(0, -190)")
                page.screenshot(path=str(args.out / "review.png"))
                page.evaluate(
                    "document.querySelector('#candidates-offered').scrollIntoView({block: 'start'})"
                )
                page.evaluate("window.scrollBy(0, -10)")
                page.screenshot(path=str(args.out / "candidates.png"))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    print(f"wrote {args.out / 'report.png'}, {args.out / 'review.png'} and {args.out / 'candidates.png'}")


if __name__ == "__main__":
    main()
