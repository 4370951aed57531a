"""Where a worker's memory is, on request: ``SENTINEL_MEMORY_REPORT=FILE``.

A debugging aid for the memory bench (``sentinel bench pipeline --memory-purchases N``): the
bench writes a label into ``FILE.want``; a timer on the worker's event loop (so the stores are
not changing while they are counted) adds ``{label: breakdown}`` to the JSON in ``FILE`` and
removes ``FILE.want``. The breakdown: the process (VmRSS, VmHWM, glibc's heap: in use and
free), each store's entries and estimated bytes (every key counted, sizes measured on a sample
and scaled), the bounded caches, and, when ``tracemalloc`` is tracing (``PYTHONTRACEMALLOC``),
the lines that allocated most. Off (no timer) without the variable.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import sys
import tracemalloc
from pathlib import Path

import msgspec

SAMPLE = 2000  # entries whose deep size is measured per store (the rest is scaled)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def status_mb(pid: int | str = "self", fields: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict:
    """Memory fields of ``/proc/<pid>/status`` (VmRSS: resident now, VmHWM: its peak), MiB."""
    out: dict = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name = line.split(":")[0]
        if name in fields:
            out[name] = int(line.split()[1]) / 1024
    return out


def process() -> dict:
    """VmRSS and VmHWM (MiB) and glibc's heap: bytes in use, free inside it, mmapped."""
    out = status_mb()
    out["mapped_rss_mb"] = mapped_rss()
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
        mallinfo2.restype = _MallInfo2
        info = mallinfo2()
        out["malloc_mb"] = {"in_use": info.uordblks / 2**20, "free": info.fordblks / 2**20,
                            "mmapped": info.hblkhd / 2**20, "arena": info.arena / 2**20}
    except (OSError, AttributeError):
        pass
    return out


def mapped_rss(top: int = 8) -> dict[str, float]:
    """Resident MiB by mapping: anonymous (heap, Python's arenas) and the largest files."""
    by_name: dict[str, int] = {}
    name = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else "[anon]"
        elif head and head[0] == "Rss:":
            by_name[name] = by_name.get(name, 0) + int(head[1])
    largest = sorted(by_name.items(), key=lambda kv: -kv[1])[:top]
    return {Path(k).name or k: round(v / 1024, 1) for k, v in largest} | {
        "all_files": round(sum(v for k, v in by_name.items() if k.startswith("/")) / 1024, 1)}


def deep_size(obj, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and everything it holds (each object counted once)."""
    seen = set() if seen is None else seen
    stack, total = [obj], 0
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset):
            stack.extend(o)
        elif isinstance(o, msgspec.Struct):
            stack.extend(getattr(o, f) for f in o.__struct_fields__)
        elif hasattr(o, "__slots__") and not isinstance(o, type):
            stack.extend(getattr(o, s) for s in o.__slots__ if hasattr(o, s))
    return total


def mapping(data: dict) -> dict:
    """Entries of ``data`` and their estimated bytes (the dict's own table included)."""
    n = len(data)
    sample = list(itertools.islice(data.items(), SAMPLE))
    size = sum(deep_size(kv) - sys.getsizeof(kv) for kv in sample)
    per = size / len(sample) if sample else 0
    return {"entries": n, "mb": round((sys.getsizeof(data) + per * n) / 2**20, 1),
            "bytes_per_entry": round(per)}


def native(sizes: dict[str, int]) -> dict:
    """A native store's counts (``sizes()``: entries under "keys", its estimate of bytes)."""
    return {"entries": sizes["keys"], "mb": round(sizes["bytes"] / 2**20, 1),
            **{k: v for k, v in sizes.items() if k not in ("keys", "bytes")}}


def breakdown(parts: dict[str, dict]) -> dict:
    out = {"process": process(), "parts": parts}
    if tracemalloc.is_tracing():
        stats = tracemalloc.take_snapshot().statistics("lineno")
        out["tracemalloc_mb"] = round(sum(s.size for s in stats) / 2**20, 1)
        out["tracemalloc_top"] = [f"{s.size / 2**20:.1f} MB {s.count} {s.traceback[0]}"
                                  for s in stats[:30]]
    return out


def answer(path: Path, parts) -> None:
    """If a report is wanted (``path.want`` holds its label), add it to ``path``."""
    want = path.with_name(path.name + ".want")
    if not want.exists():
        return
    label = want.read_text().strip() or "report"
    reports = json.loads(path.read_text()) if path.exists() else {}
    reports[label] = breakdown(parts())
    path.write_text(json.dumps(reports, indent=2) + "\n")
    want.unlink()


def wallet_store(data: dict) -> dict:
    """The wallet table in memory: full states and summaries, value bytes, and the encoded
    bytes of each field (averaged over a sample of each kind)."""
    from processors import expiry, statecodec

    kinds = {"full": _Kind(), "summary": _Kind()}
    for value in list(data.values()):
        state = statecodec.decode(value)
        kinds["summary" if expiry.is_summary(state) else "full"].add(state, len(value))
    keys = list(itertools.islice(data, SAMPLE))
    return {**mapping(data), **{name: kind.report() for name, kind in kinds.items()},
            "key_bytes_avg": round(sum(map(sys.getsizeof, keys)) / max(len(keys), 1))}


class _Kind:
    def __init__(self) -> None:
        self.count = self.value_bytes = self.sampled = 0
        self.fields: dict[str, int] = {}

    def add(self, state, size: int) -> None:
        self.count += 1
        self.value_bytes += size
        if self.sampled < SAMPLE:
            self.sampled += 1
            for name in state.__struct_fields__:
                encoded = len(msgspec.msgpack.encode(getattr(state, name)))
                self.fields[name] = self.fields.get(name, 0) + encoded

    def report(self) -> dict:
        n = max(self.sampled, 1)
        return {"count": self.count, "value_bytes_avg": round(self.value_bytes / max(self.count, 1)),
                "field_bytes_avg": {k: round(v / n, 1) for k, v in self.fields.items()
                                    if v / n > 1.5}}


def worker_parts() -> dict[str, dict]:
    from processors import netinfo
    from streams.context import ctx
    from streams.tables import wallet_to_state as table

    store, crowds = ctx.replica.store, ctx.replica.crowds
    wheels = table.expiry.wheels.values()
    parts = {
        "wallets": wallet_store(table.data.data),
        "wallets_on_disk": {"entries": len(table.disk),
                            "file_mb": round(table.disk.file_bytes() / 2**20, 1)},
        "held": {"entries": len(table.held)},
        "expiry_wheels": {"keys": sum(map(len, wheels)),
                          "mb": round(sum(deep_size(w.buckets) for w in wheels) / 2**20, 1)},
        "entities": native(store.sizes()),
        "crowds": native(crowds.sizes()),
        "replica_held": {"entries": sum(map(len, ctx.replica.held.values()))},
        "replica_reads": {"entries": sum(map(len, ctx.replica.reads.values()))},
        "redelivery_found": {"entries": sum(map(len, ctx.redeliveries.found.values()))},
    }
    for name in ("ip_info", "ua_family", "is_hosting_as"):
        parts[f"cache_{name}"] = {"entries": getattr(netinfo, name).cache_info().currsize}
    return parts


def install(app, path: Path) -> None:
    """Answer report requests from a timer of ``app`` (on its event loop)."""

    @app.timer(interval=1.0)
    async def report_memory():
        answer(path, worker_parts)
