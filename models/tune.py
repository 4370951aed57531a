"""A friction budget: per-organizer policy thresholds chosen on a labelled window.

``tune(decisions, labels, budget)`` takes replayed decisions (their final ``score`` and
organizer) and the labels of the same purchases, and for each organizer with enough labelled
legit purchases chooses the thresholds that catch the most fraud while legit friction stays
within the budget (default: at most 3 % not APPROVED, 0.1 % BLOCKED, 1 % sent to review):
``two_fa``, ``review`` and ``block`` are the legit scores' quantiles at those shares, so every
threshold is as low as the budget allows. Fraud caught (not APPROVED) only grows as thresholds
fall, so the lowest threshold within the budget is the best one. Friendly fraud is left out.

``write_tuned(path, tuned)`` writes the thresholds into the rules file as
``[organizers.<id>.policy]`` tables with the evidence in comments, inside a marked block that
the next run replaces; organizers with a hand-written policy table are left alone (reported).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processors.policy import Thresholds, verdict_for

BEGIN = "# --- tuned by `sentinel tune` (this block is rewritten by the next run) ---"
END = "# --- end of tuned block ---"
FRIENDLY = "friendly_fraud"


@dataclass(frozen=True)
class Budget:
    not_approved: float = 0.03
    blocked: float = 0.001
    review: float = 0.01  # legit sent to MANUAL_REVIEW or BLOCKED
    min_legit: int = 300  # fewer labelled legit purchases: the organizer is not tuned


def _above(scores: np.ndarray, share: float) -> float:
    """The lowest threshold t with at most ``share`` of ``scores`` strictly above t."""
    if len(scores) == 0:
        return 1.0
    ordered = np.sort(scores)[::-1]
    allowed = int(np.floor(share * len(scores)))
    return float(min(1.0, ordered[allowed])) if allowed < len(ordered) else 0.0


def choose(legit: np.ndarray, budget: Budget) -> Thresholds:
    two_fa = _above(legit, budget.not_approved)
    review = max(two_fa, _above(legit, budget.review))
    block = max(review, _above(legit, budget.blocked))
    return Thresholds(block=block, review=review, two_fa=two_fa)


def effect(scores: np.ndarray, fraud: np.ndarray, hard: np.ndarray, t: Thresholds) -> dict:
    verdicts = np.array(["BLOCKED" if h else str(verdict_for(float(s), t))
                         for s, h in zip(scores, hard, strict=True)])
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


def tune(decisions: list[dict], labels: dict[str, dict], current, budget: Budget = Budget()
         ) -> dict:
    """``current`` is the ruleset in force (its per-organizer thresholds are the "before")."""
    by_org: dict[str, list[tuple[float, bool, bool]]] = {}
    for d in decisions:
        label = labels.get(d["purchase_id"])
        if label is None or label.get("pattern") == FRIENDLY:
            continue
        hard = d["decision"] == "BLOCKED" and d["score"] >= 1.0
        by_org.setdefault(d.get("organizer_id") or "", []).append(
            (float(d["score"]), bool(label["is_fraud"]), hard))
    out = {}
    for org, rows in sorted(by_org.items()):
        scores = np.array([r[0] for r in rows])
        fraud = np.array([r[1] for r in rows])
        hard = np.array([r[2] for r in rows])
        before = current.for_organizer(org or None).thresholds
        entry = {"before": _t(before), "before_effect": effect(scores, fraud, hard, before)}
        if int((~fraud).sum()) < budget.min_legit:
            entry["skipped"] = f"{int((~fraud).sum())} labelled legit (< {budget.min_legit})"
        else:
            chosen = choose(scores[~fraud & ~hard], budget)
            entry.update(thresholds=_t(chosen), after_effect=effect(scores, fraud, hard, chosen))
        out[org] = entry
    return out


def _t(t: Thresholds) -> dict:
    return {"two_fa": round(t.two_fa, 6), "review": round(t.review, 6), "block": round(t.block, 6)}


def write_tuned(path: str | Path, tuned: dict, window: str, budget: Budget) -> dict:
    """Rewrite the tuned block of the rules file; returns what was written and skipped."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if BEGIN in text:
        text = text[: text.index(BEGIN)].rstrip() + "\n" + text[text.index(END) + len(END):]
    manual = set(re.findall(r"^\[organizers\.([^.\]]+)\.policy\]", text, re.M))
    lines, written, kept = ["", BEGIN, f"# window {window}; budget: not approved <= "
                            f"{budget.not_approved}, review <= {budget.review}, blocked <= "
                            f"{budget.blocked} of labelled legit purchases"], [], []
    for org, entry in tuned.items():
        if "thresholds" not in entry or not org:
            continue
        if org in manual:
            kept.append(org)
            continue
        t, before, after = entry["thresholds"], entry["before_effect"], entry["after_effect"]
        lines += [
            f"[organizers.{org}.policy]",
            f"# evidence: {after['legit']} legit, {after['fraud']} fraud; fraud not approved "
            f"{_pct(before['fraud_not_approved'])} -> {_pct(after['fraud_not_approved'])}, legit "
            f"friction {_pct(before['legit_friction'])} -> {_pct(after['legit_friction'])}, "
            f"blocked {_pct(before['legit_blocked'])} -> {_pct(after['legit_blocked'])}",
            f"two_fa = {t['two_fa']}", f"review = {t['review']}", f"block = {t['block']}",
        ]
        written.append(org)
    lines.append(END)
    text = _bump_version(text.rstrip() + "\n" + "\n".join(lines) + "\n", window)
    path.write_text(text, encoding="utf-8")
    return {"written": written, "kept_hand_written": kept}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _bump_version(text: str, window: str) -> str:
    stamp = re.sub(r"[^0-9A-Za-z]+", "", window)[:24]

    def bump(m: re.Match) -> str:
        base = m.group(1).split("+tuned", 1)[0]
        return f'version = "{base}+tuned{stamp}"'

    return re.sub(r'^version = "([^"]*)"', bump, text, count=1, flags=re.M)
