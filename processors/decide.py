"""A batch of purchases with their features → decisions and security events.

One vectorised model call per batch (and one contributions call for the rows that were not
approved), one rules evaluation over the batch (``rules.evaluate_batch``), the policy with
each row's organizer thresholds (``policy.decide_columns``' operations, natively),
the on-sale step-up of the rows sent to review (``onsale.step_up``); Python work per row is
only building its
Decision record (and security events for the rows that raise any). Pure: the model is passed in (anything with ``version``, ``predict(X)`` and
``contributions(X)``), blocklists come in as sets, and the decision time is an argument. The
live worker, replay and backtests call this.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from processors._native import (
    arrival_latencies,
    decision_dicts,
    feature_dicts,
    policy_columns,
    reasons_batch,
    rows_matrix,
)
from processors.breaker import rule_hits, rule_weights, shadow_rules
from processors.explain import reasons, top_contributions_batch
from processors.features import FEATURE_NAMES
from processors.onsale import step_up
from processors.policy import (
    RULE_WEIGHT,
    VERDICTS,
    Thresholds,
    Verdict,
    decide_columns,
)
from processors.rules import (
    BatchEvaluation,
    RuleBatch,
    RuleResult,
    RuleSet,
    evaluate_batch,
)
from processors.rules.batch import distinct_of, record_values
from processors.timeutil import to_ms

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FeatureMatrix:
    """A batch's features converted once (``as_matrix``: the float64 matrix ``X`` and the rows
    of Python floats), for a caller that reads the matrix too: the live decider's drift watch
    (``streams.decider``), which otherwise converted the batch again (~1 ms a batch of 500)."""

    X: np.ndarray
    rows: Sequence[Sequence[float]]

    @classmethod
    def of(cls, features: Features) -> FeatureMatrix:
        return features if isinstance(features, FeatureMatrix) else cls(*as_matrix(features))

    def __len__(self) -> int:
        return len(self.rows)


Features = (np.ndarray | Sequence[Sequence[float]] | Sequence[Mapping[str, float]]
            | FeatureMatrix)  # fmt: skip


class Model(Protocol):
    version: str

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def contributions(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Blocked:
    """Blocklist hits for a batch (looked up by the caller in one round trip)."""

    wallets: Set[str] = frozenset()
    ips: Set[str] = frozenset()


_APPROVED, _BLOCKED = VERDICTS.index(Verdict.APPROVED), VERDICTS.index(Verdict.BLOCKED)
_REVIEW = VERDICTS.index(Verdict.MANUAL_REVIEW)
_CODE = {verdict: code for code, verdict in enumerate(VERDICTS)}
_VERDICT_VALUES = tuple(v.value for v in VERDICTS)
_Thresholds = tuple[float, float, float, float, Thresholds]


@dataclass(slots=True)
class Outcome:
    decision: Record
    security_events: list[Record] = field(default_factory=list)
    fired: tuple[str, ...] = ()  # the enforced rules that fired (the breaker counts them)
    blocked_by: tuple[str, ...] = ()  # those that BLOCKED it (processors.breaker.blocked_by)


_ROW = itemgetter(*FEATURE_NAMES)
_IMPOSSIBLE = FEATURE_NAMES.index("impossible_travel")


def feature_matrix(features: Sequence[Mapping[str, float]], dtype: type = np.float32) -> np.ndarray:
    """Feature dicts as rows in ``FEATURE_NAMES`` order (every name required)."""
    return np.asarray([_ROW(f) for f in features], dtype=dtype).reshape(
        len(features), len(FEATURE_NAMES)
    )


def as_matrix(features: Features) -> tuple[np.ndarray, Sequence[Sequence[float]]]:
    """A batch's features as an n x ``FEATURE_NAMES`` float64 matrix, and as rows of Python
    floats (for the Decision records). Given as a matrix, as rows (``FeatureEngine.process_row``),
    as feature dicts, or converted already (``FeatureMatrix``)."""
    if isinstance(features, FeatureMatrix):
        return features.X, features.rows
    if isinstance(features, np.ndarray):
        X = np.asarray(features, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"features must be n x {len(FEATURE_NAMES)}, got {X.shape}")
        return X, X.tolist()
    if len(features) and isinstance(features[0], Mapping):
        X = feature_matrix(features, np.float64)  # type: ignore[arg-type]
        return X, X.tolist()
    n, width = len(features), len(FEATURE_NAMES)
    X = np.empty((n, width))
    try:
        # Natively (``rows_matrix``: the doubles struct packs below, by the same
        # PyFloat_AsDouble), when the rows are tuples or lists of that width (500 rows of
        # FeatureEngine: 193 against 381 µs).
        rows_matrix(features if type(features) is list else list(features), X)
        return X, features  # type: ignore[return-value]
    except ValueError:  # made below: the same doubles, or the same error
        pass
    if any(len(row) != width for row in features):
        raise ValueError(f"every feature row must hold {width} values")
    try:
        # Each row packed as C doubles by struct and the rows read as one buffer, ~3x faster
        # than numpy converting value by value (500 rows of FeatureEngine: 349 against
        # 1016 µs). The same doubles: both convert a value with its __float__ (or __index__).
        packed = bytearray(b"".join([_ROW_DOUBLES.pack(*row) for row in features]))
        X = np.frombuffer(packed, np.float64).reshape(n, width)
    except struct.error:  # a value struct refuses and numpy may convert (None, a text)
        X = np.fromiter(chain.from_iterable(features), np.float64, count=n * width).reshape(
            n, width)  # fmt: skip
    return X, features  # type: ignore[return-value]


_ROW_DOUBLES = struct.Struct(f"{len(FEATURE_NAMES)}d")  # native doubles: float64's layout


def decide_batch(
    purchases: Sequence[Record],
    features: Features,
    model: Model,
    ruleset: RuleSet,
    blocked: Blocked,
    decided_at: datetime,
    challenger: Model | None = None,
    clusters: Sequence[str | None] | None = None,
    shadowed: Set[str] = frozenset(),
) -> list[Outcome]:
    """``features``: one row per purchase in ``FEATURE_NAMES`` order (a float64 matrix, or
    rows as ``FeatureEngine.process_row`` gives them), or feature dicts, or any of these
    converted already (``FeatureMatrix``). ``clusters``: each purchase's linked-wallet cluster id
    (``processors.marks``), put in its ``fraud_detected`` event's details for the SIEM's
    fraud-ring grouping. ``shadowed``: rules the breaker took out of the verdict (evaluated
    and recorded, no effect; ``processors.breaker``)."""
    if not len(purchases):
        return []
    X64, rows = as_matrix(features)  # the rules compare exact values
    X = X64.astype(np.float32)
    scores = np.asarray(model.predict(X), dtype=np.float64).tolist()
    rules = evaluate_batch(RuleBatch(purchases, X64, blocked.wallets, blocked.ips), ruleset)
    weight_of = rule_weights(ruleset, purchases)
    if shadowed:
        rules = shadow_rules(rules, shadowed, weight_of)
    rule_scores, hard = rules.rule_score.tolist(), rules.hard_block.tolist()
    thresholds = _thresholds(purchases, ruleset)
    codes, finals = _policy(scores, rule_scores, hard, thresholds)
    _step_up(codes, scores, rules, rows, thresholds.rows, shadowed)
    batch = _Batch(list(map(_VERDICT_VALUES.__getitem__, codes)), finals, scores, rule_scores,
                   rules.results, model.version, ruleset.version, decided_at)
    outcomes = list(map(Outcome, _decisions(purchases, rows, batch)))
    if challenger is not None:
        for outcome, score in zip(outcomes, challenger.predict(X).tolist(), strict=True):
            outcome.decision["challenger_version"] = challenger.version
            outcome.decision["challenger_score"] = float(score)
    is_blocked = list(map(_BLOCKED.__eq__, codes))
    _alert(outcomes, purchases, is_blocked, (X64[:, _IMPOSSIBLE] > 0).tolist(), hard, clusters)
    hits = rule_hits(rules, is_blocked, scores, thresholds.blocks(), shadowed, weight_of)
    for outcome, (fired, blockers) in zip(outcomes, hits, strict=True):
        outcome.fired, outcome.blocked_by = fired, blockers
    _explain(outcomes, codes, X, model)
    return outcomes


def _policy(scores: list[float], rule_scores: list[float], hard: list[bool],
            thresholds: _RowThresholds) -> tuple[list[int], list[float]]:
    """Each row's verdict code (into ``VERDICTS``) and final score, natively
    (``policy_columns``: ``decide_columns``' float operations row by row, without its numpy
    calls, for any number of rows: 500 simulated purchases, 34 against 167 µs); a value it
    does not read goes to ``decide_columns`` itself. The two agree exactly
    (``tests/unit/test_decide_policy_columns.py``)."""
    try:
        return policy_columns(scores, rule_scores, hard, [t[:4] for t in thresholds.distinct],
                              thresholds.index, RULE_WEIGHT)  # fmt: skip
    except (TypeError, ValueError, OverflowError):  # a value it does not read: below
        pass
    codes, finals = decide_columns(np.asarray(scores), np.asarray(rule_scores),
                                   np.asarray(hard), thresholds.columns())
    return codes.tolist(), finals.tolist()


def _thresholds(purchases: Sequence[Record], ruleset: RuleSet) -> _RowThresholds:
    """Per row (block, review, two_fa, two_fa_model, Thresholds) of its organizer's view of
    the rules: each distinct organizer's looked up once. The organizers and each row's index
    among them are found natively (``distinct_values`` of the ``organizer_id`` column, as
    ``RuleBatch.distinct`` finds a column's: what a dict keyed by them keeps, first seen
    first), not by a dict lookup a row in Python (500 simulated purchases: ~0.1 against
    0.5 µs a row)."""
    organizers, index = _organizers(purchases)
    distinct: list[_Thresholds] = []
    for org in organizers:
        t = ruleset.for_organizer(org).thresholds
        distinct.append((t.block, t.review, t.two_fa, t.two_fa_model, t))
    return _RowThresholds(list(map(distinct.__getitem__, index)), distinct, index)


def _organizers(purchases: Sequence[Record]) -> tuple[list[str | None], list[int]]:
    """The purchases' distinct ``organizer_id`` values (None without one), first seen first,
    and each purchase's index among them; by a dict when one cannot be a dict key (which
    raises there, the TypeError it always raised)."""
    values = record_values(purchases, "organizer_id")
    found = distinct_of(values)
    if found is not None:
        return found[0], found[1].tolist()
    seen: dict[str | None, int] = {}
    index = [seen.setdefault(org, len(seen)) for org in values]
    return list(seen), index


@dataclass(frozen=True, slots=True)
class _RowThresholds:
    """``rows``: each row's thresholds, ``distinct[index[i]]``."""

    rows: list[_Thresholds]
    distinct: list[_Thresholds]
    index: list[int]

    def blocks(self) -> list[float]:
        """Each row's block threshold."""
        return list(map([t[0] for t in self.distinct].__getitem__, self.index))

    def columns(self) -> np.ndarray:
        """The rows' (block, review, two_fa, two_fa_model) as an n x 4 matrix: each organizer's
        converted once, not each row's (500 simulated purchases: 36 against 206 µs). The same
        values and dtype: the same values are converted."""
        return np.asarray([t[:4] for t in self.distinct])[self.index]


def _step_up(codes: list[int], scores: list[float], rules: BatchEvaluation,
             rows: Sequence[Sequence[float]], thresholds: list[_Thresholds],
             shadowed: Set[str]) -> None:
    """The on-sale step-up (``processors.onsale``) of the rows sent to review, in place
    (shadowed rules do not count)."""
    for i in [i for i, code in enumerate(codes) if code == _REVIEW]:
        verdict = step_up(Verdict.MANUAL_REVIEW, scores[i],
                          (r.rule_id for r in rules.results[i] if r.rule_id not in shadowed),
                          dict(zip(FEATURE_NAMES, rows[i], strict=True)), thresholds[i][4])
        codes[i] = _CODE[verdict]


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every Decision of a batch reads, as Python values (one conversion per batch)."""

    verdicts: list[str]
    finals: list[float]
    scores: list[float]
    rule_scores: list[float]
    results: list[list[RuleResult]]
    model_version: str
    rules_version: str
    decided_at: datetime
    decided_ms: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "decided_ms", to_ms(self.decided_at) or 0)


def _explain(outcomes: list[Outcome], codes: list[int], X: np.ndarray, model: Model) -> None:
    """Top feature contributions, computed only for the rows that were not approved."""
    flagged = [i for i, code in enumerate(codes) if code != _APPROVED]
    if not flagged:
        return
    tops = top_contributions_batch(model.contributions(X[flagged]))
    for i, top in zip(flagged, tops, strict=True):
        outcomes[i].decision["contributions"] = top


def _decisions(purchases: Sequence[Record], rows: Sequence[Sequence[float]],
               batch: _Batch) -> list[Record]:
    """The Decision records (``schemas/decision.avsc``) of a batch (rows are
    ``FEATURE_NAMES`` long: ``as_matrix`` checked); contributions are filled in later. Made
    in one native call (``decision_dicts``: the records ``_decisions_by_row`` makes, each a
    copy of ``_DECISION`` with the same values set in the same order; 500 simulated
    purchases at load ~4: 9.2 against 10.1 µs a row for all of this) when the purchases
    are plain dicts with what a record reads; else, or when a row raises (a missing field, a
    naive time), row by row, which raises as it always did."""
    try:
        listed = purchases if type(purchases) is list else list(purchases)
        # each record's latency_ms as _decisions_by_row computes it, natively
        # (``arrival_latencies``; 500 simulated purchases: 139 against 477 µs)
        latencies = arrival_latencies(listed, batch.decided_ms, datetime, UTC, _EPOCH, to_ms)
        return decision_dicts(
            _DECISION, listed,
            [batch.verdicts, batch.finals, batch.scores, batch.rule_scores,
             _reasons(batch.results), _feature_dicts(rows), latencies],
            batch.model_version, batch.rules_version, batch.decided_at)  # fmt: skip
    except Exception:  # noqa: S110  (made row by row below: the same records, or error)
        pass
    return _decisions_by_row(purchases, rows, batch)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # to_ms's epoch

# A Decision record's keys, in the order _decisions_by_row sets them (``decision_dicts``).
_DECISION = dict.fromkeys(("decision_id", "purchase_id", "wallet", "organizer_id", "decision",
                           "score", "model_score", "rule_score", "model_version",
                           "rules_version", "reasons", "contributions", "features",
                           "occurred_at", "decided_at", "latency_ms"))  # fmt: skip


def _decisions_by_row(purchases: Sequence[Record], rows: Sequence[Sequence[float]],
                      batch: _Batch) -> list[Record]:
    """``_decisions`` in one Python loop."""
    decided_ms, decided_at = batch.decided_ms, batch.decided_at
    model_version, rules_version = batch.model_version, batch.rules_version
    out = []
    for purchase, features, verdict, final, score, rule_score, ranked in zip(
            purchases, _feature_dicts(rows), batch.verdicts, batch.finals, batch.scores,
            batch.rule_scores, _reasons(batch.results), strict=True):
        arrived = purchase.get("ingested_at") or purchase["occurred_at"]
        latency = decided_ms - (to_ms(arrived) or 0)
        purchase_id = purchase["purchase_id"]
        out.append({
            "decision_id": f"dec_{purchase_id}",
            "purchase_id": purchase_id,
            "wallet": purchase["wallet"],
            "organizer_id": purchase.get("organizer_id"),
            "decision": verdict,
            "score": final,
            "model_score": score,
            "rule_score": rule_score,
            "model_version": model_version,
            "rules_version": rules_version,
            "reasons": ranked,
            "contributions": {},
            "features": features,
            "occurred_at": purchase["occurred_at"],
            "decided_at": decided_at,
            "latency_ms": float(max(0, latency)),
        })
    return out


# A Decision's features: FEATURE_NAMES → the row's values, keys in that order. Filled into a
# copy of a dict that already has every key, whose table is sized for them, instead of built
# by ``dict(zip(...))``, which grows its table four times on the way to 70 keys (measured:
# 4.0 against 4.8 µs a row). The same dict; ``as_matrix`` checked the rows' length.
_FEATURES = dict.fromkeys(FEATURE_NAMES, 0.0)


_REASONS = 10  # a Decision's reasons at most


def _reasons(results: Sequence[Sequence[RuleResult]]) -> list[list[dict[str, object]]]:
    """Each row's Decision reasons, ``explain.reasons(its results, limit=10)`` (none without
    results): in one native call (``reasons_batch``: the same order and dicts of the results'
    own objects; 500 simulated purchases, 337 with results, at load ~4: 489 against 1179 µs)
    when every result is as the rules engine makes them (a str rule id, a float score that is
    not NaN, a bool hard), else row by row."""
    try:
        return reasons_batch(results if type(results) is list else list(results), _REASONS)
    except ValueError:
        return [reasons(r, limit=_REASONS) if r else [] for r in results]


def _features(row: Sequence[float]) -> dict[str, float]:
    features = _FEATURES.copy()
    features.update(zip(FEATURE_NAMES, row, strict=False))
    return features


def _feature_dicts(rows: Sequence[Sequence[float]]) -> list[dict[str, float]]:
    """``_features`` of every row: in one native call (``processors/native``,
    ``src/decide.rs``: the same copy of ``_FEATURES`` and the same dict stores, without the
    interpreter around each row; 500 rows of FeatureEngine: 2.4 against 4.9 µs a row) when
    the rows are tuples or lists (``FeatureEngine.process_row``, ``tolist``), else row by row."""
    try:
        return feature_dicts(_FEATURES, FEATURE_NAMES, rows if type(rows) is list else list(rows))
    except ValueError:  # a row that is neither a tuple nor a list (or of another length)
        return list(map(_features, rows))


def _alert(outcomes: list[Outcome], purchases: Sequence[Record], blocked: list[bool],
           impossible: list[bool], hard: list[bool],
           clusters: Sequence[str | None] | None) -> None:
    """Security events for the rows that raise any."""
    for i, (is_blocked, is_impossible, is_hard) in enumerate(zip(blocked, impossible, hard,
                                                                strict=True)):
        if is_blocked or is_impossible or is_hard:
            cluster = clusters[i] if clusters is not None else None
            outcomes[i].security_events = security_events(
                purchases[i], outcomes[i].decision, is_impossible, is_hard, cluster)


def security_events(
    purchase: Record, decision: Record, impossible_travel: bool, blocklist_hit: bool,
    cluster: str | None = None,
) -> list[Record]:
    """``fraud_detected`` for BLOCKED (with ``details.cluster_id`` when known),
    ``impossible_travel``, ``blocklist_hit`` (a hard rule fired)."""
    kinds = []
    if decision["decision"] == Verdict.BLOCKED:
        kinds.append(("fraud_detected", "HIGH"))
    if impossible_travel:
        kinds.append(("impossible_travel", "MEDIUM"))
    if blocklist_hit:
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
