"""Identifiers: time-ordered run ids that sort by creation and need no coordination."""

from __future__ import annotations

import os
import time


def new_run_id() -> str:
    """A 26-character id: milliseconds since the epoch, then random bits, both in hex."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(7).hex()}"


DEFAULT_TENANT = "default"
"""The tenant of an embedded installation's DAG folder (`zonda up`)."""


def qualify(tenant: str, name: str) -> str:
    """The DAG id Zonda uses everywhere: the tenant, a slash, and the id the DAG file gives."""
    return f"{tenant}/{name}"


def split_dag_id(dag_id: str) -> tuple[str, str]:
    """(tenant, name) of a qualified DAG id; ValueError for an id without a tenant."""
    tenant, sep, name = dag_id.partition("/")
    if not sep or not tenant or not name:
        raise ValueError(f"DAG id {dag_id!r} has no tenant; write it as tenant/dag, e.g. default/{dag_id}")
    return tenant, name


def tenant_of(dag_id: str) -> str:
    """The tenant that owns a qualified DAG id."""
    return split_dag_id(dag_id)[0]
