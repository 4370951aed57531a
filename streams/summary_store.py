"""Idle wallets' summaries in a private SQLite file on local disk, out of the worker's memory.

Why: expiry reduces a wallet idle for 7 days to a summary (``processors/expiry.py``), kept
for its lifetime counts, holdings and fraud marks; with every wallet that ever bought keeping
one, the summaries were what still grew with traffic (measured: ~600 bytes of resident memory
each, key and dict entry included: 1 M purchases, 345 k wallets). Here they cost a page of a
file instead; the wallet table (``streams/tables.py``) reads a key from memory first, then
from this store, and a summary that becomes active again is read once and kept in memory.

The file is a cache of the changelog, which stays the durable copy: it is created empty at
start, rebuilt from the changelog like the in-memory store (recovery), and unlinked right
after it is opened, so that nothing is left behind by a worker that is killed. No journal and
no fsync: a crash loses the file anyway. Its page cache is bounded (``CACHE_KIB``); no
memory-mapping (mapped pages would count as resident). One connection, used from the
worker's event loop only.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path

CACHE_KIB = 8 * 1024

_SCHEMA = """CREATE TABLE summary (
    key TEXT PRIMARY KEY, partition INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"""


class SummaryStore:
    def __init__(self, directory: Path, cache_kib: int = CACHE_KIB) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"summaries-{os.getpid()}-{uuid.uuid4().hex[:8]}.sqlite"
        self.db = sqlite3.connect(path, check_same_thread=False)
        try:
            for pragma in ("locking_mode=EXCLUSIVE", "journal_mode=OFF", "synchronous=OFF", "temp_store=FILE",
                           f"cache_size=-{cache_kib}", "mmap_size=0"):
                self.db.execute(f"PRAGMA {pragma}")
            self.db.execute(_SCHEMA)
        finally:
            path.unlink()

    def get(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM summary WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, rows: Iterable[tuple[str, int, bytes]]) -> None:
        """Store (key, partition, value) rows, replacing what the keys held."""
        with self.db:  # one transaction
            self.db.executemany("INSERT OR REPLACE INTO summary VALUES (?, ?, ?)", rows)

    def delete(self, keys: Iterable[str]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM summary WHERE key = ?", ((k,) for k in keys))

    def keep_partitions(self, partitions: set[int]) -> None:
        """Forget every key of a partition not in ``partitions`` (no longer assigned)."""
        marks = ",".join("?" * len(partitions))
        with self.db:
            self.db.execute(f"DELETE FROM summary WHERE partition NOT IN ({marks})",
                            tuple(partitions))

    def __len__(self) -> int:
        return self.db.execute("SELECT count(*) FROM summary").fetchone()[0]

    def file_bytes(self) -> int:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        return pages * self.db.execute("PRAGMA page_size").fetchone()[0]

    def close(self) -> None:
        self.db.close()
