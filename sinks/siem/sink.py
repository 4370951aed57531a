"""The SIEM correlator as a sink of ``sentinel.security-events.v1`` and
``sentinel.auth-events.v1``: correlate each batch (``correlate.py``), carry out the alerts'
responses (``respond.py``) and publish the alerts, with their responses, to
``sentinel.alerts.v1`` (key ``<rule>:<group>``). The PostgreSQL sink stores them.

On start-up the loop re-reads the last ``max(timespan)`` of the topics before the committed
offsets (``rewind_ms``) to rebuild the windows, after the alerts published recently have set
their groups' quiet periods (``restore_quiet_periods``); an alert whose triggering event was
already committed by the previous run is not published again.

Alerts that fired but are not yet acknowledged by the broker stay pending: when a write is
retried (Redis, PostgreSQL or the broker down), the correlator does not fire them again (it
has seen the events) but the pending ones are published on the retry; responses already
carried out are not repeated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Producer

from infra import topics
from infra.logsafe import pseudonym
from infra.settings import Settings
from infra.topic_read import read_topic
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.base import BatchSink, Record, SinkUnavailableError
from sinks.config import SiemSettings
from sinks.encoding import epoch_ms
from sinks.siem.correlate import Alert, Correlator, Event, from_auth_event, from_security_event
from sinks.siem.respond import Responder, Webhook
from sinks.siem.rules import RuleSet, load_rules

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    alert: Alert
    record: dict
    executed: bool = False


def to_event(record: Record) -> Event:
    if record.spec.name == topics.AUTH_EVENTS.name:
        return from_auth_event(record.value, record.timestamp_ms)
    return from_security_event(record.value, record.timestamp_ms)


def alert_record(alert: Alert, created_at: datetime) -> dict:
    """The Alert (Avro) record, responses not carried out yet."""
    return {
        "alert_id": alert.alert_id,
        "rule": alert.rule,
        "group_key": alert.group_key,
        "severity": alert.severity,
        "count": alert.count,
        "first_seen": datetime.fromtimestamp(alert.first_seen_ms / 1000, UTC),
        "last_seen": datetime.fromtimestamp(alert.last_seen_ms / 1000, UTC),
        "event_ids": list(alert.event_ids),
        "responses": [],
        "created_at": created_at,
    }


class SiemSink(BatchSink):
    name = "siem"
    topics = (topics.SECURITY_EVENTS, topics.AUTH_EVENTS)

    def __init__(
        self,
        settings: Settings,
        responder: Responder,
        rules: RuleSet,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.responder = responder
        self.rules = rules
        self.correlator = Correlator(
            rules.rules, max_future_skew_ms=settings.stream.max_future_skew_ms
        )
        self.clock = clock
        self.codec = AvroCodec.for_topic(registry_from_settings(settings), topics.ALERTS)
        self.alerts_topic = topics.full_name(topics.ALERTS, settings.kafka.topic_prefix)
        self.producer: Producer | None = None
        self._pending: list[_Pending] = []
        self.replays_suppressed = 0
        self.rewind_ms = max((r.timespan_ms for r in rules.rules), default=0)
        self.alerts_lookback_ms = 2 * self.rewind_ms  # alerts whose quiet periods may last
        self._failed: list[str] = []

    @classmethod
    def from_settings(cls, settings: Settings, siem: SiemSettings | None = None) -> SiemSink:
        import redis

        siem = siem or SiemSettings()
        client = redis.Redis.from_url(settings.redis.dsn, socket_timeout=5)
        webhook = Webhook(siem.webhook_url, siem.webhook_timeout_s) if siem.webhook_url else None
        responder = Responder(client, settings.postgres.dsn, webhook,
                              policy=siem.repeat_policy())  # fmt: skip
        return cls(settings, responder, load_rules(siem.rules_file))

    def setup(self) -> None:
        self.responder.setup()
        self.producer = Producer(self.settings.kafka.producer_conf())
        restored = self.restore_quiet_periods()
        log.info("siem: %d rules, version %s; %d published alerts keep their groups quiet",
                 len(self.rules.rules), self.rules.version, restored)  # fmt: skip

    def restore_quiet_periods(self) -> int:
        """Read the alerts published within twice the longest timespan back into the
        correlator's quiet periods. The windows rebuilt from ``rewind_ms`` of events cannot
        know them: an alert's first events may lie before what is read again, and without
        its quiet period its last events would open a second incident."""
        since = int(self.clock() * 1000) - self.alerts_lookback_ms
        alerts = read_topic(self.settings, topics.ALERTS, since_ms=since)
        for alert in alerts:
            self.correlator.quiet(alert["rule"], alert["group_key"], epoch_ms(alert["first_seen"]))
        return len(alerts)

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)
        self.responder.close()

    def write(self, batch: Sequence[Record]) -> None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        events = [to_event(r) for r in batch]
        replayed = {e.uid for e, r in zip(events, batch, strict=True) if r.replayed}
        for alert in self.correlator.process(events):
            if alert.trigger in replayed:  # fired and published before the restart
                self.replays_suppressed += 1
                continue
            log.warning("alert %s %s group=%s count=%d", alert.rule, alert.alert_id,
                        pseudonym(alert.group_key), alert.count)  # an IP or a user: never raw
            self._pending.append(_Pending(alert, alert_record(alert, now)))
        for pending in self._pending:
            if not pending.executed:
                pending.record["responses"] = self.responder.execute(pending.alert, pending.record)
                pending.executed = True
        self._publish()

    def _publish(self) -> None:
        if not self._pending:
            return
        assert self.producer is not None
        for pending in self._pending:
            key = f"{pending.alert.rule}:{pending.alert.group_key}"
            value = self.codec.encode(pending.record)
            self.producer.produce(self.alerts_topic, value, key, on_delivery=self._on_delivery)
        remaining = self.producer.flush(10)
        failed, self._failed = self._failed, []
        if remaining or failed:
            raise SinkUnavailableError(f"alerts not acknowledged: {remaining} left, {failed[:3]}")
        self._pending.clear()

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._failed.append(str(err))
