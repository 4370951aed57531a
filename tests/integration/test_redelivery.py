"""A worker that dies after its batch's decisions are acknowledged but before its wallet states
are written and its offsets committed (the window of issue 12, injected with
``SENTINEL_FAIL_AFTER_DECIDED_BATCHES``): the batch is redelivered, to the same worker
restarted or to a peer that takes over its partitions, and no purchase of it is decided again:
every purchase has exactly one decision on the topic."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from infra import topics
from infra.chaos_report import essence
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.testing import decision
from streams.redelivery import TailReader, source_header
from tests.integration.test_worker_restart import simulated_purchases
from tests.support.kafka import Worker, produce, read_decisions

pytestmark = pytest.mark.integration

FAULT_EXIT = 75  # streams.agents.FAULT_EXIT (importing it would build the Faust app)
WAVE = 30


def publish_until_exit(settings, purchases: list[dict], crashing: Worker, check) -> list[dict]:
    """Publish waves of purchases until ``crashing`` exits; the purchases published."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    deadline = time.monotonic() + 150
    sent = 0
    while not crashing.exited_within(1.0):
        assert time.monotonic() < deadline, f"the fault never fired: {crashing.tail()}"
        assert sent < len(purchases), "every purchase published and the fault never fired"
        check()
        wave = purchases[sent:sent + WAVE]
        produce(settings, topics.PURCHASES, [(p["wallet"], codec.encode(p)) for p in wave])
        sent += len(wave)
    assert crashing.proc.returncode == FAULT_EXIT, crashing.tail()
    return purchases[:sent]


@pytest.mark.parametrize("successor", ["restarted", "peer"])
def test_a_redelivered_batch_whose_decisions_were_delivered_is_not_decided_again(
        settings, env, tmp_path, successor):
    purchases = simulated_purchases(600)
    crashing_env = {**env, "SENTINEL_FAIL_AFTER_DECIDED_BATCHES": "1",
                    "SENTINEL_BATCH_SIZE": "20"}
    workers = [Worker(env, tmp_path / "peer.log")] if successor == "peer" else []
    try:
        crashing = Worker(crashing_env, tmp_path / "crashing.log")
        workers.append(crashing)
        alive = (lambda: workers[0].assert_alive()) if successor == "peer" else (lambda: None)
        published = publish_until_exit(settings, purchases, crashing, alive)
        if successor == "restarted":
            workers.append(Worker(env, tmp_path / "restarted.log"))
        found = read_decisions(settings, {p["purchase_id"] for p in published}, 150,
                               workers[-1].assert_alive if successor == "restarted" else alive,
                               settle_s=5.0)  # fmt: skip
    finally:
        for worker in workers:
            worker.stop()
    assert found.keys() == {p["purchase_id"] for p in published}
    twice = {pid: len(copies) for pid, copies in found.items() if len(copies) > 1}
    differing = sum(len({essence(d) for d in copies}) > 1 for copies in found.values())
    assert not twice, (f"{len(twice)} of {len(found)} purchases decided more than once "
                       f"({differing} with different decisions): {list(twice.items())[:5]}")


def test_the_read_back_steps_back_past_a_producer_clock_ahead_of_the_workers(settings):
    """Decisions stamped an hour before the purchase they follow (clocks apart by more than
    the lookback): the read steps back until it reaches decisions of earlier purchases."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    producer = Producer(settings.kafka.producer_conf())
    name = topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)
    stamped = int(time.time() * 1000) - 3_600_000
    for offset in range(3000):
        record = {**decision(offset), "purchase_id": f"pur_{offset}"}
        producer.produce(name, codec.encode(record), record["wallet"], partition=2,
                         headers=source_header(offset), timestamp=stamped + offset)
    assert producer.flush(30) == 0
    reader = TailReader(settings, lambda value: codec.decode(value)["purchase_id"])
    found = reader({2: (1200, int(time.time() * 1000)), 4: (0, int(time.time() * 1000))})
    assert found[2] == {f"pur_{o}": o for o in range(1200, 3000)}
    assert found[4] == {}
