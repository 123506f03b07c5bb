"""Refuse NUL characters in a request before any route sees it.

PostgreSQL text cannot hold them, and no name, key or param of Zonda's needs one; a request with
one gets a 422 naming where it was, instead of a database error.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from fastapi import Request

from zonda.errors import ParamsError

JSON_NUL = b"\\u0000"


async def refuse_nul_characters(request: Request) -> None:
    """An app-wide dependency: ParamsError if the path, the query or a JSON body holds a NUL."""
    places = {"path": unquote(request.url.path), "query": unquote(request.url.query)}
    found = [where for where, text in places.items() if "\x00" in text]
    if request.headers.get("content-type", "").startswith("application/json") and _has_nul(
        await request.body()
    ):
        found.append("body")
    if found:
        message = f"NUL characters are not allowed (found in the {' and '.join(found)})"
        raise ParamsError(
            message, [{"param": where, "message": "contains a NUL character"} for where in found]
        )


def _has_nul(body: bytes) -> bool:
    """Whether a JSON body has a NUL in a key or a string (a body that is not JSON is left to the route)."""
    if JSON_NUL not in body:
        return False
    try:
        return _nul_inside(json.loads(body))
    except ValueError:
        return False


def _nul_inside(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_nul_inside(k) or _nul_inside(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_nul_inside(v) for v in value)
    return False
