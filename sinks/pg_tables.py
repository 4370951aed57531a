"""How each topic's records become rows of the system of record (infra/migrations/0001).

A ``Table`` names its columns, its natural key and what to do on a conflict; ``row()`` maps a
decoded Avro record to a tuple in column order. Values only ever travel as COPY data, never
inside SQL text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from infra import topics
from sinks.encoding import to_json


def _country(record: dict) -> str | None:
    geo = record.get("geo")
    return geo["country"] if geo else None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    row: Callable[[dict], tuple]
    # Static SQL after "ON CONFLICT (key)"; columns are referenced, never values.
    on_conflict: str = "DO NOTHING"
    # Newest copy of a key within one batch, for DO UPDATE (a row may be updated only once).
    newest_by: str | None = None


DECISIONS = Table(
    "decisions",
    (
        "purchase_id", "occurred_at", "decision_id", "wallet", "organizer_id", "decision",
        "score", "model_score", "rule_score", "model_version", "rules_version", "reasons",
        "features", "decided_at", "latency_ms", "contributions", "challenger_version",
        "challenger_score",
    ),
    ("purchase_id", "occurred_at"),
    lambda r: (
        r["purchase_id"], r["occurred_at"], r["decision_id"], r["wallet"], r.get("organizer_id"),
        r["decision"], r["score"], r["model_score"], r["rule_score"], r["model_version"],
        r["rules_version"], to_json(r["reasons"]), to_json(r["features"]), r["decided_at"],
        r["latency_ms"], to_json(r.get("contributions") or {}), r.get("challenger_version"),
        r.get("challenger_score"),
    ),
)

PURCHASES = Table(
    "purchases",
    (
        "purchase_id", "occurred_at", "wallet", "user_id", "organizer_id", "show_id",
        "ticket_id", "quantity", "unit_price_minor", "currency", "channel", "payment_method",
        "ip", "country", "device_id", "ingested_at", "card_fingerprint",
    ),
    ("purchase_id", "occurred_at"),
    lambda r: (
        r["purchase_id"], r["occurred_at"], r["wallet"], r["user_id"], r.get("organizer_id"),
        r["show_id"], r["ticket_id"], r["quantity"], r["unit_price_minor"], r["currency"],
        r["channel"], r["payment_method"], r["ip"], _country(r), r.get("device_id"),
        r.get("ingested_at"), r.get("card_fingerprint"),
    ),
)

CHAIN_TRANSFERS = Table(
    "chain_transfers",
    (
        "chain_id", "tx_hash", "log_index", "token_id", "block_time", "block_number",
        "block_hash", "contract", "standard", "amount", "from_address", "to_address", "kind",
        "price_wei",
    ),
    ("chain_id", "tx_hash", "log_index", "token_id", "block_time"),
    lambda r: (
        r["chain_id"], r["tx_hash"], r["log_index"], r["token_id"], r["block_time"],
        r["block_number"], r["block_hash"], r["contract"], r["standard"], r["amount"],
        r["from_address"], r["to_address"], r["kind"], r.get("price_wei"),
    ),
)

AUTH_EVENTS = Table(
    "auth_events",
    ("event_id", "occurred_at", "kind", "user_id", "wallet", "ip", "country", "device_id"),
    ("event_id", "occurred_at"),
    lambda r: (
        r["event_id"], r["occurred_at"], r["kind"], r["user_id"], r.get("wallet"), r["ip"],
        _country(r), r.get("device_id"),
    ),
)

SECURITY_EVENTS = Table(
    "security_events",
    (
        "event_id", "occurred_at", "kind", "severity", "source", "ip", "wallet", "user_id",
        "purchase_id", "details",
    ),
    ("event_id", "occurred_at"),
    lambda r: (
        r["event_id"], r["occurred_at"], r["kind"], r["severity"], r["source"], r.get("ip"),
        r.get("wallet"), r.get("user_id"), r.get("purchase_id"), to_json(r.get("details", {})),
    ),
)

ALERTS = Table(
    "alerts",
    (
        "alert_id", "rule", "group_key", "severity", "count", "first_seen", "last_seen",
        "event_ids", "responses", "created_at",
    ),
    ("alert_id",),
    lambda r: (
        r["alert_id"], r["rule"], r["group_key"], r["severity"], r["count"], r["first_seen"],
        r["last_seen"], to_json(r["event_ids"]), to_json(r["responses"]), r["created_at"],
    ),
    # A later version of the same alert (more events, responses executed) replaces an
    # earlier one; a redelivered older version changes nothing.
    on_conflict=(
        "DO UPDATE SET count = EXCLUDED.count, last_seen = EXCLUDED.last_seen,"
        " event_ids = EXCLUDED.event_ids, responses = EXCLUDED.responses"
        " WHERE (EXCLUDED.last_seen, EXCLUDED.count) >= (alerts.last_seen, alerts.count)"
    ),
    newest_by="last_seen DESC, count DESC",
)

LABELS = Table(
    "labels",
    ("purchase_id", "source", "occurred_at", "is_fraud", "pattern", "reviewer"),
    ("purchase_id", "source"),
    lambda r: (
        r["purchase_id"], r["source"], r["occurred_at"], r["is_fraud"], r.get("pattern"),
        r.get("reviewer"),
    ),
)

BY_TOPIC: dict[str, Table] = {
    topics.DECISIONS.name: DECISIONS,
    topics.PURCHASES.name: PURCHASES,
    topics.CHAIN_TRANSFERS.name: CHAIN_TRANSFERS,
    topics.AUTH_EVENTS.name: AUTH_EVENTS,
    topics.SECURITY_EVENTS.name: SECURITY_EVENTS,
    topics.ALERTS.name: ALERTS,
    topics.LABELS.name: LABELS,
}
