"""The correlation engine: pure, over event time, no I/O and no clock.

``Correlator.process(events)`` feeds events through every rule's sliding windows (one per
rule and group) and returns the alerts that fired. Window ``(t - timespan, t]`` ends at the
newest event of the group; an alert fires when the count (``event_count``) or the number of
distinct values (``value_count``) reaches the threshold.

De-duplication: one alert per rule and group per window. After an alert whose window starts
at ``first_seen``, events of that group before ``first_seen + timespan`` belong to it (they
are absorbed, not re-alerted); later events start a new window. A restarted correlator
learns these quiet periods from the alerts it published (``quiet``). The same event delivered
twice counts once. ``alert_id`` is a hash of (rule, group, first_seen): the same input gives
the same alerts, so a replay or a redelivery upserts instead of duplicating.

Events older than their group's newest event minus the timespan are too late to matter and
are dropped (counted in ``stats.late``). An event's time counts at most ``max_future_skew_ms``
beyond the time it was ingested (its Kafka record timestamp), so a single future-dated event
cannot push a group's window ahead and make the real events after it late.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sinks.encoding import epoch_ms
from sinks.siem.rules import Rule

SWEEP_EVERY_MS = 60_000
GLOBAL_GROUP = "*"
MAX_FUTURE_SKEW_MS = 5 * 60_000


@dataclass(frozen=True, slots=True)
class Event:
    """A security or auth event reduced to what the rules read."""

    event_id: str
    at_ms: int
    kind: str
    fields: Mapping[str, str]  # ip, wallet, user_id, purchase_id, details.<name>
    origin: str = "security"
    ingested_ms: int | None = None  # when it reached Kafka (record timestamp), if known

    def get(self, path: str) -> str | None:
        return self.fields.get(path) or None

    @property
    def uid(self) -> str:
        """Unique across both input topics (their ids are separate spaces)."""
        return f"{self.origin}:{self.event_id}"


@dataclass(frozen=True, slots=True)
class Plan:
    """A response to carry out: ``action`` on ``target`` for ``ttl_ms`` (None: permanent)."""

    action: str
    target: str | None
    ttl_ms: int | None


@dataclass(frozen=True)
class Alert:
    alert_id: str
    rule: str
    title: str
    group_key: str
    severity: str
    count: int
    first_seen_ms: int
    last_seen_ms: int
    event_ids: tuple[str, ...]
    plans: tuple[Plan, ...]
    trigger: str = ""  # uid of the event that made it fire


@dataclass
class CorrelatorStats:
    matched: int = 0
    late: int = 0
    duplicates: int = 0
    absorbed: int = 0
    alerts: int = 0


@dataclass
class _Window:
    entries: list[tuple[int, int, Event]] = field(default_factory=list)  # (at, seq, event)
    ids: set[str] = field(default_factory=set)
    values: Counter[str] = field(default_factory=Counter)
    newest: int | None = None
    quiet_until: int | None = None


def alert_id(rule: str, group_key: str, first_seen_ms: int) -> str:
    digest = hashlib.sha256(f"{rule}\x1f{group_key}\x1f{first_seen_ms}".encode()).hexdigest()
    return f"alrt_{rule}_{digest[:24]}"


def group_key(rule: Rule, event: Event) -> str | None:
    """The event's group for ``rule``, or None when a group field is missing."""
    if not rule.group_by:
        return GLOBAL_GROUP
    parts = []
    for alternatives in rule.group_by:
        value = next((v for a in alternatives if (v := event.get(a))), None)
        if value is None:
            return None
        parts.append(value)
    return "|".join(parts)


class Correlator:
    def __init__(
        self,
        rules: Sequence[Rule],
        max_event_ids: int = 100,
        max_future_skew_ms: int = MAX_FUTURE_SKEW_MS,
    ):
        self.rules = tuple(rules)
        self.max_event_ids = max_event_ids
        self.max_future_skew_ms = max_future_skew_ms
        self.stats = CorrelatorStats()
        self._windows: dict[tuple[str, str], _Window] = {}
        self._seq = 0
        self._watermark: int | None = None
        self._swept_at: int | None = None

    def quiet(self, rule_name: str, group: str, first_seen_ms: int) -> None:
        """An alert of ``rule_name`` for ``group`` whose window began at ``first_seen_ms`` was
        already published (before a restart): the group's events up to the end of that window
        belong to it, as if this correlator had fired it."""
        rule = next((r for r in self.rules if r.name == rule_name), None)
        if rule is None:
            return
        w = self._windows.setdefault((rule_name, group), _Window())
        until = first_seen_ms + rule.timespan_ms
        w.quiet_until = until if w.quiet_until is None else max(w.quiet_until, until)

    def process(self, events: Iterable[Event]) -> list[Alert]:
        """Feed events (sorted by event time first); return the alerts that fired."""
        alerts: list[Alert] = []
        for event in sorted(map(self._bounded, events), key=lambda e: e.at_ms):
            self._watermark = max(self._watermark or event.at_ms, event.at_ms)
            for rule in self.rules:
                if event.kind in rule.kinds and all(event.get(f) == v for f, v in rule.where):
                    alert = self._observe(rule, event)
                    if alert is not None:
                        alerts.append(alert)
        self._maybe_sweep()
        self.stats.alerts += len(alerts)
        return alerts

    def _bounded(self, event: Event) -> Event:
        """The event, its time capped at its ingest time plus the allowed skew."""
        if event.ingested_ms is None:
            return event
        horizon = event.ingested_ms + self.max_future_skew_ms
        return event if event.at_ms <= horizon else dataclasses.replace(event, at_ms=horizon)

    @property
    def open_windows(self) -> int:
        return len(self._windows)

    def _observe(self, rule: Rule, event: Event) -> Alert | None:
        group = group_key(rule, event)
        value = event.get(rule.value_field) if rule.value_field else event.uid
        if group is None or value is None:
            return None
        self.stats.matched += 1
        w = self._windows.setdefault((rule.name, group), _Window())
        if w.quiet_until is not None and event.at_ms < w.quiet_until:
            self.stats.absorbed += 1
            return None
        if event.uid in w.ids:
            self.stats.duplicates += 1
            return None
        if w.newest is not None and event.at_ms <= w.newest - rule.timespan_ms:
            self.stats.late += 1
            return None
        self._insert(w, event, value)
        self._evict(w, rule.timespan_ms, rule.value_field)
        measure = len(w.values) if rule.value_field else len(w.entries)
        if measure < rule.threshold:
            return None
        return self._fire(rule, group, w, measure, event.uid)

    def _insert(self, w: _Window, event: Event, value: str) -> None:
        self._seq += 1
        bisect.insort(w.entries, (event.at_ms, self._seq, event))
        w.ids.add(event.uid)
        w.values[value] += 1
        w.newest = max(w.newest if w.newest is not None else event.at_ms, event.at_ms)

    @staticmethod
    def _evict(w: _Window, span: int, value_field: str | None) -> None:
        assert w.newest is not None
        cut = 0
        while cut < len(w.entries) and w.entries[cut][0] <= w.newest - span:
            _, _, old = w.entries[cut]
            w.ids.discard(old.uid)
            key = (old.get(value_field) if value_field else None) or old.uid
            w.values[key] -= 1
            if w.values[key] <= 0:
                del w.values[key]
            cut += 1
        del w.entries[:cut]

    def _fire(self, rule: Rule, group: str, w: _Window, measure: int, trigger: str) -> Alert:
        events = [e for _, _, e in w.entries]
        first, last = events[0].at_ms, w.newest
        assert last is not None
        alert = Alert(
            alert_id=alert_id(rule.name, group, first),
            rule=rule.name,
            title=rule.title,
            group_key=group,
            severity=rule.severity,
            count=measure,
            first_seen_ms=first,
            last_seen_ms=last,
            event_ids=tuple(e.event_id for e in events[: self.max_event_ids]),
            plans=_plans(rule, events),
            trigger=trigger,
        )
        w.quiet_until = first + rule.timespan_ms
        w.entries.clear()
        w.ids.clear()
        w.values.clear()
        return alert

    def _maybe_sweep(self) -> None:
        """Forget groups whose window and quiet period are wholly behind the watermark."""
        mark = self._watermark
        if mark is None or (self._swept_at is not None and mark - self._swept_at < SWEEP_EVERY_MS):
            return
        self._swept_at = mark
        spans = {r.name: r.timespan_ms for r in self.rules}
        for key, w in list(self._windows.items()):
            idle = w.newest is None or w.newest <= mark - spans[key[0]]
            quiet = w.quiet_until is not None and w.quiet_until > mark
            if idle and not quiet:
                del self._windows[key]


def _plans(rule: Rule, events: Sequence[Event]) -> tuple[Plan, ...]:
    plans: list[Plan] = []
    for spec in rule.responses:
        if spec.target is None:
            plans.append(Plan(spec.action, None, spec.ttl_ms))
            continue
        targets = sorted({v for e in events if (v := e.get(spec.target))})
        plans.extend(Plan(spec.action, t, spec.ttl_ms) for t in targets)
    return tuple(plans)


def from_security_event(record: Mapping, ingested_ms: int | None = None) -> Event:
    """A decoded SecurityEvent as an ``Event``."""
    fields = {k: record[k] for k in ("ip", "wallet", "user_id", "purchase_id") if record.get(k)}
    fields.update({f"details.{k}": v for k, v in (record.get("details") or {}).items() if v})
    at = _ms(record["occurred_at"])
    return Event(record["event_id"], at, record["kind"], fields, "security", ingested_ms)


def from_auth_event(record: Mapping, ingested_ms: int | None = None) -> Event:
    """A decoded AuthEvent as an ``Event``; its kind lower-cased (LOGIN_FAILED -> login_failed)."""
    fields = {k: record[k] for k in ("ip", "wallet", "user_id", "device_id") if record.get(k)}
    at, kind = _ms(record["occurred_at"]), record["kind"].lower()
    return Event(record["event_id"], at, kind, fields, "auth", ingested_ms)


def _ms(value) -> int:
    return value if isinstance(value, int) else epoch_ms(value)
