"""The review queue on real PostgreSQL, Redis and Kafka: MANUAL_REVIEW decisions become cases
(once, whatever the redelivery), oldest first with what an analyst needs; claim, then resolve,
publishes a MANUAL_REVIEW Label with the analyst's name and closes the case; every step is in
the audit log; cases outlive the process."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from infra import topics
from infra.settings import Settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from sinks.testing import decision
from tests.support.console import console_client, store_decisions, user_with_key, with_database
from tests.support.kafka import read_until
from tests.support.records import purchase

pytestmark = pytest.mark.integration


def _case_records(now: datetime) -> tuple[list[dict], list[dict]]:
    """Three MANUAL_REVIEW decisions (two wallets sharing a device) and one APPROVED."""
    tag = uuid.uuid4().hex[:6]
    specs = [("old", 90, "MANUAL_REVIEW", "dev-shared"), ("new", 10, "MANUAL_REVIEW", "dev-x"),
             ("peer", 30, "MANUAL_REVIEW", "dev-shared"), ("ok", 20, "APPROVED", "dev-y")]  # fmt: skip
    ds, ps = [], []
    for i, (name, minutes, verdict, device) in enumerate(specs):
        at = now - timedelta(minutes=minutes)
        pid, wallet = f"{tag}-{name}", f"0x{uuid.uuid4().int % 16**40:040x}"
        ds.append(decision(i, purchase_id=pid, decision_id=f"dec_{pid}", decision=verdict, wallet=wallet,
                           occurred_at=at, decided_at=at + timedelta(milliseconds=30), score=0.7))  # fmt: skip
        ps.append(purchase(i, purchase_id=pid, occurred_at=at, wallet=wallet, device_id=device,
                           ip=f"198.51.100.{i + 1}"))  # fmt: skip
    return ds, ps


def test_review_cases_claim_resolve_label_and_audit(settings: Settings, pg_dsn: str) -> None:
    settings = with_database(settings, pg_dsn)
    ds, ps = _case_records(datetime.now(UTC))
    store_decisions(pg_dsn, ds, ps)
    store_decisions(pg_dsn, ds, ps)  # redelivered: no second case
    old, new, peer = (d["purchase_id"] for d in ds[:3])
    alice, _, alice_key = user_with_key(pg_dsn, "analyst")
    _, _, bob_key = user_with_key(pg_dsn, "analyst")
    _, _, viewer_key = user_with_key(pg_dsn, "viewer")
    as_ = {k: {"Authorization": f"Bearer {v}"} for k, v in
           (("alice", alice_key), ("bob", bob_key), ("viewer", viewer_key))}  # fmt: skip

    async def scenario():
        async with console_client(settings) as client:
            queue = await client.get("/v1/cases", headers=as_["viewer"])
            detail = await client.get(f"/v1/cases/{old}", headers=as_["viewer"])
            by_viewer = await client.post(f"/v1/cases/{old}/claim", headers=as_["viewer"])
            early = await client.post(f"/v1/cases/{old}/resolve", headers=as_["alice"],
                                      json={"outcome": "fraud"})  # fmt: skip
            claimed = await client.post(f"/v1/cases/{old}/claim", headers=as_["alice"])
            stolen = await client.post(f"/v1/cases/{old}/claim", headers=as_["bob"])
            by_bob = await client.post(f"/v1/cases/{old}/resolve", headers=as_["bob"],
                                       json={"outcome": "legit"})  # fmt: skip
            bad = await client.post(f"/v1/cases/{old}/resolve", headers=as_["alice"],
                                    json={"outcome": "maybe"})  # fmt: skip
            resolved = await client.post(f"/v1/cases/{old}/resolve", headers=as_["alice"],
                                         json={"outcome": "fraud", "pattern": "scalper_bot"})  # fmt: skip
            return queue, detail, by_viewer, early, claimed, stolen, by_bob, bad, resolved

    queue, detail, by_viewer, early, claimed, stolen, by_bob, bad, resolved = asyncio.run(scenario())
    open_ids = [c["purchase_id"] for c in queue.json()["cases"]]
    assert open_ids == [old, peer, new]  # oldest first; the APPROVED one is no case
    assert queue.json()["stats"]["open"] == 3
    assert all(c["age_s"] >= 0 and c["reasons"] for c in queue.json()["cases"])
    case = detail.json()
    assert case["decision"]["features"] and case["history"][0]["purchase_id"] == old
    assert [(w["wallet"], w["shared"]) for w in case["linked"]] == [(ds[2]["wallet"], ["device"])]
    assert by_viewer.status_code == 403 and early.status_code == 409
    assert claimed.json()["state"] == "claimed" and claimed.json()["claimed_by"] == alice
    assert (stolen.status_code, by_bob.status_code, bad.status_code) == (409, 409, 422)
    assert resolved.status_code == 200, resolved.text
    closed = resolved.json()
    assert (closed["state"], closed["outcome"], closed["closed_by"]) == ("closed", "fraud", alice)

    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.LABELS)
    (message,) = read_until(settings, topics.LABELS, lambda ms: len(ms) >= 1, timeout=30)
    label = codec.decode(message.value())
    assert (label["purchase_id"], label["source"], label["is_fraud"]) == (old, "MANUAL_REVIEW", True)
    assert (label["reviewer"], label["pattern"], message.key().decode()) == (alice, "scalper_bot", old)
    with psycopg.connect(pg_dsn) as conn:
        audit = conn.execute("SELECT actor, action, details FROM audit_log WHERE target_kind = 'case'"
                             " ORDER BY audit_id").fetchall()  # fmt: skip
        cases = conn.execute("SELECT count(*) FROM review_cases").fetchone()
    assert [(a, act) for a, act, _ in audit] == [(alice, "case.claim"), (alice, "case.resolve")]
    assert audit[1][2]["label"] == {"topic": message.topic(), "partition": message.partition(),
                                    "offset": message.offset()}  # fmt: skip
    assert cases == (3,)

    async def after_restart():
        async with console_client(settings) as client:
            return await client.get("/v1/cases", headers=as_["viewer"]), await client.get(
                f"/v1/cases/{old}", headers=as_["viewer"])

    queue, case = asyncio.run(after_restart())
    assert [c["purchase_id"] for c in queue.json()["cases"]] == [peer, new]
    assert case.json()["state"] == "closed" and case.json()["outcome"] == "fraud"


def test_a_label_the_broker_does_not_take_leaves_the_case_claimed(settings: Settings, pg_dsn: str) -> None:
    from infra.settings import KafkaSettings

    dead = KafkaSettings(**{**settings.kafka.model_dump(), "bootstrap_servers": "127.0.0.1:9"})
    settings = with_database(settings, pg_dsn).model_copy(update={"kafka": dead})
    ds, ps = _case_records(datetime.now(UTC))
    store_decisions(pg_dsn, ds[:1], ps[:1])
    pid = ds[0]["purchase_id"]
    _, _, key = user_with_key(pg_dsn, "analyst")
    auth = {"Authorization": f"Bearer {key}"}

    async def scenario():
        async with console_client(settings) as client:
            await client.post(f"/v1/cases/{pid}/claim", headers=auth)
            return await client.post(f"/v1/cases/{pid}/resolve", headers=auth, json={"outcome": "legit"})

    import connectors.console.actions as actions

    actions.LABEL_TIMEOUT_S, before = 3.0, actions.LABEL_TIMEOUT_S
    try:
        answer = asyncio.run(scenario())
    finally:
        actions.LABEL_TIMEOUT_S = before
    assert answer.status_code == 503 and answer.json()["error"] == "broker_unavailable"
    with psycopg.connect(pg_dsn) as conn:
        state = conn.execute("SELECT state FROM review_cases WHERE purchase_id = %s", (pid,)).fetchone()
        actions_done = conn.execute("SELECT action FROM audit_log WHERE target_id = %s", (pid,)).fetchall()
    assert state == ("claimed",) and actions_done == [("case.claim",)]
