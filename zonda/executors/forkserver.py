"""What Zonda's fork servers (local workers, Celery slots) import before their first fork."""


def preload(main_module: str) -> list[str]:
    """The fork server's preload list: it ignores SIGTERM first (`forkserver_preload`), imports
    `main_module` (the code each forked process runs), and freezes what that built out of the
    garbage collector's reach last (`forkserver_frozen`)."""
    return ["zonda.executors.forkserver_preload", main_module, "zonda.executors.forkserver_frozen"]
