"""Confirmed fraud feeds scoring, live on the real broker and PostgreSQL: a chargeback marks the
wallet, card, device and account its purchase used, and the NEXT purchase on any of them (or
by a wallet linked to the marked one through a shared IP) is decided by the worker with the
mark features set; a review overturning the chargeback clears them. The offline replay of the
same topics (labels in event time) computes the same mark features."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from infra import topics
from infra.settings import PostgresSettings
from processors.marks import MARK_FEATURES
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.config import SinkSettings
from sinks.marks import MarksSink
from sinks.postgres import PostgresSink
from sinks.runner import SinkLoop
from sinks.testing import running, wait_until
from tests.support.kafka import Worker, produce, read_decisions, read_until
from tests.support.models import constant_model_registry
from tests.support.records import T0, purchase

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
APPLIED = re.compile(r"fraud marks: applied \d+, read to offset 0:(\d+)")  # one partition
NONE = {"fraud_marks_wallet": 0.0, "fraud_marks_card": 0.0, "fraud_marks_device": 0.0,
        "fraud_marks_account": 0.0, "fraud_marks_cluster": 0.0, "days_since_fraud_mark": -1.0}
BAD = {"wallet": f"0x{0xbad:040x}", "card_fingerprint": "card-bad", "device_id": "dev-bad",
       "user_id": "u-bad"}


def buy(n: int, at, ip: int, **shared) -> dict:
    """Purchase ``p-n`` at ``at`` from its own wallet, card, device, account and IP
    (198.51.100.``ip``) unless ``shared`` names some of the marked purchase's."""
    return purchase(n, occurred_at=at + timedelta(seconds=n), ip=f"198.51.100.{ip}", **shared)


def next_purchases(first: int, at) -> tuple[list[dict], dict[str, str]]:
    """One purchase per way of meeting the marked entities, and which mark each should carry:
    the marked wallet itself (from a new IP), a wallet using its card, its device, its
    account, a wallet on the IP the marked wallet used a minute before, and a stranger."""
    wallet, card, device, account, cluster, stranger = range(first, first + 6)
    bought = [
        buy(wallet, at, wallet, wallet=BAD["wallet"]),
        buy(card, at, card, card_fingerprint=BAD["card_fingerprint"]),
        buy(device, at, device, device_id=BAD["device_id"]),
        buy(account, at, account, user_id=BAD["user_id"]),
        buy(cluster, at, wallet),  # the marked wallet's IP, seconds after it bought there
        buy(stranger, at, stranger),
    ]
    kinds = ("fraud_marks_wallet", "fraud_marks_card", "fraud_marks_device",
             "fraud_marks_account", "fraud_marks_cluster", None)
    return bought, {p["purchase_id"]: k for p, k in zip(bought, kinds, strict=True)}


def label(pid: str, at, fraud: bool, source: str) -> dict:
    return {"purchase_id": pid, "occurred_at": at, "is_fraud": fraud, "source": source,
            "pattern": None}


class Story:
    """The worker, the PostgreSQL sink (purchases) and the label agent (labels -> marks)."""

    def __init__(self, settings, env, tmp_path):
        self.settings = settings
        self.registry = registry_from_settings(settings)
        env = {**env, "SENTINEL_MODEL_DIR": str(constant_model_registry(tmp_path / "models"))}
        self.worker = Worker(env, tmp_path / "worker.log")
        self.marks_seen = 0

    def buy(self, bought: list[dict]) -> dict[str, dict]:
        codec = AvroCodec.for_topic(self.registry, topics.PURCHASES)
        produce(self.settings, topics.PURCHASES,
                [(p["wallet"], codec.encode(p)) for p in bought])
        got = read_decisions(self.settings, {p["purchase_id"] for p in bought}, 120,
                             self.worker.assert_alive)
        return {pid: copies[-1]["features"] for pid, copies in got.items()}

    def label(self, record: dict) -> None:
        """Publish a label and wait until its mark is on the marks topic and the worker's
        follower has applied it (the worker logs how far it has read the marks topic)."""
        self._stored(record["purchase_id"])
        codec = AvroCodec.for_topic(self.registry, topics.LABELS)
        produce(self.settings, topics.LABELS, [(record["purchase_id"], codec.encode(record))])
        self.marks_seen += 1
        marks = read_until(self.settings, topics.FRAUD_MARKS,
                           lambda m: len(m) >= self.marks_seen, 60)
        end = max(m.offset() for m in marks) + 1
        wait_until(lambda: self._marks_applied_to() >= end, 30,
                   f"the worker's marks follower at offset {end}")

    def _marks_applied_to(self) -> int:
        """The marks topic's offset the worker has applied up to, from its log."""
        self.worker.assert_alive()
        text = Path(self.worker.log.name).read_text(errors="replace")
        return max(map(int, APPLIED.findall(text)), default=0)

    def _stored(self, pid: str) -> None:
        def stored() -> bool:
            with psycopg.connect(self.settings.postgres.dsn) as conn:
                return conn.execute("SELECT 1 FROM purchases WHERE purchase_id = %s",
                                    (pid,)).fetchone() is not None

        wait_until(stored, 60, f"purchase {pid} in PostgreSQL")


def marks(features: dict) -> dict:
    return {name: features[name] for name in MARK_FEATURES}


def test_confirmed_fraud_marks_the_next_purchase_live_and_in_replay(settings, env, pg_dsn,
                                                                    tmp_path):
    settings = settings.model_copy(update={"postgres": PostgresSettings(url=pg_dsn)})
    story = Story(settings, env, tmp_path)
    loops = (SinkLoop(settings, PostgresSink(pg_dsn, (topics.PURCHASES,)),
                      SinkSettings(backoff_initial_s=0.05)),
             SinkLoop(settings, MarksSink(settings), SinkSettings(backoff_initial_s=0.05)))
    live: dict[str, dict] = {}
    try:
        with running(loops[0]), running(loops[1]):
            live |= story.buy([buy(1, T0, 1, **BAD)])
            assert marks(live["p-1"]) == NONE  # nothing confirmed yet

            story.label(label("p-1", T0 + 2 * DAY, True, "CHARGEBACK"))
            marked, expect = next_purchases(11, T0 + 3 * DAY)
            live |= story.buy(marked)
            for pid, kind in expect.items():
                got = marks(live[pid])
                if kind is None:
                    assert got == NONE, (pid, got)
                    continue
                assert got[kind] == 1.0, (pid, got)
                assert sum(v for k, v in got.items() if k != "days_since_fraud_mark") == 1.0
                assert got["days_since_fraud_mark"] == pytest.approx(1.0, abs=0.01), (pid, got)

            story.label(label("p-1", T0 + 4 * DAY, False, "MANUAL_REVIEW"))  # overturned
            cleared, _ = next_purchases(21, T0 + 5 * DAY)
            live |= story.buy(cleared)
            for p in cleared:
                assert marks(live[p["purchase_id"]]) == NONE, p["purchase_id"]
    finally:
        story.worker.stop()
    assert all(loop.error is None for loop in loops), [loop.error for loop in loops]
    _replay_agrees(settings, live)


def _replay_agrees(settings, live: dict[str, dict]) -> None:
    """The offline replay over the same topics (labels in event time) gives each purchase the
    mark features the worker gave it."""
    from models.replay import read_topics, replay_rows
    from processors.features import FEATURE_NAMES

    replayed = {p["purchase_id"]: marks(dict(zip(FEATURE_NAMES, row, strict=True)))
                for p, row in replay_rows(read_topics(settings))}
    assert replayed.keys() == live.keys()
    for pid, features in live.items():
        assert replayed[pid] == marks(features), pid
