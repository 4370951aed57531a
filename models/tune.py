"""A friction budget: policy thresholds chosen on a labelled window.

``tune(decisions, labels, current, budget)`` takes replayed decisions (their final ``score``,
the model's ``model_score`` and organizer) and the labels of the same purchases, and for each
organizer with enough labelled legit purchases (or, ``pooled``, for all of them together)
chooses the thresholds that catch the most fraud while legit friction stays within the budget
(default: at most 3 % not APPROVED, 0.1 % BLOCKED, 1 % sent to review). ``review`` and
``block`` are the legit final scores' quantiles at their shares, so each is as low as the
budget allows. The not-APPROVED share is spent between two thresholds (``processors.policy``):
``two_fa`` on the final score and ``two_fa_model`` on the model's probability alone. Each
candidate ``two_fa`` (the legit final scores' quantile at 0, 10 %, ... 100 % of the budget)
leaves the rest of the budget to the lowest ``two_fa_model`` within it, and the pair that
leaves the fewest fraud APPROVED wins (a tie: the higher model threshold). Without model
scores only ``two_fa`` is chosen, at the whole budget. Thresholds named in ``keep`` stay as
the rules file has them. Friendly fraud is left out.

``write_tuned(path, tuned)`` writes per-organizer thresholds into the rules file as
``[organizers.<id>.policy]`` tables with the evidence in comments, inside a marked block that
the next run replaces; organizers with a hand-written policy table are left alone (reported).
``write_pooled(path, entry)`` writes pooled thresholds into the file's ``[policy]`` table.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processors.policy import DEFAULT_THRESHOLDS, Thresholds, Verdict, verdict_for

BEGIN = "# --- tuned by `sentinel tune` (this block is rewritten by the next run) ---"
END = "# --- end of tuned block ---"
FRIENDLY = "friendly_fraud"
POOLED = "*"  # the organizer key of a pooled run
NAMES = ("two_fa", "review", "block", "two_fa_model")
STEPS = 10  # two_fa candidates: the not-approved budget in tenths


@dataclass(frozen=True)
class Budget:
    not_approved: float = 0.03
    blocked: float = 0.001
    review: float = 0.01  # legit sent to MANUAL_REVIEW or BLOCKED
    min_legit: int = 300  # fewer labelled legit purchases: the organizer is not tuned


@dataclass(frozen=True)
class Scores:
    """Final scores and, when known, model scores of one class of purchases."""

    final: np.ndarray
    model: np.ndarray | None = None


def _above_n(scores: np.ndarray, allowed: int) -> float:
    """The lowest threshold t with at most ``allowed`` of ``scores`` strictly above t."""
    if allowed < 0:
        return 1.0
    ordered = np.sort(scores)[::-1]
    return float(min(1.0, ordered[allowed])) if allowed < len(ordered) else 0.0


def _above(scores: np.ndarray, share: float) -> float:
    """The lowest threshold t with at most ``share`` of ``scores`` strictly above t."""
    if len(scores) == 0:
        return 1.0
    return _above_n(scores, int(np.floor(share * len(scores))))


def choose(legit: np.ndarray | Scores, budget: Budget, fraud: Scores | None = None,
           current: Thresholds = DEFAULT_THRESHOLDS, keep: Collection[str] = ()) -> Thresholds:
    """The thresholds for ``legit`` scores within ``budget`` (see the module docstring);
    ``fraud`` decides how the not-approved budget is spent; ``keep``: names of ``current``'s
    thresholds left as they are."""
    legit = legit if isinstance(legit, Scores) else Scores(np.asarray(legit))
    two_fa, two_fa_model = _spend(legit, budget, fraud, current, keep)
    review = current.review if "review" in keep else max(two_fa, _above(legit.final,
                                                                        budget.review))
    block = current.block if "block" in keep else max(review, _above(legit.final,
                                                                     budget.blocked))
    return Thresholds(block=block, review=review, two_fa=two_fa, two_fa_model=two_fa_model)


def _spend(legit: Scores, budget: Budget, fraud: Scores | None, current: Thresholds,
           keep: Collection[str]) -> tuple[float, float]:
    """(two_fa, two_fa_model): the not-approved budget spent where it catches most fraud."""
    fixed_model = current.two_fa_model if "two_fa_model" in keep else None
    # a kept review threshold caps two_fa: a score over it is reviewed, whatever two_fa says
    ceiling = current.review if "review" in keep else 1.0
    candidates = ([current.two_fa] if "two_fa" in keep else
                  [min(ceiling, _above(legit.final, budget.not_approved * k / STEPS))
                   for k in range(STEPS + 1)])
    if legit.model is None or fraud is None or fraud.model is None:
        two_fa = current.two_fa if "two_fa" in keep else candidates[-1]
        return two_fa, 1.0 if fixed_model is None else fixed_model  # unverifiable: off
    allowed = int(np.floor(budget.not_approved * len(legit.final)))
    best: tuple[float, float, float] | None = None
    for two_fa in candidates:
        passed = legit.final <= two_fa
        model_t = fixed_model if fixed_model is not None else _above_n(
            legit.model[passed], allowed - int((~passed).sum()))
        caught = float(np.mean((fraud.final > two_fa) | (fraud.model > model_t))) if len(
            fraud.final) else 0.0
        if best is None or (caught, model_t) > best[:2]:
            best = (caught, model_t, two_fa)
    assert best is not None
    return best[2], best[1]


def effect(scores: np.ndarray, fraud: np.ndarray, hard: np.ndarray, t: Thresholds,
           model: np.ndarray | None = None) -> dict:
    """Verdict shares of legit and fraud under ``t`` (``model``: the model scores, for
    ``two_fa_model``)."""
    model = np.zeros(len(scores)) if model is None else model
    verdicts = np.array(["BLOCKED" if h else str(_verdict(float(s), float(m), t))
                         for s, m, h in zip(scores, model, hard, strict=True)])
    legit = ~fraud
    n_legit, n_fraud = int(legit.sum()), int(fraud.sum())
    return {
        "legit": n_legit,
        "fraud": n_fraud,
        "fraud_not_approved": float(np.mean(verdicts[fraud] != "APPROVED")) if n_fraud else None,
        "legit_friction": float(np.mean(verdicts[legit] != "APPROVED")) if n_legit else None,
        "legit_review": float(np.mean(verdicts[legit] == "MANUAL_REVIEW")) if n_legit else None,
        "legit_blocked": float(np.mean(verdicts[legit] == "BLOCKED")) if n_legit else None,
    }


def _verdict(final: float, model: float, t: Thresholds) -> str:
    """The policy's verdict (``processors.policy.decide``) from a decision's final and model
    scores."""
    verdict = verdict_for(final, t)
    if verdict == Verdict.APPROVED and model > t.two_fa_model:
        return Verdict.REQUIRE_2FA.value
    return verdict.value


def tune(decisions: list[dict], labels: dict[str, dict], current, budget: Budget = Budget(),
         pooled: bool = False, keep: Collection[str] = ()) -> dict:
    """``current`` is the ruleset in force (its per-organizer thresholds are the "before").
    ``pooled``: one set of thresholds for every organizer, under the key ``POOLED``."""
    if set(keep) - set(NAMES):
        raise ValueError(f"keep: unknown thresholds {sorted(set(keep) - set(NAMES))}, "
                         f"expected some of {NAMES}")
    by_org: dict[str, list[tuple[float, float | None, bool, bool]]] = {}
    for d in decisions:
        label = labels.get(d["purchase_id"])
        if label is None or label.get("pattern") == FRIENDLY:
            continue
        hard = d["decision"] == "BLOCKED" and d["score"] >= 1.0
        org = POOLED if pooled else d.get("organizer_id") or ""
        by_org.setdefault(org, []).append(
            (float(d["score"]), d.get("model_score"), bool(label["is_fraud"]), hard))
    return {org: _tune_one(org, rows, current, budget, keep)
            for org, rows in sorted(by_org.items())}


def _tune_one(org: str, rows: list, current, budget: Budget, keep: Collection[str]) -> dict:
    scores = np.array([r[0] for r in rows])
    model = None if any(r[1] is None for r in rows) else np.array([r[1] for r in rows], float)
    fraud, hard = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])
    before = current.for_organizer(None if org in ("", POOLED) else org).thresholds
    entry = {"before": _t(before), "before_effect": effect(scores, fraud, hard, before, model)}
    if int((~fraud).sum()) < budget.min_legit:
        entry["skipped"] = f"{int((~fraud).sum())} labelled legit (< {budget.min_legit})"
        return entry
    legit, bad = ~fraud & ~hard, fraud & ~hard
    chosen = choose(Scores(scores[legit], None if model is None else model[legit]), budget,
                    Scores(scores[bad], None if model is None else model[bad]), before, keep)
    return entry | {"thresholds": _t(chosen),
                    "after_effect": effect(scores, fraud, hard, chosen, model)}


def _t(t: Thresholds) -> dict:
    return {name: round(getattr(t, name), 6) for name in NAMES}


def write_tuned(path: str | Path, tuned: dict, window: str, budget: Budget) -> dict:
    """Rewrite the tuned block of the rules file; returns what was written and skipped."""
    path = Path(path)
    text = _without_block(path.read_text(encoding="utf-8"))
    manual = set(re.findall(r"^\[organizers\.([^.\]]+)\.policy\]", text, re.M))
    lines, written, kept = ["", BEGIN, f"# window {window}; {_budget(budget)}"], [], []
    for org, entry in tuned.items():
        if "thresholds" not in entry or not org or org == POOLED:
            continue
        if org in manual:
            kept.append(org)
            continue
        lines += [f"[organizers.{org}.policy]", _evidence(entry),
                  *(f"{k} = {v}" for k, v in entry["thresholds"].items())]
        written.append(org)
    lines.append(END)
    text = _bump_version(text.rstrip() + "\n" + "\n".join(lines) + "\n", window)
    path.write_text(text, encoding="utf-8")
    return {"written": written, "kept_hand_written": kept}


def write_pooled(path: str | Path, entry: dict, window: str, budget: Budget) -> dict:
    """Pooled thresholds into the ``[policy]`` table (its values and evidence replaced; the
    tuned per-organizer block, which would override them, removed)."""
    path = Path(path)
    text = _without_block(path.read_text(encoding="utf-8"))
    table = re.search(r"^\[policy\][^\n]*\n(?:[^\n\[][^\n]*\n)*", text, re.M)
    if table is None or "thresholds" not in entry:
        raise ValueError(f"{path}: no [policy] table to write, or nothing tuned: {entry}")
    head = table.group(0).split("\n", 1)[0]
    body = [line for line in table.group(0).split("\n")[1:]
            if line and not line.startswith("# tuned") and not line.startswith("# evidence")
            and line.split("=")[0].strip() not in NAMES]
    lines = [head, f"# tuned by `sentinel tune --pooled`: window {window}; {_budget(budget)}",
             _evidence(entry), *(f"{k} = {v}" for k, v in entry["thresholds"].items()), *body]
    text = text[: table.start()] + "\n".join(lines) + "\n" + text[table.end():]
    path.write_text(_bump_version(text, window), encoding="utf-8")
    return {"written": ["[policy]"], "kept_hand_written": []}


def _without_block(text: str) -> str:
    if BEGIN in text:
        return text[: text.index(BEGIN)].rstrip() + "\n" + text[text.index(END) + len(END):]
    return text


def _budget(budget: Budget) -> str:
    return (f"budget: not approved <= {budget.not_approved}, review <= {budget.review}, "
            f"blocked <= {budget.blocked} of labelled legit purchases")


def _evidence(entry: dict) -> str:
    before, after = entry["before_effect"], entry["after_effect"]
    return (f"# evidence: {after['legit']} legit, {after['fraud']} fraud; fraud not approved "
            f"{_pct(before['fraud_not_approved'])} -> {_pct(after['fraud_not_approved'])}, legit "
            f"friction {_pct(before['legit_friction'])} -> {_pct(after['legit_friction'])}, "
            f"blocked {_pct(before['legit_blocked'])} -> {_pct(after['legit_blocked'])}")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _bump_version(text: str, window: str) -> str:
    stamp = re.sub(r"[^0-9A-Za-z]+", "", window)[:24]

    def bump(m: re.Match) -> str:
        base = m.group(1).split("+tuned", 1)[0]
        return f'version = "{base}+tuned{stamp}"'

    return re.sub(r'^version = "([^"]*)"', bump, text, count=1, flags=re.M)
