"""Console users, API keys and sessions in PostgreSQL (infra/migrations/0010).

Every function takes an open ``psycopg.AsyncConnection``; the CLI runs them with
``asyncio.run`` on one connection, the app on its pool's. Changes to users and keys are
audited in the same transaction.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from connectors.console import audit
from connectors.console.passwords import (
    generate_password,
    hash_password,
    needs_rehash,
    token_hash,
    verify_password,
)
from connectors.console.principal import ROLES, Principal

USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
KEY_PREFIX = "snt"
ADMIN = "admin"


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class Session:
    token: str  # the cookie value; only its hash is stored
    csrf_token: str
    expires_at: datetime


def check_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise AccountError("user names are 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")
    return name


async def add_user(
    conn: psycopg.AsyncConnection, name: str, role: str, password: str | None, actor: str
) -> str:
    """Create a user; returns the password (generated when ``password`` is None)."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    password = password or generate_password()
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO console_users (name, role, password_hash) VALUES (%s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING",
            (check_name(name), role, hash_password(password)),
        )
        if cur.rowcount == 0:
            raise AccountError(f"user {name!r} exists")
        await audit.record(conn, actor, "user.add", "user", name, {"role": role})
    return password


async def set_password(
    conn: psycopg.AsyncConnection, name: str, password: str | None, actor: str
) -> str:
    """Replace a user's password and end their sessions; returns the new password."""
    password = password or generate_password()
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE console_users SET password_hash = %s WHERE name = %s",
            (hash_password(password), name),
        )
        if cur.rowcount == 0:
            raise AccountError(f"no user {name!r}")
        await conn.execute("DELETE FROM console_sessions WHERE user_name = %s", (name,))
        await audit.record(conn, actor, "user.password", "user", name)
    return password


async def ensure_admin(
    conn: psycopg.AsyncConnection, actor: str, reset: bool = False
) -> tuple[str, str | None]:
    """(``admin``, a fresh password) when no active admin existed (or ``reset``); else
    (the first admin's name, None)."""
    cur = await conn.execute(
        "SELECT name FROM console_users WHERE role = 'admin' AND disabled_at IS NULL"
        " ORDER BY created_at LIMIT 1"
    )
    row = await cur.fetchone()
    if row is None:
        return ADMIN, await add_user(conn, ADMIN, "admin", None, actor)
    if reset:
        return row[0], await set_password(conn, row[0], None, actor)
    return row[0], None


async def list_users(conn: psycopg.AsyncConnection) -> list[tuple]:
    cur = await conn.execute(
        "SELECT u.name, u.role, u.created_at, u.disabled_at,"
        " (SELECT count(*) FROM console_api_keys k WHERE k.user_name = u.name"
        "   AND k.revoked_at IS NULL)"
        " FROM console_users u ORDER BY u.name"
    )
    return await cur.fetchall()


async def create_key(conn: psycopg.AsyncConnection, name: str, actor: str) -> str:
    """A new API key for ``name`` (shown once; only the secret's SHA-256 is stored)."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    async with conn.transaction():
        cur = await conn.execute("SELECT 1 FROM console_users WHERE name = %s", (name,))
        if await cur.fetchone() is None:
            raise AccountError(f"no user {name!r}")
        await conn.execute(
            "INSERT INTO console_api_keys (key_id, secret_hash, user_name) VALUES (%s, %s, %s)",
            (key_id, token_hash(secret), name),
        )
        await audit.record(conn, actor, "key.create", "user", name, {"key_id": key_id})
    return f"{KEY_PREFIX}_{key_id}_{secret}"


async def principal_for_key(conn: psycopg.AsyncConnection, key: str) -> Principal | None:
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret:
        return None
    cur = await conn.execute(
        "SELECT u.name, u.role, k.secret_hash FROM console_api_keys k"
        " JOIN console_users u ON u.name = k.user_name"
        " WHERE k.key_id = %s AND k.revoked_at IS NULL AND u.disabled_at IS NULL",
        (key_id,),
    )
    row = await cur.fetchone()
    if row is None or not secrets.compare_digest(bytes(row[2]), token_hash(secret)):
        return None
    return Principal(row[0], row[1], "key")


async def login(
    conn: psycopg.AsyncConnection, name: str, password: str, ttl_s: int
) -> Session | None:
    """A new session when the password matches an active user; else None (same cost)."""
    cur = await conn.execute(
        "SELECT password_hash FROM console_users WHERE name = %s AND disabled_at IS NULL",
        (name,),
    )
    row = await cur.fetchone()
    stored = row[0] if row else None
    if not verify_password(stored, password):
        return None
    session = Session(
        secrets.token_urlsafe(32), secrets.token_urlsafe(32),
        datetime.now(UTC) + timedelta(seconds=ttl_s),
    )
    async with conn.transaction():
        if stored and needs_rehash(stored):
            await conn.execute(
                "UPDATE console_users SET password_hash = %s WHERE name = %s",
                (hash_password(password), name),
            )
        await conn.execute(
            "INSERT INTO console_sessions (token_hash, user_name, csrf_token, expires_at)"
            " VALUES (%s, %s, %s, %s)",
            (token_hash(session.token), name, session.csrf_token, session.expires_at),
        )
        await conn.execute("DELETE FROM console_sessions WHERE expires_at < now()")
    return session


async def principal_for_session(conn: psycopg.AsyncConnection, token: str) -> Principal | None:
    cur = await conn.execute(
        "SELECT u.name, u.role, s.csrf_token FROM console_sessions s"
        " JOIN console_users u ON u.name = s.user_name"
        " WHERE s.token_hash = %s AND s.expires_at > now() AND u.disabled_at IS NULL",
        (token_hash(token),),
    )
    row = await cur.fetchone()
    return Principal(row[0], row[1], "session", row[2]) if row else None


async def logout(conn: psycopg.AsyncConnection, token: str) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE token_hash = %s", (token_hash(token),))
