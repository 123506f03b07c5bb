"""Browser test harness: a real `zonda up`, Debian's Chromium driven by Playwright, screenshots.

Chromium is Debian's (`apt-get install chromium`, at /usr/bin/chromium); Playwright's own browser
download is never used. In CI (CI=true) a missing Chromium or Playwright fails the tests; on a
laptop they skip with the command that installs it. Screenshots go to the folder named by
ZONDA_BROWSER_ARTIFACTS if set, else to each test's pytest `tmp_path`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.services import IN_CI

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = os.environ.get("ZONDA_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_PASSWORD = "admin-password-for-ui-tests"
VIEWER, VIEWER_PASSWORD = "vera", "viewer-password-123"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def require_browser() -> None:
    """Fail (CI) or skip (laptop) when Chromium or Playwright is missing."""
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"Chromium is not installed at {CHROMIUM}; install it with: apt-get install chromium"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright is missing; install the test extra: .venv/bin/pip install -e '.[test]'"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)


def artifacts_dir(tmp_path: Path, test_name: str) -> Path:
    """Where a test's screenshots go (ZONDA_BROWSER_ARTIFACTS/<test>, else its tmp_path)."""
    root = os.environ.get("ZONDA_BROWSER_ARTIFACTS")
    folder = Path(root) / re.sub(r"[^\w.-]+", "_", test_name) if root else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page: Page, base_url: str, user: str, password: str) -> None:
    """Log in through the login form, with the keyboard."""
    page.goto(f"{base_url}/login")
    page.fill("#user_id", user)
    page.fill("#password", password)
    page.press("#password", "Enter")
    page.wait_for_url(re.compile(r".*/dags$"))
