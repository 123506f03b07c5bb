"""The JSON shapes of tenants, users, memberships, tokens and logins."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from zonda.api.schemas import Count, Timestamp
from zonda.core.permissions import Role

TenantId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
"""Lower-case letters, digits and dashes, 1-63 characters (it appears in queue names, paths and URLs)."""

UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,249}$")]


class TenantSpec(BaseModel):
    """What a platform admin sets on a tenant."""

    display_name: str = ""
    dag_folders: list[str] = Field(default_factory=list)
    max_running_tasks: Count | None = None
    max_active_runs: Count | None = None


class TenantCreate(TenantSpec):
    tenant_id: TenantId


class TenantPatch(BaseModel):
    """Only the fields given change; a quota set to null becomes unlimited."""

    display_name: str | None = None
    dag_folders: list[str] | None = None
    max_running_tasks: Count | None = None
    max_active_runs: Count | None = None

    @field_validator("display_name", "dag_folders")
    @classmethod
    def _not_null(cls, value: object) -> object:
        """These have no "unset" value: leave them out to keep them."""
        if value is None:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


class TenantRecord(TenantSpec):
    tenant_id: str
    created_at: Timestamp


class UserCreate(BaseModel):
    user_id: UserId
    password: Annotated[str, Field(min_length=8)] | None = None
    superuser: bool = False


class UserPatch(BaseModel):
    password: Annotated[str, Field(min_length=8)] | None = None
    disabled: bool | None = None


class UserRecord(BaseModel):
    user_id: str
    superuser: bool
    disabled: bool
    created_at: Timestamp
    roles: dict[str, Role] = Field(default_factory=dict)


class MemberSpec(BaseModel):
    role: Role


class MemberRecord(BaseModel):
    tenant_id: str
    user_id: str
    role: Role


class TokenCreate(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=250)]
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class TokenRecord(BaseModel):
    """A token as listed: never its secret."""

    token_id: str
    name: str
    kind: str
    user_id: str | None
    created_at: Timestamp
    expires_at: Timestamp | None = None
    last_used_at: Timestamp | None = None
    revoked_at: Timestamp | None = None


class NewTokenRecord(TokenRecord):
    """A token just created: `token` is its value, shown this once."""

    token: str


class LoginRequest(BaseModel):
    user_id: str
    password: str


class Me(BaseModel):
    """The authenticated caller."""

    user_id: str
    kind: str
    superuser: bool
    roles: dict[str, Role]
