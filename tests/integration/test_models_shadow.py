"""Shadow evidence: challenger scores stored with decisions in PostgreSQL (through the sink),
and ``sentinel models compare`` setting champion against challenger on labelled purchases."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from infra import topics
from infra.settings import get_settings
from models.cli import add_commands
from models.shadow import compare_shadow
from processors.policy import combine, verdict_for
from sinks.postgres import PostgresSink
from sinks.testing import T0, decision, records

pytestmark = pytest.mark.integration


def _rows() -> tuple[list[dict], list[dict]]:
    """40 fraud and 160 legit purchases; the challenger catches more fraud with less friction."""
    decisions, labels = [], []
    for n in range(200):
        fraud = n < 40
        champ = (0.9 if n < 20 else 0.1) if fraud else (0.5 if n < 56 else 0.1)
        chal = (0.95 if n < 36 else 0.1) if fraud else 0.05
        at = T0 + timedelta(minutes=n)
        verdict = verdict_for(combine(champ, 0.0))
        decisions.append(decision(n, occurred_at=at, decided_at=at, model_score=champ,
                                  rule_score=0.0, score=combine(champ, 0.0),
                                  decision=str(verdict), challenger_version="chal-1",
                                  challenger_score=chal))
        if n < 190:  # ten legit purchases are still unlabelled: too young to count
            labels.append({"purchase_id": f"p-{n}", "occurred_at": T0 + timedelta(days=20),
                           "is_fraud": fraud, "source": "CHARGEBACK" if fraud else "SIMULATOR",
                           "pattern": None})
    # A review overturns the chargeback of p-30 (the challenger flagged it, the champion did
    # not): it is legit now, and the challenger's flag on it is friction.
    labels.append({"purchase_id": "p-30", "occurred_at": T0 + timedelta(days=21),
                   "is_fraud": False, "source": "MANUAL_REVIEW", "pattern": None})
    unshadowed = [decision(n, occurred_at=T0 + timedelta(minutes=n)) for n in range(300, 310)]
    return decisions + unshadowed, labels


def test_compare_reads_challenger_scores_and_labels_from_postgres(pg_dsn, monkeypatch, capsys):
    decisions, labels = _rows()
    sink = PostgresSink(pg_dsn, (topics.DECISIONS, topics.LABELS))
    sink.setup()
    sink.write(records(topics.DECISIONS, decisions) + records(topics.LABELS, labels))
    sink.close()

    report = compare_shadow(pg_dsn, label_delay_days=30)
    assert report["decisions"] == 200 and report["challenger_versions"] == {"chal-1": 200}
    assert report["labelled"] == 190 and report["fraud"] == 39 and report["legit"] == 151
    champion, challenger = report["champion"], report["challenger"]
    # champion: 20 of 39 fraud blocked (p-30 is legit now); 36 legit at 0.5 -> 2FA
    assert champion["recall_at_policy"] == pytest.approx(
        {"require_2fa": 20 / 39, "manual_review": 20 / 39, "blocked": 20 / 39})
    assert champion["legit_friction"] == pytest.approx(16 / 151)
    # challenger: 35 of 39 (p-30 no longer counts), and p-30 at 0.95 is now friction
    assert challenger["recall_at_policy"]["blocked"] == pytest.approx(35 / 39)
    assert challenger["legit_friction"] == pytest.approx(1 / 151)
    assert challenger["auc_roc"] > champion["auc_roc"]

    monkeypatch.setenv("POSTGRES_URL", pg_dsn)
    get_settings.cache_clear()
    parser = argparse.ArgumentParser(prog="sentinel")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", "compare", "chal-1"])
    try:
        assert args.func(args) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "190 labelled" in out and "challenger" in out and "0.897" in out
