"""Tenant isolation on this machine: which OS user runs a tenant's local workers, and its folders.

Always (layout): a tenant's artifacts, logs and DAG code live under `<root>/<tenant>/`, and a local
worker process serves one tenant only (see `pool.py`), so nothing an attempt leaves in a process
(environment, module globals, caches) reaches another tenant's task. Tenant code (tasks, and DAG
files being imported) never sees the server's credentials in its environment.

When `ZONDA_TENANT_UIDS` or `ZONDA_TENANT_UID_BASE` is set (the server runs as root), the OS enforces
it: each tenant's workers drop to the tenant's uid and gid before running any of its code, each
tenant folder belongs to that uid with mode 0700, ZONDA_HOME can be traversed but not listed, and
the server's own files in it (zonda.db, secret.key, token, ...) are readable by the server only.
See docs/adr/0010-tenant-isolation.md.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zonda.errors import ConfigError

if TYPE_CHECKING:
    from zonda.settings import Settings

log = logging.getLogger(__name__)

UID_FILE = "tenant-uids.json"
WORK_DIR = "work"
SERVER_ONLY_VARIABLES = frozenset(
    {"ZONDA_SECRET_KEYS", "ZONDA_DB_URL", "ZONDA_TOKEN", "ZONDA_ADMIN_PASSWORD", "ZONDA_BROKER_URL"}
)
"""Credentials of the server that a worker process must not pass on to task code."""


@dataclass(frozen=True)
class TenantIdentity:
    """Who a tenant's worker processes are: its OS user (None: the server's) and private work folder."""

    tenant: str
    uid: int | None = None
    gid: int | None = None
    home: str | None = None
    """HOME and TMPDIR of the tenant's workers when they run as the tenant's user."""


class TenantUsers:
    """Gives each tenant its identity on this machine and prepares its folders on first use."""

    def __init__(
        self,
        home: Path,
        roots: Sequence[Path],
        uids: Mapping[str, int] | None = None,
        uid_base: int | None = None,
    ) -> None:
        self.home = home
        self.roots = (*roots, home / WORK_DIR)
        self.uids = dict(uids or {})
        self.uid_base = uid_base
        self.enforced = bool(self.uids) or uid_base is not None
        self._known: dict[str, TenantIdentity] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantUsers:
        """Tenant folders under the local artifact store, the local logs folder and the code store."""
        paths = (_local_path(settings.resolved_artifact_url), _local_path(settings.resolved_log_url))
        roots = [Path(path) for path in paths if path is not None]
        return cls(settings.home, [*roots, settings.code_dir], settings.tenant_uids, settings.tenant_uid_base)

    def prepare(self) -> None:
        """At start: check the OS can enforce isolation and close ZONDA_HOME to tenants' users."""
        if not self.enforced:
            if os.geteuid() == 0:
                log.warning(
                    "the server runs as root but every tenant's tasks run as root too; set "
                    "ZONDA_TENANT_UID_BASE (or ZONDA_TENANT_UIDS) so each tenant gets its own OS user"
                )
            return
        self._check_configuration()
        _harden_home(self.home, self.roots)
        for root in self.roots:
            _make_root(root)

    def identity(self, tenant: str) -> TenantIdentity:
        """The tenant's identity, its folders created (and handed to its user) on first use."""
        known = self._known.get(tenant)
        if known is None:
            known = self._identity(tenant) if self.enforced else TenantIdentity(tenant)
            self._known[tenant] = known
            if not self.enforced and len(self._known) == 2:
                log.warning(
                    "tasks of tenants %s run as the same OS user, so the OS does not keep them apart; "
                    "see 'Tenant isolation' in docs/deployment.md",
                    " and ".join(sorted(self._known)),
                )
        return known

    def _identity(self, tenant: str) -> TenantIdentity:
        uid = self.uids.get(tenant)
        if uid is None:
            if self.uid_base is None:
                raise ConfigError(
                    f"tenant '{tenant}' has no OS user for its tasks: add it to ZONDA_TENANT_UIDS "
                    "or set ZONDA_TENANT_UID_BASE"
                )
            uid = _allocate(self.home / UID_FILE, tenant, self.uid_base, set(self.uids.values()))
        for root in self.roots:
            _tenant_folder(root / tenant, uid)
        return TenantIdentity(tenant, uid, uid, str(self.home / WORK_DIR / tenant))

    def _check_configuration(self) -> None:
        if os.geteuid() != 0:
            raise ConfigError(
                "ZONDA_TENANT_UIDS / ZONDA_TENANT_UID_BASE run each tenant's workers as its own OS user, "
                "which needs the server to run as root: start it as root or unset both"
            )
        taken = list(self.uids.values())
        if len(set(taken)) != len(taken) or 0 in taken:
            raise ConfigError(
                f"ZONDA_TENANT_UIDS={json.dumps(self.uids)} must give each tenant its own uid, never 0"
            )
        ours = {p.resolve() for p in (self.home, *self.roots)}
        for what, path in (*_python_paths(), *(("a tenant folder", p) for p in (self.home, *self.roots))):
            for folder in path.resolve().parents:
                if folder not in ours and not folder.stat().st_mode & stat.S_IXOTH:
                    raise ConfigError(
                        f"tenants' workers run as other users and cannot reach {what} at {path}: make "
                        f"{folder} traversable (chmod o+x {folder}) or move {path} out of it"
                    )


def become(identity: TenantIdentity) -> None:
    """In a worker process that has run no task yet: take the tenant's identity for good."""
    if identity.uid is None or identity.gid is None:
        return
    if identity.home:
        os.environ["HOME"] = os.environ["TMPDIR"] = identity.home
        tempfile.tempdir = None
    os.setgroups([])
    os.setgid(identity.gid)
    os.setuid(identity.uid)


def scrub_environment() -> None:
    """Drop the server's credentials from a worker's environment (task code inherits it)."""
    for name in list(os.environ):
        if server_only(name):
            del os.environ[name]


def tenant_environment() -> dict[str, str]:
    """This process's environment without the server's credentials, for a child running tenant code."""
    return {name: value for name, value in os.environ.items() if not server_only(name)}


def server_only(name: str) -> bool:
    """Whether an environment variable holds a credential of the server (never for task code)."""
    return name in SERVER_ONLY_VARIABLES or name.startswith("ZONDA_SECRET_")


def _python_paths() -> list[tuple[str, Path]]:
    """What a worker imports after it has taken its tenant's user: the standard library and packages."""
    paths = sysconfig.get_paths()
    return [
        ("Python's standard library", Path(paths["stdlib"])),
        ("Python packages", Path(paths["purelib"])),
        ("Zonda", Path(__file__).parents[2]),
    ]


def _local_path(url: str) -> str | None:
    """The folder of a local fsspec URL (plain path or file://), None for remote stores."""
    if url.startswith("file://"):
        return url.removeprefix("file://")
    return None if "://" in url else url


def _harden_home(home: Path, roots: Sequence[Path]) -> None:
    """ZONDA_HOME: traversable, not listable; its files and other folders for the server only."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o711)
    shared = {root.resolve() for root in roots}
    for entry in home.iterdir():
        if entry.is_symlink() or entry.resolve() in shared:
            continue
        mode = entry.stat().st_mode
        entry.chmod(0o700 if entry.is_dir() else stat.S_IMODE(mode) & 0o700)


def _make_root(root: Path) -> None:
    """A folder of tenant folders: tenants' users pass through it to their own, and list nothing."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)


def _tenant_folder(folder: Path, uid: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, uid, uid)
    folder.chmod(0o700)


def _allocate(path: Path, tenant: str, base: int, reserved: set[int]) -> int:
    """The tenant's uid from the shared record, or the next free one after `base` (kept for good)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        text = f.read()
        given: dict[str, int] = json.loads(text) if text.strip() else {}
        if tenant not in given:
            taken = reserved | set(given.values())
            given[tenant] = next(
                uid for uid in range(base + 1, base + 1 + len(taken) + 1) if uid not in taken
            )
            f.seek(0)
            f.truncate()
            f.write(json.dumps(given, indent=1, sort_keys=True))
            log.info("tenant %s runs its tasks as uid %d", tenant, given[tenant])
        return given[tenant]
