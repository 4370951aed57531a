"""The Avro fast path (``schemas/native``, serde_avro_fast) against fastavro: the same bytes
and the same values for every schema, and fastavro's answer for what the fast path refuses."""

from __future__ import annotations

import io
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from models.registry import load_model
from models.simulator import SimConfig, simulate
from processors.decide import Blocked, decide_batch
from processors.features import FeatureEngine, LateEventError
from processors.rules import load_ruleset
from schemas.codec import HEADER, AvroCodec, DecodeError, EncodeError
from schemas.registry import SCHEMA_DIR, FileRegistry, load_schema
from tests.support.records import purchase

pytestmark = pytest.mark.unit
SCHEMA_FILES = sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return FileRegistry(tmp_path_factory.mktemp("registry") / "r.json")


def codec_for(registry, stem: str) -> AvroCodec:
    return AvroCodec(registry, f"test-{stem}-value", load_schema(stem))


def fastavro_bytes(codec: AvroCodec, record: dict) -> bytes:
    out = io.BytesIO()
    out.write(HEADER.pack(0, codec.schema_id))
    schemaless_writer(out, codec.schema, record)
    return out.getvalue()


def fastavro_value(codec: AvroCodec, data: bytes) -> dict:
    body = io.BytesIO(data)
    body.seek(HEADER.size)
    return schemaless_reader(body, codec.schema, codec.schema)


def same(a, b) -> bool:
    """Equal values of equal types (1 is not 1.0; NaN equals NaN; -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def check(codec: AvroCodec, record: dict, *, fast: bool = True) -> None:
    expected = fastavro_bytes(codec, record)
    if fast:  # taken by the fast path itself, not handed to fastavro
        assert codec._native.encode(codec._header, record) == expected
    data = codec.encode(record)
    assert data == expected
    value = codec.decode(data)
    assert same(value, fastavro_value(codec, data)), (value, fastavro_value(codec, data))


@pytest.mark.parametrize("stem", SCHEMA_FILES)
def test_random_values_of_every_schema_give_fastavros_bytes_and_values(registry, stem):
    codec = codec_for(registry, stem)
    for record in generate_many(parse_schema(load_schema(stem)), 200):
        check(codec, record)


def test_simulated_records_and_their_decisions(registry):
    codecs = {kind: codec_for(registry, stem) for kind, stem in
              (("purchase", "purchase"), ("auth", "auth_event"), ("transfer", "chain_transfer"),
               ("label", "label"))}
    engine, pending = FeatureEngine(), []
    for kind, record in simulate(SimConfig(seed=3, days=2, n_users=400)):
        check(codecs[kind], record)
        if kind == "purchase":
            try:
                pending.append((record, engine.process_row(kind, record)))
            except LateEventError:
                pass
        else:
            engine.process(kind, record)
    assert len(pending) > 100
    decisions = codec_for(registry, "decision")
    outcomes = decide_batch([p for p, _ in pending], [f for _, f in pending], load_model(),
                            load_ruleset(), Blocked(), datetime.now(UTC))
    assert any(o.decision["reasons"] for o in outcomes)
    for outcome in outcomes:
        check(decisions, outcome.decision)
        for event in outcome.security_events:
            check(codec_for(registry, "security_event"), event)


def test_edge_values(registry):
    codec = codec_for(registry, "decision")
    base = {"decision_id": "dec_1", "purchase_id": "1", "wallet": "0x1", "organizer_id": None,
            "decision": "BLOCKED", "score": 1.0, "model_score": 0.0, "rule_score": 0.5,
            "model_version": "m", "rules_version": "r", "reasons": [], "contributions": {},
            "features": {}, "occurred_at": 0, "decided_at": -1, "latency_ms": 0.0,
            "challenger_version": None, "challenger_score": None}
    doubles = [0.0, -0.0, 1e308, -1e-308, 5e-324, math.inf, -math.inf, math.nan, 0.1, 1 / 3]
    check(codec, {**base, "features": {f"f{i}": v for i, v in enumerate(doubles)}})
    check(codec, {**base, "features": {"int": 3, "big": 2**53 + 1}, "score": 1}, fast=False)
    check(codec, {**base, "features": {"é🎟\u0000": 1.5, "": 2.0}, "wallet": "ü" * 300,
                  "challenger_version": "v2", "challenger_score": -0.0})
    check(codec, {**base, "occurred_at": 253402300799999, "decided_at": -62135596800000})
    extreme = {**base, "occurred_at": 2**63 - 1, "decided_at": -(2**63)}  # beyond datetime
    data = codec._native.encode(codec._header, extreme)
    assert data == fastavro_bytes(codec, extreme)
    with pytest.raises(OverflowError):
        fastavro_value(codec, data)
    with pytest.raises(DecodeError, match="occurred_at"):
        codec.decode(data)
    check(codec, {**base, "reasons": [{"code": "c", "category": "k", "score": 0.25,
                                       "detail": "d" * 5000}] * 130,
                  "features": {f"f{i}": float(i) for i in range(300)}})  # past one block
    for moment in (datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
                   datetime(2026, 12, 6, 4, 5, 6, 789_654, tzinfo=UTC),
                   datetime(2026, 12, 6, 4, 5, 6, 789_654, tzinfo=UTC).astimezone(
                       timezone(timedelta(hours=-7)))):
        check(codec, {**base, "occurred_at": moment, "decided_at": moment})


def test_what_the_fast_path_refuses_is_written_by_fastavro(registry):
    codec = codec_for(registry, "purchase")
    naive = purchase(1, occurred_at=datetime(2026, 11, 1, 12))  # noqa: DTZ001 (local time)
    with pytest.raises(ValueError, match="naive datetime"):
        codec._native.encode(codec._header, naive)
    assert codec.encode(naive) == fastavro_bytes(codec, naive)
    short = purchase(2)  # optional fields left out: fastavro writes their defaults
    assert "seller_wallet" not in short
    assert codec.encode(short) == fastavro_bytes(codec, short)
    assert codec.decode(codec.encode(short))["seller_wallet"] is None


@pytest.mark.parametrize(("field", "value"), [("quantity", "two"), ("wallet", 7),
                                              ("channel", "SIDEWAYS"), ("geo", [1, 2])])
def test_a_wrong_value_is_an_encode_error_naming_what_fastavro_names(registry, field, value):
    codec = codec_for(registry, "purchase")
    with pytest.raises(ValueError):
        codec._native.encode(codec._header, purchase(1, **{field: value}))
    with pytest.raises(EncodeError, match="io.sentinel.Purchase|purchase|" + field):
        codec.encode(purchase(1, **{field: value}))


def test_the_fast_path_reads_only_its_own_writer_schema(registry):
    """A value written with another schema id goes through fastavro's resolution (the older
    writer's missing fields take the reader's defaults)."""
    codec = codec_for(registry, "purchase")
    old = load_schema("purchase")
    old["fields"] = [f for f in old["fields"] if f["name"] != "card_bin"]
    old_codec = AvroCodec(registry, "test-purchase-value", old)
    assert old_codec.schema_id != codec.schema_id
    value = codec.decode(old_codec.encode(purchase(3)))
    assert value["card_bin"] is None and value["occurred_at"] == purchase(3)["occurred_at"]


@pytest.mark.parametrize("cut", [6, 20, 40, -1])
def test_truncated_bodies_are_decode_errors(registry, cut):
    codec = codec_for(registry, "purchase")
    data = codec.encode(purchase(1))
    with pytest.raises(DecodeError, match="malformed Avro body"):
        codec.decode(data[:cut])


def test_every_topic_schema_but_alerts_is_decoded_by_the_fast_path(registry):
    """Alerts hold timestamps in nested records, which the fast path would leave as ints."""
    for stem in SCHEMA_FILES:
        assert (codec_for(registry, stem)._timestamps is None) == (stem == "alert"), stem


def test_mangled_bytes_are_a_value_equal_to_fastavros_or_a_decode_error(registry):
    """Hostile bytes: every mutation of real values decodes to what fastavro gives or raises
    DecodeError, never anything else. The fast path is stricter than fastavro in two ways the
    Avro specification sides with: a boolean byte other than 0 or 1, and a negative union
    index (fastavro reads it as Python's index from the end)."""
    codec = codec_for(registry, "purchase")
    valid = [codec.encode(purchase(i, card_bin="411111", seller_wallet="0x1",
                                   ingested_at=purchase(i)["occurred_at"])) for i in range(20)]
    rng, outcomes = random.Random(5), Counter()
    for _ in range(5000):
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 4)):
            at, what = rng.randrange(HEADER.size, len(data)), rng.random()
            if what < 0.5:
                data[at] = rng.randrange(256)
            elif what < 0.75:
                del data[at:at + rng.randint(1, 8)]
            else:
                data[at:at] = rng.randbytes(rng.randint(1, 8))
        try:
            value = codec.decode(bytes(data))
        except DecodeError as exc:
            value, error = None, str(exc)
        expected = fastavro_whole(codec, bytes(data))
        if value is not None:
            assert same(value, expected)
            outcomes["equal"] += 1
        elif expected is not None:
            assert "boolean" in error or "Discriminant" in error, error
            outcomes["stricter"] += 1
        else:
            outcomes["both refuse"] += 1
    assert outcomes["equal"] > 200 and outcomes["both refuse"] > 4000, outcomes


def fastavro_whole(codec: AvroCodec, data: bytes) -> dict | None:
    """fastavro's value of all of ``data``; None when it fails or leaves bytes over."""
    body = io.BytesIO(data)
    body.seek(HEADER.size)
    try:
        value = schemaless_reader(body, codec.schema, codec.schema)
    except Exception:  # noqa: BLE001 (fastavro raises many types on bad bytes)
        return None
    return value if body.tell() == len(data) else None
