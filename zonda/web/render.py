"""Jinja2 templates of the pages (autoescaped), with the filters they share."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from zonda.web.views import counts_label, summary_state


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("zonda.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, ago=ago, seconds=seconds, url=lambda v: quote(str(v), safe="/"), counts=counts_label
    )
    env.globals.update(summary_state=summary_state)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def when(value: datetime | None) -> str:
    """A time as 'YYYY-MM-DD HH:MM:SS' UTC ('' for none)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def ago(value: datetime | None) -> str:
    """How long before now, e.g. '3 s ago' or 'in 2 min'."""
    if value is None:
        return ""
    delta = (datetime.now(UTC) - value).total_seconds()
    text = seconds(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def seconds(value: float | None) -> str:
    """A duration in the unit that reads best (ms, s, min, h)."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
