"""The blast-radius breaker in a running worker (subprocess, real Kafka): a deployed rule that
blocks every purchase is switched to shadow mode within its window, a HIGH security event
names it with its rate, the metrics show it, decisions return to what they were without it,
and ``sentinel rules enable`` puts it back (and it trips again)."""

from __future__ import annotations

import socket
import threading
import urllib.request

import pytest

from infra import topics
from infra.settings import PostgresSettings
from models.registry import load_model
from models.rules_deploy import deploy, enable, rules_state
from processors.decide import Blocked, decide_batch
from processors.rules import load_ruleset
from tests.support.kafka import Worker, decided_ids
from tests.support.models import constant_model_registry
from tests.support.rules import (
    BLOCK_EVERYTHING,
    decoded,
    purchases,
    rules_file,
    send,
    stream,
    until_decided,
)

pytestmark = pytest.mark.integration
RULE = "block_everything"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shadow_events(settings, n: int) -> list[dict]:
    return [e for e in decoded(settings, topics.SECURITY_EVENTS, lambda m: _count(settings, m, n),
                               90) if e["kind"] == "rule_shadowed"]


def _count(settings, messages, n: int) -> bool:
    return sum(b"rule_shadowed" in m.value() for m in messages) >= n


def _metric(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return next((line for line in r.read().decode().splitlines()
                     if line.startswith(f'sentinel_rule_shadowed{{rule="{RULE}"}}')), "")


def test_a_rule_that_blocks_everything_is_contained(settings, env, pg_dsn, tmp_path,
                                                     monkeypatch):
    models_dir = constant_model_registry(tmp_path / "models")
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(models_dir))
    settings = settings.model_copy(update={"postgres": PostgresSettings(url=pg_dsn)})
    v1 = rules_file(tmp_path / "v1.toml", "brk-v1")
    v2 = rules_file(tmp_path / "v2.toml", "brk-v2", extra=BLOCK_EVERYTHING)
    deploy(settings, v1, run_backtest=False)
    port = _free_port()
    worker = Worker({**env, "SENTINEL_MODEL_DIR": str(models_dir),
                     "SENTINEL_DATA_DIR": str(tmp_path), "METRICS_WORKER_PORT": str(port)},
                    tmp_path / "worker.log")
    warm, streamed, stop = purchases(0, 100), [], threading.Event()
    feeder = threading.Thread(target=stream, args=(settings, streamed, 100, stop))
    try:
        send(settings, warm)
        decided_ids(settings, {p["purchase_id"] for p in warm}, 90, worker.assert_alive)
        feeder.start()
        warm_ids, alive = {p["purchase_id"] for p in warm}, worker.assert_alive
        until_decided(settings, lambda d: d["purchase_id"] not in warm_ids, check=alive)
        deploy(settings, v2, run_backtest=False)
        first = _shadow_events(settings, 1)[0]
        assert _metric(port).endswith(" 1.0")
        assert RULE in rules_state(settings)["shadowed"]
        shadowed = _until_mode(settings, "shadow", None, alive)  # then decides without it
        enable(settings, RULE)
        _shadow_events(settings, 2)
        again = _until_mode(settings, "enforced", shadowed["decided_at"], alive)
        _until_mode(settings, "shadow", again["decided_at"], alive)  # tripped again
        stop.set()
        feeder.join(60)
        decided_ids(settings, {p["purchase_id"] for p in warm + streamed}, 120,
                    worker.assert_alive)
    finally:
        stop.set()
        worker.stop()

    assert first["severity"] == "HIGH" and first["details"]["rule"] == RULE
    assert float(first["details"]["share"]) > 0.02
    decisions = decoded(settings, topics.DECISIONS, lambda m: len(m) >= len(warm) + len(streamed))
    runs = _runs([d for d in decisions if d["rules_version"] == "brk-v2"])
    assert [mode for mode, _ in runs] == ["enforced", "shadow", "enforced", "shadow"]
    blocked_by_it = [d for mode, ds in runs if mode == "enforced" for d in ds]
    assert all(d["decision"] == "BLOCKED" for d in blocked_by_it)
    assert 0 < len(blocked_by_it) < 200  # contained: a few batches, not the window
    by_id = {p["purchase_id"]: p for p in warm + streamed}
    _assert_baseline([d for mode, ds in runs if mode == "shadow" for d in ds], by_id,
                     load_ruleset(v1))


def _until_mode(settings, mode: str, after, check) -> dict:
    """The first brk-v2 decision with the rule in ``mode`` decided after ``after``."""
    return until_decided(settings, lambda d: d["rules_version"] == "brk-v2" and _mode(d) == mode,
                         after, check=check)


def _mode(decision: dict) -> str:
    reason = next(r for r in decision["reasons"] if r["code"] == RULE)
    return "shadow" if reason["detail"].startswith("[shadow] ") else "enforced"


def _runs(decisions: list[dict]) -> list[tuple[str, list[dict]]]:
    """Consecutive decisions (in decision order) by the rule's mode."""
    runs: list[tuple[str, list[dict]]] = []
    for d in sorted(decisions, key=lambda d: d["decided_at"]):
        mode = _mode(d)
        if not runs or runs[-1][0] != mode:
            runs.append((mode, []))
        runs[-1][1].append(d)
    return runs


def _assert_baseline(shadowed: list[dict], by_id: dict, baseline) -> None:
    """In shadow mode, each purchase gets the verdict and rule score the rules without the
    bad rule give it."""
    model = load_model()
    assert shadowed
    for d in shadowed:
        again = decide_batch([by_id[d["purchase_id"]]], [d["features"]], model, baseline,
                             Blocked(), d["decided_at"])[0].decision
        assert (again["decision"], round(again["rule_score"], 9)) == (
            d["decision"], round(d["rule_score"], 9))
