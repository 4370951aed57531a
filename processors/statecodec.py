"""Wallet table values as bytes: a format version byte, then the state as a tagged msgpack array.

    version 0  orjson of the old ``WalletState.to_dict()`` (a dict with short keys), written
               before states were msgspec structs
    version 1  ``b"\\x01"`` + msgpack ``[tag, field, field, ...]`` (``processors/state.py``;
               tag 1 is a wallet, so other kinds can share the format later)

``decode`` reads every version ever written, so an old changelog still recovers; ``encode``
writes the current one. Samples of each version are committed under
``tests/fixtures/state/v<N>/`` and decoded by ``tests/unit/test_processors_statecodec.py``.
A new version keeps the old decoders and adds a sample directory.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from processors.state import WALLET_TAG, GeoPoint, Holding, PurchaseFact, ResaleFact, WalletState

VERSION = 1
_HEADER = bytes([VERSION])
_V0_FIRST_BYTE = ord("{")

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(WalletState)


class _Head(msgspec.Struct, array_like=True, tag=WALLET_TAG):
    """A wallet's first fields: decoding skips the rest of the array (unknown trailing
    fields are ignored) without building it."""

    address: str = ""
    watermark_ms: int = 0


_head_decoder = msgspec.msgpack.Decoder(_Head)


class StateDecodeError(ValueError):
    """Bytes that are no table value of any known version."""


def encode(state: WalletState) -> bytes:
    return _HEADER + _encoder.encode(state)


def decode(data: bytes) -> WalletState:
    if not data:
        raise StateDecodeError("empty state value")
    first = data[0]
    try:
        if first == VERSION:
            return _decoder.decode(memoryview(data)[1:])
        if first == _V0_FIRST_BYTE:
            return _wallet_v0(orjson.loads(data))
    except (msgspec.DecodeError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise StateDecodeError(f"state value of version {first}: {exc}") from exc
    raise StateDecodeError(f"unknown state format version {first}")


def watermark_ms(data: bytes) -> int | None:
    """The ``watermark_ms`` of a version 1 value, without decoding the rest (~1 us against
    ~13 for ``decode``); None for any other value (``decode`` it, and see its error)."""
    if not data or data[0] != VERSION:
        return None
    try:
        return _head_decoder.decode(memoryview(data)[1:]).watermark_ms
    except msgspec.DecodeError:
        return None


def _wallet_v0(d: dict[str, Any]) -> WalletState:
    return WalletState(
        address=d["address"],
        watermark_ms=d["wm"],
        pruned_ms=d["pruned"],
        first_seen_ms=d["first"],
        purchases=[PurchaseFact(*r) for r in d["p"]],
        purchases_total=d["p_total"],
        amount_total_minor=d["amount_total"],
        last_purchase_ms=d["last_p"],
        geo_points=[GeoPoint(*r) for r in d["geo"]],
        failed_logins=list(d["failed"]),
        mfa_failures=list(d["mfa_failed"]),
        login_ok_ms=d["login_ok"],
        fails_before_login_ok=d["fails_before_ok"],
        password_changed_ms=d["pw_changed"],
        email_changed_ms=d["email_changed"],
        devices=dict(d["devices"]),
        holdings={k: Holding(*v) for k, v in d["holdings"].items()},
        mints=dict(d["mints"]),
        sent=dict(d["sent"]),
        resales=[ResaleFact(*r) for r in d["resales"]],
        wash_cycles=list(d["wash"]),
        marks=dict(d.get("marks", {})),
        applied=list(d.get("applied", [])),
    )
