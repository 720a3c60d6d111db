"""How the room server says no: its own refusals (in the request's language) and the HTTP status of
the project's errors. Shared by the routes, the sessions and the fast path."""

from __future__ import annotations

import json

from fastapi import HTTPException

from .. import i18n
from ..errors import ForbiddenTransition, MapathonError, NotPermitted

#: the largest task number a path may name (SQLite's and PostgreSQL's integers stop at 2**63 - 1)
MAX_TASK_ID = 2 ** 63 - 1


class Refusal(HTTPException):
    """A refusal by the server itself: a catalog entry (i18n.WORDS), said in the request's language."""

    def __init__(self, status: int, key: str, headers: dict | None = None, **fields):
        super().__init__(status_code=status, detail=i18n.Words()(key, **fields), headers=headers)
        self.key, self.fields = key, fields


def err(status: int, key: str, **fields) -> HTTPException:
    return Refusal(status, key, **fields)


def no_task(task_id: int) -> HTTPException:
    return Refusal(404, "err.no_task", id=task_id)


def task_id_in_range(task_id: int) -> int:
    """A task number from a path: numbers no task can have (0, negative, 2**63 and more) are 404,
    before they reach the database (where they would not fit an integer)."""
    if not 1 <= task_id <= MAX_TASK_ID:
        raise no_task(task_id)
    return task_id


def error_status(e: MapathonError) -> int:
    return 409 if isinstance(e, ForbiddenTransition) else 403 if isinstance(e, NotPermitted) else 400


def json_bytes(content) -> bytes:
    """JSON exactly as Starlette's JSONResponse writes it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


MAX_JSON_DEPTH = 32  # no request of the API nests deeper than 2


def too_deep(body: bytes, most: int = MAX_JSON_DEPTH) -> bool:
    """True when a JSON body nests arrays or objects deeper than *most* (counted without parsing it,
    outside strings): Python's parser would otherwise recurse until RecursionError (an HTTP 500)."""
    if body.count(b"[") + body.count(b"{") <= most:
        return False
    depth, in_str, escaped = 0, False, False
    for c in body:
        if in_str:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > most:
                return True
        elif c in (0x5D, 0x7D):
            depth -= 1
    return False
