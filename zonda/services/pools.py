"""Pools: list, create or resize, delete. The scheduler picks changes up when woken."""

from __future__ import annotations

from zonda.api.schemas import PoolRecord, PoolSpec
from zonda.db import pools as db
from zonda.db.engine import read_txn, write_txn
from zonda.errors import NotFoundError
from zonda.services.context import Services


def list_pools(svc: Services) -> list[PoolRecord]:
    with read_txn(svc.engine) as conn:
        return db.list_pools(conn)


def set_pool(svc: Services, name: str, spec: PoolSpec) -> PoolRecord:
    pool = PoolRecord(name=name, slots=spec.slots, description=spec.description)
    with write_txn(svc.engine) as conn:
        db.set_pool(conn, pool)
    svc.waker.wake("pools")
    return pool


def delete_pool(svc: Services, name: str) -> None:
    with write_txn(svc.engine) as conn:
        if not db.delete_pool(conn, name):
            raise NotFoundError(f"pool '{name}' does not exist; `zonda pools list` shows the pools")
    svc.waker.wake("pools")
