from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from models.sim.world import Geo, haversine_km
from models.simulator import (
    PATTERNS,
    SCHEMA_OF,
    SimConfig,
    event_time,
    read_jsonl,
    simulate,
    summarize,
    write_jsonl,
)
from schemas.codec import AvroCodec
from schemas.registry import FileRegistry, load_schema

pytestmark = pytest.mark.unit

SMALL = SimConfig(seed=11, days=6, n_users=3000, n_shows=60, fraud_rate=0.15)


@pytest.fixture(scope="module")
def events() -> list[tuple[str, dict]]:
    return list(simulate(SMALL))


def test_same_seed_same_records(events):
    assert list(simulate(SMALL)) == events


def test_other_seed_other_records(events):
    other = list(simulate(SimConfig(seed=12, days=4, n_users=3000, n_shows=60, fraud_rate=0.08)))
    assert other != events
    assert {r["purchase_id"] for k, r in other if k == "purchase"}.isdisjoint(
        {r["purchase_id"] for k, r in events if k == "purchase"}
    )


def test_event_time_order(events):
    times = [event_time(kind, record) for kind, record in events]
    assert times == sorted(times)
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)


def test_every_record_matches_its_avro_schema(events, tmp_path):
    registry = FileRegistry(tmp_path / "r.json")
    codecs = {
        kind: AvroCodec(registry, kind, load_schema(stem)) for kind, stem in SCHEMA_OF.items()
    }
    for kind, record in events:
        codecs[kind].validate(record)
        assert codecs[kind].decode(codecs[kind].encode(record)) == record


def test_every_pattern_appears_with_labels(events):
    purchases = {r["purchase_id"] for k, r in events if k == "purchase"}
    labels = [r for k, r in events if k == "label"]
    assert sorted(r["purchase_id"] for r in labels) == sorted(purchases)  # one label each
    assert {r["pattern"] for r in labels if r["is_fraud"]} == set(PATTERNS)
    assert all(r["pattern"] is None for r in labels if not r["is_fraud"])


def test_default_fraud_rate_is_about_one_and_a_half_percent():
    summary = summarize(simulate(SimConfig(seed=5, days=14, n_users=20_000)))
    assert 0.01 < summary["fraud_rate"] < 0.022


def test_chargebacks_arrive_days_later(events):
    bought = {r["purchase_id"]: r["occurred_at"] for k, r in events if k == "purchase"}
    delays = [
        r["occurred_at"] - bought[r["purchase_id"]]
        for k, r in events
        if k == "label" and r["source"] == "CHARGEBACK"
    ]
    assert delays and min(delays) >= timedelta(days=2)


def test_wash_trading_cycles_back_to_a_former_holder(events):
    holders: dict[str, list[str]] = defaultdict(list)
    for kind, r in events:
        if kind == "transfer":
            holders[r["token_id"]].append(r["to_address"])
    cycles = [h for h in holders.values() if len(h) > len(set(h))]
    assert cycles


def test_impossible_travel_is_far_and_fast(events):
    fraud = {
        r["purchase_id"] for k, r in events if k == "label" and r["pattern"] == "impossible_travel"
    }
    last: dict[str, dict] = {}
    jumps = []
    for kind, r in events:
        if kind != "purchase":
            continue
        prev = last.get(r["wallet"])
        if r["purchase_id"] in fraud and prev is not None:
            km = haversine_km(Geo(**prev["geo"]), Geo(**r["geo"]))
            jumps.append((km, r["occurred_at"] - prev["occurred_at"]))
        last[r["wallet"]] = r
    assert any(km > 1000 and dt < timedelta(hours=1) for km, dt in jumps)


def test_wallets_are_lower_case_evm_addresses(events):
    for _kind, r in events:
        wallets = [
            r.get("wallet"),
            r.get("seller_wallet"),
            r.get("from_address"),
            r.get("to_address"),
        ]
        for w in filter(None, wallets):
            assert len(w) == 42 and w.startswith("0x") and w == w.lower()
            int(w, 16)


def test_jsonl_round_trip(events, tmp_path):
    path = tmp_path / "sim.jsonl"
    assert write_jsonl(path, events[:500]) == 500
    assert list(read_jsonl(path)) == events[:500]
