"""Fixtures of the browser tests: one server (SQLite, real workers), users, and a Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.harness import (
    ADMIN_PASSWORD,
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWER,
    VIEWER_PASSWORD,
    require_browser,
)
from tests.integration.server import ZondaServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

DAGS = Path(__file__).with_name("dags")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZondaServer]:
    """`zonda up` over the UI test DAGs, with the admin's password set and a viewer of `default`."""
    require_browser()
    home = tmp_path_factory.mktemp("home")
    dags = shutil.copytree(DAGS, home / "dags")
    srv = ZondaServer(
        home, dags, f"sqlite:///{home / 'zonda.db'}", workers=2, env={"ZONDA_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    srv.start(expect_dags=1)
    srv.client.post("/api/v1/users", json={"user_id": VIEWER, "password": VIEWER_PASSWORD}).raise_for_status()
    srv.client.put(f"/api/v1/tenants/default/members/{VIEWER}", json={"role": "viewer"}).raise_for_status()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(server: ZondaServer) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
