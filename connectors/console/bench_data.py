"""Synthetic rows for ``sentinel bench console``: decisions with their purchases, labels and
alerts spread over the last N days, loaded with COPY straight into the tables through the
sink's own row mapping (sinks/pg_tables.py), so the rows, the triggers that mark rollups and
open review cases, and the indexes are those of production; only the sink's staging step
(for idempotent redelivery, which a fresh bench does not need) is skipped.

Rows arrive in event-time order, as the pipeline writes them (a minute's decisions share a few
heap pages, as in production), into the daily partitions ``sentinel db maintain`` keeps (not
the default partition that catches days without one)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from infra import retention
from processors.compute import FEATURE_NAMES
from sinks import pg_tables
from sinks.pg_tables import Table

VERDICT_MIX = (("APPROVED", 0.85), ("REQUIRE_2FA", 0.08), ("MANUAL_REVIEW", 0.03), ("BLOCKED", 0.04))
CURRENCIES = ("EUR", "USD", "GBP", "JPY")
BATCH = 20_000


def _verdict(rng: random.Random) -> str:
    x, acc = rng.random(), 0.0
    for verdict, share in VERDICT_MIX:
        acc += share
        if x < acc:
            return verdict
    return "APPROVED"


def _pair(i: int, at: datetime, rng: random.Random, wallets: int) -> tuple[dict, dict]:
    pid, wallet = f"bench-{i:08d}", f"0x{rng.randrange(wallets):040x}"
    verdict, latency = _verdict(rng), rng.lognormvariate(3.0, 0.8)
    decision = {
        "decision_id": f"dec_{pid}", "purchase_id": pid, "wallet": wallet, "organizer_id": "org-1",
        "decision": verdict, "score": rng.random(), "model_score": rng.random(),
        "rule_score": rng.random(), "model_version": "bench-model", "rules_version": "bench-rules",
        "reasons": [{"code": "velocity_1h", "category": "behavioral", "score": 0.4,
                     "detail": f"{rng.randrange(9)} purchases in 1 h"}],
        "contributions": {"velocity_1h": rng.uniform(-1, 1), "account_age_days": rng.uniform(-1, 1)},
        "features": {name: round(rng.random() * 10, 3) for name in FEATURE_NAMES},
        "occurred_at": at, "decided_at": at + timedelta(milliseconds=latency), "latency_ms": latency,
        "challenger_version": None, "challenger_score": None,
    }  # fmt: skip
    purchase = {
        "purchase_id": pid, "occurred_at": at, "wallet": wallet, "user_id": f"u-{wallet[-8:]}",
        "organizer_id": "org-1", "show_id": f"show-{rng.randrange(500)}", "ticket_id": f"t-{i}",
        "quantity": 1 + rng.randrange(4), "unit_price_minor": 500 + rng.randrange(50_000),
        "currency": CURRENCIES[rng.randrange(len(CURRENCIES))], "channel": "PRIMARY",
        "payment_method": "CARD", "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "geo": {"lat": 0.0, "lon": 0.0, "country": "DE"}, "device_id": f"dev-{rng.randrange(wallets)}",
        "ingested_at": at, "card_fingerprint": f"card-{rng.randrange(wallets)}",
    }  # fmt: skip
    return decision, purchase


def batches(n: int, days: int, now: datetime, seed: int = 1) -> Iterator[tuple[list, list, list]]:
    """(decisions, purchases, labels) in batches, occurred_at uniform over ``days`` days; a
    label for 5 % of purchases, 1 to 10 days later (none in the future)."""
    rng = random.Random(seed)
    span = timedelta(days=days).total_seconds()
    wallets = max(1000, n // 5)
    ages = sorted((rng.random() * span for _ in range(n)), reverse=True)  # oldest first
    for start in range(0, n, BATCH):
        ds, ps, ls = [], [], []
        for i in range(start, min(n, start + BATCH)):
            at = now - timedelta(seconds=ages[i])
            d, p = _pair(i, at, rng, wallets)
            ds.append(d)
            ps.append(p)
            label_at = at + timedelta(days=rng.uniform(1, 10))
            if rng.random() < 0.05 and label_at < now:
                ls.append({"purchase_id": d["purchase_id"], "occurred_at": label_at,
                           "is_fraud": d["decision"] == "BLOCKED" or rng.random() < 0.02,
                           "source": "CHARGEBACK", "pattern": None, "reviewer": None})  # fmt: skip
        yield ds, ps, ls


def alerts(count: int, now: datetime, seed: int = 2) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        last = now - timedelta(seconds=rng.random() * 30 * 86400)
        out.append({"alert_id": f"bench-alert-{i}", "rule": "brute_force", "group_key": f"10.0.{i % 256}.1",
                    "severity": ("LOW", "MEDIUM", "HIGH", "CRITICAL")[rng.randrange(4)], "count": 5,
                    "first_seen": last - timedelta(minutes=5), "last_seen": last, "event_ids": [],
                    "responses": [], "created_at": last})  # fmt: skip
    return out


def _copy(cur: psycopg.Cursor, table: Table, values: list[dict]) -> None:
    statement = sql.SQL("COPY {table} ({cols}) FROM STDIN").format(
        table=sql.Identifier(table.name), cols=sql.SQL(", ").join(map(sql.Identifier, table.columns))
    )
    with cur.copy(statement) as copy:
        for value in values:
            copy.write_row(table.row(value))


def partition_days(dsn: str, days: int, now: datetime) -> int:
    """The daily partitions of the last ``days`` days, as ``sentinel db maintain`` run every
    day would have made them (it makes a day's partition ahead of time). Returns how many."""
    created = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        day = now.date() - timedelta(days=days + 1)
        while day <= now.date():
            report = retention.maintain(conn, day + timedelta(days=1))
            created += sum(report.partitions_created.values())
            day += timedelta(days=retention.AHEAD_DAYS)
    return created


def load(dsn: str, n: int, days: int, now: datetime | None = None) -> dict[str, int]:
    """Load ``n`` decisions (and purchases, labels, 2 000 alerts), one transaction a batch."""
    now = now or datetime.now(UTC)
    counts = {"decisions": 0, "labels": 0, "alerts": 2000,
              "partitions": partition_days(dsn, days, now)}  # fmt: skip
    with psycopg.connect(dsn) as conn:
        for ds, ps, ls in batches(n, days, now):
            with conn.transaction(), conn.cursor() as cur:
                _copy(cur, pg_tables.DECISIONS, ds)
                _copy(cur, pg_tables.PURCHASES, ps)
                _copy(cur, pg_tables.LABELS, ls)
            counts["decisions"] += len(ds)
            counts["labels"] += len(ls)
        with conn.transaction(), conn.cursor() as cur:
            _copy(cur, pg_tables.ALERTS, alerts(counts["alerts"], now))
    return counts
