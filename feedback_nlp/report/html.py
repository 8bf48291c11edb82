"""The HTML report: one self-contained page (charts as inline SVG, nothing fetched), every quoted
comment PII-redacted and all text HTML-escaped."""

from __future__ import annotations

import html
import io
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..data import _clean
from ..text import redact
from .analysis import ALPHA, MAX_SEGMENTS, Analysis, _any_theme, _csv_text, summary_rows
from .charts import Chart, _slug
from .tagged import Hit, Tag

MAX_QUOTE_CHARS = 600
MORE_EXAMPLES = 20  # per theme, folded under the first ones


def svg_of(chart: Chart) -> str:
    """The chart as an inline <svg> element with no reference to anything outside the page."""
    buf = io.StringIO()
    chart.figure.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE (it names a DTD by URL)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)  # implied for <svg> inside HTML
    svg = svg.replace("xlink:href=", "href=")
    svg = svg.replace("font-family: 'DejaVu Sans'", "font-family: 'DejaVu Sans', Verdana, Arial, sans-serif")
    svg = re.sub(r"<svg\b", f'<svg role="img" aria-label="{_e(chart.title)}"', svg, count=1)
    return svg


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1150px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}h3{font-size:1.05rem}
nav a{margin-right:1rem}
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .55rem;border-bottom:1px solid #eee;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{background:#f6f6f6}
.wide{overflow-x:auto}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
.muted{color:#666}.note{color:#555;font-size:.92rem}
.up{color:#B44A00;font-weight:700}.down{color:#005A8D;font-weight:700}
span.complaint{color:#B44A00}span.praise{color:#005A8D}
mark{background:#ffe08a;padding:0 .1rem}
blockquote{margin:.5rem 0;padding:.4rem .8rem;border-left:4px solid #ccc;background:#fafafa}
blockquote.complaint{border-left-color:#D55E00}blockquote.praise{border-left-color:#0072B2}
.meta{font-size:.85rem;color:#666;margin-top:.2rem}
ul.findings li{margin:.25rem 0}
"""


class Safe(str):
    """HTML that is already escaped."""


def _e(value) -> str:
    return value if isinstance(value, Safe) else html.escape(str(value), quote=True)


def _table(headers: list, rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _pc(share: float) -> str:
    return f"{100 * share:.1f}%"


def _p(value: float) -> str:
    if math.isnan(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _tag_label(a: Analysis, tag: Tag) -> Safe:
    cls = {"negative": "complaint", "positive": "praise"}.get(tag.polarity, "")
    return Safe(f'<span class="{cls}">{_e(a.data.label(tag))}</span>')


def quote_comment(text: str, evidence: str | None, span: tuple[int, int] | None = None) -> Safe:
    """A redacted, escaped comment with its evidence sentence in <mark>: at its offsets (``span``,
    which index the comment as tagged, also across line breaks) when they fit the text, else
    where the sentence is found."""
    text = _clean(text)
    squash = lambda s: " ".join(s.split())  # noqa: E731 - the evidence text is normalised (line breaks joined)
    if span and 0 <= span[0] < span[1] <= len(text) and evidence and squash(text[span[0]:span[1]]) == squash(evidence):
        before, mid, after = redact(text[:span[0]]), redact(text[span[0]:span[1]]), redact(text[span[1]:])
    else:
        text = redact(text)
        evidence = redact(evidence) if evidence else ""
        at = text.find(evidence) if evidence.strip() else -1
        if at < 0:
            return Safe(_e(_shorten(text, MAX_QUOTE_CHARS)))
        before, mid, after = text[:at], text[at:at + len(evidence)], text[at + len(evidence):]
    room = max(0, (MAX_QUOTE_CHARS - len(mid)) // 2)
    if len(before) > room:
        before = "…" + before[len(before) - room:]
    if len(after) > room:
        after = after[:room] + "…"
    return Safe(f"{_e(before)}<mark>{_e(mid)}</mark>{_e(after)}")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _findings(a: Analysis) -> list[Safe]:
    out = []
    complaints = sorted((t for t in a.tags if t.polarity == "negative"), key=lambda t: -a.count(t))
    praise = sorted((t for t in a.tags if t.polarity == "positive"), key=lambda t: -a.count(t))
    if complaints:
        t = complaints[0]
        out.append(Safe(f"Most common complaint: <b>{_e(a.data.label(t))}</b> in {_pc(a.count(t) / a.n)} of comments ({a.count(t):,})."))
    if praise:
        t = praise[0]
        out.append(Safe(f"Most common praise: <b>{_e(a.data.label(t))}</b> in {_pc(a.count(t) / a.n)} of comments ({a.count(t):,})."))
    drags = [i for i in a.impacts if i.impact < 0]
    if drags:
        i = drags[0]
        out.append(Safe(f"Biggest drag on {_e(a.score_column)}: <b>{_e(a.data.label(i.tag))}</b> — its {i.count:,} comments "
                        f"score {abs(i.difference):.2f} lower on average than the rest."))
    for seg in a.segments:
        hits = sorted(((s, t, c) for (s, t), c in seg.cells.items() if c.significant and c.higher), key=lambda h: h[2].q)
        for segment, tag, cell in hits[:3]:
            out.append(Safe(f"{_e(seg.column)} = <b>{_e(segment)}</b>: {_e(a.data.label(tag))} in {_pc(cell.share)} of its "
                            f"comments, significantly more than elsewhere (q = {_p(cell.q)})."))
    if a.trend and complaints and len(a.trend.periods) >= 2:
        tr, t = a.trend, complaints[0]
        filled = [(p, c, s) for p, c, s in zip(tr.periods, tr.counts[t], tr.sizes) if s]
        if len(filled) >= 2:
            from scipy.stats import fisher_exact

            (_, c0, s0), (p1, c1, s1) = filled[-2], filled[-1]
            # Tested like the segment findings; a change that could be chance is not a finding.
            p = float(fisher_exact([[c1, s1 - c1], [c0, s0 - c0]]).pvalue)
            if p < ALPHA:
                out.append(Safe(f"{_e(a.data.label(t))}: {_pc(c1 / s1)} of comments in the {tr.granularity} of {_e(p1)} "
                                f"(n={s1:,}), against {_pc(c0 / s0)} in the {tr.granularity} before it with comments "
                                f"(n={s0:,}); Fisher's exact test p = {_p(p)}."))
    return out


def render_html(a: Analysis, chart_list: list[Chart], examples: int = 3, topics: dict | None = None) -> str:
    data, n = a.data, a.n
    svgs = {c.slug: c for c in chart_list}

    def figure(slug: str) -> str:
        if slug not in svgs:
            return ""
        c = svgs[slug]
        note = f'<p class="note">{_e(c.note)}</p>' if c.note else ""
        return f'<figure id="chart-{_e(slug)}" class="chart">{svg_of(c)}</figure>{note}'

    made = datetime.now(timezone.utc).isoformat(timespec="seconds")
    nav = [("findings", "Findings"), ("themes", "Themes")]
    nav += [(f"segments-{_slug(s.column)}", f"By {s.column}") for s in a.segments]
    if a.trend:
        nav.append(("trend", "Trend"))
    if a.impacts or a.score_column:
        nav.append(("impact", "Impact"))
    nav += [("examples", "Examples")] + ([("topics", "Topics")] if topics else []) + [("method", "Method")]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Feedback report: {_e(Path(data.path).name)}</title><style>{CSS}</style></head><body>",
           f"<h1>Feedback report: {_e(Path(data.path).name)}</h1>",
           f'<p class="muted">{n:,} comments'
           + (f" ({_plural(len(a.base) - n, 'row')} without a comment left out)" if len(a.base) > n else "")
           + f"; made {_e(made)} by feedback-nlp.</p>",
           "<nav>" + "".join(f'<a href="#{_e(k)}">{_e(v)}</a>' for k, v in nav) + "</nav>"]

    out.append('<h2 id="findings">Findings</h2>')
    findings = _findings(a)
    out.append('<ul class="findings">' + "".join(f"<li>{f}</li>" for f in findings) + "</ul>" if findings
               else '<p class="muted">No themes were found in these comments.</p>')

    # --- theme shares
    anyone = int((_any_theme(a) & a.base).sum())
    out.append('<h2 id="themes">Theme shares</h2>')
    out.append(f"<p>{anyone:,} of {n:,} comments ({_pc(anyone / n if n else 0)}) have at least one theme; "
               "a comment can have several.</p>")
    out.append(figure("themes"))
    rows = []
    for theme in data.theme_ids:
        counts = {p: a.count(Tag(theme, p)) if Tag(theme, p) in a.present else 0 for p in ("negative", "positive", None)}
        with_theme = np.zeros(len(a.base), dtype=bool)
        for tag in (t for t in a.present if t.theme == theme):
            with_theme |= a.present[tag]
        mentioned = int((with_theme & a.base).sum())
        rows.append([data.name_of(theme), f"{mentioned:,}", _pc(mentioned / n if n else 0), f"{counts['negative']:,}",
                     f"{counts['positive']:,}"] + ([f"{counts[None]:,}"] if any(t.polarity is None for t in a.tags) else []))
    headers = ["theme", "comments", "share", "complaint", "praise"] + (["mentioned"] if any(t.polarity is None for t in a.tags) else [])
    out.append(_table(headers, rows, "themes"))

    # --- segments
    for seg in a.segments:
        out.append(f'<h2 id="segments-{_e(_slug(seg.column))}">By {_e(seg.column)}</h2>')
        out.append(f'<p class="note">Share of each segment\'s comments with the theme. <span class="up">▲</span> / '
                   f'<span class="down">▼</span>: significantly more / less often than in the rest of {_e(seg.column)} '
                   f"(Fisher's exact test, Benjamini-Hochberg q &lt; {ALPHA}).</p>")
        if seg.pooled:
            out.append(f'<p class="note">{seg.pooled:,} smaller values are pooled as (other).</p>')
        out.append(figure(f"segments-{_slug(seg.column)}"))
        rows = []
        for segment in seg.segments:
            row = [segment, f"{seg.sizes[segment]:,}"]
            for tag in a.tags:
                cell = seg.cells[(segment, tag)]
                mark = ""
                if cell.significant:
                    mark = (' <span class="up" title="q={q}">▲</span>' if cell.higher else ' <span class="down" title="q={q}">▼</span>').format(q=_p(cell.q))
                row.append(Safe(f"{cell.count:,} ({_pc(cell.share)}){mark}"))
            rows.append(row)
        out.append(_table([seg.column, "comments", *(Safe(_tag_label(a, t)) for t in a.tags)], rows, "segments"))

    # --- trend
    if a.trend:
        tr = a.trend
        out.append('<h2 id="trend">Trend</h2>')
        out.append(f'<p class="note">Per {tr.granularity} of {_e(tr.column)} (weeks start on Monday; per week for spans up to '
                   f"six months, per month beyond).{f' {tr.unparsed:,} comments without a readable date are left out.' if tr.unparsed else ''}</p>")
        out.append(figure(f"trend-{_slug(tr.column)}"))
        rows = [[period, f"{size:,}", *(f"{tr.counts[t][i]:,} ({_pc(tr.counts[t][i] / size)})" if size else "–" for t in a.tags)]
                for i, (period, size) in enumerate(zip(tr.periods, tr.sizes))]
        out.append(_table([tr.granularity, "comments", *(Safe(_tag_label(a, t)) for t in a.tags)], rows, "trend"))

    # --- impact
    if a.score_column:
        out.append('<h2 id="impact">Impact ranking</h2>')
        out.append(f'<p class="note">For each theme and polarity: (mean {_e(a.score_column)} of comments with it − mean of the '
                   f"rest) × comments with it — how many score points it accounts for (the NPS driver analysis). "
                   f"{a.scored:,} comments have a score; mean {a.mean_score:.2f}. Most harmful first. "
                   f"p: Welch's t-test; q: Benjamini-Hochberg.</p>")
        out.append(figure(f"impact-{_slug(a.score_column)}"))
        rows = [[_tag_label(a, i.tag), f"{i.count:,}", f"{i.mean_with:.2f}", f"{i.mean_without:.2f}", f"{i.difference:+.2f}",
                 f"{i.impact:+.1f}", _p(i.p), Safe(_p(i.q) + (" *" if i.q < ALPHA else ""))] for i in a.impacts]
        out.append(_table(["theme", "comments", "mean with", "mean without", "difference", "impact", "p", "q"], rows, "impact"))

    # --- examples
    out.append('<h2 id="examples">Example comments</h2>')
    if data.text_column is None:
        out.append('<p class="muted">No comment column found (use --text-column).</p>')
    else:
        note = ("The evidence sentence is highlighted." if data.has_evidence
                else "This file has no evidence sentences (CSV/Parquet output); whole comments are quoted.")
        out.append(f'<p class="note">The {examples} comments per theme the model is surest of, on the theme and on its '
                   f'polarity (up to {MORE_EXAMPLES} more under "more"). {note} '
                   "E-mail addresses, phone numbers, URLs and ID numbers are redacted.</p>")
        texts = data.frame[data.text_column].tolist()
        meta_columns = [s.column for s in a.segments] + ([a.trend.column] if a.trend else []) + ([a.score_column] if a.score_column else [])
        by_tag: dict[Tag, list[tuple[int, Hit]]] = {}
        for i, row_hits in enumerate(data.hits):
            if a.base[i]:
                for hit in row_hits:
                    by_tag.setdefault(hit.tag, []).append((i, hit))
        for tag in a.tags:
            rows_with = sorted(by_tag.get(tag, []), key=lambda ih: -ih[1].confidence)
            picked, seen = [], set()  # the same comment twice shows nothing new
            for i, hit in rows_with:
                if len(picked) == examples + MORE_EXAMPLES:
                    break
                key = _clean(texts[i]).strip()
                if key not in seen:
                    seen.add(key)
                    picked.append((i, hit))
            cls = {"negative": "complaint", "positive": "praise"}.get(tag.polarity, "")
            out.append(f'<h3 id="examples-{_e(_slug(tag.key))}">{_tag_label(a, tag)} '
                       f'<span class="muted">({_plural(a.count(tag), "comment")})</span></h3>')
            for k, (i, hit) in enumerate(picked):
                if k == examples:
                    out.append(f"<details><summary>{len(picked) - examples} more</summary>")
                meta = " · ".join(f"{_e(c)}: {_e(_clean(data.frame[c].iloc[i]))}" for c in dict.fromkeys(meta_columns))
                out.append(f'<blockquote class="{cls}">{quote_comment(texts[i], hit.evidence, hit.span)}'
                           + (f'<div class="meta">{meta}</div>' if meta else "") + "</blockquote>")
            if len(picked) > examples:
                out.append("</details>")

    # --- topics (from `feedback-nlp discover`)
    if topics:
        out.append('<h2 id="topics">Topics</h2>')
        out.append(f'<p class="note">{_e(topics.get("selection", "comments"))} ({topics.get("comments", 0):,}) grouped by '
                   "meaning by <code>feedback-nlp discover</code>; each topic named by its most distinctive words.</p>")
        rows = [[_e(t.get("label", "")), f"{t.get('size', 0):,}", _pc(float(t.get("share", 0))),
                 Safe(_e(redact(_shorten(str((t.get("examples") or [""])[0]), 160))))] for t in topics["topics"][:30]]
        out.append(_table(["topic", "comments", "share", "example"], rows, "topics"))

    # --- method
    csv_link = "data:text/csv;charset=utf-8," + quote(_csv_text(summary_rows(a)), safe="")
    out.append('<h2 id="method">Method</h2><ul class="note">')
    out.append(f"<li>Input: {_e(data.path)}; themes as tagged by <code>feedback-nlp classify</code>. A comment counts for a "
               "theme and polarity when the model tagged it so; shares are of all comments with text.</li>")
    if a.segments:
        out.append(f"<li>Segments: each segment against the rest of its column, per theme and polarity, with Fisher's exact test "
                   f"(two-sided) on the 2×2 table; p-values are corrected across all of a column's tests with the "
                   f"Benjamini-Hochberg procedure and a difference is marked when q &lt; {ALPHA}. Up to {MAX_SEGMENTS} "
                   "segments per column; smaller ones are pooled.</li>")
    if a.trend:
        out.append(f"<li>Trend: per {a.trend.granularity}; the share is of that period's comments.</li>")
    if a.score_column:
        out.append("<li>Impact: (mean score with the theme − mean score without) × comments with it; Welch's t-test "
                   "for the difference, Benjamini-Hochberg corrected.</li>")
    out.append(f'<li><a download="report-tables.csv" href="{csv_link}">Download the summary tables (CSV)</a></li></ul>')
    out.append("</body></html>")
    return "\n".join(out)
