"""Model health's windows on real PostgreSQL: read from the hourly rollups (0014, 0040) plus
the minutes of each window's first, partial hour, they count exactly what the raw rows in
[since, now] say, rows one minute before the window's start, in its partial first hour and
on its first whole hour included. The refreshers that keep those rollups run without JIT."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from connectors.console.queries import model
from infra import topics
from infra.settings import Settings
from processors.policy import DEFAULT_THRESHOLDS
from sinks.redis import VERDICTS
from sinks.testing import decision
from tests.support.console import migrated_database, refresh_rollups, store
from tests.support.records import purchase

pytestmark = pytest.mark.integration
# A quarter past: each window's first hour is partial (its edge 45 minutes after its start).
NOW = datetime.now(UTC).replace(minute=15, second=30, microsecond=0)
# Rows inside each window: 6 of its own 8 offsets; the 7-day window also holds 7 of the 24-hour
# window's (its last offset, a minute before now, is the same row).
INSIDE = {"24h": 6, "7d": 13}


def _offsets(since: datetime) -> list[datetime]:
    edge = model.hour_edge(since)
    return [since - timedelta(minutes=1), since - timedelta(seconds=1), since,
            since + timedelta(minutes=1, seconds=59), edge - timedelta(seconds=1), edge,
            edge + timedelta(minutes=61), NOW - timedelta(minutes=1)]  # fmt: skip


def rows_at_edges() -> tuple[list[dict], list[dict], list[dict]]:
    """Decisions (every verdict, both flags, with and without a challenger) and a label each,
    the decision at each edge offset of both windows, its label at the same time."""
    minute = NOW.replace(second=0)
    times = sorted({t for _, span in model.WINDOWS for t in _offsets(minute - span)})
    review = DEFAULT_THRESHOLDS.review
    ds, ps, ls = [], [], []
    for i, at in enumerate(times):
        pid = f"pw-{i}"
        ds.append(decision(i, purchase_id=pid, decision_id=f"dec_{pid}", decision=VERDICTS[i % 4],
                           occurred_at=at, decided_at=at + timedelta(milliseconds=5),
                           model_score=review + (0.1 if i % 3 else -0.1),
                           challenger_version="c-1" if i % 2 else None,
                           challenger_score=(review + 0.05 if i % 5 else review - 0.05) if i % 2 else None))  # fmt: skip
        ps.append(purchase(i, purchase_id=pid, occurred_at=at, wallet=ds[-1]["wallet"]))
        ls.append({"purchase_id": pid, "occurred_at": at, "is_fraud": i % 4 == 3,
                   "source": "CHARGEBACK", "pattern": None, "reviewer": None})  # fmt: skip
    return ds, ps, ls


@pytest.fixture(scope="module")
def health(stack: Settings):
    with migrated_database(stack) as dsn:
        ds, ps, ls = rows_at_edges()
        store(dsn, (topics.DECISIONS, ds), (topics.PURCHASES, ps))
        store(dsn, (topics.LABELS, ls))
        refresh_rollups(dsn)

        async def read() -> dict:
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                return await model.model_health(conn, NOW)

        yield dsn, asyncio.run(read())


def raw(dsn: str, query: str, since: datetime) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, {"since": since, "review": DEFAULT_THRESHOLDS.review}).fetchall()


@pytest.mark.parametrize("name", [name for name, _ in model.WINDOWS])
def test_confusion_counts_the_labels_of_the_window_exactly(health, name: str) -> None:
    dsn, data = health
    window = data["windows"][name]
    counts = raw(dsn, "SELECT d.decision, l.is_fraud, count(*) FROM labels l JOIN decisions d"
                      " USING (purchase_id) WHERE l.occurred_at >= %(since)s GROUP BY 1, 2",
                 window["since"])  # fmt: skip
    matrix = window["confusion"]["matrix"]
    expected = {v: {"fraud": 0, "legit": 0} for v in VERDICTS}
    for verdict, is_fraud, n in counts:
        expected[verdict]["fraud" if is_fraud else "legit"] = n
    assert matrix == expected
    assert window["confusion"]["labels"] == sum(n for *_, n in counts) == INSIDE[name]


@pytest.mark.parametrize("name", [name for name, _ in model.WINDOWS])
def test_champion_and_challenger_count_the_decisions_of_the_window_exactly(health, name: str) -> None:
    dsn, data = health
    window = data["windows"][name]
    ((n, flagged, scored, c_flagged, agree),) = raw(
        dsn,
        "SELECT count(*), count(*) FILTER (WHERE model_score > %(review)s), count(challenger_score),"
        " count(*) FILTER (WHERE challenger_score > %(review)s), count(*) FILTER (WHERE"
        " challenger_score IS NOT NULL AND (challenger_score > %(review)s) = (model_score > %(review)s))"
        " FROM decisions WHERE occurred_at >= %(since)s",
        window["since"],
    )  # fmt: skip
    live = window["live"]
    assert (live["decisions"], live["champion_flagged"]) == (n, flagged) and n == INSIDE[name]
    assert (live["challenger_scored"], live["challenger_flagged"]) == (scored, c_flagged) and scored > 0
    assert live["agreement"] == pytest.approx(agree / scored)
    labelled = window["models"]
    assert labelled["champion"]["labels"] == n and labelled["challenger"]["labels"] == scored


def test_a_window_starting_on_the_hour_reads_hours_only() -> None:
    on_hour = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    assert model.hour_edge(on_hour) == on_hour
    assert model.hour_edge(on_hour + timedelta(minutes=1)) == on_hour + timedelta(hours=1)


def test_the_rollup_refreshers_run_without_jit(health) -> None:
    """Whoever calls them (0042): with JIT their per-minute lookups over the daily partitions
    compiled for seconds per statement. A CREATE OR REPLACE that drops the setting fails here."""
    dsn, _ = health
    with psycopg.connect(dsn) as conn:
        configs = dict(conn.execute(
            "SELECT proname, proconfig FROM pg_proc WHERE proname = ANY(%s)",
            (["console_refresh_decision_minutes", "console_refresh_label_minutes",
              "console_roll_hours", "console_roll_label_hours"],),
        ).fetchall())  # fmt: skip
    assert len(configs) == 4 and all(c and "jit=off" in c for c in configs.values()), configs
