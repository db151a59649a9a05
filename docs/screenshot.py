"""Make docs/report.png, the README's picture of the report: the demo run (simulated models, no
key), scored, reported, and opened in headless Chromium (network blocked) at one prompt's answers
side by side, a token's top 5 alternatives shown.

    .venv/bin/python docs/screenshot.py        (or: make screenshot)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def harness(*args: str, codes: tuple[int, ...] = (0,)) -> None:
    """Run a verb; CalledProcessError when it exits with none of `codes`."""
    command = [sys.executable, "-m", "harness", *args]
    done = subprocess.run(command, cwd=REPO, check=False, stdout=subprocess.DEVNULL)
    if done.returncode not in codes:
        raise subprocess.CalledProcessError(done.returncode, command)


def screenshot(report: Path, target: Path) -> None:
    """The report's side-by-side view of a prompt with logprobs, a token's tooltip open."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.route(
            "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
        )
        page.goto(report.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.click("nav button[data-view=records]")
        page.check("#f-logprobs")
        page.click("#rows tr >> nth=0")
        page.hover(".token >> nth=1")
        page.screenshot(path=str(target))
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "demo"
        # The run ends with a few jobs failed for good (exit 1: the demo's injected 400s).
        harness("run", "configs/demo.toml", "--output", str(output), codes=(0, 1))
        harness("rerun", "configs/demo.toml", "--output", str(output))
        harness("score", "configs/demo.toml", "--output", str(output), "--scorers", "existence")
        harness("report", str(output))
        target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "report.png"
        screenshot(output / "report.html", target)
    print(f"Screenshot: {target}")


if __name__ == "__main__":
    main()
