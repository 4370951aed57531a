"""Deterministic identifiers: hashes of (seed, kind, index), no random state consumed."""

from __future__ import annotations

import hashlib

# First octets of residential ISP ranges and of cloud/datacenter ranges.
RESIDENTIAL_PREFIXES = (24, 50, 67, 68, 71, 73, 76, 82, 86, 90, 92, 98, 176, 188)
DATACENTER_PREFIXES = (3, 18, 34, 35, 52, 54, 104, 138, 159, 167)
ZERO_ADDRESS = "0x" + "0" * 40


def hexid(*parts: object, size: int = 20) -> str:
    """``size`` bytes of a keyed hash of ``parts``, as lower-case hex."""
    text = ":".join(map(str, parts)).encode()
    return hashlib.blake2b(text, digest_size=size).hexdigest()


def address(*parts: object) -> str:
    """An EVM address: "0x" + 40 lower-case hex."""
    return "0x" + hexid(*parts, size=20)


def tx_hash(*parts: object) -> str:
    return "0x" + hexid(*parts, size=32)


def ip_address(prefixes: tuple[int, ...], *parts: object) -> str:
    raw = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=4).digest()
    return f"{prefixes[raw[0] % len(prefixes)]}.{raw[1]}.{raw[2]}.{raw[3] % 254 + 1}"


class Namer:
    """Fresh ids for entities created during a run (fraud wallets, devices, cards...)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.counter = 0

    def _next(self, kind: str) -> tuple[int, str, int]:
        self.counter += 1
        return (self.seed, kind, self.counter)

    def wallet(self) -> str:
        return address(*self._next("wallet"))

    def user_id(self) -> str:
        return "usr_" + hexid(*self._next("user"), size=6)

    def device(self) -> str:
        return "dev_" + hexid(*self._next("device"), size=8)

    def card(self) -> str:
        return "card_" + hexid(*self._next("card"), size=12)

    def ip(self, datacenter: bool = False) -> str:
        prefixes = DATACENTER_PREFIXES if datacenter else RESIDENTIAL_PREFIXES
        return ip_address(prefixes, *self._next("ip"))
