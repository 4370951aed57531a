"""The PostgreSQL sink and the sink loop on the real broker and database: redelivery gives one
row per natural key, an outage loses and duplicates nothing, bad records end in the DLQ."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from infra import topics
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.base import SinkUnavailableError
from sinks.config import SinkSettings
from sinks.postgres import PostgresRecordError, PostgresSink
from sinks.runner import SinkLoop
from sinks.testing import T0, decision, records, running, security_event, wait_until
from tests.support.kafka import produce, read_until
from tests.support.records import purchase

pytestmark = pytest.mark.integration

FAST = SinkSettings(backoff_initial_s=0.05, backoff_max_s=0.5)


def count(dsn: str, table: str, where: str = "TRUE") -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def one_of_each() -> list:
    transfer = {
        "chain_id": 31337, "block_number": 7, "block_hash": "0xb", "block_time": T0,
        "tx_hash": "0xt", "log_index": 3, "contract": "0xc", "standard": "ERC721",
        "token_id": str(2**200), "amount": "1", "from_address": "0x0", "to_address": "0x1",
        "kind": "MINT", "price_wei": None,
    }
    auth = {
        "event_id": "ae-1", "occurred_at": T0, "kind": "LOGIN_FAILED", "user_id": "u-1",
        "wallet": None, "ip": "198.51.100.4", "geo": None, "device_id": None, "user_agent": None,
    }
    alert = {
        "alert_id": "alrt_1", "rule": "brute_force", "group_key": "198.51.100.4",
        "severity": "HIGH", "count": 5, "first_seen": T0, "last_seen": T0 + timedelta(minutes=1),
        "event_ids": ["a", "b"], "responses": [], "created_at": T0,
    }
    label = {
        "purchase_id": "p-1", "occurred_at": T0, "is_fraud": True, "source": "CHARGEBACK",
        "pattern": None,
    }
    return [
        *records(topics.DECISIONS, [decision(n) for n in range(10)]),
        *records(topics.PURCHASES, [purchase(n) for n in range(10)]),
        *records(topics.CHAIN_TRANSFERS, [transfer]),
        *records(topics.AUTH_EVENTS, [auth]),
        *records(topics.SECURITY_EVENTS, [security_event(1, "login_failed", T0, ip="::1")]),
        *records(topics.ALERTS, [alert]),
        *records(topics.LABELS, [label]),
    ]


def test_redelivered_batches_give_one_row_per_natural_key(pg_dsn):
    sink = PostgresSink(pg_dsn)
    sink.setup()
    batch = one_of_each()
    try:
        sink.write(batch)
        sink.write(batch)  # the same batch redelivered
        sink.write(batch + batch)  # and duplicates inside one batch
    finally:
        sink.close()
    expected = {
        "decisions": 10, "purchases": 10, "chain_transfers": 1, "auth_events": 1,
        "security_events": 1, "alerts": 1, "labels": 1,
    }
    assert {t: count(pg_dsn, t) for t in expected} == expected
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT token_id::text, block_time FROM chain_transfers").fetchone()
        assert row == (str(2**200), T0)
        reasons = conn.execute("SELECT reasons FROM decisions WHERE purchase_id = 'p-1'").fetchone()
        assert reasons[0][0]["code"] == "velocity_1h"


def test_alert_upsert_keeps_the_newest_version(pg_dsn):
    base = one_of_each()[-2].value
    newer = {**base, "count": 9, "last_seen": base["last_seen"] + timedelta(minutes=1),
             "responses": [{"action": "block_ip", "target": "198.51.100.4",
                            "expires_at": None, "status": "done"}]}
    sink = PostgresSink(pg_dsn)
    sink.setup()
    try:
        sink.write(records(topics.ALERTS, [newer, base]))  # both in one batch
        sink.write(records(topics.ALERTS, [base]))  # an older version redelivered
    finally:
        sink.close()
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT count, responses FROM alerts").fetchall()
    assert rows == [(9, newer["responses"])]


def test_a_refused_row_is_a_record_error_and_the_connection_survives(pg_dsn):
    sink = PostgresSink(pg_dsn)
    sink.setup()
    try:
        with pytest.raises(PostgresRecordError, match="inet"):
            sink.write(records(topics.PURCHASES, [purchase(1, ip="not-an-ip")]))
        sink.write(records(topics.PURCHASES, [purchase(2)]))
    finally:
        sink.close()
    assert count(pg_dsn, "purchases") == 1


def test_unreachable_database_is_retryable():
    sink = PostgresSink(f"postgresql://sentinel@127.0.0.1:{_free_port()}/sentinel")
    with pytest.raises(SinkUnavailableError):
        sink.setup()


class TcpGate:
    """A TCP proxy to a real server that a test can close (connections cut, new ones
    refused) and open again on the same port: a network outage without mocks."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = _free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.open()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            _shut(self._listener)  # shutdown wakes the thread blocked in accept()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            _shut(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                return
            server.settimeout(None)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _shut(src)
        _shut(dst)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def _produce_decisions(settings, codec, numbers) -> None:
    items = [(decision(n)["wallet"], codec.encode(decision(n))) for n in numbers]
    produce(settings, topics.DECISIONS, items)


def test_outage_then_recovery_loses_nothing_and_duplicates_nothing(settings, pg_dsn):
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    parts = urlsplit(pg_dsn)
    gate = TcpGate((parts.hostname, parts.port))
    sink = PostgresSink(_through(pg_dsn, gate.port), [topics.DECISIONS])
    loop = SinkLoop(settings, sink, FAST)
    try:
        with running(loop):
            _produce_decisions(settings, codec, range(0, 1000))
            wait_until(lambda: count(pg_dsn, "decisions") == 1000, 60, "first 1000 rows")
            gate.close()  # connections cut, new ones refused
            _produce_decisions(settings, codec, range(1000, 2000))
            wait_until(lambda: loop.stats.retries >= 3, 60, "retries during the outage")
            assert count(pg_dsn, "decisions") == 1000
            gate.open()
            wait_until(lambda: count(pg_dsn, "decisions") == 2000, 60, "all 2000 rows")
            # the same decisions again (a producer retry, a replay): still one row each
            _produce_decisions(settings, codec, range(1500, 2000))
            wait_until(lambda: loop.stats.written >= 2500, 60, "redelivered records consumed")
        assert loop.error is None
    finally:
        gate.close()
    assert count(pg_dsn, "decisions") == 2000
    assert count(pg_dsn, "(SELECT DISTINCT purchase_id FROM decisions) d") == 2000
    assert loop.stats.dead_letters == 0


def test_bad_bytes_and_refused_rows_go_to_the_dlq_and_the_loop_continues(settings, pg_dsn):
    registry = registry_from_settings(settings)
    codec = AvroCodec.for_topic(registry, topics.DECISIONS)
    purchases = AvroCodec.for_topic(registry, topics.PURCHASES)
    bad = [b"not avro", b"\x00\x00\x00\x7f\xffgarbage"]
    items = [(b"w", codec.encode(decision(n))) for n in range(5)]
    items += [(b"bad-key", value) for value in bad]
    items += [(b"w", codec.encode(decision(n))) for n in range(5, 10)]
    produce(settings, topics.DECISIONS, items)
    produce(settings, topics.PURCHASES, [(b"w", purchases.encode(p)) for p in
                                         (purchase(1), purchase(2, ip="999.1.1.1"), purchase(3))])
    loop = SinkLoop(settings, PostgresSink(pg_dsn, [topics.DECISIONS, topics.PURCHASES]), FAST)
    with running(loop):
        wait_until(lambda: count(pg_dsn, "decisions") == 10, 60, "10 decision rows")
        wait_until(lambda: count(pg_dsn, "purchases") == 2, 60, "2 purchase rows")
        dead = read_until(settings, topics.dlq(topics.DECISIONS), lambda m: len(m) >= 2)
        refused = read_until(settings, topics.dlq(topics.PURCHASES), lambda m: len(m) >= 1)
    assert loop.error is None
    dlq = AvroCodec.for_topic(registry, topics.dlq(topics.DECISIONS))
    letters = [dlq.decode(m.value()) for m in dead]
    assert [dl["original_value"] for dl in letters] == bad
    assert {dl["error_class"] for dl in letters} == {"DecodeError"}
    assert all(dl["component"] == "sink-postgres" for dl in letters)
    letter = dlq.decode(refused[0].value())
    assert letter["error_class"] == "PostgresRecordError"
    assert purchases.decode(letter["original_value"])["purchase_id"] == "p-2"


def test_a_second_consumer_group_rereading_everything_adds_no_row(settings, pg_dsn):
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
    _produce_decisions(settings, codec, range(300))
    for group in ("first", "second"):
        loop = SinkLoop(settings, PostgresSink(pg_dsn, [topics.DECISIONS]), FAST,
                        group_id=f"{settings.kafka.topic_prefix}{group}")
        with running(loop):
            wait_until(lambda loop=loop: loop.stats.written >= 300, 60, f"{group} group read all")
    assert count(pg_dsn, "decisions") == 300
