"""The one place that turns errors into HTTP responses: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from zonda.api.schemas import ErrorBody, ErrorResponse
from zonda.db.engine import unavailable
from zonda.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    DagDefinitionError,
    NotFoundError,
    ParamsError,
    PermissionDeniedError,
    ZondaError,
)

log = logging.getLogger(__name__)

STATUS_FOR: list[tuple[type[ZondaError], int, str]] = [
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (ParamsError, 422, "invalid_params"),
    (ConflictError, 409, "conflict"),
    (ConfigError, 400, "bad_request"),
    (DagDefinitionError, 400, "bad_request"),  # ScheduleError is a DagDefinitionError
]
"""Our errors that are the caller's to fix, with their HTTP status and error code."""

DB_UNAVAILABLE = "the metadata DB is not available right now; retry in a few seconds"
"""What a caller is told while the DB is down or overloaded (its reason, with hosts, goes to the log only)."""
RETRY_AFTER_S = 5

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": code} for _, status, code in STATUS_FOR
}
"""For routes' `responses=`: documents the error body in the OpenAPI spec."""


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    """A JSON error response in the one error shape."""
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=jsonable_encoder(details)))
    return JSONResponse(body.model_dump(), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that map every error to the error shape."""
    app.add_exception_handler(ZondaError, _zonda_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for db_error in (DBAPIError, PoolTimeout):
        app.add_exception_handler(db_error, _db_error)
    app.add_exception_handler(Exception, _unexpected)


async def _zonda_error(request: Request, exc: Exception) -> JSONResponse:
    """Known errors get their status; others are server faults."""
    for kind, status, code in STATUS_FOR:
        if isinstance(exc, kind):
            details = exc.details if isinstance(exc, ParamsError) else None
            response = error_response(status, code, str(exc), details)
            if status == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
            return response
    return await _unexpected(request, exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """A body or query that does not match the API's schema."""
    assert isinstance(exc, RequestValidationError)
    details = [_validation_detail(e) for e in exc.errors()]
    listed = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return error_response(422, "invalid_request", f"invalid request: {listed}", details)


def _validation_detail(error: Any) -> dict[str, str]:
    """One pydantic error as {field, message}."""
    loc = [str(part) for part in error.get("loc", ())]
    return {"field": ".".join(loc), "message": str(error.get("msg", "invalid"))}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method) in our shape."""
    assert isinstance(exc, HTTPException)
    response = error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def _db_error(request: Request, exc: Exception) -> JSONResponse:
    """A metadata DB that cannot serve now is a 503 to retry; other DB errors are bugs."""
    if not db_unavailable(request, exc):
        return await _unexpected(request, exc)
    response = error_response(503, "unavailable", DB_UNAVAILABLE)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: log the traceback, tell the caller only that it happened."""
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal server error; the server log has the details")


def db_unavailable(request: Request, exc: BaseException) -> bool:
    """Whether `exc` is the metadata DB being unavailable; if so, log it in one line (an outage
    fails every request, and a traceback for each would bury the log)."""
    reason = unavailable(exc)
    if reason is not None:
        log.warning("%s %s: metadata DB unavailable (%s)", request.method, request.url.path, reason)
    return reason is not None
