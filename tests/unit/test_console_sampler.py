"""The sampler's close is bounded: it waits for a Kafka snapshot in flight (a thread, which
cannot be cancelled) up to its bound, and closes the Kafka clients only once no snapshot uses
them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from connectors.console.sampler import Sampler
from infra.settings import Settings

pytestmark = pytest.mark.unit


class _View:
    """A KafkaView whose snapshot takes as long as the test says."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.closed = False

    def snapshot(self) -> dict:
        self.started.set()
        self.release.wait(30)
        return {"taken_at": 0.0, "groups": []}

    def close(self) -> None:
        self.closed = True


async def _closed_while_sampling(view: _View, within_s: float, release_after_s: float | None):
    sampler = Sampler(Settings())
    sampler._view = view
    sampling = asyncio.create_task(sampler._sample_kafka())
    await asyncio.to_thread(view.started.wait, 5)
    sampling.cancel()  # as the console's close cancels the sampler; the thread runs on
    if release_after_s is not None:
        asyncio.get_running_loop().call_later(release_after_s, view.release.set)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await sampler.close(within_s=within_s)
    took = loop.time() - began
    view.release.set()  # let the thread end, so that the test does
    return took


def test_close_does_not_wait_past_its_bound_for_a_snapshot() -> None:
    view = _View()
    took = asyncio.run(_closed_while_sampling(view, within_s=0.3, release_after_s=None))
    assert took < 10.0  # not the snapshot's 30 s
    assert not view.closed  # still in use by the snapshot's thread


def test_close_waits_for_a_snapshot_within_its_bound_then_closes_kafka() -> None:
    view = _View()
    took = asyncio.run(_closed_while_sampling(view, within_s=10.0, release_after_s=0.3))
    assert 0.25 <= took < 5.0 and view.closed
