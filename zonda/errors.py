"""One error tree for Zonda: every error a user can meet says what went wrong and what to do."""

from __future__ import annotations


class ZondaError(Exception):
    """Base class of every error Zonda raises on purpose."""


class ConfigError(ZondaError):
    """A setting is missing or malformed (environment variable, CLI option or config file)."""


class DagDefinitionError(ZondaError):
    """A DAG file defines something Zonda cannot run: a cycle, a bad option, a task used wrongly."""


class DagCycleError(DagDefinitionError):
    """The dependencies of a DAG form a cycle."""


class ScheduleError(DagDefinitionError):
    """A schedule (cron expression, preset or interval) or a timezone is not valid."""


class ParamsError(ZondaError):
    """Run params do not match the params the DAG function declares."""

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class NotFoundError(ZondaError):
    """The DAG, run, task or log asked for does not exist (or is not visible to the caller)."""


class ConflictError(ZondaError):
    """The request conflicts with the current state (for example clearing a run that is still queued)."""


class SerializationError(ZondaError):
    """A task's return value cannot be stored as an artifact."""


class TaskTimeoutError(ZondaError):
    """A task ran longer than its `timeout`."""


class WorkerLostError(ZondaError):
    """The worker process running a task died before reporting a result."""


class ServerUnavailableError(ZondaError):
    """The CLI could not reach the Zonda server."""


class AuthenticationError(ZondaError):
    """The request carries no valid credentials: log in, or pass an API token (ZONDA_TOKEN)."""


class PermissionDeniedError(ZondaError):
    """The caller's role in the tenant does not allow the action."""
