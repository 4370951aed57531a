"""Champion against challenger on live traffic: the decisions the champion made, the scores
the challenger gave the same purchases in shadow, and what the labels say since.

    report = compare_shadow(dsn, since=..., until=...)      # the console calls this
    sentinel models compare [--since T] [--until T] [--challenger V]

Read from PostgreSQL (the system of record): ``decisions`` rows that carry a challenger score
(``challenger_version``, ``challenger_score``, migration 0020) and ``labels``. A purchase's
outcome is what ``models.labels.LabelBook`` knows as of the latest label or decision
(corrections applied, unlabelled purchases legit once the label delay has passed, younger
ones left out).

Per side: AUC-ROC of the model score; recall at the policy thresholds (share of fraud the
verdict at least escalated to 2FA, to review, or blocked); friction (share of legit purchases
not APPROVED). The champion's verdicts are the ones it made. The challenger's are what the
policy would have made with its score and the same rule score, under the thresholds of the
current rules file for the purchase's organizer (``thresholds_for``); a hard rule (final
score 1.0) blocks for both sides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

import numpy as np
import psycopg

from models.labels import DAY_MS, DEFAULT_LABEL_DELAY_DAYS, LabelBook
from processors.policy import Thresholds, Verdict, decide
from processors.timeutil import to_ms

ESCALATION = {"require_2fa": (Verdict.REQUIRE_2FA, Verdict.MANUAL_REVIEW, Verdict.BLOCKED),
              "manual_review": (Verdict.MANUAL_REVIEW, Verdict.BLOCKED),
              "blocked": (Verdict.BLOCKED,)}

DECISIONS_SQL = """
SELECT purchase_id, occurred_at, organizer_id, decision, score, model_score, rule_score,
       model_version, challenger_version, challenger_score
FROM decisions
WHERE challenger_score IS NOT NULL
  AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s)
  AND (%(challenger)s::text IS NULL OR challenger_version = %(challenger)s)
"""
LABELS_SQL = "SELECT purchase_id, source, occurred_at, is_fraud, pattern FROM labels"
COLUMNS = ("purchase_id", "occurred_at", "organizer_id", "decision", "score", "model_score",
           "rule_score", "model_version", "challenger_version", "challenger_score")


def fetch(conn: psycopg.Connection, since: datetime | None, until: datetime | None,
          challenger: str | None) -> tuple[list[dict], list[dict]]:
    """(shadowed decisions, labels) from PostgreSQL, with parameterised SQL only."""
    params = {"since": since, "until": until, "challenger": challenger}
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in conn.execute(DECISIONS_SQL, params)]
    labels = [dict(zip(("purchase_id", "source", "occurred_at", "is_fraud", "pattern"), r,
                       strict=True)) for r in conn.execute(LABELS_SQL)]
    return rows, labels


def challenger_verdict(row: dict, thresholds: Thresholds) -> Verdict:
    if row["decision"] == Verdict.BLOCKED and row["score"] >= 1.0:
        return Verdict.BLOCKED  # a hard rule: the same for any model
    return decide(row["challenger_score"], row["rule_score"], False, thresholds)[0]


def side_metrics(y: np.ndarray, scores: np.ndarray, verdicts: list[str]) -> dict:
    from sklearn.metrics import roc_auc_score

    fraud, legit = y == 1, y == 0
    v = np.asarray(verdicts, dtype=object)
    out = {"auc_roc": float(roc_auc_score(y, scores)) if fraud.any() and legit.any() else None}
    out["recall_at_policy"] = {
        name: float(np.isin(v[fraud], [str(x) for x in levels]).mean()) if fraud.any() else None
        for name, levels in ESCALATION.items()}
    out["legit_friction"] = float((v[legit] != Verdict.APPROVED).mean()) if legit.any() else None
    return out


def shadow_report(rows: list[dict], labels: list[dict], *,
                  thresholds_for: Callable[[str | None], Thresholds],
                  label_delay_days: float = DEFAULT_LABEL_DELAY_DAYS,
                  as_of_ms: int | None = None) -> dict:
    """The comparison over ``rows`` (shadowed decisions) with what ``labels`` tell (pure)."""
    times = [to_ms(r["occurred_at"]) or 0 for r in rows] + [to_ms(lb["occurred_at"]) or 0
                                                           for lb in labels]
    as_of = as_of_ms if as_of_ms is not None else max(times, default=0)
    book = LabelBook(labels, as_of, int(label_delay_days * DAY_MS))
    known = [(r, o) for r in rows if (o := book.outcome(r["purchase_id"],
                                                        to_ms(r["occurred_at"]) or 0))]
    y = np.array([int(o.is_fraud) for _, o in known], dtype=int)
    labelled = [r for r, _ in known]
    report = {"decisions": len(rows), "labelled": len(labelled), "fraud": int(y.sum()),
              "legit": int(len(y) - y.sum()), "labels": dict(book.counts), "as_of_ms": as_of,
              "champion_versions": dict(Counter(r["model_version"] for r in rows)),
              "challenger_versions": dict(Counter(r["challenger_version"] for r in rows))}
    if not labelled:
        return report | {"champion": None, "challenger": None}
    report["champion"] = side_metrics(y, np.array([r["model_score"] for r in labelled]),
                                      [r["decision"] for r in labelled])
    report["challenger"] = side_metrics(
        y, np.array([r["challenger_score"] for r in labelled]),
        [str(challenger_verdict(r, thresholds_for(r["organizer_id"]))) for r in labelled])
    return report


def current_thresholds() -> Callable[[str | None], Thresholds]:
    from processors.rules import load_ruleset

    ruleset = load_ruleset()
    return lambda organizer: ruleset.for_organizer(organizer).thresholds


def compare_shadow(dsn: str, since: datetime | None = None, until: datetime | None = None,
                   challenger: str | None = None,
                   label_delay_days: float = DEFAULT_LABEL_DELAY_DAYS) -> dict:
    """Champion vs challenger on the labelled decisions in [since, until) (the console's and
    ``sentinel models compare``'s entry point)."""
    with psycopg.connect(dsn) as conn:
        rows, labels = fetch(conn, since, until, challenger)
    report = shadow_report(rows, labels, thresholds_for=current_thresholds(),
                           label_delay_days=label_delay_days)
    return {"since": since, "until": until, **report}
