"""Cloudflare D1's limits that a client must respect before it sends anything.

Figures from https://developers.cloudflare.com/d1/platform/limits/ (checked 2026-12):
a statement longer or with more bound parameters than these is rejected by D1 after a
round trip; the client rejects it first, with :class:`InvalidArgumentError`.
"""

from __future__ import annotations

MAX_BOUND_PARAMETERS = 100
"""Bound parameters per statement."""

MAX_STATEMENT_BYTES = 100_000
"""Length of one SQL statement (UTF-8 bytes)."""

MAX_ROW_BYTES = 2_000_000
"""A string, BLOB or table row."""

MAX_SAFE_INTEGER = 2**53 - 1
"""Parameters travel as JSON to JavaScript, whose numbers are doubles: a larger integer
would arrive rounded (the local D1 turns 2**53 + 1 into 2**53 without an error)."""

MAX_PAYLOAD_BYTES = 240_000
"""The store's largest payload (a run's input, output or error, an event's data, an
inbox entry's payload): a run row holds three of them besides its other columns and
must stay under :data:`MAX_ROW_BYTES`, with room to spare."""
