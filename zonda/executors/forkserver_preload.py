"""Imported only by Zonda's fork servers, first in their preload lists: a fork server ignores SIGTERM.

A process manager may send SIGTERM to every process of a service at once: systemd's default
(`KillMode=control-group`), `timeout`, `kill -- -PGID`. A fork server that died of it would take
the workers it forked with it (they die with their parent, `worker_main.die_with_parent`) before
the scheduler or `zonda worker` that owns them stopped them in order, and their running tasks
would be reported lost. Ignoring it leaves their stop to their owner; the fork server still exits
when its owner does (its owner's end of a pipe closes). The processes it forks inherit the ignored
SIGTERM until they install a handler of their own (a Celery slot's warm shutdown).
"""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
