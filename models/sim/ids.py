"""Deterministic identifiers: hashes of (seed, kind, index), no random state consumed."""

from __future__ import annotations

import hashlib

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


def card_bin(country: str, *parts: object) -> str:
    """An issuer number: one of about 40 big issuers' BINs per country, chosen by hash."""
    issuer = int(hexid(*parts, size=2), 16) % 40
    return "4" + str(int(hexid("bin", country, issuer, size=3), 16) % 100_000).zfill(5)


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

    def ip(self, datacenter: bool = False, country: str = "*", kind: str = "") -> str:
        """A fresh address: hosting (datacenter), or ``kind`` (residential, mobile) in
        ``country`` ("*": any), from real networks (``netpool``)."""
        from models.sim.netpool import address_in

        kind = "hosting" if datacenter else (kind or "residential")
        return address_in(country, kind, *self._next("ip"))
