"""What routes receive from FastAPI's dependency injection: the service context, acting for the caller.

Every route but health and login takes `ServicesDep`, which authenticates the request: an
`Authorization: Bearer <token>` header (API, run or session token) or the UI's session cookie.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from zonda.errors import AuthenticationError
from zonda.services.context import Services
from zonda.services.identity import authenticate

SESSION_COOKIE = "zonda_session"

_bearer = HTTPBearer(auto_error=False, description="An API token (`zonda tokens create`) or a session token")


def get_public_services(request: Request) -> Services:
    """The app's `Services`, acting for nobody in particular (health, login)."""
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


def get_services(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Services:
    """The app's `Services` acting for the authenticated caller; AuthenticationError (401) otherwise."""
    services = get_public_services(request)
    token = credentials.credentials if credentials is not None else request.cookies.get(SESSION_COOKIE)
    if not token:
        raise AuthenticationError(
            "this API needs credentials: send `Authorization: Bearer <token>` "
            "(create a token with `zonda tokens create`, or log in with `zonda login`)"
        )
    origin = request.client.host if request.client else ""
    return services.as_caller(authenticate(services, token), origin)


ServicesDep = Annotated[Services, Depends(get_services)]
PublicServicesDep = Annotated[Services, Depends(get_public_services)]
