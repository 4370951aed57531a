"""The training report: one self-contained HTML page, plots drawn as inline SVG."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

W, H, PAD = 420, 300, 44
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.ok{color:#2a7d2a;font-weight:bold}.no{color:#b22;font-weight:bold}figure{display:inline-block;
margin:0 1em 1em 0}svg text{font-size:11px}"""


def _xy(x: float, y: float, xmax: float = 1.0, ymax: float = 1.0) -> tuple[float, float]:
    return PAD + x / xmax * (W - 2 * PAD), H - PAD - y / ymax * (H - 2 * PAD)


def _axes(title: str, xlabel: str, ylabel: str, xmax: float = 1.0, ymax: float = 1.0) -> list[str]:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">',
        f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{PAD}" y="{PAD}" width="{W - 2 * PAD}" height="{H - 2 * PAD}" fill="none" stroke="#999"/>',
    ]
    for k in range(6):
        fx, fy = k / 5 * xmax, k / 5 * ymax
        x, _ = _xy(fx, 0, xmax, ymax)
        _, y = _xy(0, fy, xmax, ymax)
        parts.append(f'<text x="{x:.1f}" y="{H - PAD + 14}" text-anchor="middle">{fx:g}</text>')
        parts.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{fy:g}</text>')
    parts.append(f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">{html.escape(xlabel)}</text>')
    parts.append(
        f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" text-anchor="middle">'
        f"{html.escape(ylabel)}</text>"
    )
    return parts


def line_chart(
    series: dict[str, Sequence[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    xmax: float = 1.0,
    diagonal: bool = False,
    markers: bool = False,
) -> str:
    parts = _axes(title, xlabel, ylabel, xmax)
    if diagonal:
        (x0, y0), (x1, y1) = _xy(0, 0, xmax), _xy(xmax, xmax, xmax)
        parts.append(
            f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4"/>'
        )
    for k, (name, points) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        inside = [(x, y) for x, y in points if x <= xmax]
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in (_xy(x, y, xmax) for x, y in inside))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        if markers:
            parts += [
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>'
                for a, b in (_xy(x, y, xmax) for x, y in inside)
            ]
        parts.append(
            f'<text x="{W - PAD - 4}" y="{H - PAD - 8 - 14 * k}" text-anchor="end" '
            f'fill="{color}">{html.escape(name)}</text>'
        )
    return "\n".join(parts + ["</svg>"])


def bar_chart(
    items: Sequence[tuple[str, float]],
    title: str,
    *,
    fmt: str = "{:.3f}",
    xmax: float | None = None,
) -> str:
    label_w, row_h, width = 190, 16, 640
    top = xmax or max((v for _, v in items), default=1.0) or 1.0
    height = 30 + row_h * len(items)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
    ]
    for k, (label, value) in enumerate(items):
        y = 26 + k * row_h
        bar = max(0.0, value) / top * (width - label_w - 70)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end">{html.escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{bar:.1f}" height="{row_h - 4}" fill="{COLORS[0]}"/>'
        )
        parts.append(f'<text x="{label_w + bar + 4:.1f}" y="{y + 11}">{fmt.format(value)}</text>')
    return "\n".join(parts + ["</svg>"])


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return "" if v is None else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _thin(xs: np.ndarray, ys: np.ndarray, n: int = 300) -> list[tuple[float, float]]:
    keep = np.unique(np.linspace(0, len(xs) - 1, min(n, len(xs))).astype(int))
    return [(float(xs[i]), float(ys[i])) for i in keep]


def _targets(metrics: dict) -> str:
    rows = []
    for name, t in metrics["targets"].items():
        mark = '<span class="ok">met</span>' if t["met"] else '<span class="no">NOT met</span>'
        rows.append(
            f"<tr><td>{name}</td><td>{t['value']:.4f}</td><td>≥ {t['target']}</td><td>{mark}</td></tr>"
        )
    return (
        "<table><tr><th>holdout target</th><th>value</th><th>target</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _split_section(name: str, result: dict, y: np.ndarray, scores: np.ndarray) -> str:
    fpr, tpr, _ = roc_curve(y, scores)
    precision, recall, _ = precision_recall_curve(y, scores)
    calib = [(b["mean_score"], b["fraud_rate"]) for b in result["calibration"] if b["count"]]
    plots = [
        line_chart(
            {"xgboost": _thin(fpr, tpr)},
            f"ROC ({name})",
            "false-positive rate",
            "recall",
            diagonal=True,
        ),
        line_chart(
            {"xgboost": _thin(fpr, tpr)},
            f"ROC, FPR ≤ 10 % ({name})",
            "false-positive rate",
            "recall",
            xmax=0.1,
        ),
        line_chart(
            {"xgboost": _thin(recall[::-1], precision[::-1])},
            f"Precision-recall ({name})",
            "recall",
            "precision",
        ),
        line_chart(
            {"observed": calib},
            f"Calibration ({name})",
            "mean predicted probability",
            "observed fraud rate",
            diagonal=True,
            markers=True,
        ),
    ]
    conf = [
        [
            t,
            c["tp"],
            c["fp"],
            c["tn"],
            c["fn"],
            c["tp"] / max(c["tp"] + c["fn"], 1),
            c["fp"] / max(c["fp"] + c["tn"], 1),
        ]
        for t, c in result["confusion"].items()
    ]
    patterns = sorted(result["per_pattern_recall"])
    per_pattern = [
        [
            p,
            result["pattern_counts"][p],
            result["per_pattern_recall"][p],
            *(
                result["per_pattern_recall_policy"][k][p]
                for k in result["per_pattern_recall_policy"]
            ),
        ]
        for p in patterns
    ]
    calib_rows = [
        [f"{b['lo']:.1f}–{b['hi']:.1f}", b["count"], b["mean_score"], b["fraud_rate"]]
        for b in result["calibration"]
    ]
    return "\n".join(
        [
            f"<h2>{name}: {result['rows']} purchases, {result['fraud']} fraud</h2>",
            table(
                ["AUC-ROC", "AUC-PR", "recall @1% FPR", "recall @2% FPR", "threshold @2% FPR"],
                [
                    [
                        result["auc_roc"],
                        result["auc_pr"],
                        result["recall_at_fpr_1pct"],
                        result["recall_at_fpr_2pct"],
                        result["threshold_at_fpr_2pct"],
                    ]
                ],
            ),
            *(f"<figure>{p}</figure>" for p in plots),
            "<h3>Confusion at the policy thresholds (flag when score ≥ threshold)</h3>",
            table(["threshold", "TP", "FP", "TN", "FN", "recall", "FPR"], conf),
            "<h3>Recall per fraud pattern</h3>",
            table(
                [
                    "pattern",
                    "purchases",
                    "@2% FPR",
                    *(f"@{k}" for k in result["per_pattern_recall_policy"]),
                ],
                per_pattern,
            ),
            bar_chart(
                [(p, result["per_pattern_recall"][p]) for p in patterns],
                f"Recall per pattern at 2 % FPR ({name})",
                xmax=1.0,
            ),
            "<h3>Calibration bins</h3>",
            table(["score bin", "purchases", "mean score", "observed fraud rate"], calib_rows),
        ]
    )


def _comparison(models: dict) -> str:
    rows = []
    for name, r in models.items():
        for split in ("test", "holdout"):
            s = r[split]
            rows.append(
                [
                    name,
                    split,
                    s["auc_roc"],
                    s["auc_pr"],
                    s["recall_at_fpr_1pct"],
                    s["recall_at_fpr_2pct"],
                    r["fit_seconds"],
                ]
            )
    return table(
        ["model", "split", "AUC-ROC", "AUC-PR", "recall @1% FPR", "recall @2% FPR", "fit s"], rows
    )


def _champion(comparison: dict | None) -> str:
    """The candidate against the champion on the same held-out rows."""
    if not comparison:
        return ""
    head = "<h2>Against the champion on the same held-out window</h2>"
    if not comparison["comparable"]:
        return head + f"<p>Not compared: {html.escape(comparison.get('note', ''))}.</p>"
    sides = {"candidate": comparison["candidate"],
             f"champion {comparison['champion']}": comparison["champion_metrics"]}
    rows = [[name, s["auc_roc"], s["auc_pr"], s["recall_at_fpr_2pct"],
             *s["recall_at_policy"].values(), s["legit_friction"]] for name, s in sides.items()]
    policy = [f"recall > {k}" for k in next(iter(sides.values()))["recall_at_policy"]]
    verdict = ("<p class='no'>Worse than the champion: "
               + html.escape("; ".join(comparison["reasons"])) + "</p>"
               if comparison["worse"] else "<p class='ok'>Not worse than the champion.</p>")
    return head + table(["model", "AUC-ROC", "AUC-PR", "recall @2% FPR", *policy,
                         "legit friction"], rows) + verdict


def _source(metrics: dict) -> str:
    if "topics" in metrics.get("provenance", {}):
        return ("the platform's own topics (purchases, auth events, chain transfers) replayed "
                "in event time, labels from <code>sentinel.labels.v1</code> as known at the "
                "training time; train, test and held-out windows follow each other in time")
    return ("simulated events in event time; train on earlier days, test on later days, "
            "targets on a held-out week with another seed")


def _leakage(leakage: dict | None) -> str:
    if not leakage:
        return ""
    rows = []
    for s in leakage["suspects"]:
        for side in ("legit", "fraud"):
            d = s[side]
            q = d["quantiles"]
            rows.append([s["feature"], s["auc_alone"], side, d["rows"], d["missing_share"],
                         *(q.get(k) for k in ("p5", "p25", "p50", "p75", "p95"))])
    intro = (f"<h2>Leakage suspects</h2><p>Features whose AUC on their own exceeds "
             f"{leakage['threshold']} on the training rows: the simulator may make fraud do "
             "something legit users rarely do. Distribution per class (MISSING = -1 excluded "
             "from the quantiles).</p>")
    if not rows:
        return intro + "<p>None.</p>"
    header = ["feature", "AUC alone", "class", "rows", "missing", "p5", "p25", "p50", "p75",
              "p95"]
    return intro + table(header, rows)


def render(metrics: dict, scores: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    importance = [
        (f["feature"], f["mean_abs_contribution"]) for f in metrics["feature_importance"][:20]
    ]
    data = [[n, d["rows"], d["fraud"]] for n, d in metrics["data"].items()]
    timing = [[k, v] for k, v in metrics["timing"].items()]
    body = [
        "<h1>Sentinel fraud model: training report</h1>",
        f"<p>Model version <b>{html.escape(str(metrics.get('model_version')))}</b>. Features computed by "
        f"<code>processors.features.FeatureEngine</code> over {_source(metrics)}.</p>",
        _targets(metrics),
        _champion(metrics.get("champion_comparison")),
        table(["split", "purchases", "fraud"], data),
        "<h2>Models compared on the same split</h2>",
        _comparison(metrics["models"]),
        *(_split_section(n, metrics["splits"][n], *scores[n]) for n in ("holdout", "test")),
        "<h2>Global feature importance</h2><p>Mean |SHAP contribution| on the holdout "
        "(XGBoost <code>pred_contribs</code>, log-odds units).</p>",
        bar_chart(importance, "Top 20 features by mean |contribution|"),
        _leakage(metrics.get("leakage")),
        "<h2>Timing</h2>",
        table(["step", "value"], timing),
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Sentinel training report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


def write_report(
    path: str | Path, metrics: dict, scores: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    Path(path).write_text(render(metrics, scores), encoding="utf-8")
