"""Simulated ticketing traffic: Purchase, ChainTransfer, AuthEvent and Label records in event
time, deterministic for a seed.

    for kind, record in simulate(SimConfig(seed=7, days=14)):
        ...  # kind in "purchase" | "transfer" | "auth" | "label"

Records are dicts in the shapes of ``schemas/*.avsc`` (tz-aware UTC datetimes, money in
integer minor units, enums as strings). Labels of all purchases are emitted, including those
that fall after the last simulated day (chargebacks arrive weeks later).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

from models.sim.config import PATTERNS, SimConfig
from models.sim.crowds import crowd_day
from models.sim.emit import Emitter
from models.sim.fraud import fraud_day
from models.sim.legit import Market, legit_day
from models.sim.world import DAY_MS, build_world

KINDS = ("purchase", "transfer", "auth", "label")
SCHEMA_OF = {
    "purchase": "purchase",
    "transfer": "chain_transfer",
    "auth": "auth_event",
    "label": "label",
}
TIME_FIELD = {
    "purchase": "occurred_at",
    "transfer": "block_time",
    "auth": "occurred_at",
    "label": "occurred_at",
}
_DATETIME_FIELDS = (
    "occurred_at",
    "block_time",
    "account_created_at",
    "sale_opens_at",
    "ingested_at",
)

__all__ = [
    "KINDS",
    "PATTERNS",
    "SCHEMA_OF",
    "SimConfig",
    "event_time",
    "read_jsonl",
    "simulate",
    "summarize",
    "write_jsonl",
]


def simulate(
    config: SimConfig | None = None, scenarios: dict[str, str] | None = None
) -> Iterator[tuple[str, dict]]:
    """Yield ``(kind, record)`` for the whole run, in event-time order.

    ``scenarios``, when given, is filled with ``purchase_id -> scenario`` for every purchase:
    the fraud pattern, or the legit behaviour that produced it (``legit_*``), for per-scenario
    reports such as ``sentinel bench detection``. It does not change the records."""
    config = config or SimConfig()
    rng = np.random.default_rng(config.seed)
    emitter = Emitter(build_world(config, rng), rng)
    emitter.scenarios = scenarios
    market = Market()
    for day in range(config.days):
        emitter.floor_ms = config.start_ms + day * DAY_MS
        n_legit = legit_day(emitter, market, day, rng)
        crowd_day(emitter, emitter.floor_ms)
        fraud_day(emitter, day, n_legit, rng)
        yield from emitter.pop_until(config.start_ms + (day + 1) * DAY_MS)
    yield from emitter.pop_until(None)


def event_time(kind: str, record: dict) -> datetime:
    return record[TIME_FIELD[kind]]


def summarize(events: Iterable[tuple[str, dict]]) -> dict:
    """Counts per kind, fraud purchases per pattern and the fraud rate."""
    kinds: Counter[str] = Counter()
    patterns: Counter[str] = Counter()
    for kind, record in events:
        kinds[kind] += 1
        if kind == "label" and record["is_fraud"]:
            patterns[record["pattern"]] += 1
    labels = kinds["label"] or 1
    return {
        "events": sum(kinds.values()),
        "kinds": dict(kinds),
        "patterns": dict(patterns),
        "fraud_rate": sum(patterns.values()) / labels,
    }


def write_jsonl(path: str | Path, events: Iterable[tuple[str, dict]]) -> int:
    """One ``{"kind": ..., "record": ...}`` per line, datetimes in ISO-8601; returns the count."""
    n = 0
    with open(path, "wb") as out:
        for kind, record in events:
            out.write(orjson.dumps({"kind": kind, "record": record}))
            out.write(b"\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict]]:
    """The inverse of ``write_jsonl``: datetimes come back tz-aware."""
    with open(path, "rb") as lines:
        for line in lines:
            item = orjson.loads(line)
            record = item["record"]
            for name in _DATETIME_FIELDS:
                if record.get(name) is not None:
                    record[name] = datetime.fromisoformat(record[name])
            yield item["kind"], record
