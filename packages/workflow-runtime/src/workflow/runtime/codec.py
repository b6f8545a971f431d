"""The payload rules, owned in one place.

A payload is a JSON value of exactly these Python types: ``None``, ``bool``, ``int``
(64-bit signed), finite ``float``, ``str`` (valid Unicode text, no lone surrogates),
``list`` and ``dict`` with ``str`` keys, nested at most :data:`MAX_DEPTH` levels.
Subclasses (an ``IntEnum``, a ``defaultdict``) are rejected: they would come back as
a different type. Encoded, a payload is compact UTF-8 JSON text no longer than the
store's limit (default :data:`DEFAULT_MAX_PAYLOAD_BYTES`).

Stores keep the encoded text and decode it on every read, so what comes back is
equal to what went in, of the same types, and never shared with the caller.
"""

from __future__ import annotations

import json
import math
from typing import cast

from .errors import PayloadError
from .records import JSON, CronSpec, ErrorInfo, IntervalSpec, ScheduleSpec

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_DEPTH = 100
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _check(value: object, path: str, depth: int) -> None:
    # Exact type checks on purpose: bool before int (bool is an int subclass), and no
    # subclasses, which json would silently turn into their base type.
    t = type(value)
    if value is None or t is bool:
        return
    if t is int:
        if not INT64_MIN <= cast("int", value) <= INT64_MAX:
            raise PayloadError(f"integer at {path} does not fit in 64 bits: {value}", path=path)
        return
    if t is float:
        if not math.isfinite(cast("float", value)):
            raise PayloadError(f"float at {path} is not finite: {value}", path=path)
        return
    if t is str:
        _check_text(cast("str", value), path)
        return
    if t is list or t is dict:
        if depth >= MAX_DEPTH:
            raise PayloadError(f"payload nests deeper than {MAX_DEPTH} levels at {path}", path=path)
        if t is list:
            for i, item in enumerate(cast("list[object]", value)):
                _check(item, f"{path}[{i}]", depth + 1)
        else:
            for key, item in cast("dict[object, object]", value).items():
                if type(key) is not str:
                    raise PayloadError(
                        f"object key at {path} is {type(key).__name__} {key!r}, not str",
                        path=path,
                    )
                _check_text(key, path)
                _check(item, f"{path}.{key}", depth + 1)
        return
    raise PayloadError(
        f"value at {path} is {t.__module__}.{t.__qualname__}, not a JSON value "
        "(None, bool, int, float, str, list, dict)",
        path=path,
    )


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(
            f"string at {path} is not valid Unicode text (lone surrogate at {exc.start})",
            path=path,
        ) from None


def encode(
    value: object, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, what: str = "payload"
) -> str:
    """Validate ``value`` and return its canonical JSON text.

    Raises :class:`PayloadError` when it breaks a rule or encodes to more than
    ``max_bytes`` UTF-8 bytes.
    """
    try:
        _check(value, "$", 0)
    except PayloadError as exc:
        raise PayloadError(f"{what}: {exc}", path=exc.path) from None
    text = _encoder.encode(value)
    # len(text) is a lower bound on the byte size; only encode when it might matter.
    if len(text) * 4 > max_bytes and len(text.encode("utf-8")) > max_bytes:
        raise PayloadError(
            f"{what} encodes to {len(text.encode('utf-8'))} bytes, over the limit of "
            f"{max_bytes} bytes (the store's max_payload_bytes option)"
        )
    return text


def encode_optional(
    value: object, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, what: str = "payload"
) -> str | None:
    """Like :func:`encode`, but ``None`` stays ``None`` (an absent value, SQL ``NULL``)."""
    return None if value is None else encode(value, max_bytes=max_bytes, what=what)


def decode(text: str | None) -> JSON:
    """Decode text written by :func:`encode`; ``None`` (absent) decodes to ``None``."""
    if text is None:
        return None
    return cast("JSON", json.loads(text))


def validate(
    value: object, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, what: str = "payload"
) -> None:
    """Raise :class:`PayloadError` unless ``value`` is a valid payload."""
    encode(value, max_bytes=max_bytes, what=what)


def encode_error(error: ErrorInfo, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    """Encode an :class:`ErrorInfo` as a JSON object (one column, one hash field)."""
    body: dict[str, JSON] = {"type": error.type, "message": error.message, "code": error.code}
    if error.traceback is not None:
        body["traceback"] = error.traceback
    return encode(body, max_bytes=max_bytes, what="error")


def decode_error(text: str | None) -> ErrorInfo | None:
    if text is None:
        return None
    body = cast("dict[str, str]", json.loads(text))
    return ErrorInfo(body["type"], body["message"], body["code"], body.get("traceback"))


def encode_spec(spec: ScheduleSpec) -> str:
    """Encode a schedule spec as a small JSON object."""
    if isinstance(spec, CronSpec):
        return _encoder.encode({"cron": spec.expression, "tz": spec.timezone})
    return _encoder.encode({"every_ms": spec.every_ms, "anchor_ms": spec.anchor_ms})


def decode_spec(text: str) -> ScheduleSpec:
    body = json.loads(text)
    if "cron" in body:
        return CronSpec(body["cron"], body["tz"])
    return IntervalSpec(body["every_ms"], body["anchor_ms"])
