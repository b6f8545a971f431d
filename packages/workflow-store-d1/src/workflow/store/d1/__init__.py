"""workflow.store.d1: the execution store on Cloudflare D1, through the Workers
binding's interface (the binding itself, or D1's REST API)."""

from __future__ import annotations

from .binding import D1Binding
from .http import D1HttpDatabase, D1QueryError
from .interface import D1Database, D1Meta, D1Result, D1Statement
from .store import D1Store, open_store

__all__ = [
    "D1Binding",
    "D1Database",
    "D1HttpDatabase",
    "D1Meta",
    "D1QueryError",
    "D1Result",
    "D1Statement",
    "D1Store",
    "open_store",
]
