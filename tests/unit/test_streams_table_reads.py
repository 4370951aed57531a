"""The wallet table's reads (streams/tables.py): ``StateTable.get`` without exceptions for a
miss, and the sweep's batched ``read_due`` (one disk query for the keys not in memory, stored
values left out by their watermark alone when expiry cannot change them) produce what the
one-by-one reads through Faust's ``__getitem__`` produced: the same wallets, and the same
changelog records, memory, disk rows and expiry wheel after a month of simulated purchases."""

from __future__ import annotations

import zlib
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from processors import expiry, statecodec
from processors.features import FeatureEngine, LateEventError
from processors.state import PurchaseFact, WalletState
from processors.timeutil import DAY_MS
from streams import tables
from streams.app import app
from streams.disk_store import GET_MANY_CHUNK, DiskStore
from streams.tables import MEMORY_IDLE_MS, StateTable, hold, read_due, write_held

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parents[1] / "fixtures" / "state"
T = 100 * DAY_MS
FACT = PurchaseFact(0, "s1", 5000, 1, "CARD", "c1", 52.5, 13.4, "DE", "ip1", "d1", "PRIMARY")


def buyer(address: str, ts: int) -> WalletState:
    return WalletState(address=address, watermark_ms=ts, first_seen_ms=ts,
                       purchases=[FACT._replace(ts_ms=ts)], purchases_total=1,
                       amount_total_minor=5000, last_purchase_ms=ts, applied=[address])  # fmt: skip


def make_table(tmp_path: Path, name: str) -> StateTable:
    t = StateTable(app, name=f"test-reads-{name}", partitions=6)
    t.__dict__["disk"] = DiskStore(tmp_path / name)
    return t


@pytest.fixture
def table(tmp_path, request):
    t = make_table(tmp_path, request.node.name[:40])
    yield t
    t.disk.close()


def event(partition: int):
    return SimpleNamespace(message=SimpleNamespace(partition=partition, tp=TP("p", partition)))


def faust_get(t: StateTable, key: str) -> WalletState | None:
    """What ``table.get`` read before: held, then Faust's store, then the disk."""
    held = t.held.get(key)
    if held is not None:
        return statecodec.decode(held[0])
    value = t.data[key] if key in t.data else t.disk.get(key)
    return None if value is None else statecodec.decode(value)


def test_get_many_returns_what_get_returns_in_chunks(tmp_path):
    store = DiskStore(tmp_path)
    rows = [(f"k{i}", i % 3, f"value-{i}".encode()) for i in range(2 * GET_MANY_CHUNK + 7)]
    store.put(rows[::2])  # every other key stored
    keys = [key for key, _, _ in rows] + ["nope"]
    many = store.get_many(keys)
    assert many == {key: store.get(key) for key in keys if store.get(key) is not None}
    assert len(many) == GET_MANY_CHUNK + 4 and store.get_many([]) == {}
    store.close()


def test_watermark_ms_is_the_decoded_watermark_of_a_current_value():
    samples = [buyer("0xa", T), WalletState(address="0xb"), WalletState()]
    samples += [statecodec.decode(p.read_bytes()) for p in sorted((FIXTURES / "v1").iterdir())]
    for wallet in samples:
        data = statecodec.encode(wallet)
        assert statecodec.watermark_ms(data) == statecodec.decode(data).watermark_ms
    for path in sorted((FIXTURES / "v1").iterdir()):
        assert statecodec.watermark_ms(path.read_bytes()) == statecodec.decode(
            path.read_bytes()).watermark_ms  # fmt: skip
    for path in sorted((FIXTURES / "v0").iterdir()):  # older versions: decode them
        assert statecodec.watermark_ms(path.read_bytes()) is None
    for junk in (b"", b"\x01", b"\x01\x93\x02", b"\x07abc"):
        assert statecodec.watermark_ms(junk) is None


def test_may_change_agrees_with_expire():
    wallet = buyer("0xa", T)
    for now in (T, T + expiry.WALLET_IDLE_MS - 1, T + expiry.WALLET_IDLE_MS, T + 40 * DAY_MS):
        unchanged = expiry.expire([("0xa", wallet)], now) == []
        assert expiry.may_change(T, now) is not unchanged
    assert not expiry.may_change(0, T) and expiry.expire([("k", WalletState())], T) == []


def test_get_reads_held_then_memory_then_disk_and_a_miss_raises_nothing(table):
    memory, disk, held = buyer("0xm", T), buyer("0xd", T), buyer("0xh", T + 1)
    table.data["0xm"] = statecodec.encode(memory)
    table.disk.put([("0xd", 0, statecodec.encode(disk)), ("0xm", 0, b"older")])
    hold(table, {"0xh": (held, event(0)), "0xm": (held, event(0))})
    assert table.get("0xh") == held and table.get("0xm") == held  # held first
    table.held.clear()
    assert table.get("0xm") == memory and table.get("0xd") == disk
    assert table["0xm"] == memory and table["0xd"] == disk
    assert table.get("0xnew") is None and table.get("0xnew", "default") == "default"
    with pytest.raises(KeyError):
        table["0xnew"]


def test_reading_gets_what_get_gets_with_one_disk_query(table, monkeypatch):
    keys = [f"0x{i:02d}" for i in range(12)]
    states = {key: buyer(key, T + i) for i, key in enumerate(keys)}
    for key in keys[:4]:
        table.data[key] = statecodec.encode(states[key])  # in memory
    table.disk.put([(key, 0, statecodec.encode(states[key])) for key in keys[2:8]])
    hold(table, {key: (states[key], event(0)) for key in keys[6:10]})  # some on disk too
    wanted = keys + ["0xnone", "0x00"]  # keys[10:] and 0xnone: nowhere; a key twice
    expected = {key: table.get(key) for key in wanted}
    queries = []
    get_many, get = table.disk.get_many, table.disk.get
    monkeypatch.setattr(table.disk, "get_many", lambda ks: queries.append(list(ks)) or get_many(ks))
    monkeypatch.setattr(table.disk, "get", lambda k: queries.append(k) or get(k))
    with table.reading(iter(wanted)) as read:
        assert queries == [keys[4:6] + keys[10:] + ["0xnone"]]  # neither held nor in memory
        assert {key: read.get(key) for key in wanted} == expected
        assert len(queries) == 1  # each read from what was fetched
        assert read.get("0xother") is None and queries[1:] == ["0xother"]  # not fetched: asked
    assert table.fetched is None
    assert table.get("0x04") == states["0x04"] and queries[2:] == ["0x04"]  # after: one by one
    with pytest.raises(RuntimeError), table.reading(["0x04"]):
        raise RuntimeError
    assert table.fetched is None


def test_read_due_returns_what_one_by_one_reads_return(table):
    keys = [f"0x{i:02d}" for i in range(12)]
    states = {key: buyer(key, T + i) for i, key in enumerate(keys)}
    for key in keys[:4]:
        table.data[key] = statecodec.encode(states[key])  # in memory
    table.disk.put([(key, 0, statecodec.encode(states[key])) for key in keys[4:8]])
    hold(table, {key: (states[key], event(0)) for key in keys[6:10]})  # some on disk too
    wanted = keys + ["0xnone"]  # keys[10:] and 0xnone: nowhere
    late = T + 60 * DAY_MS  # every stored wallet may change: nothing left out
    assert read_due(table, wanted, late) == [
        (key, w) for key in wanted if (w := faust_get(table, key)) is not None
    ]
    # Not idle yet: stored values are left out undecoded, held ones are read all the same.
    early = T + 1
    assert read_due(table, wanted, early) == [(key, states[key]) for key in keys[6:10]]
    boundary = T + expiry.WALLET_IDLE_MS  # the wallet of watermark T may change from here
    assert read_due(table, keys[:2], boundary) == [("0x00", states["0x00"])]
    assert read_due(table, keys[:2], boundary - 1) == []
    table.data["0x00"] = b"\x07not a state"  # a value decode refuses is decoded, and refused
    with pytest.raises(statecodec.StateDecodeError):
        read_due(table, ["0x00"], early)


def reference_expire(table: StateTable, partition: int, now_ms: int, send) -> None:
    """``expire_partition`` as it was: ``expiry.sweep`` over Faust's one-by-one reads."""
    topic = table.changelog_topic.get_topic_name()
    store = table.data
    rows, deleted = [], []

    def lookup(key: str) -> WalletState | None:
        return faust_get(table, key)

    for key, summary in expiry.sweep(table.expiry.wheel(partition), lookup, now_ms):
        store.pop(key, None)
        value = None if summary is None else statecodec.encode(summary)
        send(topic, orjson.dumps(key), value, partition)
        if value is None:
            deleted.append(key)
        else:
            rows.append((key, partition, value))
    for key in table.expiry.idle(partition, now_ms - MEMORY_IDLE_MS):
        value = store.pop(key, None)
        if value is not None:
            rows.append((key, partition, value))
    table.disk.delete(deleted)
    table.disk.put(rows)


class Engine(FeatureEngine):
    def __init__(self) -> None:
        super().__init__()
        self.touched: set = set()

    def process_row(self, kind: str, record) -> tuple[float, ...] | None:
        if kind == "purchase" or (kind == "auth" and record.get("wallet")):  # every event's
            self.touched.add(record["wallet"])  # wallets, taken natively (PURCHASES.into, ...)
        elif kind == "transfer":
            self.touched.update((record["to_address"].lower(), record["from_address"].lower()))
        return super().process_row(kind, record)


def simulated_batches(batch: int = 40) -> list[dict]:
    """The wallets each batch of simulated events touched (out of event-time order across
    wallets, as the simulator yields them: sweeps summarise and delete)."""
    from models.simulator import SimConfig, simulate

    engine, out, n = Engine(), [], 0
    for kind, record in simulate(SimConfig(seed=5, days=30, n_users=400)):
        if kind == "label":
            continue
        try:
            engine.process_row(kind, record)
        except LateEventError:
            continue
        n += 1
        if n % batch == 0:
            states = {a: engine.wallets[a] for a in engine.touched if a in engine.wallets}
            ts = max(w.watermark_ms for w in states.values())  # and one seen in a login only:
            states[f"0xlogin{n}"] = WalletState(f"0xlogin{n}", watermark_ms=ts, login_ok_ms=ts)
            out.append(states)  # deleted when it expires
            engine.touched = set()
    return out


def write_all(t: StateTable, batches: list[dict]) -> list:
    """Hold and write each batch's states, as the agents do; the changelog records sent."""
    events, sent = {p: event(p) for p in range(6)}, []

    def send(*record) -> None:
        sent.append(record)

    for states in batches:
        touched = {k: (s, events[zlib.crc32(k.encode()) % 6]) for k, s in states.items()}
        hold(t, touched)
        held = dict(t.held)
        if len(states) % 3 == 0:  # now and then a state held again during the flush
            key = next(iter(states))
            hold(t, {key: touched[key]})
        write_held(t, held, send)
    return sent


def test_expire_partition_writes_what_the_one_by_one_sweep_wrote(tmp_path, monkeypatch):
    batches, runs, left_out = simulated_batches(), {}, []
    may_change = expiry.may_change
    monkeypatch.setattr(expiry, "may_change",
                        lambda wm, now: may_change(wm, now) or left_out.append(wm))  # fmt: skip
    for name, expire in (("reference", reference_expire), ("batched", tables.expire_partition)):
        monkeypatch.setattr(tables, "expire_partition", expire)
        t = make_table(tmp_path, name)
        sent = write_all(t, batches)
        disk = t.disk.db.execute("SELECT key, partition, value FROM wallet ORDER BY key")
        wheels = {p: {b: sorted(keys) for b, keys in w.buckets.items()}
                  for p, w in t.expiry.wheels.items()}  # fmt: skip
        topic = t.changelog_topic.get_topic_name()
        records = [(topic == name_, k, v, p) for name_, k, v, p in sent]
        runs[name] = (records, dict(t.data.data), disk.fetchall(), wheels, dict(t.held))
        t.disk.close()
    reference, batched = runs["reference"], runs["batched"]
    assert all(is_changelog for is_changelog, _, _, _ in reference[0])
    assert any(value is None for _, _, value, _ in reference[0])  # deletions happened
    assert sum(1 for _, _, value, _ in reference[0] if value is not None) > len(reference[1])
    assert batched == reference
    assert left_out  # some stored values were left out undecoded
