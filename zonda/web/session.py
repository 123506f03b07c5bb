"""Who is looking at a page: the session cookie, the CSRF token bound to it, the chosen tenant.

A page request authenticates with the `zonda_session` cookie (a session token from a password login,
HttpOnly, SameSite=Strict) through the same `authenticate` as the API. A form that changes anything
also carries the session's CSRF token: an HMAC of the session token, so it needs no storage, differs
per session, and cannot be computed by a page that cannot read the HttpOnly cookie.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zonda.api.routes.deps import SESSION_COOKIE
from zonda.core.permissions import Action, Decision, Principal, decide
from zonda.errors import AuthenticationError, ZondaError
from zonda.services.identity import authenticate
from zonda.services.tenants import list_tenants

if TYPE_CHECKING:
    from starlette.requests import Request

    from zonda.services.context import Services

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
TENANT_COOKIE = "zonda_tenant"
"""The tenant the pages are filtered by (empty: every tenant the user can see); not a secret."""


class LoginRequired(ZondaError):
    """The page needs a session: the browser is sent to the login page."""


class CsrfError(ZondaError):
    """A form that changes something arrived without this session's CSRF token."""


def csrf_token(session: str) -> str:
    """The CSRF token of a session (deterministic, so every page of the session renders the same one)."""
    return hmac.new(session.encode(), b"zonda-csrf", hashlib.sha256).hexdigest()


def check_csrf(session: str, sent: str | None) -> None:
    """Raise CsrfError unless `sent` is the session's CSRF token."""
    if not sent or not hmac.compare_digest(sent, csrf_token(session)):
        raise CsrfError(
            "this form is missing its security token or it is from another session; reload the page and submit again"
        )


@dataclass(frozen=True)
class Viewer:
    """The user behind a page request, the services acting for them, and their tenant filter."""

    svc: Services
    session: str
    tenant: str | None
    """The tenant the user chose in the switcher; None shows every tenant they can see."""
    tenants: list[str] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        return self.svc.principal

    @property
    def csrf(self) -> str:
        return csrf_token(self.session)

    def can(self, tenant: str, action: Action) -> bool:
        """Whether a button doing `action` in `tenant` should be shown (the services check again)."""
        return decide(self.principal, tenant, action) is Decision.ALLOW

    def shows(self, tenant: str) -> bool:
        """Whether an object of `tenant` passes the tenant switcher's filter."""
        return self.tenant is None or tenant == self.tenant


def viewer_of(request: Request, services: Services) -> Viewer:
    """The authenticated viewer of a page request; LoginRequired without a valid session cookie."""
    session = request.cookies.get(SESSION_COOKIE)
    if not session:
        raise LoginRequired("log in to see this page")
    origin = request.client.host if request.client else ""
    try:
        svc = services.as_caller(authenticate(services, session), origin)
    except AuthenticationError as exc:
        raise LoginRequired(str(exc)) from exc
    seen = svc.principal.visible_tenants()
    tenants = sorted(seen) if seen is not None else [t.tenant_id for t in list_tenants(svc)]
    chosen = request.cookies.get(TENANT_COOKIE) or None
    return Viewer(svc=svc, session=session, tenant=chosen if chosen in tenants else None, tenants=tenants)
