"""Model health: the confusion matrix and precision/recall over the labels that arrived in the
last 24 hours and 7 days, feature drift (PSI) per hour, champion beside challenger."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import psycopg

from connectors.console.queries.rows import fetch_all
from sinks.redis import VERDICTS

FLAGGED = ("MANUAL_REVIEW", "BLOCKED")  # what counts as "caught" for precision and recall
DRIFT_HOURS = 48
DRIFT_FEATURES = 8


def rates(tp: int, fp: int, fn: int) -> dict:
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def confusion(rows: list[dict]) -> dict:
    """Label counts per verdict, and precision/recall of flagging (review or block)."""
    matrix = {v: {"fraud": 0, "legit": 0} for v in VERDICTS}
    for row in rows:
        matrix[row["decision"]]["fraud" if row["is_fraud"] else "legit"] += int(row["n"])
    tp = sum(matrix[v]["fraud"] for v in FLAGGED)
    fp = sum(matrix[v]["legit"] for v in FLAGGED)
    fn = sum(matrix[v]["fraud"] for v in VERDICTS if v not in FLAGGED)
    labels = sum(m["fraud"] + m["legit"] for m in matrix.values())
    return {"matrix": matrix, "labels": labels, "tp": tp, "fp": fp, "fn": fn, **rates(tp, fp, fn)}


def side_by_side(rows: list[dict]) -> dict:
    """Champion (model score) and challenger flags against the same labels."""
    out = {}
    for who, flag in (("champion", lambda r: r["model_flag"]),
                      ("challenger", lambda r: r["challenger_flag"] == 1)):  # fmt: skip
        scored = [r for r in rows if r["challenger_flag"] >= 0] if who == "challenger" else rows
        tp = sum(r["n"] for r in scored if flag(r) and r["is_fraud"])
        fp = sum(r["n"] for r in scored if flag(r) and not r["is_fraud"])
        fn = sum(r["n"] for r in scored if not flag(r) and r["is_fraud"])
        out[who] = {"labels": sum(r["n"] for r in scored), **rates(tp, fp, fn)}
    return out


async def _label_rows(conn: psycopg.AsyncConnection, since: datetime) -> list[dict]:
    return await fetch_all(
        conn,
        "SELECT decision, is_fraud, model_flag, challenger_flag, sum(n)::int AS n"
        " FROM console_label_minute WHERE minute >= %s GROUP BY 1, 2, 3, 4",
        (since,),
    )


async def drift(conn: psycopg.AsyncConnection, now: datetime) -> dict:
    rows = await fetch_all(
        conn,
        "SELECT hour, model_version, feature, psi, n FROM console_drift_hour"
        " WHERE hour >= %s ORDER BY hour",
        (now - timedelta(hours=DRIFT_HOURS),),
    )
    latest: dict[str, float] = {}
    for row in rows:
        latest[row["feature"]] = row["psi"]
    top = sorted(latest, key=lambda f: -latest[f])[:DRIFT_FEATURES]
    hours = sorted({r["hour"] for r in rows})
    series = {f: [None] * len(hours) for f in top}
    index = {h: i for i, h in enumerate(hours)}
    for row in rows:
        if row["feature"] in series:
            series[row["feature"]][index[row["hour"]]] = row["psi"]
    return {"hours": hours, "series": series, "latest": {f: latest[f] for f in top}}


def flat_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numeric training metrics as ``{"holdout.auc_roc": 0.998, ...}``."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


def registry_view() -> dict:
    """Champion and challenger versions with their training metrics (models/registry), read
    again only when the registry's pointer file changes."""
    from models.registry import ModelRegistry

    registry = ModelRegistry()
    try:
        stamp = registry.pointer_path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _registry_view(str(registry.root), stamp)


@lru_cache(maxsize=4)
def _registry_view(root: str, stamp: int | None) -> dict:
    from models.registry import ModelRegistry

    registry = ModelRegistry(root)
    pointer = registry.pointer()
    out = {}
    for role in ("champion", "challenger"):
        version = pointer.get(role)
        meta = registry.metadata(version) if version else {}
        out[role] = {"version": version, "created_at": meta.get("created_at"),
                     "metrics": flat_metrics(meta.get("metrics", {}))}  # fmt: skip
    return out


async def live_comparison(conn: psycopg.AsyncConnection, since: datetime) -> dict:
    cur = await conn.execute(
        "SELECT coalesce(sum(decisions), 0), coalesce(sum(model_flagged), 0),"
        " coalesce(sum(challenger_scored), 0), coalesce(sum(challenger_flagged), 0),"
        " coalesce(sum(flags_agree), 0) FROM console_minute WHERE minute >= %s",
        (since,),
    )
    decisions, model_flagged, scored, challenger_flagged, agree = await cur.fetchone()
    return {"decisions": decisions, "champion_flagged": model_flagged,
            "challenger_scored": scored, "challenger_flagged": challenger_flagged,
            "agreement": agree / scored if scored else None}  # fmt: skip


async def model_health(conn: psycopg.AsyncConnection, now: datetime) -> dict:
    now = now.astimezone(UTC)
    minute = now.replace(second=0, microsecond=0)  # whole minutes, as the rollups keep them
    out: dict = {"windows": {}}
    for name, span in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        rows = await _label_rows(conn, minute - span)
        out["windows"][name] = {"confusion": confusion(rows), "models": side_by_side(rows),
                                "since": minute - span,
                                "live": await live_comparison(conn, minute - span)}  # fmt: skip
    out["drift"] = await drift(conn, now)
    out["drift_chart"] = {"kind": "lines", "xtime": True, "x": out["drift"]["hours"],
                          "series": [{"label": f, "values": v}
                                     for f, v in out["drift"]["series"].items()]}  # fmt: skip
    out["registry"] = await asyncio.to_thread(registry_view)
    return out
