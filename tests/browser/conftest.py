"""Fixtures of the browser tests: the real services (see tests/services.py) and headless Chromium.

Debian's Chromium (/usr/bin/chromium, installed by scripts/install.sh) driven by Playwright; one
browser per test module. Screenshots go to tests/artifacts/.
"""

from pathlib import Path

import pytest

from tests.ci import unavailable
from tests.services import dovecot, redis_url, smtp_sink  # noqa: F401  (pytest fixtures)

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the module's tests; under CI=true a missing Chromium fails the run."""
    if not Path(CHROMIUM).exists():
        unavailable("Chromium is not installed at /usr/bin/chromium (scripts/install.sh installs it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
