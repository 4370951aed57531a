"""A batch of purchases with their features → decisions and security events.

One vectorised model call per batch (and one contributions call for the rows that were not
approved), one rules evaluation over the batch (``rules.evaluate_batch``), the policy per
organizer. Pure: the model is passed in (anything with ``version``, ``predict(X)`` and
``contributions(X)``), blocklists come in as sets, and the decision time is an argument. The
live worker, replay and backtests call this.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from processors.onsale import step_up
from processors.policy import Verdict, decide
from processors.rules import Evaluation, RuleBatch, RuleSet, evaluate_batch
from processors.timeutil import to_ms
from tests.support.legacy_path.explain import reasons, top_contributions
from tests.support.legacy_path.features import FEATURE_NAMES, feature_vector

Record = dict[str, Any]


class Model(Protocol):
    version: str

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def contributions(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Blocked:
    """Blocklist hits for a batch (looked up by the caller in one round trip)."""

    wallets: Set[str] = frozenset()
    ips: Set[str] = frozenset()


@dataclass
class Outcome:
    decision: Record
    security_events: list[Record] = field(default_factory=list)


def feature_matrix(features: Sequence[dict[str, float]], dtype: type = np.float32) -> np.ndarray:
    return np.asarray([feature_vector(f) for f in features], dtype=dtype).reshape(
        len(features), len(FEATURE_NAMES)
    )


def decide_batch(
    purchases: Sequence[Record],
    features: Sequence[dict[str, float]],
    model: Model,
    ruleset: RuleSet,
    blocked: Blocked,
    decided_at: datetime,
    challenger: Model | None = None,
    clusters: Sequence[str | None] | None = None,
) -> list[Outcome]:
    """``clusters``: each purchase's linked-wallet cluster id (``processors.marks``), put in
    its ``fraud_detected`` event's details for the SIEM's fraud-ring grouping."""
    if not purchases:
        return []
    X64 = feature_matrix(features, np.float64)  # the rules compare exact values
    X = X64.astype(np.float32)
    scores = model.predict(X)
    shadow = challenger.predict(X) if challenger is not None else None
    rules = evaluate_batch(RuleBatch(purchases, X64, blocked.wallets, blocked.ips), ruleset)
    outcomes = []
    for i, (purchase, feats) in enumerate(zip(purchases, features, strict=True)):
        evaluation = rules.row(i)
        thresholds = ruleset.for_organizer(purchase.get("organizer_id")).thresholds
        verdict, final = decide(
            float(scores[i]), evaluation.rule_score, evaluation.hard_block, thresholds
        )
        verdict = step_up(verdict, float(scores[i]), (r.rule_id for r in evaluation.results),
                          feats, thresholds)
        decision = _decision(
            purchase,
            feats,
            verdict,
            final,
            float(scores[i]),
            evaluation,
            model.version,
            ruleset.version,
            decided_at,
        )
        if shadow is not None and challenger is not None:
            decision["challenger_version"] = challenger.version
            decision["challenger_score"] = float(shadow[i])
        cluster = clusters[i] if clusters is not None else None
        events = security_events(purchase, feats, decision, evaluation, cluster)
        outcomes.append(Outcome(decision, events))
    _explain(outcomes, X, model)
    return outcomes


def _explain(outcomes: list[Outcome], X: np.ndarray, model: Model) -> None:
    """Top feature contributions, computed only for the rows that were not approved."""
    flagged = [i for i, o in enumerate(outcomes) if o.decision["decision"] != Verdict.APPROVED]
    if not flagged:
        return
    contribs = model.contributions(X[flagged])
    for row, i in zip(contribs, flagged, strict=True):
        outcomes[i].decision["contributions"] = top_contributions(row)


def _decision(
    purchase: Record,
    feats: dict[str, float],
    verdict: Verdict,
    final: float,
    model_score: float,
    evaluation: Evaluation,
    model_version: str,
    rules_version: str,
    decided_at: datetime,
) -> Record:
    """The Decision record (``schemas/decision.avsc``); contributions are filled in later."""
    arrived = purchase.get("ingested_at") or purchase["occurred_at"]
    latency = (to_ms(decided_at) or 0) - (to_ms(arrived) or 0)
    return {
        "decision_id": f"dec_{purchase['purchase_id']}",
        "purchase_id": purchase["purchase_id"],
        "wallet": purchase["wallet"],
        "organizer_id": purchase.get("organizer_id"),
        "decision": str(verdict),
        "score": final,
        "model_score": model_score,
        "rule_score": evaluation.rule_score,
        "model_version": model_version,
        "rules_version": rules_version,
        "reasons": reasons(evaluation.results, limit=10),
        "contributions": {},
        "features": dict(feats),  # floats already (processors.compute)
        "occurred_at": purchase["occurred_at"],
        "decided_at": decided_at,
        "latency_ms": float(max(0, latency)),
    }


def security_events(
    purchase: Record, feats: dict[str, float], decision: Record, evaluation: Evaluation,
    cluster: str | None = None,
) -> list[Record]:
    """``fraud_detected`` for BLOCKED (with ``details.cluster_id`` when known),
    ``impossible_travel``, ``blocklist_hit``."""
    kinds = []
    if decision["decision"] == Verdict.BLOCKED:
        kinds.append(("fraud_detected", "HIGH"))
    if feats.get("impossible_travel", 0) > 0:
        kinds.append(("impossible_travel", "MEDIUM"))
    if any(r.hard for r in evaluation.results):
        kinds.append(("blocklist_hit", "HIGH"))
    return [
        {
            "event_id": f"{kind}_{purchase['purchase_id']}",
            "occurred_at": purchase["occurred_at"],
            "kind": kind,
            "severity": severity,
            "source": "scoring",
            "ip": purchase.get("ip"),
            "wallet": purchase["wallet"],
            "user_id": purchase.get("user_id"),
            "purchase_id": purchase["purchase_id"],
            "details": {"decision": decision["decision"], "score": f"{decision['score']:.4f}",
                        **({"cluster_id": cluster} if cluster and kind == "fraud_detected" else {})},
        }
        for kind, severity in kinds
    ]
