"""Take the README's screenshot: log in to the running demo and shoot a page in headless Chromium.

    scripts/run.sh            # in one terminal
    .venv/bin/python scripts/screenshot.py [--page /] [--out docs/screenshot.png]

Uses Debian's chromium through Playwright (no `playwright install` needed).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def shoot(base_url: str, username: str, password: str, page_path: str, out: Path, width: int, height: int) -> None:
    """Log in through the login form, open ``page_path`` and save a viewport screenshot."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(base_url.rstrip("/") + "/login")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("[type=submit]")
            page.wait_for_load_state("networkidle")
            if "/login" in page.url:
                raise SystemExit(f"login as {username} failed; is the demo seeded?")
            page.goto(base_url.rstrip("/") + page_path)
            page.wait_for_load_state("networkidle")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="admin-demo-pw")
    parser.add_argument("--page", default="/", help="path of the page to shoot after logging in")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args()
    shoot(args.url, args.user, args.password, args.page, Path(args.out), args.width, args.height)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
