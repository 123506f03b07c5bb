"""The web UI in real headless Chromium against a real server: log in, trigger from the form (a bad
param, then a good one), watch the run go green live, read a task log, find the run by its business
key, check what a viewer may do, and that pages work at 1280 px and at phone width by keyboard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.harness import (
    ADMIN_PASSWORD,
    DESKTOP,
    PHONE,
    VIEWER,
    VIEWER_PASSWORD,
    artifacts_dir,
    log_in,
)
from tests.integration.server import ZondaServer
from zonda.db import components
from zonda.db.components import Component
from zonda.db.engine import make_engine, write_txn

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

DAG = "default/ui_demo"


@pytest.fixture
def shots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return artifacts_dir(tmp_path, request.node.name)


@pytest.fixture
def admin(browser: Browser, server: ZondaServer) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, server.url, "admin", ADMIN_PASSWORD)
    yield page
    context.close()


def test_login_by_keyboard_with_visible_focus(browser: Browser, server: ZondaServer, shots: Path) -> None:
    for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=size)
        page = context.new_page()
        page.goto(f"{server.url}/dags")
        page.wait_for_url(re.compile(r".*/login\?next=%2Fdags$"))
        assert page.evaluate("document.activeElement.id") == "user_id"
        assert _focus_ring(page) != "none"
        page.keyboard.type("admin")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "password"
        assert _focus_ring(page) != "none"
        page.keyboard.type("wrong password")
        page.keyboard.press("Enter")
        page.wait_for_selector("#login-error")
        assert "unknown user or wrong password" in page.inner_text("#login-error")
        page.screenshot(path=shots / f"login-error-{name}.png", full_page=True)
        page.fill("#password", ADMIN_PASSWORD)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.tagName") == "BUTTON"
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/dags$"))
        assert page.locator(f'a[href="/dags/{DAG}"]').count() == 1
        assert _no_horizontal_overflow(page, size["width"])
        page.screenshot(path=shots / f"dags-{name}.png", full_page=True)
        context.close()


def test_trigger_bad_then_good_params_and_watch_it_go_green(
    admin: Page, server: ZondaServer, shots: Path
) -> None:
    page = admin
    page.goto(f"{server.url}/dags/{DAG}")
    page.focus("details.trigger summary")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "param-name"
    assert _focus_ring(page) != "none"
    assert page.locator('label[for="param-times"]').count() == 1
    assert page.locator('label[for="run-key"]').count() == 1
    page.fill("#param-name", "ada")
    page.fill("#param-times", "many")
    page.click("#trigger-submit")
    page.wait_for_selector("#trigger-error")
    assert "times" in page.inner_text("#trigger-error")
    assert "not of type 'integer'" in page.inner_text("#err-times")
    assert page.get_attribute("#param-times", "aria-invalid") == "true"
    assert page.input_value("#param-name") == "ada"  # what was typed is kept
    page.screenshot(path=shots / "trigger-bad-param.png", full_page=True)

    page.fill("#param-times", "4")
    page.fill("#run-key", "customer-4242")
    page.click("#trigger-submit")
    page.wait_for_url(re.compile(r".*/runs/[^/?]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    page.evaluate("window.__noReload = true")
    page.wait_for_selector('#run-state[data-state="success"]', timeout=60_000)
    assert page.evaluate("window.__noReload") is True, "the page reloaded instead of updating in place"
    for task in ("greet", "items", "square", "total"):
        page.wait_for_selector(f'svg.graph .node.s-success[data-task="{task}"]', timeout=10_000)
    assert "4 success" in (page.text_content('svg.graph .node[data-task="square"] text.sub') or "")
    assert server.run(run_id)["state"] == "success"
    page.wait_for_selector("#run-actions button.danger", state="detached")  # no Cancel once it ended
    assert "1/1" in page.inner_text('#tasks tr[data-task-row="total"]')
    page.screenshot(path=shots / "run-success.png", full_page=True)

    page.click('#tasks a:text-is("total")')
    page.wait_for_selector("#task-section")
    assert "total of squares: 14" in page.inner_text("#log")
    assert "14" in page.inner_text("#task-facts > pre.preview")
    assert "square" in page.inner_text("#task-inputs") and "a list of 4 values" in page.inner_text(
        "#task-inputs"
    )
    page.screenshot(path=shots / "task-log.png", full_page=True)


def test_dag_views_and_business_key_search(admin: Page, server: ZondaServer, shots: Path) -> None:
    run_id = server.wait_run(server.trigger("ui_demo", {"name": "bob", "times": 4}, key="customer-4242"))[
        "run_id"
    ]
    page = admin
    page.goto(f"{server.url}/dags/{DAG}")
    assert page.locator(f'table.grid a[href="/runs/{run_id}"]').count() == 1
    colour = 'e => getComputedStyle(e.closest("td") || e).backgroundColor'
    success = page.eval_on_selector("table.grid td.s-success", colour)
    assert success == page.eval_on_selector('#run-state[data-state="success"], .dot.s-success', colour), (
        "a successful cell has the success colour"
    )
    page.screenshot(path=shots / "dag-grid.png", full_page=True)
    page.click('table.grid a[aria-label="expand the instances of square"]')
    page.wait_for_selector("table.grid tr.instance")
    assert page.locator("table.grid tr.instance th").all_inner_texts()[:4] == [
        f"square[{i}]" for i in range(4)
    ]
    page.screenshot(path=shots / "dag-grid-expanded.png", full_page=True)
    page.click('table.grid a[aria-label="collapse the instances of square"]')
    page.wait_for_selector("table.grid tr.instance", state="detached")
    page.goto(f"{server.url}/dags/{DAG}?tab=graph")
    page.wait_for_selector('svg.graph .node.s-success[data-task="total"]')
    page.screenshot(path=shots / "dag-graph.png", full_page=True)
    page.goto(f"{server.url}/dags/{DAG}?tab=code")
    assert "def ui_demo" in page.inner_text("pre.code")

    page.goto(f"{server.url}/search")
    page.fill("#key", "customer-4242")
    page.press("#key", "Enter")
    page.wait_for_selector("#results")
    assert page.locator(f'#results a[href="/runs/{run_id}"]').count() == 1
    page.screenshot(path=shots / "search.png", full_page=True)
    page.click(f'#results a[href="/runs/{run_id}#gantt-section"]')
    page.wait_for_selector("svg.gantt rect.bar.running")
    assert page.locator("svg.gantt rect.bar").count() >= 4


def test_mark_a_task_failed_then_successful_from_its_panel(
    admin: Page, server: ZondaServer, shots: Path
) -> None:
    run_id = server.wait_run(server.trigger("ui_demo", {"name": "mark", "times": 2}))["run_id"]
    page = admin
    page.goto(f"{server.url}/runs/{run_id}?task=total#task-section")
    assert page.locator('#task-section button:text-is("Mark success")').count() == 0, "it is already success"
    page.click('#task-section button:text-is("Mark failed")')
    page.wait_for_selector('#run-state[data-state="failed"]', timeout=15_000)
    assert server.run(run_id)["state"] == "failed"
    page.wait_for_selector('#task-section :text("marked failed by admin")')
    page.screenshot(path=shots / "task-marked-failed.png", full_page=True)
    page.click('#task-section button:text-is("Mark success")')
    page.wait_for_selector('#run-state[data-state="success"]', timeout=15_000)
    assert server.run(run_id)["state"] == "success"


def test_run_page_at_phone_width(browser: Browser, server: ZondaServer, shots: Path) -> None:
    run = server.wait_run(server.trigger("ui_demo", {"name": "phone", "times": 2}, key="phone-1"))
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    log_in(page, server.url, "admin", ADMIN_PASSWORD)
    assert _no_horizontal_overflow(page, PHONE["width"])
    page.goto(f"{server.url}/runs/{run['run_id']}")
    assert _no_horizontal_overflow(page, PHONE["width"])
    page.screenshot(path=shots / "run-phone.png", full_page=True)
    page.goto(f"{server.url}/dags/{DAG}")
    assert _no_horizontal_overflow(page, PHONE["width"])
    page.screenshot(path=shots / "dag-phone.png", full_page=True)
    context.close()


def test_viewer_sees_no_trigger_and_a_forged_post_is_refused(
    browser: Browser, server: ZondaServer, shots: Path
) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, server.url, VIEWER, VIEWER_PASSWORD)
    assert page.locator("button.toggle").count() == 0, "a viewer must not see the pause toggle"
    page.goto(f"{server.url}/dags/{DAG}")
    assert page.locator("details.trigger").count() == 0
    assert page.locator("#trigger-submit").count() == 0
    page.screenshot(path=shots / "dag-as-viewer.png", full_page=True)
    csrf = page.get_attribute('form.logout input[name="csrf"]', "value")
    before = len(server.client.get("/api/v1/runs", params={"dag_id": DAG, "limit": 500}).json()["runs"])

    forged = page.request.post(
        f"{server.url}/dags/{DAG}/trigger",
        form={"csrf": csrf or "", "param.name": "mallory", "key": "forged"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "may not operate" in forged.text()
    via_api = page.request.post(f"{server.url}/api/v1/dags/{DAG}/runs", data={"params": {"name": "x"}})
    assert via_api.status == 403
    no_csrf = page.request.post(f"{server.url}/dags/{DAG}/pause", form={"paused": "true"}, max_redirects=0)
    assert no_csrf.status == 403
    assert (
        len(server.client.get("/api/v1/runs", params={"dag_id": DAG, "limit": 500}).json()["runs"]) == before
    )
    context.close()


def test_bad_numbers_in_page_urls_get_a_422_page(admin: Page, server: ZondaServer) -> None:
    run_id = server.wait_run(server.trigger("ui_demo", {"name": "numbers", "times": 1}))["run_id"]
    for bad in ("abc", "99999999999", "-7"):
        response = admin.request.get(f"{server.url}/runs/{run_id}?task=total&map_index={bad}")
        assert response.status == 422, (bad, response.status)
        assert "map_index must be" in response.text()
    assert admin.request.get(f"{server.url}/dags/{DAG}?tab=code&version=x").status == 422


def test_forms_need_the_session_csrf_token(admin: Page, server: ZondaServer) -> None:
    refused = admin.request.post(
        f"{server.url}/dags/{DAG}/pause", form={"paused": "true", "csrf": "0" * 64}, max_redirects=0
    )
    assert refused.status == 403
    assert server.client.get(f"/api/v1/dags/{DAG}").json()["paused"] is False


def test_logout_revokes_the_session(browser: Browser, server: ZondaServer) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    log_in(page, server.url, "admin", ADMIN_PASSWORD)
    session = next(c["value"] for c in context.cookies() if c["name"] == "zonda_session")
    page.click("form.logout button")
    page.wait_for_url(re.compile(r".*/login$"))
    response = httpx.get(f"{server.url}/api/v1/dags", headers={"Authorization": f"Bearer {session}"})
    assert response.status_code == 401
    context.close()


def _focus_ring(page: Page) -> str:
    """The outline style of the focused element (what makes focus visible)."""
    return str(page.evaluate("getComputedStyle(document.activeElement).outlineStyle"))


def _no_horizontal_overflow(page: Page, width: int) -> bool:
    """Whether the page fits the viewport's width (wide tables scroll inside their own box)."""
    return bool(page.evaluate(f"document.documentElement.scrollWidth <= {width} + 1"))


def test_latency_dashboard_shows_the_apis_numbers(admin: Page, server: ZondaServer, shots: Path) -> None:
    for n in range(3):
        server.wait_run(server.trigger("ui_demo", {"name": f"metrics-{n}", "times": 3}))
    server.wait_until(
        lambda: not server.client.get("/api/v1/runs", params={"state": "running"}).json()["runs"], 60, "quiet"
    )
    page = admin
    page.goto(f"{server.url}/dashboard?window=1h")
    api = server.client.get("/api/v1/metrics/latency", params={"since": _hour_ago()}).json()["total"]
    for attr in ("transition_ms", "queue_wait_ms", "run_duration_ms"):
        card = page.locator(f'[data-figure="{attr}"]')
        for p in ("p50", "p95", "p99"):
            assert card.locator(f'[data-p="{p}"]').inner_text() == f"{api[attr][p]:.1f} ms", (attr, p)
    rate = page.locator('[data-figure="failure_rate"] [data-p="rate"]').inner_text()
    assert rate == f"{api['failure_rate'] * 100:.1f}%"
    assert api["runs_ended"] >= 3
    assert page.locator("svg.line path.series-0").count() >= 4
    page.screenshot(path=shots / "dashboard.png", full_page=True)
    page.select_option("#dag_id", DAG)
    page.click("form.inline-form button")
    page.wait_for_url(re.compile(r".*dag_id=default%2Fui_demo.*"))
    assert "Latency of default/ui_demo" in page.inner_text("h1")


def test_system_page_shows_a_live_scheduler(admin: Page, server: ZondaServer, shots: Path) -> None:
    page = admin
    page.goto(f"{server.url}/system")
    assert page.get_attribute("#system-status", "data-status") == "ok"
    assert page.locator('#schedulers tr[data-alive="true"]').count() >= 1
    assert "reachable" in page.inner_text("#database")
    page.screenshot(path=shots / "system.png", full_page=True)


def test_a_missing_scheduler_heartbeat_turns_the_system_page_red_live(
    admin: Page, server: ZondaServer, shots: Path
) -> None:
    page = admin
    page.goto(f"{server.url}/system")
    assert page.get_attribute("#system-status", "data-status") == "ok"
    page.evaluate("window.__noReload = true")
    engine = make_engine(server.db_url)
    now = datetime.now(UTC)
    gone = Component(
        "scheduler-gone",
        "scheduler",
        "other-host",
        4242,
        now - timedelta(hours=1),
        now - timedelta(minutes=10),
    )
    with write_txn(engine) as conn:
        components.register(conn, gone)
    try:
        page.wait_for_selector('#system-status[data-status="degraded"][role="alert"]', timeout=15_000)
        assert page.evaluate("window.__noReload") is True, "the page updated in place"
        row = page.locator('#schedulers tr[data-alive="false"]')
        assert "scheduler-gone" in row.inner_text() and "heartbeat missing" in row.inner_text()
        assert "scheduler-gone" in page.inner_text("#system-status")
        failed_red = "rgb(198, 40, 40)"
        badge = page.eval_on_selector(
            '#schedulers tr[data-alive="false"] .state', "e => getComputedStyle(e).backgroundColor"
        )
        alert = page.eval_on_selector("#system-status", "e => getComputedStyle(e).borderLeftColor")
        assert (badge, alert) == (failed_red, failed_red)
        page.screenshot(path=shots / "system-heartbeat-missing.png", full_page=True)
    finally:
        with write_txn(engine) as conn:
            components.unregister(conn, gone.id)
        engine.dispose()


def _hour_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).isoformat()
