"""The scoring path's view of the Redis blocklists: a local snapshot, refreshed in a thread.

Scoring never waits on Redis: lookups are in memory. A thread re-reads every live entry
every ``refresh_s`` (one pipelined round trip, with socket timeouts). While Redis is
unreachable the last snapshot stays in use, entries still expire by their own time, the
gauge ``sentinel_scoring_redis_fallback`` is 1, and one ``blocklist_stale`` security event
is raised per outage. A new block reaches scoring within ``refresh_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache

from processors.decide import Blocked
from sinks.blocklist import Blocklist, _lookup_form
from streams import metrics

log = logging.getLogger(__name__)

# Each value's lookup form (a lower-cased wallet, an IP's canonical text), remembered for the
# latest values: a buyer's wallet and IP come back, and parsing an IP costs microseconds.
_lookup = lru_cache(maxsize=16_384)(_lookup_form)


class BlocklistSnapshot:
    def __init__(self, blocklist: Blocklist, refresh_s: float, clock=time.time):
        self.blocklist, self.refresh_s, self.clock = blocklist, refresh_s, clock
        self.entries: dict[str, dict[str, float]] = {"wallet": {}, "ip": {}}
        self.stale_since: float | None = None
        self._pending_events: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blocklist-snapshot", daemon=True)

    def start(self) -> BlocklistSnapshot:
        self.refresh()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def refresh(self) -> bool:
        try:
            self.entries = self.blocklist.snapshot()
        except Exception as exc:  # redis errors and timeouts: keep the last snapshot
            if self.stale_since is None:
                self.stale_since = self.clock()
                log.warning("blocklists unreachable (%s): scoring with the last snapshot",
                            type(exc).__name__)
                self._pending_events.append(self._stale_event(exc))
            metrics.REDIS_FALLBACK.set(1)
            return False
        if self.stale_since is not None:
            log.info("blocklists reachable again after %.1f s", self.clock() - self.stale_since)
        self.stale_since = None
        metrics.REDIS_FALLBACK.set(0)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def blocked(self, purchases: list[dict]) -> Blocked:
        now_ms = self.clock() * 1000
        wallets, ips = self.entries["wallet"], self.entries["ip"]

        def live(entries: dict[str, float], kind: str, value: str | None) -> bool:
            return bool(value) and entries.get(_lookup(kind, value), 0.0) > now_ms

        # an empty list is not searched: no value's lookup form is computed for it
        hit_wallets = {w for p in purchases for w in (p["wallet"], p.get("seller_wallet"))
                       if live(wallets, "wallet", w)} if wallets else ()
        hit_ips = {p["ip"] for p in purchases if live(ips, "ip", p.get("ip"))} if ips else ()
        return Blocked(wallets=frozenset(hit_wallets), ips=frozenset(hit_ips))

    def events(self) -> list[dict]:
        events, self._pending_events = self._pending_events, []
        return events

    def _stale_event(self, exc: Exception) -> dict:
        at = datetime.fromtimestamp(self.clock(), tz=UTC)
        return {
            "event_id": f"blocklist_stale_{int(self.clock() * 1000)}",
            "occurred_at": at,
            "kind": "blocklist_stale",
            "severity": "MEDIUM",
            "source": "scoring",
            "ip": None, "wallet": None, "user_id": None, "purchase_id": None,
            "details": {"error": type(exc).__name__, "using": "last blocklist snapshot"},
        }
