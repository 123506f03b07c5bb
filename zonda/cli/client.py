"""A typed HTTP client for the Zonda API (what the remote CLI commands use).

Connection failures become `ServerUnavailableError`; error bodies (`{"error": {...}}`) become `ApiError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
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
    MarkRequest,
    PoolRecord,
    RunPage,
    RunRecord,
    TriggerRequest,
    WorkerRecord,
)
from zonda.api.schemas.audit import AuditPage
from zonda.api.schemas.identity import (
    LoginRequest,
    Me,
    MemberRecord,
    NewTokenRecord,
    TenantCreate,
    TenantPatch,
    TenantRecord,
    TokenCreate,
    TokenRecord,
    UserCreate,
    UserRecord,
)
from zonda.api.schemas.secrets import SecretKind, SecretRecord
from zonda.api.schemas.usage import UsageReport
from zonda.core.ids import DEFAULT_TENANT, qualify
from zonda.core.permissions import Role
from zonda.errors import ServerUnavailableError, ZondaError

_DAGS = TypeAdapter(list[DagRecord])
_TENANTS = TypeAdapter(list[TenantRecord])
_USERS = TypeAdapter(list[UserRecord])
_TOKENS = TypeAdapter(list[TokenRecord])
_IMPORT_ERRORS = TypeAdapter(list[ImportErrorRecord])
_POOLS = TypeAdapter(list[PoolRecord])
_WORKERS = TypeAdapter(list[WorkerRecord])
_SECRETS = TypeAdapter(list[SecretRecord])


class ApiError(ZondaError):
    """The server refused a request; carries the API's error code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details


class ZondaClient:
    """One server's API, called with an API token; use as a context manager so the connection pool is closed.

    DAG ids given without a tenant (`etl`) are read as ids of `tenant` (`default/etl`).
    """

    def __init__(
        self, server_url: str, token: str = "", tenant: str = DEFAULT_TENANT, timeout: float = 30.0
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.tenant = tenant
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server_url, timeout=timeout, headers=headers)

    def qualify(self, dag_id: str) -> str:
        """`dag_id` with the client's tenant in front, unless it names one."""
        return dag_id if "/" in dag_id else qualify(self.tenant, dag_id)

    def __enter__(self) -> ZondaClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._http.close()

    def _dag_path(self, dag_id: str) -> str:
        """The DAG's URL path (the '/' between tenant and name stays a path separator; the API expects that)."""
        return f"/api/v1/dags/{quote(self.qualify(dag_id), safe='/')}"

    # Runs ---------------------------------------------------------------------------------------

    def trigger(self, dag_id: str, params: Mapping[str, Any], key: str | None = None) -> RunRecord:
        """Start a run now (POST /dags/{id}/runs)."""
        body = TriggerRequest(params=dict(params), key=key).model_dump(mode="json")
        return RunRecord.model_validate(self._json("POST", f"{self._dag_path(dag_id)}/runs", json=body))

    def run(self, run_id: str) -> RunRecord:
        """A run and its tasks."""
        return RunRecord.model_validate(self._json("GET", f"/api/v1/runs/{_seg(run_id)}"))

    def runs(self, **filters: Any) -> RunPage:
        """Runs filtered by dag_id, key, state, created_after/before, limit, cursor (None = no filter)."""
        if filters.get("dag_id"):
            filters["dag_id"] = self.qualify(filters["dag_id"])
        params = {k: _query_value(v) for k, v in filters.items() if v is not None}
        return RunPage.model_validate(self._json("GET", "/api/v1/runs", params=params))

    def cancel(self, run_id: str) -> CommandAccepted:
        """Ask the scheduler to stop a run."""
        return CommandAccepted.model_validate(self._json("POST", f"/api/v1/runs/{_seg(run_id)}/cancel"))

    def clear(self, run_id: str, task_id: str | None = None, downstream: bool = False) -> CommandAccepted:
        """Ask the scheduler to re-run failed tasks, or one task (and downstream)."""
        body = ClearRequest(task_id=task_id, downstream=downstream).model_dump(mode="json")
        return CommandAccepted.model_validate(
            self._json("POST", f"/api/v1/runs/{_seg(run_id)}/clear", json=body)
        )

    def mark(self, run_id: str, task_id: str, request: MarkRequest) -> CommandAccepted:
        """Ask the scheduler to end a task as success or failed."""
        path = f"/api/v1/runs/{_seg(run_id)}/tasks/{_seg(task_id)}/mark"
        return CommandAccepted.model_validate(self._json("POST", path, json=request.model_dump(mode="json")))

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
        return BackfillResult.model_validate(
            self._json("POST", f"{self._dag_path(dag_id)}/backfill", json=body)
        )

    # DAGs ---------------------------------------------------------------------------------------

    def dags(self) -> list[DagRecord]:
        """Every active DAG."""
        return _DAGS.validate_python(self._json("GET", "/api/v1/dags"))

    def dag(self, dag_id: str) -> DagRecord:
        """One DAG, with its params schema."""
        return DagRecord.model_validate(self._json("GET", self._dag_path(dag_id)))

    def set_paused(self, dag_id: str, paused: bool) -> DagRecord:
        """Pause or unpause a DAG's schedule."""
        return DagRecord.model_validate(self._json("PATCH", self._dag_path(dag_id), json={"paused": paused}))

    def import_errors(self) -> list[ImportErrorRecord]:
        """DAG files that failed to import."""
        return _IMPORT_ERRORS.validate_python(self._json("GET", "/api/v1/import-errors"))

    def pools(self, tenant: str | None = None) -> list[PoolRecord]:
        """The pools of `tenant` (default: the client's tenant)."""
        return _POOLS.validate_python(self._json("GET", f"{self._tenant_path(tenant)}/pools"))

    def set_pool(self, name: str, slots: int, description: str = "", tenant: str | None = None) -> PoolRecord:
        """Create or resize a pool of `tenant` (default: the client's tenant)."""
        body = {"slots": slots, "description": description}
        path = f"{self._tenant_path(tenant)}/pools/{quote(name, safe='')}"
        return PoolRecord.model_validate(self._json("PUT", path, json=body))

    def delete_pool(self, name: str, tenant: str | None = None) -> None:
        """Delete a pool of `tenant` (default: the client's tenant)."""
        self._send("DELETE", f"{self._tenant_path(tenant)}/pools/{quote(name, safe='')}")

    def _tenant_path(self, tenant: str | None) -> str:
        return f"/api/v1/tenants/{quote(tenant or self.tenant, safe='')}"

    def workers(self) -> list[WorkerRecord]:
        """The Celery workers the schedulers recorded from heartbeats."""
        return _WORKERS.validate_python(self._json("GET", "/api/v1/workers"))

    # Secrets ----------------------------------------------------------------------------------

    def secrets(self, tenant: str | None = None) -> list[SecretRecord]:
        """The secrets of `tenant` (default: the client's tenant), without values."""
        return _SECRETS.validate_python(self._json("GET", self._secrets_path(tenant)))

    def set_secret(
        self,
        name: str,
        value: str,
        kind: SecretKind = SecretKind.SECRET,
        description: str = "",
        tenant: str | None = None,
    ) -> SecretRecord:
        """Create or replace a secret; the server checks it, stores it encrypted and never sends it back."""
        body = {"value": value, "kind": kind.value, "description": description}
        path = f"{self._secrets_path(tenant)}/{_seg(name)}"
        return SecretRecord.model_validate(self._json("PUT", path, json=body))

    def delete_secret(self, name: str, tenant: str | None = None) -> None:
        """Delete a secret."""
        self._send("DELETE", f"{self._secrets_path(tenant)}/{_seg(name)}")

    def _secrets_path(self, tenant: str | None) -> str:
        return f"/api/v1/tenants/{_seg(tenant or self.tenant)}/secrets"

    # Tenants, users, tokens -------------------------------------------------------------------

    def login(self, user_id: str, password: str) -> NewTokenRecord:
        """A session token for a password."""
        body = LoginRequest(user_id=user_id, password=password).model_dump()
        return NewTokenRecord.model_validate(self._json("POST", "/api/v1/auth/login", json=body))

    def me(self) -> Me:
        return Me.model_validate(self._json("GET", "/api/v1/auth/me"))

    def create_tenant(self, spec: TenantCreate) -> TenantRecord:
        body = spec.model_dump(mode="json")
        return TenantRecord.model_validate(self._json("POST", "/api/v1/tenants", json=body))

    def tenants(self) -> list[TenantRecord]:
        return _TENANTS.validate_python(self._json("GET", "/api/v1/tenants"))

    def update_tenant(self, tenant: str, patch: TenantPatch) -> TenantRecord:
        body = patch.model_dump(mode="json", exclude_unset=True)
        return TenantRecord.model_validate(self._json("PATCH", f"/api/v1/tenants/{_seg(tenant)}", json=body))

    def delete_tenant(self, tenant: str) -> None:
        self._send("DELETE", f"/api/v1/tenants/{_seg(tenant)}")

    def create_user(self, spec: UserCreate) -> UserRecord:
        return UserRecord.model_validate(
            self._json("POST", "/api/v1/users", json=spec.model_dump(mode="json"))
        )

    def users(self) -> list[UserRecord]:
        return _USERS.validate_python(self._json("GET", "/api/v1/users"))

    def set_member(self, tenant: str, user_id: str, role: Role) -> MemberRecord:
        path = f"/api/v1/tenants/{_seg(tenant)}/members/{_seg(user_id)}"
        return MemberRecord.model_validate(self._json("PUT", path, json={"role": role.value}))

    def remove_member(self, tenant: str, user_id: str) -> None:
        self._send("DELETE", f"/api/v1/tenants/{_seg(tenant)}/members/{_seg(user_id)}")

    def create_token(self, spec: TokenCreate) -> NewTokenRecord:
        body = spec.model_dump(mode="json")
        return NewTokenRecord.model_validate(self._json("POST", "/api/v1/tokens", json=body))

    def tokens(self) -> list[TokenRecord]:
        return _TOKENS.validate_python(self._json("GET", "/api/v1/tokens"))

    def revoke_token(self, token_id: str) -> None:
        self._send("DELETE", f"/api/v1/tokens/{_seg(token_id)}")

    # Usage and audit ----------------------------------------------------------------------------

    def usage(
        self, tenant: str | None = None, since: date | None = None, until: date | None = None
    ) -> UsageReport:
        """Usage per tenant per UTC day (every tenant the caller sees unless `tenant` is given)."""
        filters = {"tenant_id": tenant, "since": since, "until": until}
        params = {k: str(v) for k, v in filters.items() if v is not None}
        return UsageReport.model_validate(self._json("GET", "/api/v1/usage", params=params))

    def audit(self, **filters: Any) -> AuditPage:
        """A page of the audit log filtered by tenant, actor, action, since, limit, cursor (None = no filter)."""
        if "tenant" in filters:
            filters["tenant_id"] = filters.pop("tenant")
        params = {k: _query_value(v) for k, v in filters.items() if v is not None}
        return AuditPage.model_validate(self._json("GET", "/api/v1/audit", params=params))

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


def _seg(value: str) -> str:
    """One URL path segment."""
    return quote(value, safe="")


def _query_value(value: Any) -> Any:
    """Datetimes as ISO strings; everything else as is."""
    return value.isoformat() if isinstance(value, datetime) else value
