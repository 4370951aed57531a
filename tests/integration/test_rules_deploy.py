"""Rules deploy without restart: a running worker (subprocess, real Kafka) switches rules
versions mid-stream when one is deployed or rolled back, every batch is decided by exactly
one version (stamped on each decision), and PostgreSQL keeps the history and backtests."""

from __future__ import annotations

import threading

import pytest

from infra import topics
from infra.settings import PostgresSettings
from models.registry import load_model
from models.rules_deploy import RulesStore, deploy, rollback
from processors.decide import Blocked, decide_batch
from processors.rules import load_ruleset
from tests.support.kafka import Worker, decided_ids
from tests.support.models import constant_model_registry
from tests.support.rules import decoded, purchases, rules_file, send, stream, until_decided

pytestmark = pytest.mark.integration

def test_worker_switches_rules_mid_stream_without_restart(settings, env, pg_dsn, tmp_path,
                                                           monkeypatch):
    models_dir = constant_model_registry(tmp_path / "models")
    monkeypatch.setenv("SENTINEL_MODEL_DIR", str(models_dir))  # the deploy's backtest model
    settings = settings.model_copy(update={"postgres": PostgresSettings(url=pg_dsn)})
    v1 = rules_file(tmp_path / "v1.toml", "test-v1")
    v2 = rules_file(tmp_path / "v2.toml", "test-v2", two_fa=0.01)  # everything needs 2FA
    deploy(settings, v1)
    warm, streamed = purchases(0, 100), []
    worker = Worker({**env, "SENTINEL_MODEL_DIR": str(models_dir), "SENTINEL_DATA_DIR": str(tmp_path)},
                    tmp_path / "worker.log")
    stop = threading.Event()
    try:
        send(settings, warm)
        decided_ids(settings, {p["purchase_id"] for p in warm}, 90, worker.assert_alive)
        pid = worker.proc.pid
        feeder = threading.Thread(target=stream, args=(settings, streamed, 100, stop))
        feeder.start()
        warm_ids, alive = {p["purchase_id"] for p in warm}, worker.assert_alive
        until_decided(settings, lambda d: d["purchase_id"] not in warm_ids, check=alive)
        summary = deploy(settings, v2)["backtest"]
        on_v2 = until_decided(settings, lambda d: d["rules_version"] == "test-v2", check=alive)
        rollback(settings, "test-v1")
        until_decided(settings, lambda d: d["rules_version"] == "test-v1",
                      after=on_v2["decided_at"], check=alive)
        stop.set()
        feeder.join(60)
        wanted = {p["purchase_id"] for p in warm + streamed}
        decided_ids(settings, wanted, 120, worker.assert_alive)
        worker.assert_alive()
        assert worker.proc.pid == pid  # no restart
    finally:
        stop.set()
        worker.stop()

    decisions = decoded(settings, topics.DECISIONS,
                        lambda m: len(m) >= len(warm) + len(streamed))
    _assert_one_version_per_batch(decisions)
    _assert_versions_switch_in_order(decisions)
    _assert_each_decision_is_its_versions(decisions, {p["purchase_id"]: p for p in warm + streamed},
                                          {"test-v1": load_ruleset(v1), "test-v2": load_ruleset(v2)})
    assert summary["decisions"] > 0 and summary["rules"] == "test-v2"
    history = RulesStore(pg_dsn).history()
    assert [(h["action"], h["version"]) for h in history] == [
        ("rollback", "test-v1"), ("deploy", "test-v2"), ("deploy", "test-v1")]
    assert history[1]["backtest"]["verdicts"].get("REQUIRE_2FA", 0) > 0


def _assert_one_version_per_batch(decisions: list[dict]) -> None:
    """A batch's decisions share one decided_at (one clock read per batch): one version."""
    batches: dict = {}
    for d in decisions:
        batches.setdefault(d["decided_at"], set()).add(d["rules_version"])
    assert all(len(versions) == 1 for versions in batches.values())


def _assert_versions_switch_in_order(decisions: list[dict]) -> None:
    """In decision order: v1, then v2, then v1 again; each switch happens once."""
    ordered = sorted(decisions, key=lambda d: d["decided_at"])
    runs = [ordered[0]["rules_version"]]
    for d in ordered[1:]:
        if d["rules_version"] != runs[-1]:
            runs.append(d["rules_version"])
    assert runs == ["test-v1", "test-v2", "test-v1"]


def _assert_each_decision_is_its_versions(decisions, by_id, rulesets) -> None:
    """Re-deciding each purchase (its stored features) with the version stamped on it gives
    the same verdict and rule score; under v2 nothing is approved."""
    model = load_model()
    for d in decisions:
        again = decide_batch([by_id[d["purchase_id"]]], [d["features"]], model,
                             rulesets[d["rules_version"]], Blocked(), d["decided_at"])[0].decision
        assert (again["decision"], again["rule_score"]) == (d["decision"], d["rule_score"])
        if d["rules_version"] == "test-v2":
            assert d["decision"] != "APPROVED"
