"""Running a query into dicts."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


async def fetch_all(conn: psycopg.AsyncConnection, query: str, params: Any = None) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def fetch_one(conn: psycopg.AsyncConnection, query: str, params: Any = None) -> dict | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


class NotFound(LookupError):
    """No such case, alert or decision."""
