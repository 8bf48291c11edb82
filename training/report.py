"""A self-contained HTML evaluation report: one file, no scripts, no external references.

Metrics per theme, macro/micro F1 and polarity accuracy; a precision-recall curve per
theme drawn as inline SVG (with the model's threshold marked); and the errors — false
positives and false negatives per theme, each with its evidence sentence highlighted.
All user text is HTML-escaped.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

from feedback_nlp import evaluate
from feedback_nlp.labels import is_single_label, normalize_label
from feedback_nlp.metrics import label_matrix
from feedback_nlp.text import split_sentences_many

MAX_ERRORS = 50  # shown per theme and kind; the counts are always complete

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}th{background:#f6f6f6}
.summary span{display:inline-block;margin-right:1.5rem}.summary b{font-size:1.2rem}
.curves{display:flex;flex-wrap:wrap;gap:1rem}.curve{border:1px solid #eee;padding:.3rem}
.muted{color:#777}mark{background:#ffe08a;padding:0 .1rem}
ol.errors li{margin:.35rem 0}.score{color:#555;font-variant-numeric:tabular-nums}
details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _highlight(text: str, span: dict | None) -> str:
    if not span or span.get("start") is None:
        return _e(text)
    start, end = int(span["start"]), int(span["end"])
    return f"{_e(text[:start])}<mark>{_e(text[start:end])}</mark>{_e(text[end:])}"


def pr_curve_svg(truth: np.ndarray, scores: np.ndarray, *, title: str, point: tuple[float, float] | None = None,
                 width: int = 260, height: int = 220) -> str:
    """An inline SVG precision-recall curve (recall on x, precision on y)."""
    left, right, top, bottom = 38, 10, 24, 32
    w, h = width - left - right, height - top - bottom

    def xy(r, p):
        return left + r * w, top + (1 - p) * h

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
             f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="12" font-weight="600">{_e(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>']
    for v in (0.25, 0.5, 0.75):
        x, _ = xy(v, 0)
        _, y = xy(0, v)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + h}" stroke="#eee"/>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#eee"/>')
    for v in (0, 0.5, 1):
        x, _ = xy(v, 0)
        _, y = xy(0, v)
        parts.append(f'<text x="{x:.1f}" y="{top + h + 13}" text-anchor="middle" font-size="10">{v:g}</text>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="10">{v:g}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{height - 4}" text-anchor="middle" font-size="10">recall</text>')
    parts.append(f'<text x="10" y="{top + h / 2}" text-anchor="middle" font-size="10" transform="rotate(-90 10 {top + h / 2})">precision</text>')
    if truth.sum() == 0:
        parts.append(f'<text x="{left + w / 2}" y="{top + h / 2}" text-anchor="middle" font-size="11" fill="#777">no labelled examples</text>')
    else:
        precision, recall, _ = precision_recall_curve(truth, scores)
        # Draw as a step curve, from high recall to low.
        pts = [xy(float(r), float(p)) for r, p in zip(recall, precision)]
        path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        parts.append(f'<path d="{path}" fill="none" stroke="#2563eb" stroke-width="2"/>')
        base = truth.mean()
        _, y = xy(0, base)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#bbb" stroke-dasharray="4 3"/>')
        if point is not None:
            x, y = xy(*point)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="#dc2626"><title>at the threshold: '
                         f'recall {point[0]:.3f}, precision {point[1]:.3f}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _fn_evidence(model, texts: list[str], theme_index: int) -> list[dict | None]:
    """For comments the model missed a theme in: the sentence it scored highest for that theme."""
    sentences = split_sentences_many(texts)
    flat = [s for sents in sentences for s in sents]
    if not flat:
        return [None] * len(texts)
    scores = model.predict_proba([s.text for s in flat])[:, theme_index]
    out, pos = [], 0
    for sents in sentences:
        if not sents:
            out.append(None)
            continue
        best = pos + int(np.argmax(scores[pos : pos + len(sents)]))
        out.append({"start": flat[best].start, "end": flat[best].end})
        pos += len(sents)
    return out


def render_report(model, texts, labels, *, results: list[dict] | None = None, metrics: dict | None = None,
                  data_name: str = "", max_errors: int = MAX_ERRORS) -> str:
    """The report as one HTML string."""
    texts = list(texts)
    results = results if results is not None else model.classify(texts)
    metrics = metrics if metrics is not None else evaluate(model, texts, labels, results=results)
    ids = [str(c) for c in model.classes_]
    single = model.mode_ == "single" or is_single_label(labels)
    if single:
        truth_labels = np.array([str(v) for v in labels])
        Y = (truth_labels[:, None] == np.array(ids)[None, :]).astype(int)
    else:
        Y = label_matrix(labels, ids)
    S = np.array([[r["scores"].get(t, 0.0) for t in ids] for r in results]).reshape(len(results), len(ids))
    tagged = [{t["theme"]: t for t in r["themes"]} for r in results]
    P = np.array([[int(t in row) for t in ids] for row in tagged]).reshape(len(results), len(ids))
    thresholds = dict(zip(ids, np.asarray(model.thresholds_, dtype=float)))
    taxonomy = getattr(model, "taxonomy_", None)
    manifest = getattr(model, "manifest_", None) or {}

    def name_of(t):
        try:
            return taxonomy[t].name if taxonomy is not None else t
        except Exception:
            return t

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>feedback-nlp evaluation: {_e(manifest.get('name', 'model'))}</title>",
           f"<style>{CSS}</style></head><body>",
           f"<h1>Evaluation report: {_e(manifest.get('name', 'model'))} {_e(manifest.get('version', ''))}</h1>",
           f'<p class="muted">Model folder {_e(getattr(model, "path_", "") or "(in memory)")}; data {_e(data_name or "(in memory)")}; '
           f"{len(texts)} comments; made {_e(datetime.now(timezone.utc).isoformat(timespec='seconds'))}.</p>"]
    # --- summary
    out.append('<h2 id="summary">Summary</h2><p class="summary">')
    for key, label in (("macro_f1", "macro F1"), ("micro_f1", "micro F1"), ("accuracy", "accuracy"),
                       ("exact_match", "exact match"), ("polarity_accuracy", "polarity accuracy")):
        if metrics.get(key) is not None:
            extra = f' <span class="muted">(n={metrics.get("polarity_n")})</span>' if key == "polarity_accuracy" else ""
            out.append(f"<span>{label} <b>{metrics[key]:.3f}</b>{extra}</span>")
    out.append("</p>")
    # --- per-theme table
    out.append('<h2 id="themes">Per theme</h2><table><thead><tr><th>theme</th><th>name</th><th>threshold</th>'
               "<th>precision</th><th>recall</th><th>F1</th><th>support</th><th>predicted</th><th>false pos.</th>"
               "<th>false neg.</th><th>avg. precision</th><th>polarity acc.</th></tr></thead><tbody>")
    ap = {}
    for j, t in enumerate(ids):
        m = metrics["per_theme"].get(t, {})
        ap[t] = float(average_precision_score(Y[:, j], S[:, j])) if Y[:, j].sum() else None
        fp = int(((P[:, j] == 1) & (Y[:, j] == 0)).sum())
        fn = int(((P[:, j] == 0) & (Y[:, j] == 1)).sum())
        out.append(
            f"<tr><td><code>{_e(t)}</code></td><td>{_e(name_of(t))}</td><td>{thresholds[t]:.3f}</td>"
            f"<td>{_fmt(m.get('precision'))}</td><td>{_fmt(m.get('recall'))}</td><td>{_fmt(m.get('f1'))}</td>"
            f"<td>{int(Y[:, j].sum())}</td><td>{int(P[:, j].sum())}</td><td>{fp}</td><td>{fn}</td>"
            f"<td>{_fmt(ap[t])}</td><td>{_fmt(m.get('polarity_accuracy'))}</td></tr>"
        )
    out.append("</tbody></table>")
    # --- curves
    out.append('<h2 id="curves">Precision-recall curves</h2><p class="muted">From the theme scores; the red dot is the '
               "model at its threshold, the dashed line the share of comments with the theme.</p><div class=\"curves\">")
    for j, t in enumerate(ids):
        m = metrics["per_theme"].get(t, {})
        point = (m.get("recall", 0.0), m.get("precision", 0.0)) if Y[:, j].sum() else None
        title = f"{t} (AP {ap[t]:.3f})" if ap[t] is not None else t
        out.append(f'<div class="curve">{pr_curve_svg(Y[:, j], S[:, j], title=title, point=point)}</div>')
    out.append("</div>")
    # --- errors
    out.append('<h2 id="errors">Errors</h2><p class="muted">False positives: tagged with the theme but not labelled '
               "with it (the highlighted sentence is the model's evidence). False negatives: labelled but not tagged "
               "(highlighted: the sentence the model scored highest for the theme).</p>")
    for j, t in enumerate(ids):
        fp_rows = [i for i in np.flatnonzero((P[:, j] == 1) & (Y[:, j] == 0))]
        fn_rows = [i for i in np.flatnonzero((P[:, j] == 0) & (Y[:, j] == 1))]
        fp_rows.sort(key=lambda i: -S[i, j])
        fn_rows.sort(key=lambda i: S[i, j])
        out.append(f'<h3 id="errors-{_e(t)}">{_e(t)} <span class="muted">— {_e(name_of(t))}</span></h3>')
        out.append(f"<details{' open' if fp_rows else ''}><summary>False positives ({len(fp_rows)})</summary>")
        out.append(_error_list(fp_rows[:max_errors], texts, labels, S[:, j],
                               [tagged[i][t].get("evidence") for i in fp_rows[:max_errors]], single, len(fp_rows), max_errors))
        out.append("</details>")
        shown = fn_rows[:max_errors]
        evidence = _fn_evidence(model, [texts[i] for i in shown], j) if shown and not single else [None] * len(shown)
        out.append(f"<details{' open' if fn_rows else ''}><summary>False negatives ({len(fn_rows)})</summary>")
        out.append(_error_list(shown, texts, labels, S[:, j], evidence, single, len(fn_rows), max_errors))
        out.append("</details>")
    if not single and taxonomy is not None and taxonomy.polar_ids:
        out.append(_polarity_errors(texts, labels, tagged, set(taxonomy.polar_ids), max_errors))
    out.append('<p class="muted">Made by feedback-nlp. This file is self-contained.</p></body></html>')
    return "\n".join(out)


def _label_text(label, single: bool) -> str:
    if single:
        return str(label)
    row = normalize_label(label)
    return ", ".join(f"{t}:{p}" if p else t for t, p in row.items()) or "no theme"


def _error_list(rows, texts, labels, scores, evidence, single, total, limit) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    items = []
    for i, span in zip(rows, evidence):
        items.append(f'<li>{_highlight(texts[i], span)} <span class="score">(score {scores[i]:.3f}; '
                     f"row {i + 1}; labelled {_e(_label_text(labels[i], single))})</span></li>")
    more = f'<p class="muted">… and {total - limit} more</p>' if total > limit else ""
    return f'<ol class="errors">{"".join(items)}</ol>{more}'


def _polarity_errors(texts, labels, tagged, polar: set, limit: int) -> str:
    rows = []
    for i, (label, found) in enumerate(zip(labels, tagged)):
        truth = normalize_label(label)
        for t, entry in found.items():
            if t in polar and truth.get(t) and entry.get("polarity") and entry["polarity"] != truth[t]:
                rows.append((i, t, truth[t], entry))
    out = [f'<h2 id="polarity-errors">Polarity errors ({len(rows)})</h2>',
           '<p class="muted">Theme tagged and labelled, polarity wrong.</p>']
    if not rows:
        out.append('<p class="muted">none</p>')
        return "\n".join(out)
    items = [f'<li>{_highlight(texts[i], entry.get("evidence"))} <span class="score">({_e(t)}: labelled {_e(want)}, '
             f'predicted {_e(entry["polarity"])}; row {i + 1})</span></li>' for i, t, want, entry in rows[:limit]]
    out.append(f'<ol class="errors">{"".join(items)}</ol>')
    if len(rows) > limit:
        out.append(f'<p class="muted">… and {len(rows) - limit} more</p>')
    return "\n".join(out)


def write_report(model, texts, labels, path, **kwargs) -> Path:
    """Write :func:`render_report` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(model, texts, labels, **kwargs), encoding="utf-8")
    return path
