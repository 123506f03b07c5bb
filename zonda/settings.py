"""One typed Settings object (env vars `ZONDA_*`), built once at start-up and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8640


class Settings(BaseSettings):
    """Everything configurable about a Zonda server and its CLI."""

    model_config = SettingsConfigDict(env_prefix="ZONDA_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".zonda", description="State folder")
    db_url: str = Field("", description="Metadata DB URL; default: SQLite under ZONDA_HOME")
    dags_folder: Path | None = Field(None, description="DAG folder; default: the bundled examples")
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    server: str = Field("", description="Server URL the CLI talks to; default http://127.0.0.1:PORT")
    workers: int = Field(4, ge=1, description="Local worker processes")
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness of the processes that run tasks (local workers, `zonda worker` slots): >0 keeps "
        "the scheduler and the worker's heartbeats responsive under load",
    )
    artifact_url: str = Field(
        "", description="fsspec URL of the artifact store; default ZONDA_HOME/artifacts"
    )
    inline_output_bytes: int = Field(4096, description="Return values up to this size are kept in the DB")
    parse_interval: float = Field(5.0, description="Seconds between scans of the DAG folder")
    parse_timeout: float = Field(30.0, description="Seconds a DAG file may take to import")
    parse_processes: int = Field(2, ge=1)
    safety_poll_interval: float = Field(5.0, description="Seconds between the scheduler's safety-net polls")
    heartbeat_interval: float = 2.0
    gone_retention: float = Field(
        86400.0,
        gt=0,
        description="Seconds a scheduler or worker that stopped heartbeating stays listed (as missing) "
        "before the schedulers forget it",
    )
    executor: str = Field(
        "local",
        description="Where tasks run: local (processes), celery, or package.module:Class (see executors/registry.py)",
    )
    broker_url: str = Field(
        "", description="Celery broker, e.g. redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//"
    )
    log_url: str = Field("", description="fsspec URL where task logs live; default ZONDA_HOME/logs")
    celery_events: bool = Field(
        False, description="Send Celery task events from the start (Flower can also enable them at run time)"
    )
    pool_queues: dict[str, str] = Field(
        default_factory=dict,
        description='Celery queue per pool, as JSON: {"gpu": "gpu"} sends tasks of pool gpu to queue gpu',
    )
    scheduler_lease_seconds: float = Field(
        6.0, gt=0, description="A run whose scheduler has not renewed its lease for this long is taken over"
    )
    queued_timeout: float = Field(
        60.0,
        gt=0,
        description="Celery: a queued task that should have reached a worker this long ago and did not start is "
        "taken as a lost message, revoked and queued again (one waiting for a busy or absent worker is not)",
    )
    # -- Celery executor (zonda/executors/celery/) ------------------------------------------------
    celery_max_in_flight: int = Field(
        1000, ge=1, description="Celery executor: requests a scheduler keeps queued (held or published)"
    )
    celery_queued_per_slot: float = Field(
        4.0,
        ge=0,
        description="Celery executor: at most this many tasks wait on the broker per slot of the queue's live "
        "workers, beyond one running on each slot; the rest wait in the scheduler, in priority order",
    )
    celery_queued_seconds: float = Field(
        0.1,
        ge=0,
        description="Celery executor: a queue keeps waiting on the broker what its slots get through in this many "
        "seconds at the run time of its recent tasks, up to ZONDA_CELERY_QUEUED_PER_SLOT per slot",
    )
    celery_bundle_seconds: float = Field(
        0.02,
        ge=0,
        description="Celery executor: requests published together to a queue share a message when their tasks' "
        "last runs took at most half this (up to 8, run one after another by one slot, about this many seconds "
        "in all); a task not run yet gets a message of its own; 0: one message per task",
    )
    celery_slots_take_turns: bool = Field(
        True,
        description="zonda worker with more slots than CPUs: only as many slots as CPUs consume its queues, and "
        "a slot whose task waits or runs 0.2 s hands its place to another; false: every slot consumes",
    )
    celery_visibility_timeout: float = Field(
        43200.0,
        gt=0,
        description="Redis broker only: a task message unacknowledged this long is delivered again "
        "(and then reported as WorkerLostError, not run twice); keep it above your longest task",
    )
    # -----------------------------------------------------------------------------------------------
    # -- Tenant isolation on a machine (docs/adr/0010-tenant-isolation.md) ------------------------
    tenant_uids: dict[str, int] = Field(
        default_factory=dict,
        description='Local workers of these tenants run as these OS users, as JSON: {"team-a": 20001} '
        "(needs the server to run as root)",
    )
    tenant_uid_base: int | None = Field(
        None,
        ge=1,
        description="Local workers of tenants not in ZONDA_TENANT_UIDS run as uids base+1, base+2, ... "
        "given in order of first use and kept in ZONDA_HOME/tenant-uids.json (needs root)",
    )
    tenant_queues: bool = Field(
        False,
        description="Celery executor: a task of tenant T goes to queue T.<queue>, served by "
        "`zonda worker --tenant T` only",
    )
    # -----------------------------------------------------------------------------------------------

    secret_keys: str = Field(
        "",
        description="Fernet keys, comma-separated, newest first: encrypt tenant secrets, sign run tokens; "
        "default: one generated into ZONDA_HOME/secret.key",
        repr=False,
    )
    worker_keys: str = Field(
        "",
        description="`zonda worker` only: the keys that open its task messages, as `zonda secrets worker-keys "
        "[--tenant T]` prints them",
        repr=False,
    )
    token: str = Field("", description="API token the CLI sends (see `zonda login`)", repr=False)
    tenant: str = Field("", description="The CLI's tenant for DAG ids given without one (team-a/etl)")
    admin_password: str = Field(
        "", description="Password of the `admin` user an embedded server creates on first start", repr=False
    )

    scheduler_write_window: float = Field(
        0.05,
        ge=0,
        description=(
            "Seconds the scheduler gathers task outcomes before writing them in one transaction; "
            "changes that work to dispatch, a command or a run's start or end waits for are written at once"
        ),
    )

    @property
    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'zonda.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        return self.artifact_url or str(self.home / "artifacts")

    @property
    def resolved_log_url(self) -> str:
        """Root of the task logs: `log_url`, else the local logs folder (readable by fsspec either way)."""
        return (self.log_url or str(self.logs_dir)).rstrip("/")

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def code_dir(self) -> Path:
        return self.home / "code"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def server_url(self) -> str:
        return (self.server or f"http://127.0.0.1:{self.port}").rstrip("/")

    @property
    def resolved_dags_folder(self) -> Path:
        return self.dags_folder or Path(__file__).with_name("examples")
