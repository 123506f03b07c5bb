"""What routes receive from FastAPI's dependency injection: the service context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from zonda.services.context import Services


def get_services(request: Request) -> Services:
    """The app's `Services` (per-request principal and tenant will be set here)."""
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
