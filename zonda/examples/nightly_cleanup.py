"""A cron job moved into Zonda: the same shell command, now with retries, logs and history.

Lesson: `BashTask` runs an existing script unchanged; the run's context arrives as environment
variables (ZONDA_LOGICAL_DATE, ZONDA_RUN_ID, ...). `venv=` runs it inside a given virtualenv.
"""

from __future__ import annotations

from zonda import BashTask, dag


@dag(schedule="30 2 * * *", timezone="Europe/London", tags=["example", "cron"], owner="data-eng")
def nightly_cleanup() -> None:
    """Was `30 2 * * * /opt/jobs/cleanup.sh` in a crontab."""
    report = BashTask(
        "disk_report",
        command='echo "cleanup for $ZONDA_LOGICAL_DATE"; df -h . | tail -1',
        retries=2,
        retry_delay="1m",
    )
    prune = BashTask(
        "prune_tmp",
        command='find "${TMPDIR:-/tmp}" -maxdepth 1 -name "zonda-example-*" -mtime +7 -print -delete; echo done',
        timeout="10m",
    )
    report >> prune
