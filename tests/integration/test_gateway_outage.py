"""Nothing is lost while the broker is unreachable: every 202 is on the topic, every other
answer told the caller so (and its record still goes out once the broker is back).

A broker of its own (Apache Kafka, KRaft) advertises a TCP proxy on 127.0.0.1 as its address,
so every connection of the gateway's producer goes through the proxy; switching the proxy off
drops them and refuses new ones, as a network partition would, while the broker keeps running.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from infra import admin
from infra.kafka import broker
from infra.observe import free_port
from infra.settings import KafkaSettings, RedisSettings, Settings, WebhookSettings
from infra.topics import PURCHASES, SECURITY_EVENTS
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from tests.integration.test_gateway import gateway_client, new_purchase, post, with_limits
from tests.support.kafka import read_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Proxy:
    """A TCP proxy on 127.0.0.1 that can be switched off (drop and refuse connections) or
    turned into a black hole (connections accepted and kept, nothing ever answered)."""

    def __init__(self, target_port: int):
        self.port, self.target_port = free_port(), target_port
        self.up, self.refused, self.black_hole = True, 0, False
        self._links: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.port))  # fmt: skip
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.refused += 1
            writer.transport.abort()
            return
        if self.black_hole:  # swallow whatever comes, answer nothing
            self._links.add(writer)
            while await reader.read(65536):
                pass
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer, self), _pipe(up_reader, writer, self))
        self._links -= {writer, up_writer}

    def switch(self, up: bool) -> None:
        def apply() -> None:
            self.up = up
            if not up:
                for link in list(self._links):
                    link.transport.abort()

        self._on_loop(apply)

    def swallow(self, on: bool) -> None:
        """Black hole on: every connection, open or new, stays open and silent."""
        self._on_loop(lambda: setattr(self, "black_hole", on))

    def _on_loop(self, change: Callable[[], None]) -> None:
        """Run ``change`` on the proxy's loop and return once it has: in force from now."""
        done = threading.Event()
        self._loop.call_soon_threadsafe(lambda: (change(), done.set()))
        assert done.wait(10), "the proxy's loop did not run the change"

    def close(self) -> None:
        self.switch(False)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proxy: Proxy) -> None:
    try:
        while data := await reader.read(65536):
            if proxy.black_hole:
                continue
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
def proxied_settings(settings: Settings) -> Iterator[tuple[Settings, Proxy]]:
    """A broker of its own behind a proxy; settings whose bootstrap is the proxy."""
    home = Path(tempfile.mkdtemp(prefix="sentinel-outage-"))
    shared_libs = settings.stream.data_dir / "kafka" / "libs"
    if shared_libs.is_dir():
        (home / "libs").symlink_to(shared_libs)
    port = _two_free_ports()
    broker.prepare(port, home)
    proxy = Proxy(port)
    props = home / "server.properties"
    props.write_text(props.read_text().replace(
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}"))  # fmt: skip
    log = open(home / "broker.out", "wb")  # noqa: SIM115
    process = subprocess.Popen(broker.command(home), cwd=home, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    kafka = KafkaSettings(**{**settings.kafka.model_dump(),
                             "bootstrap_servers": f"127.0.0.1:{proxy.port}"})  # fmt: skip
    proxied = settings.model_copy(update={"kafka": kafka})
    try:
        _wait_for(lambda: _answers(proxied) or process.poll() is not None, 120)
        assert process.poll() is None, (home / "broker.out").read_text()[-3000:]
        admin.create_topics(proxied, (PURCHASES, SECURITY_EVENTS))
        yield proxied, proxy
    finally:
        proxy.close()
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def _two_free_ports() -> int:
    """A port whose successor (the controller's) is free too."""
    while True:
        port = free_port()
        try:
            with socket.create_server(("127.0.0.1", port + 1)):
                return port
        except OSError:
            continue


def _answers(settings: Settings) -> bool:
    try:
        AdminClient(settings.kafka.as_confluent()).list_topics(timeout=2)
        return True
    except Exception:
        return False


def _wait_for(condition: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"


async def _wait_until(condition: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        await asyncio.sleep(0.02)


def test_every_202_is_on_the_topic_through_outages(proxied_settings) -> None:
    settings, proxy = proxied_settings
    settings = with_limits(settings, rate_per_ip_per_min=10_000)
    answers: dict[str, int] = {}
    phases: dict[int, list[int]] = {}  # 0 before, 1 brief outage, 2 long outage, 3 after

    async def send(client: httpx.AsyncClient, n: int) -> None:
        record = new_purchase(n, wallet=f"0x{uuid.uuid4().hex}{n:08x}")
        response = await post(client, "/v1/purchases", record, settings)
        assert response.status_code in (202, 503), response.text
        if response.status_code == 503:
            assert response.json()["error"] == "broker_unavailable"
        answers[record["purchase_id"]] = response.status_code
        phases.setdefault(n // 100, []).append(response.status_code)

    async def scenario() -> None:
        async with gateway_client(settings, delivery_timeout_ms=3000) as client:
            await asyncio.gather(*(send(client, n) for n in range(30)))
            # a brief outage: records wait in the producer and go out when it ends
            proxy.switch(False)
            brief = [asyncio.create_task(send(client, n)) for n in range(100, 130)]
            await _wait_until(lambda: proxy.refused >= 2, 30)
            proxy.switch(True)
            await asyncio.gather(*brief)
            # a long outage: longer than the delivery timeout, callers hear 503
            proxy.switch(False)
            await asyncio.gather(*(send(client, n) for n in range(200, 230)))
            proxy.switch(True)
            await asyncio.gather(*(send(client, n) for n in range(300, 330)))

    asyncio.run(scenario())
    accepted = {pid for pid, status in answers.items() if status == 202}
    refused = set(answers) - accepted
    assert len(answers) == 120
    assert set(phases[0]) == {202}
    assert 202 in phases[1]  # held in the producer through the brief outage, then delivered
    assert set(phases[2]) == {503}  # longer than the delivery timeout: every caller told
    assert 202 in phases[3]
    assert refused
    codec = AvroCodec.for_topic(registry_from_settings(settings), PURCHASES)

    # A record answered 503 stays with the producer, under its idempotent sequence, and goes
    # out once the broker is back: librdkafka never timed it out (connectors/publisher.py,
    # RECORD_LIFETIME_MS), so nothing is re-sequenced, and a caller's retry is a duplicate
    # the pipeline drops by id.
    def all_seen(messages: list) -> bool:
        return set(answers) <= {codec.decode(m.value())["purchase_id"] for m in messages}

    messages = read_until(settings, PURCHASES, all_seen, timeout=60)
    ids = [codec.decode(m.value())["purchase_id"] for m in messages]
    assert all(ids.count(pid) == 1 for pid in answers)  # each once: no duplicate, no loss


def _via(settings: Settings, redis_url: str, **webhook: object) -> Settings:
    redis = RedisSettings(url=redis_url)
    hook = WebhookSettings(**{**settings.webhook.model_dump(), **webhook})
    return settings.model_copy(update={"redis": redis, "webhook": hook})


def test_a_black_holed_redis_gets_503_with_retry_after_not_a_pile_up(settings) -> None:
    """Redis accepts connections and never answers: every request is answered 503 with
    Retry-After within the admission deadline, requests beyond the in-flight cap at once,
    and the gateway serves again as soon as Redis answers."""
    proxy = Proxy(settings.redis.port)
    hooked = _via(settings, f"redis://127.0.0.1:{proxy.port}/0", redis_timeout_s=1.0,
                  max_in_flight=8, rate_per_ip_per_min=10_000)  # fmt: skip

    async def scenario() -> tuple[list[httpx.Response], float, int, int]:
        async with gateway_client(hooked) as client:
            before = await _until_accepted(client, hooked, 1)
            proxy.swallow(True)
            started = time.monotonic()
            async with asyncio.timeout(20):  # a pile-up never answers
                answers = await asyncio.gather(*(post(client, "/v1/purchases",
                                                      new_purchase(n), hooked)
                                                 for n in range(2, 32)))  # fmt: skip
            elapsed = time.monotonic() - started
            proxy.swallow(False)  # connections left in the hole are dropped by the timeouts
            return answers, elapsed, before, await _until_accepted(client, hooked, 99)

    try:
        answers, elapsed, before, after = asyncio.run(scenario())
    finally:
        proxy.close()
    assert (before, after) == (202, 202)
    assert [r.status_code for r in answers] == [503] * 30
    assert all(r.headers["Retry-After"] == "1" for r in answers)
    errors = [r.json()["error"] for r in answers]
    assert errors.count("overloaded") >= 30 - 8  # beyond the in-flight cap: refused at once
    assert set(errors) == {"overloaded", "unavailable"}
    assert elapsed < 8  # the admission deadline (1 s), not a hang


async def _until_accepted(client: httpx.AsyncClient, settings: Settings, n: int) -> int:
    """The status of a purchase sent until it is accepted (at most 50 tries, 0.1 s apart):
    on two busy cores one request may miss the admission deadline."""
    status = 0
    for _ in range(50):
        status = (await post(client, "/v1/purchases", new_purchase(n), settings)).status_code
        if status == 202:
            break
        await asyncio.sleep(0.1)
    return status
