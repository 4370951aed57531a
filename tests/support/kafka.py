"""Small helpers for integration tests: produce records, read a topic until a condition holds,
run a worker subprocess with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer

from infra import topics
from infra.process import stop_group
from infra.settings import Settings


def produce(settings: Settings, spec: topics.TopicSpec, items: list[tuple[bytes | str, bytes]]):
    producer = Producer(settings.kafka.producer_conf())
    name = topics.full_name(spec, settings.kafka.topic_prefix)
    for key, value in items:
        producer.produce(name, value, key)
    assert producer.flush(30) == 0


def read_until(
    settings: Settings,
    spec: topics.TopicSpec,
    done: Callable[[list], bool],
    timeout: float = 60.0,
    check: Callable[[], None] | None = None,
) -> list:
    """Messages of ``spec`` from the beginning until ``done(messages)``; fails on timeout."""
    consumer = Consumer(settings.kafka.consumer_conf(f"reader-{uuid.uuid4().hex}"))
    consumer.subscribe([topics.full_name(spec, settings.kafka.topic_prefix)])
    messages: list = []
    deadline = time.monotonic() + timeout
    try:
        while not done(messages):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{spec.name}: only {len(messages)} messages in {timeout}s")
            if check:
                check()
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                messages.append(msg)
    finally:
        consumer.close()
    return messages


def undecided(settings: Settings, missing: set[str], total: int) -> str:
    """"N of M purchases without a decision", with the first few of them placed on the
    purchases topic (partition, offset): where a worker stopped or skipped."""
    from infra.chaos_report import read_all_placed
    from schemas.codec import AvroCodec
    from schemas.registry import registry_from_settings

    message = f"{len(missing)} of {total} purchases without a decision"
    try:
        codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
        placed = sorted((p, o, pid) for p, o, v in read_all_placed(settings, topics.PURCHASES, 30)
                        if (pid := codec.decode(v)["purchase_id"]) in missing)  # fmt: skip
    except Exception as exc:  # the diagnosis must not hide the timeout
        return f"{message} (not placed: {exc!r})"
    return f"{message}: (partition, offset, id) {placed[:10]}"


def decided_ids(settings: Settings, ids: set[str], timeout: float, check=None) -> dict[str, int]:
    """Read the decision topic until every purchase in ``ids`` has a decision; returns how
    many decisions each purchase got (at-least-once may repeat one, never lose one)."""
    from schemas.codec import AvroCodec
    from schemas.registry import registry_from_settings

    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    consumer = Consumer(settings.kafka.consumer_conf(f"reader-{uuid.uuid4().hex}"))
    consumer.subscribe([topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)])
    counts: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while not ids <= counts.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(undecided(settings, ids - counts.keys(), len(ids)))
            if check:
                check()
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    pid = codec.decode(msg.value())["purchase_id"]
                    counts[pid] = counts.get(pid, 0) + 1
    finally:
        consumer.close()
    return counts


class Worker:
    """``sentinel worker`` (or another command, ``argv`` after the interpreter) in a
    subprocess; stopped with a grace period, then SIGKILL."""

    def __init__(self, env: dict[str, str], log_path, argv: tuple[str, ...] = ("-m", "streams")):
        self.log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exited_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the worker to exit (a paced poll that also notices a
        crash at once); True if it did."""
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def assert_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}: {self.tail()}")

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")[-n:]

    def stop(self, grace: float = 15.0) -> None:
        stop_group(self.proc, grace)
        self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        """Stop the worker where it is (SIGSTOP to its group) until ``resume``."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)


def read_decisions(settings: Settings, ids: set[str], timeout: float, check=None,
                   settle_s: float = 2.0) -> dict[str, list[dict]]:
    """Every decision on the topic for the purchases in ``ids`` (all copies), read until each
    has one and no new decision came for ``settle_s``."""
    from schemas.codec import AvroCodec
    from schemas.registry import registry_from_settings

    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    consumer = Consumer(settings.kafka.consumer_conf(f"reader-{uuid.uuid4().hex}"))
    consumer.subscribe([topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)])
    found: dict[str, list[dict]] = {}
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while not (ids <= found.keys() and time.monotonic() - quiet_since > settle_s):
            if time.monotonic() > deadline:
                raise TimeoutError(undecided(settings, ids - found.keys(), len(ids)))
            if check:
                check()
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    decision = codec.decode(msg.value())
                    found.setdefault(decision["purchase_id"], []).append(decision)
                    quiet_since = time.monotonic()
    finally:
        consumer.close()
    return found
