"""The native accessor of ``WalletState``'s fields by slot (``processors/native/src/slots.rs``,
``WalletSlots``) reads and stores what getattr / setattr do: every field, the reference counts,
a subclass or another object by getattr / setattr themselves, an empty slot's AttributeError,
and a type it cannot read by slot refused when built."""

from __future__ import annotations

import sys

import msgspec
import pytest

from processors._native import WalletSlots
from processors.state import GeoPoint, WalletState

pytestmark = pytest.mark.unit

SLOTS = WalletSlots(WalletState)
FIELDS = WalletState.__struct_fields__


def test_every_field_round_trips_as_getattr_and_setattr():
    wallet = WalletState(address="0xabc", watermark_ms=7, geo_points=[GeoPoint(1, 2.0, 3.0, "FR")])
    for name in FIELDS:
        assert SLOTS.get(wallet, name) is getattr(wallet, name)
        value = object()
        SLOTS.set(wallet, name, value)
        assert getattr(wallet, name) is value
        assert SLOTS.get(wallet, name) is value


def test_reference_counts_a_get_takes_one_and_a_set_moves_one():
    wallet = WalletState()
    old, new = object(), object()
    SLOTS.set(wallet, "devices", old)
    held = sys.getrefcount(old)
    got = SLOTS.get(wallet, "devices")
    assert sys.getrefcount(old) == held + 1  # the new reference `got` holds
    del got
    before_new = sys.getrefcount(new)
    SLOTS.set(wallet, "devices", new)
    assert sys.getrefcount(old) == held - 1  # the slot's reference released
    assert sys.getrefcount(new) == before_new + 1  # and one taken to the new value


def test_a_subclass_or_another_object_goes_by_getattr_and_setattr():
    class Audited(WalletState):
        def __setattr__(self, name, value):
            super().__setattr__(name, ("audited", value))

    sub = Audited(address="0x1")
    SLOTS.set(sub, "address", "0x2")
    assert sub.address == ("audited", "0x2")
    assert SLOTS.get(sub, "address") == ("audited", "0x2")

    class Plain:
        address = "x"

    other = Plain()
    SLOTS.set(other, "watermark_ms", 5)
    assert SLOTS.get(other, "watermark_ms") == 5 and SLOTS.get(other, "address") == "x"


def test_an_empty_slot_raises_getattrs_attribute_error():
    wallet = WalletState()
    del wallet.marks
    with pytest.raises(AttributeError) as by_getattr:
        wallet.marks  # noqa: B018 (the read is the test)
    with pytest.raises(AttributeError) as by_slot:
        SLOTS.get(wallet, "marks")
    assert str(by_slot.value) == str(by_getattr.value)
    SLOTS.set(wallet, "marks", {"purchase": 1})
    assert wallet.marks == {"purchase": 1}


def test_a_type_not_readable_by_slot_is_refused():
    class Tracked(msgspec.Struct, array_like=True, gc=True):
        address: str = ""

    with pytest.raises(TypeError, match="fields"):
        WalletSlots(Tracked)
    gc_fields = {name: (object, None) for name in FIELDS}
    tracked = msgspec.defstruct("Tracked", list(gc_fields.items()), gc=True)
    with pytest.raises(TypeError, match="cycle collector"):
        WalletSlots(tracked)
    with pytest.raises(TypeError, match="not a WalletState field"):
        SLOTS.get(WalletState(), "nope")
