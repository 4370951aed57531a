"""Reference lists shipped with the rules, one file a list in ``data/`` (one entry a line,
'#' starts a comment). A rule names a list as ``lists.<name>``, the file's stem:

- ``<name>_cidrs.txt``: IP ranges (``lists.tor_exit`` is ``tor_exit_cidrs.txt``), used as
  ``ip in lists.tor_exit`` or ``in_cidr(ip, lists.tor_exit)``;
- ``<name>.txt``: lower-cased text entries (``lists.disposable_domains``).

The shipped files are small samples; point ``ReferenceLists.load`` at maintained feeds in
production. Blocklists (wallets, IPs) are not here: the caller passes them in per batch.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).with_name("data")
CIDR_SUFFIX = "_cidrs"
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpRanges:
    """CIDR ranges merged into sorted integer intervals; membership is one bisect (or one
    ``searchsorted`` for a column of IPv4 addresses, ``contains_v4``)."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            spans[net.version].append((int(net.network_address), int(net.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, intervals in spans.items():
            merged: list[list[int]] = []
            for lo, hi in sorted(intervals):
                if merged and lo <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            self._starts[version] = [lo for lo, _ in merged]
            self._ends[version] = [hi for _, hi in merged]
        # the IPv4 intervals' bounds in one sorted array, each interval as its start and the
        # address after its end (merged intervals neither overlap nor touch, so it is strictly
        # increasing): an address is in an interval when an odd number of bounds are <= it
        bounds = [bound for lo, hi in zip(self._starts[4], self._ends[4], strict=True)
                  for bound in (lo, hi + 1)]  # fmt: skip
        self._bounds_v4 = np.asarray(bounds, dtype=np.uint64)

    def __contains__(self, address: IpAddress) -> bool:
        return self.holds(address.version, int(address))

    def holds(self, version: int, value: int) -> bool:
        """Membership of the address ``value`` (as an integer) of IP ``version`` (4 or 6)."""
        starts = self._starts[version]
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[version][i]

    def spans(self, version: int) -> tuple[list[int], list[int]]:
        """The merged ranges of IP ``version`` as (first addresses, last addresses), sorted."""
        return list(self._starts[version]), list(self._ends[version])

    def bounds_v4(self) -> np.ndarray:
        """The IPv4 intervals' bounds (``contains_v4``): each one's start and the address
        after its end, sorted; an address is in an interval when an odd number are <= it."""
        return self._bounds_v4

    def contains_v4(self, addresses: np.ndarray) -> np.ndarray:
        """Membership of a column of IPv4 addresses given as unsigned integers: one
        ``searchsorted`` over the intervals' bounds."""
        below = np.searchsorted(self._bounds_v4, addresses, side="right")
        return (below & 1).astype(bool)

    def __len__(self) -> int:
        return sum(len(s) for s in self._starts.values())


def read_entries(path: Path) -> list[str]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip().lower()
        if entry:
            entries.append(entry)
    return entries


class ReferenceLists(Mapping[str, "frozenset[str] | IpRanges"]):
    """The named lists of a data directory: ``lists["tor_exit"]``, ``lists["disposable_domains"]``."""

    def __init__(self, lists: Mapping[str, frozenset[str] | IpRanges]) -> None:
        self._lists = dict(lists)

    @classmethod
    def load(cls, directory: Path = DATA_DIR) -> ReferenceLists:
        lists: dict[str, frozenset[str] | IpRanges] = {}
        for path in sorted(directory.glob("*.txt")):
            if path.stem.endswith(CIDR_SUFFIX):
                lists[path.stem.removesuffix(CIDR_SUFFIX)] = IpRanges(read_entries(path))
            else:
                lists[path.stem] = frozenset(read_entries(path))
        return cls(lists)

    def __getitem__(self, name: str) -> frozenset[str] | IpRanges:
        return self._lists[name]

    def ranges(self, name: str) -> IpRanges:
        """The IP ranges list ``name`` (from ``<name>_cidrs.txt``); TypeError for a text list."""
        found = self._lists[name]
        if not isinstance(found, IpRanges):
            raise TypeError(f"reference list {name!r} holds texts, not IP ranges")
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._lists)

    def __len__(self) -> int:
        return len(self._lists)


@lru_cache(maxsize=1)
def default_lists() -> ReferenceLists:
    """The shipped lists, read once per process."""
    return ReferenceLists.load()
