"""Entry point of the server the benchmarks start: `python -m benchmarks._server --home ... --port ...`.

A thin wrapper around `zonda.standalone.supervisor.serve`, so the benchmarks do not depend on the CLI.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zonda.settings import Settings
from zonda.standalone.supervisor import serve


def parse_settings(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--dags", type=Path, required=True)
    parser.add_argument("--db-url", default="")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {
        "home": args.home,
        "dags_folder": args.dags,
        "db_url": args.db_url,
        "port": args.port,
        "workers": args.workers,
    }
    return Settings(**overrides)


if __name__ == "__main__":
    serve(parse_settings())
