"""Correct with any number of workers: the same burst decided by one worker, and by three
worker processes (one joining mid-stream, one SIGKILLed mid-stream), gives every purchase the
decision replay computes for it — same verdict, scores and features — and no purchase gets
two different decisions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiokafka.partitioner import murmur2

from infra import topics
from models.registry import load_model
from models.replay import replay
from processors.rules import load_ruleset
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.integration.test_worker_restart import purchases_committed, simulated_purchases
from tests.support.kafka import Worker, decided_ids, produce, read_decisions

pytestmark = pytest.mark.integration

COMPARED = ("decision", "score", "model_score", "rule_score", "features")


def essence(decision: dict) -> dict:
    return {k: decision[k] for k in COMPARED} | {"reasons": [r["code"] for r in decision["reasons"]]}


def publish_burst(settings, n: int) -> list[dict]:
    purchases = simulated_purchases(n)
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in purchases])
    return purchases


def assert_decided_as_replay(purchases: list[dict], live: dict[str, list[dict]]) -> None:
    expected = {d["purchase_id"]: essence(d)
                for d in replay([("purchase", p) for p in purchases], load_model(), load_ruleset())}
    assert live.keys() == expected.keys()
    differing = {pid: [essence(d) for d in copies] for pid, copies in live.items()
                 if any(essence(d) != expected[pid] for d in copies)}
    assert not differing, difference(purchases, expected, differing)


def difference(purchases: list[dict], expected: dict[str, dict],
               differing: dict[str, list[dict]]) -> str:
    """How the live decisions differ from replay's, short enough for CI's tail: per feature
    the purchases it differs on, the copies per purchase, the purchases partitions (by wallet,
    as the producer placed them) and event times spanned, and for a few purchases the
    differing values (replay's, then each live copy's)."""
    when = {p["purchase_id"]: p["occurred_at"].isoformat() for p in purchases}
    wallet = {p["purchase_id"]: p["wallet"] for p in purchases}
    features: Counter[str] = Counter()
    examples = {}
    for pid, copies in differing.items():
        want = expected[pid]
        changed = {k for c in copies for k, v in c["features"].items() if v != want["features"][k]}
        features.update(changed)
        if len(examples) < 3:
            examples[pid] = {"at": when[pid],
                             **{k: (want["features"][k], [c["features"][k] for c in copies])
                                for k in sorted(changed)},
                             "decision": (want["decision"], [c["decision"] for c in copies])}
    times = sorted(when[pid] for pid in differing)
    copies = Counter(len(c) for c in differing.values())
    placed = Counter(partition_of(wallet[pid]) for pid in differing)
    return (f"{len(differing)} of {len(expected)} purchases decided unlike replay; features "
            f"differing (purchases): {dict(features.most_common())}; copies per purchase: "
            f"{dict(copies)}; partitions: {dict(sorted(placed.items()))}; event times "
            f"{times[0]} .. {times[-1]}; e.g. {examples}")


def partition_of(wallet: str, partitions: int = topics.PURCHASES.partitions) -> int:
    """The purchases partition of ``wallet``'s records: Kafka's murmur2 of the key, as the
    producers place them (``murmur2_random``)."""
    return (murmur2(wallet.encode()) & 0x7FFFFFFF) % partitions


def test_one_worker_decides_a_burst_as_replay(settings, env, tmp_path):
    purchases = publish_burst(settings, 1200)
    worker = Worker(env, tmp_path / "worker.log")
    try:
        live = read_decisions(settings, {p["purchase_id"] for p in purchases}, 120,
                              worker.assert_alive)
    finally:
        worker.stop()
    assert_decided_as_replay(purchases, live)
    assert all(len(copies) == 1 for copies in live.values())


@contextmanager
def written_whole(*workers: Worker) -> Iterator[None]:
    """The running workers stopped (SIGSTOP) while a part of the burst is written, so that it
    reaches them whole. Kafka writes no record across partitions at once: librdkafka sends one
    partition's records a produce request, and a freshly started broker took ~0.1 s a request,
    so one partition's share of 500 records was on the broker ~0.6 s before another's (hours of
    the burst's event time), and a worker deciding it then could not count records not yet
    written. Live features equal replay's up to records still in flight to the broker
    (``streams/entity_replica.py``); live traffic, written as it happens, has them in flight
    for milliseconds, not hours."""
    for worker in workers:
        worker.pause()
    try:
        yield
    finally:
        for worker in workers:
            worker.resume()


def test_three_workers_joining_and_killed_decide_a_burst_as_replay(settings, env, tmp_path):
    purchases = simulated_purchases(1500)
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    records = [(p["wallet"], codec.encode(p)) for p in purchases]
    produce(settings, topics.PURCHASES, records[:500])
    ids = [p["purchase_id"] for p in purchases]
    first = Worker(env, tmp_path / "first.log")
    second = Worker(env, tmp_path / "second.log")
    third = None
    try:
        # each step publishes more of the burst first, so that the join and the kill land
        # while records wait (fast workers decided a whole pre-loaded burst before either)
        decided_ids(settings, set(ids[:250]), 120, first.assert_alive)
        with written_whole(first, second):
            produce(settings, topics.PURCHASES, records[500:1000])
        third = Worker(env, tmp_path / "third.log")  # joins mid-stream: a rebalance
        decided_ids(settings, set(ids[:750]), 120, third.assert_alive)
        with written_whole(first, second, third):
            produce(settings, topics.PURCHASES, records[1000:])
        second.kill()  # SIGKILL mid-stream: its partitions move after the session times out
        committed, rows = purchases_committed(settings, env["SENTINEL_APP_ID"])
        assert committed < len(purchases), f"killed after everything was committed: {rows}"
        live = read_decisions(settings, set(ids), 180, first.assert_alive)
    finally:
        for worker in (first, second, third):
            if worker is not None:
                worker.stop()
    assert_decided_as_replay(purchases, live)


def test_a_second_run_decides_every_record_after_the_committed_offset_exactly_once(
        settings, env, tmp_path):
    """Issue 8: ``make run`` twice lost the first record after the committed offset and
    decided five others twice. Run one worker on a burst and stop it; publish a second burst
    and start workers again, one joining right after the other (a rebalance while the first
    batches are taken): each new purchase gets exactly one decision, none of the first run's
    is decided again."""
    first = publish_burst(settings, 600)
    worker = Worker(env, tmp_path / "run1.log")
    try:
        read_decisions(settings, {p["purchase_id"] for p in first}, 120, worker.assert_alive)
    finally:
        worker.stop()
    purchases = simulated_purchases(1200)[600:]
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in purchases])
    second, third = Worker(env, tmp_path / "run2.log"), None
    try:
        decided_ids(settings, {p["purchase_id"] for p in purchases[:50]}, 120,
                    second.assert_alive)
        third = Worker(env, tmp_path / "run2b.log")
        every = {p["purchase_id"] for p in first + purchases}
        live = read_decisions(settings, every, 180, second.assert_alive, settle_s=5.0)
    finally:
        for w in (second, third):
            if w is not None:
                w.stop()
    counts = {pid: len(copies) for pid, copies in live.items()}
    assert {pid: n for pid, n in counts.items() if n != 1} == {}
