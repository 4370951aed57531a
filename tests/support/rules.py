"""Rules files and purchase streams for the tests of rules deploy and the breaker."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

from infra import topics
from processors.rules import DEFAULT_RULES_PATH
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.support.kafka import produce, read_until
from tests.support.records import purchase

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
BLOCK_EVERYTHING = '''
[rules.block_everything]
category = "transaction"
description = "A mistake: fires on every purchase."
weight = 1.0
hard = true
when = "quantity >= 1"
reason = "every purchase"
'''


def rules_file(path, version: str, two_fa: float | None = None, extra: str = ""):
    """The packaged rules file under another version (optionally another 2FA threshold and
    extra rules appended)."""
    body = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', DEFAULT_RULES_PATH.read_text())
    if two_fa is not None:
        body = re.sub(r"(?m)^two_fa = .*$", f"two_fa = {two_fa}", body, count=1)
    path.write_text(body + extra)
    return path


def purchases(first: int, n: int) -> list[dict]:
    return [purchase(k, occurred_at=START + timedelta(seconds=k), wallet=f"0x{k % 97:040x}")
            for k in range(first, first + n)]


def send(settings, records: list[dict]) -> None:
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    produce(settings, topics.PURCHASES, [(r["wallet"], codec.encode(r)) for r in records])


def stream(settings, sent: list[dict], per_second: float, stop: threading.Event,
           first: int = 100) -> None:
    """Purchases at about ``per_second`` until ``stop``; what was sent is in ``sent``."""
    while not stop.is_set():
        batch = purchases(first + len(sent), 10)
        send(settings, batch)
        sent.extend(batch)
        time.sleep(10 / per_second)


def decoded(settings, spec, done, timeout: float = 60.0) -> list[dict]:
    codec = AvroCodec.for_topic(registry_from_settings(settings), spec)
    return [codec.decode(m.value()) for m in read_until(settings, spec, done, timeout)]


def until_decided(settings, match, after=None, timeout: float = 90.0, check=None) -> dict:
    """The first decision on the topic with ``match(decision)`` decided after ``after`` (a
    ``decided_at``), read until it is there: the worker is deciding that way now."""
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    found: list[dict] = []
    read = 0

    def done(messages: list) -> bool:
        nonlocal read
        for m in messages[read:]:
            d = codec.decode(m.value())
            if match(d) and (after is None or d["decided_at"] > after):
                found.append(d)
        read = len(messages)
        return bool(found)

    read_until(settings, topics.DECISIONS, done, timeout, check)
    return found[0]
