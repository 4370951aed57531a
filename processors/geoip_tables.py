"""geoip2fast's lookup tables held in typed arrays instead of lists of Python ints.

geoip2fast (``KNOWN_VERSIONS``) unpickles its data into module-level lists of chunks: about
2.9 M numbers (network starts, country and AS ids, prefix lengths), each a Python int of 28-44
bytes behind an 8-byte pointer: ~104 MB resident per worker (measured with tracemalloc), the
largest single item of an idle worker. Its ``lookup`` only bisects and indexes those chunks,
so each chunk is replaced by an ``array.array`` of the same numbers (8 bytes or less each;
IPv6 network starts, 128-bit, by a pair of 64-bit arrays behind the same sequence
interface). ``lookup`` runs unchanged on the same numbers and answers the same
(``tests/unit/test_processors_geoip_tables.py`` compares lookups before and after).

Another geoip2fast version is left as it is (``compact`` returns 0): correct, only larger.
"""

from __future__ import annotations

import logging
from array import array
from types import ModuleType

log = logging.getLogger(__name__)

KNOWN_VERSIONS = frozenset({"1.2.2"})
TABLES = ("mainListFirstIP", "mainListFirstIPASN", "mainListIDCountryCodes", "mainListIDASN",
          "mainListNetlength", "mainListNetlengthASN", "mainListIDCity")
_LOW = (1 << 64) - 1
_CODES = (("B", 1 << 8), ("H", 1 << 16), ("L", 1 << 32), ("Q", 1 << 64))


class Wide:
    """A read-only sequence of unsigned 128-bit ints kept as two arrays of 64-bit halves."""

    __slots__ = ("hi", "lo")

    def __init__(self, numbers: list[int]) -> None:
        self.hi = array("Q", [n >> 64 for n in numbers])
        self.lo = array("Q", [n & _LOW for n in numbers])

    def __len__(self) -> int:
        return len(self.lo)

    def __getitem__(self, i: int) -> int:
        return self.hi[i] << 64 | self.lo[i]


def packed(numbers: list[int]) -> array | Wide | list[int]:
    """The smallest container that returns the same ints (the list itself if any is negative
    or has 129 bits or more)."""
    if not numbers or min(numbers) < 0:
        return numbers
    top = max(numbers)
    for code, bound in _CODES:
        if top < bound:
            return array(code, numbers)
    return Wide(numbers) if top < 1 << 128 else numbers


def compact(module: ModuleType, version: str) -> int:
    """Replace ``module``'s tables (geoip2fast's ``geoip2fast.geoip2fast``, loaded) by packed
    chunks; the count of numbers moved (0 for an unknown version)."""
    if version not in KNOWN_VERSIONS:
        log.warning("geoip2fast %s: lookup tables kept as lists (written for %s)",
                    version, ", ".join(sorted(KNOWN_VERSIONS)))
        return 0
    moved = 0
    for name in TABLES:
        chunks = getattr(module, name, None)
        if isinstance(chunks, list) and all(isinstance(c, list) for c in chunks):
            setattr(module, name, [packed(c) for c in chunks])
            moved += sum(map(len, chunks))
    return moved
