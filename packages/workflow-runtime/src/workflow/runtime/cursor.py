"""The opaque keyset cursor of ``list_runs``.

A cursor is the ``(created_at, run_id)`` of the last item of a page. Listing goes
newest first, so the next page holds rows strictly before that key; rows inserted
meanwhile (always newer, or with a different key) never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import json

from .errors import InvalidArgumentError


def encode_cursor(created_at: int, run_id: str) -> str:
    raw = json.dumps([created_at, run_id], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: object) -> tuple[int, str]:
    """Decode a cursor from :func:`encode_cursor`; anything else is an InvalidArgumentError."""
    if type(cursor) is not str or not cursor:
        raise InvalidArgumentError("cursor must be a non-empty str returned by list_runs")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidArgumentError(f"cursor {cursor!r} was not returned by list_runs") from None
    if type(created_at) is not int or type(run_id) is not str:
        raise InvalidArgumentError(f"cursor {cursor!r} was not returned by list_runs")
    return created_at, run_id
