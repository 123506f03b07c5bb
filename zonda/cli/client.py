"""A typed HTTP client for the Zonda API (what the remote CLI commands use).

Connection failures become `ServerUnavailableError`; error bodies (`{"error": {...}}`) become `ApiError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from zonda.api.schemas import (
    BackfillResult,
    ClearRequest,
    CommandAccepted,
    DagRecord,
    ImportErrorRecord,
    PoolRecord,
    RunPage,
    RunRecord,
    TriggerRequest,
    WorkerRecord,
)
from zonda.errors import ServerUnavailableError, ZondaError

_DAGS = TypeAdapter(list[DagRecord])
_IMPORT_ERRORS = TypeAdapter(list[ImportErrorRecord])
_POOLS = TypeAdapter(list[PoolRecord])
_WORKERS = TypeAdapter(list[WorkerRecord])


class ApiError(ZondaError):
    """The server refused a request; carries the API's error code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details


class ZondaClient:
    """One server's API; use as a context manager so the connection pool is closed."""

    def __init__(self, server_url: str, timeout: float = 30.0) -> None:
        self.server_url = server_url.rstrip("/")
        self._http = httpx.Client(base_url=self.server_url, timeout=timeout)

    def __enter__(self) -> ZondaClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._http.close()

    # Runs ---------------------------------------------------------------------------------------

    def trigger(self, dag_id: str, params: Mapping[str, Any], key: str | None = None) -> RunRecord:
        """Start a run now (POST /dags/{id}/runs)."""
        body = TriggerRequest(params=dict(params), key=key).model_dump(mode="json")
        return RunRecord.model_validate(self._json("POST", f"{_dag_path(dag_id)}/runs", json=body))

    def run(self, run_id: str) -> RunRecord:
        """A run and its tasks."""
        return RunRecord.model_validate(self._json("GET", f"/api/v1/runs/{_seg(run_id)}"))

    def runs(self, **filters: Any) -> RunPage:
        """Runs filtered by dag_id, key, state, created_after/before, limit, cursor (None = no filter)."""
        params = {k: _query_value(v) for k, v in filters.items() if v is not None}
        return RunPage.model_validate(self._json("GET", "/api/v1/runs", params=params))

    def clear(self, run_id: str, task_id: str | None = None, downstream: bool = False) -> CommandAccepted:
        """Ask the scheduler to re-run failed tasks, or one task (and downstream)."""
        body = ClearRequest(task_id=task_id, downstream=downstream).model_dump(mode="json")
        return CommandAccepted.model_validate(
            self._json("POST", f"/api/v1/runs/{_seg(run_id)}/clear", json=body)
        )

    def log(self, run_id: str, task_id: str, map_index: int = -1, try_number: int | None = None) -> str:
        """One attempt's log text (the latest attempt unless `try_number` is given)."""
        params: dict[str, Any] = {"map_index": map_index}
        if try_number is not None:
            params["try_number"] = try_number
        path = f"/api/v1/runs/{_seg(run_id)}/tasks/{_seg(task_id)}/logs"
        return self._send("GET", path, params=params).text

    def backfill(self, dag_id: str, start: datetime, end: datetime) -> BackfillResult:
        """Create the missing scheduled runs in [start, end]."""
        body = {"start": start.isoformat(), "end": end.isoformat()}
        return BackfillResult.model_validate(self._json("POST", f"{_dag_path(dag_id)}/backfill", json=body))

    # DAGs ---------------------------------------------------------------------------------------

    def dags(self) -> list[DagRecord]:
        """Every active DAG."""
        return _DAGS.validate_python(self._json("GET", "/api/v1/dags"))

    def dag(self, dag_id: str) -> DagRecord:
        """One DAG, with its params schema."""
        return DagRecord.model_validate(self._json("GET", _dag_path(dag_id)))

    def set_paused(self, dag_id: str, paused: bool) -> DagRecord:
        """Pause or unpause a DAG's schedule."""
        return DagRecord.model_validate(self._json("PATCH", _dag_path(dag_id), json={"paused": paused}))

    def import_errors(self) -> list[ImportErrorRecord]:
        """DAG files that failed to import."""
        return _IMPORT_ERRORS.validate_python(self._json("GET", "/api/v1/import-errors"))

    def pools(self) -> list[PoolRecord]:
        """Every pool."""
        return _POOLS.validate_python(self._json("GET", "/api/v1/pools"))

    def set_pool(self, name: str, slots: int, description: str = "") -> PoolRecord:
        """Create or resize a pool."""
        body = {"slots": slots, "description": description}
        return PoolRecord.model_validate(self._json("PUT", f"/api/v1/pools/{name}", json=body))

    def delete_pool(self, name: str) -> None:
        """Delete a pool."""
        self._send("DELETE", f"/api/v1/pools/{name}")

    def workers(self) -> list[WorkerRecord]:
        """The Celery workers the schedulers recorded from heartbeats."""
        return _WORKERS.validate_python(self._json("GET", "/api/v1/workers"))

    # Transport ----------------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body of a successful request."""
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; raises ServerUnavailableError or ApiError instead of returning an error."""
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnavailableError(
                f"cannot reach the Zonda server at {self.server_url}: start it with `zonda up` "
                "or pass --server URL"
            ) from exc
        except httpx.HTTPError as exc:
            raise ServerUnavailableError(f"request to {self.server_url}{path} failed: {exc}") from exc
        if response.is_error:
            raise api_error(response)
        return response


def api_error(response: httpx.Response) -> ApiError:
    """The ApiError for an error response (ours, or anything a proxy in between sent)."""
    try:
        error = response.json()["error"]
        return ApiError(response.status_code, error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:300] or response.reason_phrase
        return ApiError(
            response.status_code, "http_error", f"HTTP {response.status_code} from server: {text}"
        )


def _dag_path(dag_id: str) -> str:
    """The DAG's URL path (a '/' inside a DAG id stays a path separator; the API expects that)."""
    return f"/api/v1/dags/{quote(dag_id, safe='/')}"


def _seg(value: str) -> str:
    """One URL path segment."""
    return quote(value, safe="")


def _query_value(value: Any) -> Any:
    """Datetimes as ISO strings; everything else as is."""
    return value.isoformat() if isinstance(value, datetime) else value
