"""Backtest a candidate rules file over a recent window of the topics, before it is deployed.

The source topics are replayed in event time (``models/replay.py``: the worker's feature and
decision code) with the champion model and the candidate rules; purchases of the last
``window_days`` of event time (before the latest purchase on the topic) are decided, and
set against the production decisions and the labels (corrections applied). Blocklists are
not replayed: a purchase production blocked for a blocklist hit shows as changed.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from infra import topics
from infra.settings import Settings
from models.labels import effective_labels
from models.replay import compare, read_topic, read_topics, replay
from processors.features import FeatureConfig
from processors.rules import RuleSet


def backtest(settings: Settings, ruleset: RuleSet, window_days: float = 7.0,
             model=None) -> dict:
    """The summary stored with a deployed version (JSON-able)."""
    from models.registry import load_model

    model = model or load_model()
    events = list(read_topics(settings))
    purchases = [r["occurred_at"] for k, r in events if k == "purchase"]
    if not purchases:
        return {"window_days": window_days, "decisions": 0, "note": "no purchases on the topics"}
    until = max(purchases) + timedelta(milliseconds=1)
    since = until - timedelta(days=window_days)
    config = FeatureConfig(allowed_lateness_ms=settings.stream.allowed_lateness_ms,
                           chain_lateness_ms=settings.stream.chain_lateness_ms)
    decisions = replay(events, model, ruleset, since=since, until=until, config=config)
    labels = effective_labels(read_topic(settings, topics.LABELS)).values()
    production = read_topic(settings, topics.DECISIONS)
    report = compare(decisions, production, list(labels))
    return {"since": since.isoformat(), "until": until.isoformat(), "window_days": window_days,
            "model": model.version, "rules": ruleset.version,
            "verdicts": dict(Counter(d["decision"] for d in decisions)), **report}
