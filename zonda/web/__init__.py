"""The web UI: server-rendered pages served by the API's own app, over the same service layer.

`install(app)` adds the pages and their static files to the app. Pages are plain Starlette routes
(not API routes: they are not in the OpenAPI document and answer HTML, redirecting to /login when
there is no session). See docs/adr/0011-web-ui.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from zonda.web import pages

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI) -> None:
    """Serve the UI's pages and static files from `app` (whose state holds the `Services`)."""
    get, post = ["GET"], ["POST"]
    app.router.routes.extend(
        [
            Route("/", pages.home, methods=get),
            Route("/login", pages.login_page, methods=["GET", "POST"]),
            Route("/logout", pages.page(pages.logout), methods=post),
            Route("/tenant", pages.page(pages.choose_tenant), methods=post),
            Route("/dags", pages.page(pages.dag_list), methods=get),
            Route("/dags/{dag_id:path}/pause", pages.page(pages.set_paused), methods=post),
            Route("/dags/{dag_id:path}/trigger", pages.page(pages.trigger), methods=post),
            Route("/dags/{dag_id:path}", pages.page(pages.dag_page), methods=get),
            Route("/runs/{run_id}/clear", pages.page(pages.clear), methods=post),
            Route("/runs/{run_id}/cancel", pages.page(pages.cancel), methods=post),
            Route("/runs/{run_id}/mark", pages.page(pages.mark), methods=post),
            Route("/runs/{run_id}", pages.page(pages.run_page), methods=get),
            Route("/search", pages.page(pages.search), methods=get),
            Route("/dashboard", pages.page(pages.dashboard), methods=get),
            Route("/system", pages.page(pages.system), methods=get),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
