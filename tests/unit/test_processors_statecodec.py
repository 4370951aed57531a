"""Wallet table values of every format version ever written still decode (old changelogs
recover)."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors import statecodec
from processors.state import FraudMark, WalletState

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).parents[1] / "fixtures" / "state"
VERSIONS = sorted(int(d.name[1:]) for d in SAMPLES.glob("v*") if d.is_dir())
NAMES = sorted(f.stem for f in (SAMPLES / "v0").glob("*.bin"))


def sample(version: int, name: str) -> bytes:
    return (SAMPLES / f"v{version}" / f"{name}.bin").read_bytes()


def test_there_is_a_sample_folder_for_every_version_up_to_the_current_one():
    assert VERSIONS == list(range(statecodec.VERSION + 1))
    for version in VERSIONS:
        assert sorted(f.stem for f in (SAMPLES / f"v{version}").glob("*.bin")) == NAMES


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", NAMES)
def test_every_version_decodes_to_the_same_state(version, name):
    assert statecodec.decode(sample(version, name)) == statecodec.decode(
        sample(statecodec.VERSION, name)
    )


def test_the_samples_hold_what_the_v0_writer_put_in_them():
    wallet = statecodec.decode(sample(0, "wallet-a"))
    assert isinstance(wallet, WalletState)
    assert wallet.address == "0x" + "a" * 40
    assert (wallet.purchases_total, wallet.amount_total_minor) == (30, 152_190)
    assert len(wallet.purchases) == 30 and wallet.purchases[0].country == "DE"
    assert wallet.marks == {"purchase": 1772425560000, "auth": 1772421480000,
                            "transfer": 1772426580000}  # fmt: skip
    assert len(wallet.holdings) == 31 and len(wallet.resales) == 3
    assert statecodec.decode(sample(0, "wallet-b")).address == "0x" + "b" * 40


@pytest.mark.parametrize("name", NAMES)
def test_the_current_version_encodes_byte_for_byte_as_committed(name):
    data = sample(statecodec.VERSION, name)
    assert statecodec.encode(statecodec.decode(data)) == data


def test_fraud_marks_round_trip_and_default_to_none_in_older_values():
    wallet = statecodec.decode(sample(0, "wallet-a"))
    assert wallet.fraud_marks == []
    wallet.fraud_marks.append(FraudMark(1, "chargeback", "p1"))
    assert statecodec.decode(statecodec.encode(wallet)).fraud_marks == [
        FraudMark(1, "chargeback", "p1")
    ]


@pytest.mark.parametrize("data", [b"", b"\x09\x90", b"{not json", b"\x01\xc1"])
def test_bytes_of_no_known_version_are_refused_with_the_reason(data):
    with pytest.raises(statecodec.StateDecodeError):
        statecodec.decode(data)
