"""What ``sentinel demo`` prints: the gateway's answers, decisions per verdict, rows per table,
alerts, and where to look next."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.gateway_client import Sent
from infra.settings import Settings

TABLES = ("purchases", "decisions", "auth_events", "chain_transfers", "security_events",
          "alerts", "labels")
VERDICTS = ("APPROVED", "REQUIRE_2FA", "MANUAL_REVIEW", "BLOCKED")


@dataclass
class Outcome:
    seed: int
    url: str
    sent: Sent
    elapsed_s: float
    minted: int = 0
    contract: str | None = None
    transfers: int = 0  # of the minted tickets, wallets whose transfer is in PostgreSQL
    stored: int = 0
    dead: int = 0  # purchases dead-lettered by the worker meanwhile (late, undecodable)
    waited_s: float = 0.0


def print_outcome(settings: Settings, o: Outcome) -> None:
    import psycopg

    ids = o.sent.accepted.get("purchase", [])
    with psycopg.connect(settings.postgres.dsn) as conn:
        _print_sent(o)
        print(f"\nDecisions in PostgreSQL: {o.stored} of {len(ids)} accepted purchases "
              f"(after {o.waited_s:.1f} s)")
        if o.dead:
            print(f"  dead-lettered meanwhile: {o.dead} (reasons in the worker log and on "
                  "sentinel.purchases.v1.dlq)")
        _print_verdicts(conn, ids)
        _print_tables(conn)
        _print_alerts(conn)
    _print_next(settings, ids[0] if ids else None)


def _print_sent(o: Outcome) -> None:
    s = o.sent
    print(f"Sent simulated traffic of one day (seed {o.seed}) through the signed gateway "
          f"{o.url} in {o.elapsed_s:.1f} s:")
    for kind, label in (("purchase", "purchases"), ("auth", "logins")):
        answers = ", ".join(f"{n} answered {status}" for (k, status), n
                            in sorted(s.statuses.items()) if k == kind)
        print(f"  {label:10} {s.count(kind):5}  {answers}")
    if s.count("purchase", 429):
        print("  (429: the gateway's rate limits per wallet and IP, WEBHOOK_RATE_*)")
    for error in s.errors:
        print(f"  {error}")
    if o.contract:
        print(f"  chain      {o.minted:5}  tickets minted on the local EVM node (TicketNFT "
              f"{o.contract}); the chain listener's transfers of {o.transfers} of those "
              "wallets are in PostgreSQL")


def _print_verdicts(conn, ids: list[str]) -> None:
    rows = dict(conn.execute("SELECT decision, count(*) FROM decisions "
                             "WHERE purchase_id = ANY(%s) GROUP BY decision", (ids,)).fetchall())
    print("  " + ", ".join(f"{v} {rows.get(v, 0)}" for v in VERDICTS))
    row = conn.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), "
                       "percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) "
                       "FROM decisions WHERE purchase_id = ANY(%s)", (ids,)).fetchone()
    if row and row[0] is not None:
        print(f"  latency from acceptance to decision: p50 {row[0]:.0f} ms, p99 {row[1]:.0f} ms "
              "(one burst: mostly queueing; `sentinel bench pipeline` measures a fixed rate)")
    flagged = conn.execute(
        "SELECT purchase_id, decision, score, reasons FROM decisions WHERE purchase_id = ANY(%s)"
        " AND decision <> 'APPROVED' ORDER BY score DESC LIMIT 5", (ids,)).fetchall()
    for purchase_id, decision, score, reasons in flagged:
        codes = ", ".join(r.get("code", "?") for r in (reasons or [])[:3])
        print(f"    {purchase_id:<24} {decision:<13} score={score:.3f}  {codes}")


def _print_tables(conn) -> None:
    counts = [f"{t} {conn.execute(f'SELECT count(*) FROM {t}').fetchone()[0]}" for t in TABLES]
    print("\nRows per table (everything so far): " + ", ".join(counts))


def _print_alerts(conn) -> None:
    rows = conn.execute("SELECT rule, group_key, count FROM alerts "
                        "ORDER BY created_at DESC LIMIT 3").fetchall()
    total = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    print(f"SIEM alerts: {total}" + ("; latest:" if rows else ""))
    for rule, group_key, count in rows:
        print(f"    {rule:<24} {group_key:<44} count={count}")


def _print_next(settings: Settings, sample: str | None) -> None:
    from infra import stack, supervisor

    running = {s.name for s in stack.wanted(settings)}
    logs = supervisor.log_dir(settings)
    print("\nThe system keeps running. Where to look next:")
    print("  sentinel status               services: pid, health, consumer lag")
    print("  sentinel tail                 decisions as they are made")
    print(f"  {logs}/<service>.log   logs ({', '.join(sorted(running))})")
    print(f"  http://127.0.0.1:{settings.webhook.port}/docs   the gateway (HMAC-signed POSTs)")
    if sample:
        print(f"  redis-cli -p {settings.redis.port} get sentinel:decision:{sample}")
    if "console" in running:
        from connectors.console.cli import admin_credentials, print_admin

        print("  ", end="")
        print_admin(*admin_credentials())
    print("  make down                     stop everything `make run` started")
