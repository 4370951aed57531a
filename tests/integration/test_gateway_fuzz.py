"""Fuzzing the gateway (hypothesis) on real Kafka and Redis: no input gets a 5xx or a crash.

Requests mix arbitrary bytes, arbitrary JSON, valid records with fields replaced by arbitrary
JSON values, and broken or random signature headers, on every route.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from connectors.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_headers
from infra.secrets import webhook_secrets
from infra.settings import Settings
from tests.integration.test_gateway import gateway_client, new_purchase, with_limits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
PURCHASE_FIELDS = sorted(new_purchase(0))
SECRET = webhook_secrets(Settings())[0]


@st.composite
def mutated_purchase(draw: st.DrawFn) -> bytes:
    record = new_purchase(draw(st.integers(0, 2**20)))
    for name in draw(st.lists(st.sampled_from(PURCHASE_FIELDS), max_size=3)):
        if draw(st.booleans()):
            record[name] = draw(json_values)
        else:
            record.pop(name, None)
    return json.dumps(record, default=str).encode()


bodies = st.one_of(
    mutated_purchase(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict]:
    path = draw(st.sampled_from(["/v1/purchases", "/v1/auth-events", "/v1/labels"]))
    body = draw(bodies)
    headers = signed_headers(SECRET, body)
    if draw(st.booleans()):  # a key, signed with the body (an empty one is sent unsigned)
        key = draw(header_text)
        ts = headers[TIMESTAMP_HEADER]
        headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(SECRET, ts, body, key),
                   "Idempotency-Key": key}  # fmt: skip
    mode = draw(st.sampled_from(["signed", "signed", "bad_ts", "bad_sig", "none"]))
    if mode == "bad_ts":
        headers[TIMESTAMP_HEADER] = draw(header_text)
    elif mode == "bad_sig":
        headers[SIGNATURE_HEADER] = draw(header_text)
    elif mode == "none":
        headers = {}
    if draw(st.integers(0, 9)) == 0:
        wait = draw(st.sampled_from(["0", "-1", "abc", "5", "99999999999"]))
        # Percent-encoded: any id reaches the server (a client refuses raw control bytes).
        purchase_id = quote(draw(header_text.filter(bool)), safe="")
        return (
            "GET",
            f"/v1/decisions/{purchase_id}?wait_ms={wait}",
            b"",
            {},
        )
    return "POST", path, body, headers


def test_fuzzed_requests_never_get_a_5xx(settings: Settings) -> None:
    # Every request comes from one peer: the limits that lock a source out after failed
    # signatures or too many requests (each tested in test_gateway) would turn the rest of
    # the run into 429s and leave the valid records unexercised.
    open_gate = with_limits(settings, preauth_failures_per_min=0, rate_per_ip_per_min=10**6,
                            rate_per_wallet_per_min=10**6)  # fmt: skip
    loop = asyncio.new_event_loop()
    # A 503 because the broker did not acknowledge within the delivery timeout is the
    # documented answer to a broker stall, not to an input: on a busy shared machine a stall
    # can outlast the default 5 s (seen once in the suite), so this run gives the broker 60 s.
    context = gateway_client(open_gate, delivery_timeout_ms=60_000)
    client: httpx.AsyncClient = loop.run_until_complete(context.__aenter__())
    seen: set[int] = set()
    try:
        # A valid signed purchase first, so every run exercises acceptance: the fuzz draws a
        # valid record, signed, on its own route for about 1 % of its examples, and a run of
        # 400 drew none once (2026-12-03).
        valid = json.dumps(new_purchase(0), default=str).encode()
        accepted = loop.run_until_complete(
            client.post("/v1/purchases", content=valid, headers=signed_headers(SECRET, valid)))
        assert accepted.status_code == 202, accepted.text
        seen.add(accepted.status_code)

        @hsettings(max_examples=400, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
        @given(request=requests())
        def check(request: tuple[str, str, bytes, dict]) -> None:
            method, path, body, headers = request
            raw = {name: value.encode("latin-1") for name, value in headers.items()}
            send = client.request(method, path, content=body or None, headers=raw)
            response = loop.run_until_complete(send)
            seen.add(response.status_code)
            assert response.status_code < 500, (request, response.text)

        check()
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()
    assert {202, 401, 422} <= seen
