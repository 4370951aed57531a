"""``sentinel demo`` (what ``make run`` ends with, after ``sentinel up``): a burst of simulated
purchases and logins through the signed webhook gateway, tickets minted on the local EVM node
for the chain listener, then what came out: decisions per verdict in PostgreSQL, rows per
table, alerts, and where to look next. The system is left running."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from infra.settings import Settings
from streams.demo_report import Outcome, print_outcome

MINTS = 20  # buyers of the burst who also get a ticket minted on chain


def simulated(purchases: int, seed: int) -> list[tuple[str, dict]]:
    """Simulated purchases and logins of one day ending now, in event time."""
    from models.simulator import SimConfig, simulate

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    config = SimConfig(seed=seed, days=1, n_users=max(500, purchases * 14), n_shows=20,
                       start=start, fraud_rate=0.05)
    out: list[tuple[str, dict]] = []
    count = 0
    for kind, record in simulate(config):
        if kind in ("purchase", "auth"):
            out.append((kind, record))
            count += kind == "purchase"
            if count >= purchases:
                break
    return out


def run_demo(settings: Settings, purchases: int = 300, timeout: float = 120.0) -> int:
    from connectors.gateway_client import post_records
    from infra import health, services
    from infra.secrets import webhook_secrets

    gateway = services.by_name()["gateway"]
    ok, why = health.check(gateway, settings, state=None)
    if not ok:
        print(f"the gateway does not answer ({why}): run `sentinel up` (or `make run`) first")
        return 1
    seed = secrets.randbelow(1_000_000)
    records = simulated(purchases, seed)
    url = f"http://127.0.0.1:{settings.webhook.port}"
    dead_before = dead_letters(settings)
    started = time.monotonic()
    sent = asyncio.run(post_records(url, webhook_secrets(settings)[0], records))
    outcome = Outcome(seed=seed, url=url, sent=sent, elapsed_s=time.monotonic() - started)
    wallets, outcome.contract = _mint(settings, records, sent.accepted.get("purchase", []))
    outcome.minted = len(wallets)
    ids = sent.accepted.get("purchase", [])
    outcome.stored, outcome.dead, outcome.waited_s = wait_stored(
        settings, ids, lambda: dead_letters(settings) - dead_before, timeout)
    if outcome.contract:
        outcome.transfers = wait_transfers(settings, outcome.contract, wallets, timeout / 4)
    print_outcome(settings, outcome)
    return 0 if ids and outcome.stored + outcome.dead >= len(ids) else 1


def dead_letters(settings: Settings) -> int:
    """Records on the purchases dead-letter topic (late or bad purchases the worker refused)."""
    from connectors.bench_server import topic_records
    from infra import topics

    return topic_records(settings, topics.dlq(topics.PURCHASES))


def _mint(settings: Settings, records: list[tuple[str, dict]], accepted: list[str]
          ) -> tuple[list[str], str | None]:
    """Mint tickets on the local node to some accepted buyers (none without a local node);
    returns the wallets and the contract."""
    from connectors.chain_local import ensure_contract, mint_tickets
    from infra import local

    if local.status(settings, ["evm"])["evm"]["state"] != "running":
        return [], None
    wanted = set(accepted)
    wallets = [r["wallet"] for kind, r in records
               if kind == "purchase" and r["purchase_id"] in wanted][:MINTS]
    contract = ensure_contract(settings)
    mint_tickets(settings, contract, wallets)
    return wallets, contract


def wait_transfers(settings: Settings, contract: str, wallets: list[str], timeout: float) -> int:
    """Until the chain listener's transfers of these mints are in PostgreSQL; how many are."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(DISTINCT to_address) FROM chain_transfers WHERE "
                               "contract = %s AND kind = 'MINT' AND to_address = ANY(%s)",
                               (contract, wallets)).fetchone()
            found = int(row[0]) if row else 0
            if found >= len(set(wallets)) or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


def wait_stored(settings: Settings, ids: list[str], dead: Callable[[], int], timeout: float
                ) -> tuple[int, int, float]:
    """Until every purchase of ``ids`` has its decision in PostgreSQL or was dead-lettered;
    returns (decisions stored, dead letters, seconds waited)."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM decisions WHERE purchase_id = ANY(%s)",
                               (ids,)).fetchone()
            stored, refused = int(row[0]) if row else 0, dead()
            waited = time.monotonic() - started
            if stored + refused >= len(ids) or waited > timeout:
                return stored, refused, waited
            time.sleep(0.5)
