"""Idle wallets in a private SQLite file on local disk, out of the worker's memory.

Why: every wallet that ever bought keeps a value in the wallet table (a summary once idle
for 7 days, ``processors/expiry.py``), and an active wallet's value grows over a month
(holdings, mints, the record ids it applied): held in memory, they were what still grew with
traffic (1 M purchases, 30 simulated days: 345 k wallets, ~600 bytes each as summaries, ~1 KB
as full states, key and dict entry included). Here an idle wallet costs a page of a file
instead. The wallet table (``streams/tables.py``) keeps in memory the wallets written in the
last ``tables.MEMORY_IDLE_MS`` of event time and moves the others here unchanged (the same
bytes: no feature changes); a read looks in memory first, then here.

The file is a cache of the changelog, which stays the durable copy: created empty at start,
filled by recovery, and unlinked right after it is opened, so that nothing is left behind by
a worker that is killed. No journal and no fsync (a crash loses the file anyway), exclusive
locking (no lock calls per read), a bounded page cache (``CACHE_KIB``) and no memory-mapping
(mapped pages would count as resident). One connection, used from the worker's event loop
only.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path

CACHE_KIB = 8 * 1024
# Keys per query of ``get_many`` (SQLite allows 32 766 parameters since 3.32, 999 before).
GET_MANY_CHUNK = 500

# A rowid table with a unique index on the key: the ~1 KB values sit in the table's leaves.
# Measured with 150 000 keys and values like the wallets': write 11 us, read 9 us, 150 MB;
# keyed WITHOUT ROWID, the values spilled to overflow pages: 25 us, 18 us, 266 MB.
_SCHEMA = """CREATE TABLE wallet (
    key TEXT NOT NULL UNIQUE, partition INTEGER NOT NULL, value BLOB NOT NULL)"""


class DiskStore:
    def __init__(self, directory: Path, cache_kib: int = CACHE_KIB) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"wallets-{os.getpid()}-{uuid.uuid4().hex[:8]}.sqlite"
        self.db = sqlite3.connect(path, check_same_thread=False)
        try:
            for pragma in ("locking_mode=EXCLUSIVE", "journal_mode=OFF", "synchronous=OFF", "temp_store=FILE",
                           f"cache_size=-{cache_kib}", "mmap_size=0"):
                self.db.execute(f"PRAGMA {pragma}")
            self.db.execute(_SCHEMA)
        finally:
            path.unlink()

    def get(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM wallet WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        """The values of those of ``keys`` stored (one query per ``GET_MANY_CHUNK`` keys)."""
        values: dict[str, bytes] = {}
        for i in range(0, len(keys), GET_MANY_CHUNK):
            chunk = keys[i : i + GET_MANY_CHUNK]
            marks = ",".join("?" * len(chunk))
            values.update(
                self.db.execute(f"SELECT key, value FROM wallet WHERE key IN ({marks})", chunk)
            )
        return values

    def put(self, rows: Sequence[tuple[str, int, bytes]]) -> None:
        """Store (key, partition, value) rows, replacing what the keys held, in one
        transaction; none for no rows (an empty one is still ~4 us, and most sweeps have
        nothing to move)."""
        if rows:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO wallet VALUES (?, ?, ?)", rows)

    def delete(self, keys: Sequence[str]) -> None:
        """Forget ``keys``, in one transaction; none for no keys."""
        if keys:
            with self.db:
                self.db.executemany("DELETE FROM wallet WHERE key = ?", ((k,) for k in keys))

    def keep_partitions(self, partitions: set[int]) -> None:
        """Forget every key of a partition not in ``partitions`` (no longer assigned)."""
        marks = ",".join("?" * len(partitions))
        with self.db:
            self.db.execute(f"DELETE FROM wallet WHERE partition NOT IN ({marks})",
                            tuple(partitions))

    def __len__(self) -> int:
        return self.db.execute("SELECT count(*) FROM wallet").fetchone()[0]

    def file_bytes(self) -> int:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        return pages * self.db.execute("PRAGMA page_size").fetchone()[0]

    def close(self) -> None:
        self.db.close()
