"""Rules versions: validate, backtest, store, publish to every worker; history and rollback.

    deploy(settings, path)        -> the stored version with its backtest summary
    rollback(settings, version)   -> publishes a stored version again
    RulesStore(dsn).history()     -> deployments, newest first

PostgreSQL keeps every version's text and backtest (``rules_versions``) and every deployment
(``rules_deployments``, migration 0021); the rules topic carries the active one to the workers
(``streams/rules_channel.py``), which switch at their next batch without a restart.
A version is immutable: deploying other text under a version already stored is refused.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import orjson
import psycopg

from infra.settings import Settings
from models.rules_backtest import backtest
from processors.rules import RulesFileError
from streams.rules_channel import (
    RULESET_KEY,
    parse_ruleset,
    publish,
    rule_key,
    ruleset_value,
    sha256,
    switch_value,
)


class RulesVersionError(ValueError):
    """A version that cannot be deployed or rolled back to (the message says why)."""


class RulesStore:
    def __init__(self, dsn: str):
        self.dsn = dsn

    def save(self, version: str, body: str, backtest_summary: dict) -> None:
        digest = sha256(body)
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT sha256 FROM rules_versions WHERE version = %s",
                               (version,)).fetchone()
            if row and row[0] != digest:
                raise RulesVersionError(
                    f"version {version!r} is already stored with other rules: bump `version`")
            conn.execute(
                "INSERT INTO rules_versions (version, sha256, body, backtest)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (version) DO UPDATE"
                " SET backtest = EXCLUDED.backtest",
                (version, digest, body, orjson.dumps(backtest_summary, default=str).decode()))

    def record(self, version: str, action: str) -> None:
        with psycopg.connect(self.dsn) as conn:
            conn.execute("INSERT INTO rules_deployments (version, action, deployed_by)"
                         " VALUES (%s, %s, %s)", (version, action, _who()))

    def body(self, version: str) -> str:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT body FROM rules_versions WHERE version = %s",
                               (version,)).fetchone()
        if row is None:
            raise RulesVersionError(f"no stored rules version {version!r} (see rules history)")
        return row[0]

    def history(self, limit: int = 50) -> list[dict]:
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT d.deployed_at, d.action, d.version, d.deployed_by, v.backtest"
                " FROM rules_deployments d JOIN rules_versions v USING (version)"
                " ORDER BY d.id DESC LIMIT %s", (limit,)).fetchall()
        keys = ("deployed_at", "action", "version", "deployed_by", "backtest")
        return [dict(zip(keys, r, strict=True)) for r in rows]


def _who() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def deploy(settings: Settings, path: str | Path, window_days: float = 7.0,
           run_backtest: bool = True) -> dict:
    """Validate (``RulesFileError``), backtest, store, publish; returns the stored summary."""
    path = Path(path)
    try:
        body = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read: {exc}") from exc
    ruleset = parse_ruleset(body, source=str(path))
    summary = backtest(settings, ruleset, window_days) if run_backtest else {"skipped": True}
    store = RulesStore(settings.postgres.dsn)
    store.save(ruleset.version, body, summary)
    publish(settings, RULESET_KEY, ruleset_value(ruleset.version, body, "deploy"))
    store.record(ruleset.version, "deploy")
    return {"version": ruleset.version, "backtest": summary}


def rollback(settings: Settings, version: str) -> dict:
    """Publish a stored version again: every worker decides with it from its next batch."""
    store = RulesStore(settings.postgres.dsn)
    body = store.body(version)
    parse_ruleset(body, source=f"stored {version}")  # still valid with today's catalogue
    publish(settings, RULESET_KEY, ruleset_value(version, body, "rollback"))
    store.record(version, "rollback")
    return {"version": version, "action": "rollback"}


def enable(settings: Settings, rule_id: str) -> dict:
    """Take a rule out of shadow mode in every worker (the breaker starts counting afresh)."""
    state = rules_state(settings)
    if rule_id not in state["ruleset"].rules:
        raise RulesVersionError(f"rules {state['version']} have no rule {rule_id!r}")
    publish(settings, rule_key(rule_id), switch_value(rule_id, False, f"enabled by {_who()}"))
    return {"rule": rule_id, "was_shadowed": rule_id in state["shadowed"]}


def rules_state(settings: Settings) -> dict:
    """What the workers follow now: the active version and the rules in shadow mode (with
    the breaker's reason). For ``sentinel rules history`` and the console."""
    from processors.rules import load_ruleset
    from streams.rules_follower import RulesFollower

    follower = RulesFollower(settings, fallback=load_ruleset())
    try:
        return {"version": follower.ruleset.version, "ruleset": follower.ruleset,
                "shadowed": dict(follower.shadowed)}
    finally:
        follower.close()
