"""The composition root: build the engine and the waker once, hand them to the routes as `Services`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import Depends, FastAPI
from sqlalchemy import Engine

from zonda import web
from zonda.api.errors import install_error_handlers
from zonda.api.routes import (
    audit,
    dags,
    health,
    identity,
    logs,
    metrics,
    pools,
    prometheus,
    runs,
    secrets,
    tasks,
    tenants,
    usage,
    workers,
)
from zonda.api.text_guard import refuse_nul_characters
from zonda.db.engine import make_engine
from zonda.scheduler.wakeup import Waker, make_waker
from zonda.services.context import Services
from zonda.settings import Settings


def create_app(settings: Settings, *, engine: Engine | None = None, waker: Waker | None = None) -> FastAPI:
    """The API app. An engine passed in stays the caller's to dispose; one built here is disposed at exit."""
    owned = engine is None
    engine = engine if engine is not None else make_engine(settings.resolved_db_url)
    waker = waker if waker is not None else make_waker(settings, engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Dispose of the engine at shutdown if this app built it."""
        yield
        if owned:
            engine.dispose()

    app = FastAPI(
        title="Zonda", version=_version(), lifespan=lifespan, dependencies=[Depends(refuse_nul_characters)]
    )
    app.state.services = Services(engine=engine, settings=settings, waker=waker)
    install_error_handlers(app)
    for module in (
        runs,
        tasks,
        dags,
        pools,
        logs,
        health,
        workers,
        identity,
        tenants,
        secrets,
        usage,
        audit,
        metrics,
        prometheus,
    ):
        app.include_router(module.router)
    web.install(app)
    return app


def _version() -> str:
    """The installed package's version (for the OpenAPI document)."""
    try:
        return version("zonda")
    except PackageNotFoundError:
        return "0.0.0"
