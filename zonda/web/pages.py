"""The UI's pages: server-rendered HTML over the service layer, acting for the session's user.

Every page but the login page needs a session (without one the browser is sent to /login); every
form that changes something carries the session's CSRF token. Errors the services raise (not found,
forbidden, bad params) become an HTML page with the same HTTP status the API would answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from zonda.api.errors import DB_UNAVAILABLE, RETRY_AFTER_S, STATUS_FOR, db_unavailable
from zonda.api.routes.deps import SESSION_COOKIE
from zonda.api.schemas import INT32_MAX, ClearRequest, MarkRequest, MarkState, TriggerRequest
from zonda.auth import tokens
from zonda.core.permissions import Action
from zonda.core.states import RunState
from zonda.errors import AuthenticationError, ParamsError, ZondaError
from zonda.services import dags, identity, logs, metrics, run_history, runs, task_details
from zonda.services.context import Services
from zonda.web import views
from zonda.web.forms import ParamField, param_fields, parse_params
from zonda.web.render import render
from zonda.web.session import (
    CSRF_FIELD,
    TENANT_COOKIE,
    CsrfError,
    LoginRequired,
    Viewer,
    check_csrf,
    viewer_of,
)

log = logging.getLogger(__name__)

Form = dict[str, str]
Handler = Callable[[Viewer, Request, Form], Response]

GRID_RUNS = 100
RECENT_RUNS = 10
SEARCH_LIMIT = 200


def services_of(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for a page handler: parse the form, authenticate, check CSRF on POST,
    run the handler in a worker thread (services are synchronous) and render errors as pages."""

    async def endpoint(request: Request) -> Response:
        form: Form = {}
        if request.method == "POST":
            body = (await request.body()).decode("utf-8", errors="replace")
            form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        return await run_in_threadpool(_serve, handler, request, form)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _serve(handler: Handler, request: Request, form: Form) -> Response:
    if "\x00" in request.url.path + request.url.query or any("\x00" in k + v for k, v in form.items()):
        return _error_page(request, 422, "the request contains a NUL character, which Zonda cannot store")
    try:
        viewer = viewer_of(request, services_of(request))
        if request.method == "POST":
            check_csrf(viewer.session, form.get(CSRF_FIELD))
        return handler(viewer, request, form)
    except LoginRequired:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response
    except CsrfError as exc:
        return _error_page(request, 403, str(exc))
    except ZondaError as exc:
        status = next((code for kind, code, _ in STATUS_FOR if isinstance(exc, kind)), 500)
        if status == 500:
            log.error("page %s failed", request.url.path, exc_info=exc)
        return _error_page(
            request, status, str(exc) if status != 500 else "internal error; see the server log"
        )
    except Exception as exc:
        if not db_unavailable(request, exc):
            raise
        page = _error_page(request, 503, DB_UNAVAILABLE)
        page.headers["Retry-After"] = str(RETRY_AFTER_S)
        return page


def _number(text: str | None, name: str) -> int | None:
    """An integer field or query parameter; None when empty; ParamsError (422) when not a number."""
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ParamsError(f"{name} must be a whole number, not {text!r}") from None
    if not -1 <= value <= INT32_MAX:
        raise ParamsError(f"{name} must be between -1 and {INT32_MAX}, not {value}")
    return value


def _error_page(request: Request, status: int, message: str) -> Response:
    return HTMLResponse(
        render("error.html", request=request, viewer=None, status=status, message=message), status
    )


def html(
    request: Request, viewer: Viewer | None, template: str, status: int = 200, **context: Any
) -> Response:
    return HTMLResponse(render(template, request=request, viewer=viewer, **context), status)


def back(path: str) -> Response:
    """After a form that changed something: see the result (Post/Redirect/Get)."""
    return RedirectResponse(path, status_code=303)


def safe_next(target: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dags"


# Login, logout, tenant ----------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    """GET shows the form; POST checks the password, sets the session cookie and goes on."""
    target = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return html(request, None, "login.html", next=target, user_id="", error=None)
    body = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
    target = safe_next(form.get("next"))
    user_id = form.get("user_id", "").strip()
    services = services_of(request)
    origin = request.client.host if request.client else ""
    try:
        session = await run_in_threadpool(
            identity.login, services.as_caller(services.principal, origin), user_id, form.get("password", "")
        )
    except AuthenticationError as exc:
        return html(request, None, "login.html", 401, next=target, user_id=user_id, error=str(exc))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=int(identity.SESSION_LIFETIME.total_seconds()),
    )
    return response


def logout(viewer: Viewer, _request: Request, _form: Form) -> Response:
    """Revoke the session token and forget the cookie."""
    parsed = tokens.parse(viewer.session)
    if parsed is not None:
        identity.revoke_token(viewer.svc, parsed[0])
    response = back("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


def choose_tenant(viewer: Viewer, request: Request, form: Form) -> Response:
    """Filter every page by one tenant (or none: every tenant the user can see)."""
    tenant = form.get("tenant", "")
    response = back(safe_next(form.get("next")))
    if tenant in viewer.tenants:
        response.set_cookie(TENANT_COOKIE, tenant, samesite="strict", httponly=True)
    else:
        response.delete_cookie(TENANT_COOKIE)
    return response


async def home(_request: Request) -> Response:
    return RedirectResponse("/dags", status_code=303)


# DAGs ---------------------------------------------------------------------------------------------


def dag_list(viewer: Viewer, request: Request, _form: Form) -> Response:
    """Every DAG the user can see (in the chosen tenant), with recent runs and import errors."""
    found = [d for d in dags.list_dags(viewer.svc) if viewer.shows(d.tenant_id)]
    errors = [e for e in dags.list_import_errors(viewer.svc) if viewer.shows(e.tenant_id)]
    recent = run_history.recent_runs(viewer.svc, [d.dag_id for d in found], RECENT_RUNS)
    return html(request, viewer, "dags.html", dags=found, errors=errors, recent=recent, Action=Action)


def set_paused(viewer: Viewer, request: Request, form: Form) -> Response:
    dag_id = request.path_params["dag_id"]
    dags.set_paused(viewer.svc, dag_id, form.get("paused") == "true")
    return back(safe_next(form.get("next")) if form.get("next") else "/dags")


@dataclass(frozen=True)
class TriggerForm:
    fields: list[ParamField]
    key: str = ""
    errors: dict[str, str] | None = None
    message: str | None = None


def dag_page(viewer: Viewer, request: Request, _form: Form) -> Response:
    """The DAG's runs grid, graph (with a run's states), code, and trigger form."""
    dag_id = request.path_params["dag_id"]
    return _dag_page(viewer, request, dag_id, request.query_params.get("tab", "grid"), None)


def _dag_page(
    viewer: Viewer, request: Request, dag_id: str, tab: str, trigger: TriggerForm | None
) -> Response:
    dag = dags.get_dag(viewer.svc, dag_id)
    spec = run_history.version_spec(viewer.svc, dag_id, dag.version)
    context: dict[str, Any] = {
        "dag": dag,
        "tab": tab,
        "can_operate": viewer.can(dag.tenant_id, Action.OPERATE),
    }
    context["trigger"] = trigger or TriggerForm(fields=param_fields(dag.params_schema, {}))
    if tab == "graph":
        version = _number(request.query_params.get("version"), "version") or dag.version
        shown = spec if version == dag.version else run_history.version_spec(viewer.svc, dag_id, version)
        context["graph"] = views.layout(shown)
        context["version"] = version
        context["versions"] = dags.list_versions(viewer.svc, dag_id)
        latest = runs.list_runs(viewer.svc, dag_id=dag_id, limit=1).runs
        run_id = request.query_params.get("run") or (latest[0].run_id if latest else None)
        run = runs.get_run(viewer.svc, run_id) if run_id else None
        context["run"] = run
        context["counts"] = views.collapse(run.tasks) if run else {}
    elif tab == "code":
        version = _number(request.query_params.get("version"), "version") or dag.version
        context["version"] = version
        context["versions"] = dags.list_versions(viewer.svc, dag_id)
        context["source"] = dags.get_version(viewer.svc, dag_id, version)
    else:
        context["tab"] = "grid"
        mapped = {t.task_id for t in spec.tasks if t.is_mapped}
        expand = [t for t in request.query_params.getlist("expand") if t in mapped]
        grid = run_history.dag_grid(viewer.svc, dag_id, spec, GRID_RUNS, expand)
        oldest_first = [(r.run_id, quote(r.run_id, safe="")) for r in reversed(grid.runs)]
        context["grid"] = grid
        context["rows"] = views.grid_rows(oldest_first, grid.task_ids, grid.cells, grid.instances)
        context["mapped"] = mapped
        context["expand"] = expand
        context["expand_limit"] = run_history.EXPAND_LIMIT
    status = 422 if trigger and trigger.errors else 200
    return html(request, viewer, "dag.html", status, **context)


def trigger(viewer: Viewer, request: Request, form: Form) -> Response:
    """Start a run from the form; bad params re-render the form with a message per field."""
    dag_id = request.path_params["dag_id"]
    dag = dags.get_dag(viewer.svc, dag_id)
    values = {k[len("param.") :]: v for k, v in form.items() if k.startswith("param.")}
    key = form.get("key", "").strip()
    try:
        params = parse_params(dag.params_schema, values)
        created = runs.trigger_run(viewer.svc, dag_id, TriggerRequest(params=params, key=key or None))
    except ParamsError as exc:
        errors = {d["param"]: d["message"] for d in exc.details}
        filled = TriggerForm(param_fields(dag.params_schema, values), key, errors, str(exc))
        return _dag_page(viewer, request, dag_id, "grid", filled)
    return back(f"/runs/{quote(created.run_id)}")


# Runs ---------------------------------------------------------------------------------------------


def run_page(viewer: Viewer, request: Request, _form: Form) -> Response:
    """A run: graph, Gantt, its tasks (mapped ones collapsed), and one task's details and log."""
    run_id = request.path_params["run_id"]
    detail = run_history.run_detail(viewer.svc, run_id)
    run = detail.run
    expand = frozenset(request.query_params.getlist("expand"))
    counts = views.collapse(run.tasks)
    context: dict[str, Any] = {
        "run": run,
        "spec": detail.spec,
        "graph": views.layout(detail.spec) if detail.spec else None,
        "counts": counts,
        "gantt": views.gantt(run.tasks, detail.attempts, viewer.svc.now(), expand),
        "expand": expand,
        "can_operate": viewer.can(run.tenant_id, Action.OPERATE),
        "active": not RunState(run.state).finished or bool(run.pending_commands),
        "failed": any(t.state in ("failed", "upstream_failed") for t in run.tasks),
        "first_of": {t.task_id: t for t in reversed(run.tasks)},
        "instances": {task_id: [t for t in run.tasks if t.task_id == task_id] for task_id in expand},
    }
    chosen = request.query_params.get("task")
    if chosen:
        map_index = _number(request.query_params.get("map_index"), "map_index")
        map_index = -1 if map_index is None else map_index
        ti = task_details.get_task_instance(viewer.svc, run_id, chosen, map_index)
        try_number = _number(request.query_params.get("try"), "try") or ti.try_number or None
        context["ti"] = ti
        context["try_number"] = try_number
        context["log_text"] = (
            logs.read_log(viewer.svc, run_id, chosen, map_index, try_number) if ti.try_number > 0 else ""
        )
    return html(request, viewer, "run.html", **context)


def clear(viewer: Viewer, request: Request, form: Form) -> Response:
    """Re-run the run's failed tasks, or one task (and downstream)."""
    run_id = request.path_params["run_id"]
    task_id = form.get("task_id") or None
    runs.clear_run(
        viewer.svc, run_id, ClearRequest(task_id=task_id, downstream=form.get("downstream") == "true")
    )
    return back(f"/runs/{quote(run_id)}" + (f"?task={quote(task_id)}" if task_id else ""))


def mark(viewer: Viewer, request: Request, form: Form) -> Response:
    """End one task (or one mapped instance) as success or failed by hand."""
    run_id = request.path_params["run_id"]
    task_id = form.get("task_id", "")
    map_index = _number(form.get("map_index"), "map_index")
    state = MarkState.FAILED if form.get("state") == MarkState.FAILED else MarkState.SUCCESS
    runs.mark_task(viewer.svc, run_id, task_id, MarkRequest(state=state, map_index=map_index))
    index = f"&map_index={map_index}" if map_index is not None else ""
    return back(f"/runs/{quote(run_id)}?task={quote(task_id)}{index}#task-section")


def cancel(viewer: Viewer, request: Request, _form: Form) -> Response:
    run_id = request.path_params["run_id"]
    runs.cancel_run(viewer.svc, run_id)
    return back(f"/runs/{quote(run_id)}")


def search(viewer: Viewer, request: Request, _form: Form) -> Response:
    """Runs with a business key, across every DAG the user can see."""
    key = request.query_params.get("key", "").strip()
    found = []
    if key:
        page_ = runs.list_runs(viewer.svc, key=key, limit=SEARCH_LIMIT)
        found = [r for r in page_.runs if viewer.shows(r.tenant_id)]
    return html(request, viewer, "search.html", key=key, runs=found)


# Latency dashboard and system --------------------------------------------------------------------

WINDOWS = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}

CHARTS = (
    ("transition", "Transition latency (upstream ended -> downstream started)", "ms", "transition_ms"),
    ("queue", "Queue wait (queued -> started)", "ms", "queue_wait_ms"),
    ("duration", "Run duration (created -> ended)", "ms", "run_duration_ms"),
)


def dashboard(viewer: Viewer, request: Request, _form: Form) -> Response:
    """Latency, failure rate and throughput over a window, per tenant or per DAG: charts and tables."""
    window = request.query_params.get("window", "24h")
    window = window if window in WINDOWS else "24h"
    dag_id = request.query_params.get("dag_id") or None
    until = viewer.svc.now()
    report = metrics.latency_report(
        viewer.svc,
        tenant=None if dag_id else viewer.tenant,
        dag_id=dag_id,
        since=until - WINDOWS[window],
        until=until,
    )
    starts = [b.start for b in report.series]
    charts = []
    for slug, title, unit, attr in CHARTS:
        values = [getattr(b, attr) for b in report.series]
        lines = [(p, [getattr(v, p) for v in values]) for p in ("p50", "p95", "p99")]
        charts.append((slug, title, views.line_chart(starts, lines, unit), attr))
    failure = views.line_chart(starts, [("failure rate", [b.failure_rate for b in report.series])], "%")
    throughput = views.line_chart(starts, [("tasks/min", [b.tasks_per_minute for b in report.series])], "")
    listed = [d for d in dags.list_dags(viewer.svc) if viewer.shows(d.tenant_id)]
    return html(
        request,
        viewer,
        "dashboard.html",
        report=report,
        window=window,
        windows=list(WINDOWS),
        dag_id=dag_id,
        dag_ids=[d.dag_id for d in listed],
        charts=charts,
        failure=failure,
        throughput=throughput,
        rows=[b for b in report.series if b.runs_ended or b.tasks_ended or b.transition_ms.count],
    )


def system(viewer: Viewer, request: Request, _form: Form) -> Response:
    """Schedulers (red when a heartbeat is missing), workers, the DB and each tenant's queue depth."""
    status = metrics.system_status(viewer.svc)
    loads = [t for t in status.tenants if viewer.shows(t.tenant_id)]
    return html(request, viewer, "system.html", system=status, loads=loads)
