"""How the worker protocol crosses a message broker: each message as one explicit, versioned JSON object.

What crosses the boundary: the three messages of `zonda.worker.protocol` (`TaskRequest` from the
scheduler to a Celery worker; `TaskStarted` and `TaskFinished` back to the scheduler's reply
queue). Workers' heartbeats are framed the same way by `events.py`, and sealed like reports. No DB
URL, no pickles.

Framing: a JSON object with every dataclass field by name (but those marked `SCHEDULER_ONLY`),
plus `"type"` (the class name) and `"version"`. Datetimes are ISO-8601 strings with their UTC
offset; an `ArtifactRef` is an object whose inline `data` is base64. Each field is converted by
name, never by sniffing values, so a run param that happens to look like a tagged value stays what
the user passed.

Requests and reports travel sealed (`sealing.py`, ADR 0015): the whole message encrypted, plus, for
a request, a copy in clear of what a worker needs to report on an attempt it cannot open
(`Unopened`). Only the sealed copy is read; a worker refuses an unsealed request, a scheduler
drops an unsealed report.

Why JSON and not pickle: a broker is shared by many machines and by tenant code running on the
workers. Unpickling a message runs code chosen by whoever wrote it, so a task could take over the
scheduler (which holds the DB credentials) by publishing to its reply queue. JSON messages are
also readable in Flower and in the broker's own tools, and survive a Python upgrade on one side.
A message from a newer protocol version is refused with an error that says to upgrade.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import datetime
from typing import Any, TypeVar

from zonda.core.outputs import ArtifactRef
from zonda.errors import ZondaError
from zonda.executors.celery.sealing import (
    HEARTBEAT,
    REPORT,
    REQUEST,
    SCHEDULERS,
    Sealer,
    SealError,
    WorkerKeys,
)
from zonda.worker.protocol import (
    PROTOCOL_VERSION,
    SCHEDULER_ONLY,
    TaskFinished,
    TaskRequest,
    TaskStarted,
    WorkerMessage,
)

T = TypeVar("T")

_DATETIMES = frozenset({"logical_date", "started_at", "ended_at"})


class ProtocolError(ZondaError):
    """A broker message is not a Zonda message this version understands (wrong type, version or fields)."""


def encode(message: Any) -> dict[str, Any]:
    """The JSON-ready object of a protocol message (a request or a report)."""
    data = {
        f.name: _encode_field(f.name, getattr(message, f.name))
        for f in dataclasses.fields(message)
        if not f.metadata.get(SCHEDULER_ONLY)
    }
    data["type"] = type(message).__name__
    return data


def decode(data: Any, kind: type[T]) -> T:
    """The message of class `kind` in `data`; ProtocolError says what is wrong with it."""
    if not isinstance(data, dict) or data.get("type") != kind.__name__:
        found = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise ProtocolError(f"expected a {kind.__name__} message, got {found!r}")
    version = data.get("version", PROTOCOL_VERSION)
    if not isinstance(version, int) or version > PROTOCOL_VERSION:
        raise ProtocolError(
            f"{kind.__name__} has protocol version {version!r}, newer than this Zonda's "
            f"{PROTOCOL_VERSION}; upgrade Zonda on this side"
        )
    known = {f.name for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = set(data) - known - {"type"}
    if unknown:
        raise ProtocolError(f"{kind.__name__} has unknown fields {sorted(unknown)}")
    try:
        return kind(**{k: _decode_field(k, v) for k, v in data.items() if k != "type"})
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed {kind.__name__}: {exc}") from exc


def decode_report(data: Any) -> WorkerMessage:
    """A `TaskStarted` or `TaskFinished` from its JSON object."""
    if isinstance(data, dict) and data.get("type") == "TaskStarted":
        return decode(data, TaskStarted)
    return decode(data, TaskFinished)


def seal_report(message: WorkerMessage, keys: WorkerKeys) -> dict[str, Any]:
    """A worker's report as it crosses the broker: sealed for the worker's scope."""
    return sealed_message(REPORT, *keys.seal(REPORT, _json(encode(message))))


def forwarded_report(message: WorkerMessage, sealer: Sealer) -> dict[str, Any]:
    """A report one scheduler passes on to another: sealed for the schedulers' own scope."""
    return sealed_message(REPORT, SCHEDULERS, sealer.seal(SCHEDULERS, REPORT, _json(encode(message))))


_SEALED_TYPES = {REPORT: "SealedReport", HEARTBEAT: "SealedHeartbeat"}


def sealed_message(kind: bytes, scope: str, token: str) -> dict[str, Any]:
    """What a worker's sealed report or heartbeat (`kind`) looks like on the broker."""
    return {"type": _SEALED_TYPES[kind], "scope": scope, "sealed": token}


def open_sealed(data: Any, kind: bytes, sealer: Sealer) -> tuple[Any, str]:
    """The JSON sealed in a worker's report or heartbeat (`kind`), and the scope it was sealed for;
    ProtocolError if it is not one, or no server key opens it (forged or altered)."""
    expected = _SEALED_TYPES[kind]
    if not isinstance(data, dict) or data.get("type") != expected:
        found = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise ProtocolError(
            f"expected a sealed {kind.decode()}, got {found!r} (a worker of an earlier release?)"
        )
    scope = str(data.get("scope", ""))
    try:
        return json.loads(sealer.open(scope, kind, str(data.get("sealed", "")))), scope
    except SealError as exc:
        raise ProtocolError(str(exc)) from exc
    except ValueError as exc:
        raise ProtocolError(f"malformed sealed {kind.decode()}: {exc}") from exc


def open_report(data: Any, sealer: Sealer) -> tuple[WorkerMessage, str]:
    """The report in a sealed one, and the scope it was sealed for; ProtocolError if it is not a
    sealed report, no server key opens it (forged or altered), or its content is not a report."""
    opened, scope = open_sealed(data, REPORT, sealer)
    return decode_report(opened), scope


def foreign_report(message: WorkerMessage, scope: str, expected: str | None) -> str:
    """Why a report sealed for `scope` cannot be about its attempt, whose request was sealed for
    `expected` ("" if it can; None: an attempt the executor does not track, left to the scheduler,
    which drops reports of attempts it does not run). A worker of one scope may report failing an
    attempt of another (a misrouted request it could not open); any other report about another
    scope's attempt is forged."""
    if expected is None or scope in (SCHEDULERS, expected):
        return ""
    if isinstance(message, TaskFinished) and not message.ok and message.output is None:
        return ""
    attempt = "/".join(map(str, message.ti_key))
    return (
        f"{type(message).__name__} of {attempt} try {message.try_number} was sealed for scope '{scope}', "
        f"but that attempt's request is of scope '{expected}'"
    )


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def decode_request(data: Any) -> TaskRequest:
    return decode(data, TaskRequest)


CLEAR_FIELDS = ("run_id", "dag_id", "task_id", "map_index", "try_number", "reply_to")
"""What a sealed request shows in clear: enough for a worker to report an attempt it cannot open."""


@dataclasses.dataclass(frozen=True, slots=True)
class Unopened:
    """A request a worker could not open or read: its attempt, from the fields in clear, and why."""

    run_id: str
    dag_id: str
    task_id: str
    map_index: int
    try_number: int
    reply_to: str
    error: str


def seal_request(request: TaskRequest, sealer: Sealer) -> dict[str, Any]:
    """The request as it crosses the broker: sealed for its tenant's scope, a few fields in clear."""
    scope = sealer.scope(request.tenant)
    clear = {name: getattr(request, name) for name in CLEAR_FIELDS}
    sealed = sealer.seal(scope, REQUEST, _json(encode(request)))
    return {"type": "SealedTaskRequest", **clear, "scope": scope, "sealed": sealed}


def open_request(data: Any, keys: WorkerKeys) -> TaskRequest | Unopened:
    """The request in a sealed one, or `Unopened` (its attempt and why) when it cannot be opened or read,
    or is not sealed (a scheduler of an earlier release). ProtocolError when not even the fields in
    clear can be read."""
    kind = data.get("type") if isinstance(data, dict) else type(data).__name__
    if kind not in ("SealedTaskRequest", "TaskRequest"):
        raise ProtocolError(f"expected a sealed task request, got {kind!r}")
    try:
        clear = {name: data[name] for name in CLEAR_FIELDS}
        attempt = Unopened(**clear, error="")
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"malformed task request: {exc}") from exc
    if kind == "TaskRequest":
        return dataclasses.replace(
            attempt,
            error="UnsealedRequest: workers run only requests sealed by a scheduler (ADR 0015); upgrade the "
            "schedulers to this worker's release",
        )
    try:
        opened = keys.open(str(data.get("scope", "")), REQUEST, str(data.get("sealed", "")))
        return decode_request(json.loads(opened))
    except (SealError, ProtocolError, ValueError) as exc:
        return dataclasses.replace(attempt, error=f"{type(exc).__name__}: {exc}")


def encode_task_message(members: list[tuple[str, TaskRequest]], sealer: Sealer) -> Any:
    """The argument of a `zonda.run_task` message: one sealed request, or several (each with its
    attempt's Celery task id, which revokes name)."""
    if len(members) == 1:
        return seal_request(members[0][1], sealer)
    return [{"id": task_id, "request": seal_request(request, sealer)} for task_id, request in members]


def decode_task_message(
    task_id: str, data: Any, keys: WorkerKeys
) -> list[tuple[str, TaskRequest | Unopened]]:
    """The (attempt's task id, request) pairs of a `zonda.run_task` message whose own id is `task_id`."""
    if not isinstance(data, list):
        return [(task_id, open_request(data, keys))]
    try:
        return [(str(item["id"]), open_request(item["request"], keys)) for item in data]
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"malformed message of several requests: {exc}") from exc


def _encode_field(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _DATETIMES:
        return value.isoformat()
    if name == "output":
        return _encode_ref(value)
    if name == "inputs":
        return {k: _encode_input(v) for k, v in value.items()}
    return value


def _decode_field(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _DATETIMES:
        return datetime.fromisoformat(value)
    if name == "output":
        return _decode_ref(value)
    if name == "inputs":
        return {k: _decode_input(v) for k, v in value.items()}
    return value


def _encode_input(value: ArtifactRef | list[ArtifactRef] | None) -> Any:
    if isinstance(value, list):
        return [_encode_ref(v) for v in value]
    return None if value is None else _encode_ref(value)


def _decode_input(value: Any) -> ArtifactRef | list[ArtifactRef] | None:
    if isinstance(value, list):
        return [_decode_ref(v) for v in value]
    return None if value is None else _decode_ref(value)


def _encode_ref(ref: ArtifactRef) -> dict[str, Any]:
    data = None if ref.data is None else base64.b64encode(ref.data).decode("ascii")
    return {"serializer": ref.serializer, "size": ref.size, "data": data, "uri": ref.uri}


def _decode_ref(value: dict[str, Any]) -> ArtifactRef:
    data = value.get("data")
    return ArtifactRef(
        serializer=value["serializer"],
        size=int(value["size"]),
        data=None if data is None else base64.b64decode(data),
        uri=value.get("uri"),
    )
