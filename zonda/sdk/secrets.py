"""Secrets inside tasks: `zonda.secret(name)` reads one, `zonda.mask(value)` hides a value in logs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from zonda.errors import ZondaError

_secrets: ContextVar[Mapping[str, str] | None] = ContextVar("zonda_secrets", default=None)
_masked: ContextVar[set[str] | None] = ContextVar("zonda_masked", default=None)


class SecretNotFoundError(ZondaError):
    """A task asked for a secret that its tenant does not hold."""


def secret(name: str) -> str:
    """The value of secret `name`; it is masked in this task's log from now on."""
    try:
        value = (_secrets.get() or {})[name]
    except KeyError:
        raise SecretNotFoundError(
            f"secret {name!r} is not set in this run's tenant; a tenant admin sets it with "
            f"`zonda secrets set {name} --tenant TENANT`"
        ) from None
    return mask(value)


def mask(value: str) -> str:
    """Register `value` as secret: it appears as *** in this task's log. Returns `value`."""
    masked = _masked.get()
    if masked is not None and len(value) >= 3:
        masked.add(value)
    return value


def masked_values() -> frozenset[str]:
    """The values hidden in the log of the task running now."""
    return frozenset(_masked.get() or ())


@contextmanager
def task_secrets(values: Mapping[str, str]) -> Iterator[None]:
    """Give a task its secrets and start a fresh set of masked values (all secret values included)."""
    token = _secrets.set(values)
    masked_token = _masked.set({v for v in values.values() if len(v) >= 3})
    try:
        yield
    finally:
        _secrets.reset(token)
        _masked.reset(masked_token)
