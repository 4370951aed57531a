"""Reference lists shipped with the rules: disposable e-mail domains and datacenter, Tor
and proxy/VPN IP ranges, one entry a line in ``data/`` ('#' starts a comment).

The shipped files are small samples; point ``ReferenceLists.load`` at maintained feeds in
production. Blocklists (wallets, IPs) are not here: the caller passes them in per batch.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpRanges:
    """CIDR ranges merged into sorted integer intervals; membership is one bisect."""

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

    def __contains__(self, address: IpAddress) -> bool:
        starts = self._starts[address.version]
        i = bisect.bisect_right(starts, int(address)) - 1
        return i >= 0 and int(address) <= self._ends[address.version][i]

    def __len__(self) -> int:
        return sum(len(s) for s in self._starts.values())


def read_entries(path: Path) -> list[str]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip().lower()
        if entry:
            entries.append(entry)
    return entries


@dataclass(frozen=True)
class ReferenceLists:
    disposable_domains: frozenset[str]
    datacenter: IpRanges
    tor: IpRanges
    proxy: IpRanges

    @classmethod
    def load(cls, directory: Path = DATA_DIR) -> ReferenceLists:
        return cls(
            disposable_domains=frozenset(read_entries(directory / "disposable_domains.txt")),
            datacenter=IpRanges(read_entries(directory / "datacenter_cidrs.txt")),
            tor=IpRanges(read_entries(directory / "tor_exit_cidrs.txt")),
            proxy=IpRanges(read_entries(directory / "proxy_cidrs.txt")),
        )


@lru_cache(maxsize=1)
def default_lists() -> ReferenceLists:
    """The shipped lists, read once per process."""
    return ReferenceLists.load()
