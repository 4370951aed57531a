"""Decisions by purchase and by wallet, a wallet's purchase history and its linked wallets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from connectors.console.queries.rows import fetch_all, fetch_one

DECISION_PREFIX = "dec_"
LINK_WINDOW = timedelta(days=30)
SUMMARY = (
    "purchase_id, decision_id, occurred_at, wallet, organizer_id, decision, score,"
    " model_score, rule_score, model_version, rules_version, reasons, contributions,"
    " decided_at, latency_ms, challenger_version, challenger_score"
)


def purchase_id_of(decision_or_purchase_id: str) -> str:
    """Decision ids are ``dec_<purchase_id>``; either form is accepted."""
    return decision_or_purchase_id.removeprefix(DECISION_PREFIX)


async def decision(conn: psycopg.AsyncConnection, any_id: str) -> dict | None:
    """The decision with its features, and the purchase it decided (when stored)."""
    row = await fetch_one(
        conn,
        f"SELECT {SUMMARY}, features FROM decisions WHERE purchase_id = %s"
        " ORDER BY decided_at DESC LIMIT 1",
        (purchase_id_of(any_id),),
    )
    if row is None:
        return None
    row["purchase"] = await fetch_one(
        conn,
        "SELECT purchase_id, occurred_at, wallet, user_id, show_id, ticket_id, quantity,"
        " unit_price_minor, currency, channel, payment_method, host(ip) AS ip, country,"
        " device_id, card_fingerprint, ingested_at FROM purchases"
        " WHERE purchase_id = %s AND occurred_at = %s",
        (row["purchase_id"], row["occurred_at"]),
    )
    row["labels"] = await fetch_all(
        conn,
        "SELECT source, occurred_at, is_fraud, pattern, reviewer FROM labels"
        " WHERE purchase_id = %s ORDER BY occurred_at",
        (row["purchase_id"],),
    )
    return row


async def by_wallet(conn: psycopg.AsyncConnection, wallet: str, limit: int = 50) -> list[dict]:
    """The wallet's latest decisions, newest first."""
    return await fetch_all(
        conn,
        f"SELECT {SUMMARY} FROM decisions WHERE wallet = %s ORDER BY occurred_at DESC LIMIT %s",
        (wallet.lower(), limit),
    )


async def wallet_history(
    conn: psycopg.AsyncConnection, wallet: str, limit: int = 50
) -> list[dict]:
    """The wallet's latest purchases with the decision each got."""
    return await fetch_all(
        conn,
        "SELECT p.purchase_id, p.occurred_at, p.show_id, p.quantity, p.unit_price_minor,"
        " p.currency, p.payment_method, host(p.ip) AS ip, p.country, p.device_id,"
        " d.decision, d.score FROM purchases p LEFT JOIN decisions d"
        " ON d.purchase_id = p.purchase_id AND d.occurred_at = p.occurred_at"
        " WHERE p.wallet = %s ORDER BY p.occurred_at DESC LIMIT %s",
        (wallet.lower(), limit),
    )


async def linked_wallets(
    conn: psycopg.AsyncConnection, wallet: str, now: datetime | None = None, limit: int = 25
) -> list[dict]:
    """Other wallets that shared an IP, a device or a card with this wallet's purchases in the
    last 30 days, with what they shared and their worst decision."""
    since = (now or datetime.now(UTC)) - LINK_WINDOW
    return await fetch_all(
        conn,
        """
        WITH mine AS (
            SELECT DISTINCT ip, device_id, card_fingerprint FROM purchases
            WHERE wallet = %(wallet)s AND occurred_at >= %(since)s
        ), links AS (
            SELECT p.wallet, 'ip' AS via, host(p.ip) AS value, p.purchase_id, p.occurred_at
            FROM purchases p JOIN mine m ON p.ip = m.ip
            WHERE p.occurred_at >= %(since)s AND p.wallet <> %(wallet)s
            UNION ALL
            SELECT p.wallet, 'device', p.device_id, p.purchase_id, p.occurred_at
            FROM purchases p JOIN mine m ON p.device_id = m.device_id
            WHERE p.occurred_at >= %(since)s AND p.wallet <> %(wallet)s
            UNION ALL
            SELECT p.wallet, 'card', p.card_fingerprint, p.purchase_id, p.occurred_at
            FROM purchases p JOIN mine m ON p.card_fingerprint = m.card_fingerprint
            WHERE p.occurred_at >= %(since)s AND p.wallet <> %(wallet)s
        )
        SELECT l.wallet, array_agg(DISTINCT l.via ORDER BY l.via) AS shared,
               count(DISTINCT l.purchase_id) AS purchases, max(l.occurred_at) AS last_seen,
               max(d.score) AS max_score,
               bool_or(d.decision = 'BLOCKED') AS blocked
        FROM links l LEFT JOIN decisions d
          ON d.purchase_id = l.purchase_id AND d.occurred_at = l.occurred_at
        GROUP BY l.wallet ORDER BY count(DISTINCT l.via) DESC, max(l.occurred_at) DESC
        LIMIT %(limit)s
        """,
        {"wallet": wallet.lower(), "since": since, "limit": limit},
    )
