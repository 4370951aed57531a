"""Replay topics through the same ``processors/`` code, offline, for backtests.

``replay(events, model, ruleset)`` runs purchases, auth events and chain transfers in event
time through ``FeatureEngine`` and ``decide_batch`` in batches, exactly as the worker would
with no lag, and returns the decisions. ``read_topics`` loads the source topics from Kafka and
merges them in event-time order; ``compare`` sets candidate decisions against production
decisions and labels. Same input, same model and rules → the same decisions (only
``decided_at`` and ``latency_ms`` are taken from the clock, and ``decision_key`` leaves them
out).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from infra import topics
from infra.settings import Settings
from infra.topic_read import read_topic
from processors.decide import Blocked, decide_batch
from processors.features import FeatureConfig, FeatureEngine, LateEventError
from processors.rules import RuleSet

SOURCES = {"purchase": topics.PURCHASES, "auth": topics.AUTH_EVENTS,
           "transfer": topics.CHAIN_TRANSFERS, "label": topics.LABELS}
TIME_FIELD = {"purchase": "occurred_at", "auth": "occurred_at", "transfer": "block_time",
              "label": "occurred_at"}
CLOCK_FIELDS = ("decided_at", "latency_ms")


def replay(events: Iterable[tuple[str, dict]], model, ruleset: RuleSet, *,
           since: datetime | None = None, until: datetime | None = None,
           blocked: Blocked = Blocked(), batch_size: int = 500,
           config: FeatureConfig | None = None) -> list[dict]:
    """Decisions for the purchases in [since, until); earlier events only build state."""
    decisions: list[dict] = []
    pending: list[tuple[dict, tuple[float, ...]]] = []
    for row in replay_rows(events, since=since, until=until, config=config):
        pending.append(row)
        if len(pending) >= batch_size:
            decisions += decide_rows(pending, model, ruleset, blocked)
            pending = []
    return decisions + decide_rows(pending, model, ruleset, blocked)


def replay_rows(events: Iterable[tuple[str, dict]], *, since: datetime | None = None,
                until: datetime | None = None,
                config: FeatureConfig | None = None
                ) -> Iterator[tuple[dict, tuple[float, ...]]]:
    """(purchase, features) for the purchases in [since, until), through ``FeatureEngine``
    in the events' order; earlier events only build state, late ones are skipped as live."""
    engine = FeatureEngine(config)
    for kind, record in events:
        at = record[TIME_FIELD[kind]]
        if until is not None and at >= until:
            return
        try:
            features = engine.process_row(kind, record)
        except LateEventError:
            continue  # the live worker dead-letters these too
        if features is not None and (since is None or at >= since):
            yield record, features


def decide_rows(pending, model, ruleset, blocked: Blocked = Blocked()) -> list[dict]:
    """Decisions for (purchase, features) rows, in one ``decide_batch`` call."""
    if not pending:
        return []
    outcomes = decide_batch([p for p, _ in pending], [f for _, f in pending], model, ruleset,
                            blocked, datetime.now(UTC))
    return [o.decision for o in outcomes]


def decision_key(decision: dict) -> dict:
    """A decision without its wall-clock fields: what must be equal between two replays."""
    return {k: v for k, v in decision.items() if k not in CLOCK_FIELDS}


def read_topics(settings: Settings) -> Iterator[tuple[str, dict]]:
    """Purchases, auth events, chain transfers and labels merged in event-time order (a label
    after what happened at its instant: it marks entities for later purchases only)."""
    streams = [_timed(kind, read_topic(settings, spec)) for kind, spec in SOURCES.items()]
    for _, _, kind, record in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield kind, record


def _timed(kind: str, records: list[dict]) -> list[tuple]:
    """(event time, kind rank, kind, record), sorted: auth and transfers before purchases of
    the same instant, as history comes before the decision it informs."""
    rank = {"transfer": 0, "auth": 1, "purchase": 2, "label": 3}[kind]
    return sorted(((r[TIME_FIELD[kind]], rank, kind, r) for r in records),
                  key=lambda item: (item[0], item[1]))


def compare(candidate: list[dict], production: list[dict], labels: list[dict]) -> dict:
    """Agreement with production and, where labels exist, each side's catch and false alarms."""
    prod = {d["purchase_id"]: d for d in production}
    truth = {lb["purchase_id"]: lb["is_fraud"] for lb in labels}
    both = [d for d in candidate if d["purchase_id"] in prod]
    changed = [d for d in both if d["decision"] != prod[d["purchase_id"]]["decision"]]
    return {
        "decisions": len(candidate),
        "with_production": len(both),
        "same_verdict": len(both) - len(changed),
        "changed": _count(f"{prod[d['purchase_id']]['decision']}->{d['decision']}"
                          for d in changed),
        "candidate": _quality(candidate, truth),
        "production": _quality([prod[d["purchase_id"]] for d in both], truth),
    }


def _count(keys: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return out


def _quality(decisions: list[dict], truth: dict[str, bool]) -> dict:
    labelled = [d for d in decisions if d["purchase_id"] in truth]
    flagged = [d for d in labelled if d["decision"] in ("MANUAL_REVIEW", "BLOCKED")]
    fraud = [d for d in labelled if truth[d["purchase_id"]]]
    caught = [d for d in flagged if truth[d["purchase_id"]]]
    return {"labelled": len(labelled), "fraud": len(fraud), "flagged": len(flagged),
            "recall": len(caught) / len(fraud) if fraud else None,
            "false_alarms": len(flagged) - len(caught)}
