"""The opaque keyset cursor of list_runs: round trips exactly and rejects anything else."""

from __future__ import annotations

import base64
import re

import pytest

from workflow.runtime import InvalidArgumentError, decode_cursor, encode_cursor


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@pytest.mark.parametrize(
    ("created_at", "run_id"),
    [
        (0, "r"),
        (1_700_000_000_000, "run-1"),
        (253_402_300_799_999, "x" * 255),
        (5, "quote'\"colon:{brace}%20 space,[1]"),
        (7, "ünïcødé 😀"),
        (9, "=="),
    ],
    ids=repr,
)
def test_cursor_round_trips_exactly(created_at: int, run_id: str) -> None:
    cursor = encode_cursor(created_at, run_id)
    back = decode_cursor(cursor)
    assert back == (created_at, run_id)
    assert type(back[0]) is int
    assert type(back[1]) is str


def test_cursor_is_url_safe_ascii_without_padding() -> None:
    for run_id in ["a", "ab", "abc", "😀?/+", "~~~~"]:
        cursor = encode_cursor(1_700_000_000_000, run_id)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor), cursor


def test_cursor_differs_for_different_keys() -> None:
    cursors = {
        encode_cursor(1, "a"),
        encode_cursor(2, "a"),
        encode_cursor(1, "b"),
        encode_cursor(10, "a"),
    }
    assert len(cursors) == 4


def test_cursor_is_deterministic() -> None:
    assert encode_cursor(3, "run") == encode_cursor(3, "run")


@pytest.mark.parametrize("cursor", [None, 0, b"abc", ["x"], ""], ids=repr)
def test_non_string_or_empty_cursor_is_rejected(cursor: object) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"^cursor must be a non-empty str returned by list_runs$"
    ):
        decode_cursor(cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "not a cursor",
        b64(b"not json"),
        b64(b"\xff\xfe"),
        b64(b"[1]"),
        b64(b'[1,"a",2]'),
        b64(b"5"),
        b64(b"null"),
        b64(b'["1","a"]'),
        b64(b'[1.0,"a"]'),
        b64(b'[true,"a"]'),
        b64(b"[1,2]"),
        b64(b'[1,["a"]]'),
        b64(b'{"a":1,"b":2}'),
        b64(b'[NaN,"a"]'),
    ],
    ids=repr,
)
def test_forged_or_garbled_cursor_is_rejected(cursor: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"was not returned by list_runs$"):
        decode_cursor(cursor)


def test_truncated_cursor_is_rejected() -> None:
    cursor = encode_cursor(1_700_000_000_000, "run-1")
    with pytest.raises(InvalidArgumentError, match=r"was not returned by list_runs"):
        decode_cursor(cursor[:-3])
