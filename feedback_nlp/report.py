"""The analyst report: what hurts, where, and since when — from the output of ``classify``.

:func:`build_report` reads a tagged file (CSV, TSV, JSONL, Parquet or Excel, with whatever
extra columns the export had) and writes one of:

- ``html``: one self-contained file that opens offline — charts are inline SVG, nothing is
  fetched from anywhere; every quoted comment is PII-redacted and all text is HTML-escaped;
- ``png``: a folder of PNG charts plus ``summary.csv``, for slides;
- ``csv``: the summary tables as one tidy CSV.

Sections: theme shares split into praise and complaint; the same per segment of each ``by``
column, with Fisher's exact test of each segment against the rest of that column
(Benjamini-Hochberg corrected across the column's tests); shares per week or month of the
``time`` column; an impact ranking on a numeric ``score`` column — (mean score of comments
with the theme and polarity - mean of the rest) x comments with it, the NPS driver analysis;
and example comments per theme with the evidence sentence highlighted.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from .data import _clean, detect_format, iter_chunks
from .errors import InvalidInputError
from .taxonomy import DEFAULT_TAXONOMY
from .text import redact

FORMATS = ("html", "png", "csv", "explorer")
MAX_SEGMENTS = 12  # per `by` column; smaller ones are pooled as "(other)"
MAX_CHART_SEGMENTS = 7  # one Okabe-Ito colour each
MAX_QUOTE_CHARS = 600
MORE_EXAMPLES = 20  # per theme, folded under the first ones
ALPHA = 0.05  # false discovery rate for the significance markers
WEEKLY_UP_TO_DAYS = 183  # a span up to ~6 months is shown per week, longer per month

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Praise and complaint get the blue/vermillion pair; yellow is left out (too pale).
COMPLAINT, PRAISE, MENTION = "#D55E00", "#0072B2", "#999999"
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#000000", "#0072B2", "#D55E00"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
POLARITY_ORDER = {"negative": 0, "positive": 1, None: 2}
POLARITY_WORD = {"negative": "complaint", "positive": "praise", None: "mentioned"}
POLARITY_COLOUR = {"negative": COMPLAINT, "positive": PRAISE, None: MENTION}


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Tag:
    """A theme with one polarity: what the report counts."""

    theme: str
    polarity: str | None

    @property
    def key(self) -> str:
        return f"{self.theme}:{self.polarity}" if self.polarity else self.theme


@dataclass
class Hit:
    tag: Tag
    score: float | None = None
    evidence: str | None = None
    span: tuple[int, int] | None = None  # the evidence's offsets into the comment (JSONL)
    polarity_score: float | None = None  # how sure the polarity is (JSONL)

    @property
    def confidence(self) -> float:
        """Sure of the theme and, where it has one, of its polarity: what examples are ranked by."""
        return (self.score if self.score is not None else 0.0) * (self.polarity_score if self.polarity_score is not None else 1.0)


@dataclass
class Tagged:
    """A tagged file in memory: its columns, and the themes found in each row."""

    frame: pd.DataFrame
    hits: list[list[Hit]]
    theme_ids: list[str]
    text_column: str | None
    has_evidence: bool
    path: str

    def name_of(self, theme: str) -> str:
        return DEFAULT_TAXONOMY[theme].name if theme in DEFAULT_TAXONOMY else theme.replace("_", " ").capitalize()

    def label(self, tag: Tag) -> str:
        """'Speed: complaint'; a theme that is always one way ('Not solved') needs no suffix."""
        name = self.name_of(tag.theme)
        fixed = DEFAULT_TAXONOMY[tag.theme].fixed_polarity if tag.theme in DEFAULT_TAXONOMY else None
        if tag.polarity is None or (fixed and fixed == tag.polarity):
            return name
        return f"{name}: {POLARITY_WORD[tag.polarity]}"


TEXT_COLUMNS = ("text", "comment", "comments", "feedback", "body", "description", "message")
RESERVED = {"themes", "scores", "truncated", "_error", "_raw"}


def read_tagged(path: str | Path, text_column: str | None = None) -> Tagged:
    """Read the output of ``classify`` (any of its formats) for the report."""
    frame = _read_frame(path)
    if frame.empty:
        raise InvalidInputError(f"{path}: no rows")
    if "themes" not in frame.columns:
        raise InvalidInputError(
            f"{path}: no 'themes' column; the report reads the output of `feedback-nlp classify` "
            f"(columns here: {', '.join(map(str, frame.columns))})"
        )
    theme_ids = [c[len("score_"):] for c in frame.columns if isinstance(c, str) and c.startswith("score_")]
    if not theme_ids and "scores" in frame.columns:  # JSONL: {"scores": {theme: score}}
        first = next((v for v in frame["scores"] if isinstance(v, dict)), {})
        theme_ids = [str(k) for k in first]
    # CSV and Parquet carry each theme's score in its own column; JSONL inside each theme.
    score_columns = {t: pd.to_numeric(frame[f"score_{t}"], errors="coerce").to_numpy(dtype=float) for t in theme_ids
                     if f"score_{t}" in frame.columns}
    hits, has_evidence = [], False
    tags_of: dict[str, list[Tag]] = {}  # CSV/Parquet values repeat a lot: parse each once
    for number, value in enumerate(frame["themes"].tolist()):
        if isinstance(value, str) and not value.lstrip().startswith("["):
            if value not in tags_of:
                tags_of[value] = [h.tag for h in _parse_themes(value, where=f"{path}: row {number + 1}")]
            parsed = [Hit(tag) for tag in tags_of[value]]
        else:
            parsed = _parse_themes(value, where=f"{path}: row {number + 1}")
        for hit in parsed:
            if hit.score is None and hit.tag.theme in score_columns:
                hit.score = _float(score_columns[hit.tag.theme][number])
            if hit.tag.theme not in theme_ids:
                theme_ids.append(hit.tag.theme)
        has_evidence = has_evidence or any(h.evidence for h in parsed)
        hits.append(parsed)
    frame = frame.drop(columns=[c for c in ("themes", "scores") if c in frame.columns])
    return Tagged(frame, hits, theme_ids, _text_column(frame, text_column, path), has_evidence, str(path))


def _read_frame(path) -> pd.DataFrame:
    fmt = detect_format(path)
    if fmt in ("csv", "tsv", "parquet") and not Path(path).is_file():
        raise InvalidInputError(f"input file not found: {path}")
    if fmt in ("csv", "tsv"):  # written by `classify`, so regular: pandas reads it much faster
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                           encoding="utf-8-sig", encoding_errors="replace")
    if fmt == "parquet":
        return pd.read_parquet(path)
    rows: list[dict] = []
    for chunk in iter_chunks(path, chunk_size=10_000, fmt=fmt):
        rows.extend(chunk.rows)
    return pd.DataFrame(rows)


def _parse_themes(value, where: str) -> list[Hit]:
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInputError(f"{where}: 'themes' is not valid JSON") from None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):  # CSV and Parquet: "speed:negative;not_solved:negative"
        out = []
        for part in filter(None, (p.strip() for p in value.split(";"))):
            theme, _, polarity = part.partition(":")
            out.append(Hit(Tag(theme.strip(), _polarity(polarity, where))))
        return out
    if isinstance(value, (list, tuple, np.ndarray)):  # JSONL: [{"theme", "score", "polarity", "evidence"}]
        out = []
        for item in value:
            if not isinstance(item, dict) or "theme" not in item:
                raise InvalidInputError(f"{where}: each entry of 'themes' needs a 'theme' field")
            evidence = item.get("evidence")
            text = evidence.get("text") if isinstance(evidence, dict) else evidence if isinstance(evidence, str) else None
            span = None
            if isinstance(evidence, dict) and isinstance(evidence.get("start"), int) and isinstance(evidence.get("end"), int):
                span = (evidence["start"], evidence["end"])
            out.append(Hit(Tag(str(item["theme"]), _polarity(item.get("polarity"), where)), _float(item.get("score")),
                           text or None, span, _float(item.get("polarity_score"))))
        return out
    raise InvalidInputError(f"{where}: cannot read 'themes' ({type(value).__name__})")


def _polarity(value, where: str) -> str | None:
    value = (_clean(value) or "").strip().lower()
    if value in ("", "none", "null"):
        return None
    if value in ("negative", "neg", "positive", "pos"):
        return "negative" if value.startswith("neg") else "positive"
    raise InvalidInputError(f"{where}: unknown polarity {value!r} (expected positive or negative)")


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _text_column(frame: pd.DataFrame, given: str | None, path) -> str | None:
    if given:
        _require(frame, given, path, "--text-column")
        return given
    lower = {str(c).lower(): c for c in frame.columns}
    for name in TEXT_COLUMNS:
        if name in lower:
            return lower[name]
    # Otherwise the column with the longest values is most likely the comment.
    best, best_len = None, 0.0
    for column in frame.columns:
        if column in RESERVED or str(column).startswith("score_"):
            continue
        values = frame[column]
        if values.map(lambda v: isinstance(v, str)).mean() < 0.5:
            continue
        length = values.map(lambda v: len(v) if isinstance(v, str) else 0).mean()
        if length > best_len:
            best, best_len = column, length
    return best if best_len >= 15 else None


def _require(frame: pd.DataFrame, column: str, path, option: str) -> None:
    if column not in frame.columns:
        raise InvalidInputError(
            f"{path}: no column {column!r} for {option}; columns are: {', '.join(map(str, frame.columns))}"
        )


# --------------------------------------------------------------------------- analysis


@dataclass
class Cell:
    count: int
    base: int
    p: float = float("nan")
    q: float = float("nan")
    higher: bool = False

    @property
    def share(self) -> float:
        return self.count / self.base if self.base else 0.0

    @property
    def significant(self) -> bool:
        return not math.isnan(self.q) and self.q < ALPHA


@dataclass
class Segments:
    column: str
    segments: list[str]
    sizes: dict[str, int]
    cells: dict[tuple[str, Tag], Cell]  # (segment, tag) -> cell
    pooled: int = 0  # distinct values pooled into "(other)"


@dataclass
class Trend:
    column: str
    granularity: str  # "week" or "month"
    periods: list[str]
    sizes: list[int]
    counts: dict[Tag, list[int]]
    unparsed: int = 0


@dataclass
class Impact:
    tag: Tag
    count: int
    mean_with: float
    mean_without: float
    p: float = float("nan")
    q: float = float("nan")

    @property
    def difference(self) -> float:
        return self.mean_with - self.mean_without

    @property
    def impact(self) -> float:
        return self.difference * self.count


@dataclass
class Analysis:
    data: Tagged
    base: np.ndarray  # rows counted (those with a comment)
    present: dict[Tag, np.ndarray]  # tag -> rows (bool) tagged with it
    tags: list[Tag]
    segments: list[Segments] = field(default_factory=list)
    trend: Trend | None = None
    impacts: list[Impact] = field(default_factory=list)
    score_column: str | None = None
    scored: int = 0
    mean_score: float = float("nan")

    @property
    def n(self) -> int:
        return int(self.base.sum())

    def count(self, tag: Tag) -> int:
        return int((self.present[tag] & self.base).sum())


def analyse(data: Tagged, by=(), time: str | None = None, score: str | None = None) -> Analysis:
    frame, n_rows = data.frame, len(data.hits)
    for column, option in [*((b, "--by") for b in by), (time, "--time"), (score, "--score")]:
        if column:
            _require(frame, column, data.path, option)
    if data.text_column:
        base = frame[data.text_column].map(lambda v: bool(_clean(v).strip())).to_numpy(dtype=bool)
    else:
        base = np.ones(n_rows, dtype=bool)
    if "language_supported" in frame.columns:  # comments in a language the model does not cover were not scored
        base = base & ~frame["language_supported"].map(lambda v: str(v).strip().lower() in ("false", "0")).to_numpy(dtype=bool)
    if "language" in frame.columns and "language" not in by and frame["language"][base].nunique() > 1:
        by = [*by, "language"]  # a file in several languages: theme shares per language
    present: dict[Tag, np.ndarray] = {}
    for i, row_hits in enumerate(data.hits):
        for hit in row_hits:
            present.setdefault(hit.tag, np.zeros(n_rows, dtype=bool))[i] = True
    order = {t: i for i, t in enumerate(data.theme_ids)}
    tags = sorted((t for t in present if (present[t] & base).any()),
                  key=lambda t: (order.get(t.theme, len(order)), POLARITY_ORDER[t.polarity]))
    result = Analysis(data, base, present, tags)
    result.segments = [_segments(result, column) for column in by]
    if time:
        result.trend = _trend(result, time)
    if score:
        _impacts(result, score)
    return result


def _segment_values(values: pd.Series) -> pd.Series:
    return values.map(lambda v: _clean(v).strip() or "(blank)")


def _segments(a: Analysis, column: str) -> Segments:
    from scipy.stats import false_discovery_control, fisher_exact

    values = _segment_values(a.data.frame[column])
    counts = values[a.base].value_counts()
    keep = list(counts.index[:MAX_SEGMENTS])
    pooled = max(0, len(counts) - MAX_SEGMENTS)
    if pooled:
        values = values.where(values.isin(keep), "(other)")
        keep.append("(other)")
    values = values.to_numpy()
    sizes = {s: int(((values == s) & a.base).sum()) for s in keep}
    cells: dict[tuple[str, Tag], Cell] = {}
    tests = []
    for segment in keep:
        inside = (values == segment) & a.base
        outside = (values != segment) & a.base
        for tag in a.tags:
            k_in, k_out = int((a.present[tag] & inside).sum()), int((a.present[tag] & outside).sum())
            cell = Cell(k_in, sizes[segment])
            n_out = int(outside.sum())
            if len(keep) > 1 and n_out and cell.base:
                table = [[k_in, cell.base - k_in], [k_out, n_out - k_out]]
                cell.p = float(fisher_exact(table).pvalue)
                cell.higher = cell.share > k_out / n_out
                tests.append(cell)
            cells[(segment, tag)] = cell
    if tests:
        for cell, q in zip(tests, false_discovery_control([c.p for c in tests], method="bh")):
            cell.q = float(q)
    return Segments(column, keep, sizes, cells, pooled)


def parse_times(values: pd.Series) -> pd.Series:
    """Dates and times as naive UTC timestamps; what cannot be read becomes NaT."""
    text = values.map(lambda v: _clean(v).strip() if not isinstance(v, (datetime, pd.Timestamp)) else v)
    text = text.where(text != "", None)
    import warnings

    with warnings.catch_warnings():  # pandas warns when it cannot infer one format: the retry below handles that
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(text, errors="coerce", utc=True)
        retry = parsed.isna() & text.notna()
        if retry.any():  # the format was inferred from the first value; read the others one by one
            parsed[retry] = pd.to_datetime(text[retry], errors="coerce", utc=True, format="mixed")
    return parsed.dt.tz_convert(None)


def _trend(a: Analysis, column: str) -> Trend:
    when = parse_times(a.data.frame[column])
    known = when.notna().to_numpy() & a.base
    unparsed = int((~when.notna().to_numpy() & a.base).sum())
    if not known.any():
        raise InvalidInputError(f"{a.data.path}: no readable dates in {column!r} for --time (e.g. 2026-09-30)")
    span = (when[known].max() - when[known].min()).days
    granularity = "week" if span <= WEEKLY_UP_TO_DAYS else "month"
    freq = "W-SUN" if granularity == "week" else "M"
    period = when.dt.to_period(freq)
    all_periods = pd.period_range(period[known].min(), period[known].max(), freq=freq)
    index = {p: i for i, p in enumerate(all_periods)}
    position = np.array([index.get(p, -1) if k else -1 for p, k in zip(period, known)], dtype=np.int64)
    counted = position >= 0

    def per_period(rows: np.ndarray) -> list[int]:
        return np.bincount(position[rows & counted], minlength=len(all_periods)).tolist()

    sizes = per_period(np.ones(len(position), dtype=bool))
    counts = {tag: per_period(a.present[tag]) for tag in a.tags}
    labels = [p.start_time.strftime("%Y-%m-%d") if granularity == "week" else p.strftime("%Y-%m") for p in all_periods]
    return Trend(column, granularity, labels, sizes, counts, unparsed)


def _impacts(a: Analysis, column: str) -> None:
    from scipy.stats import false_discovery_control, ttest_ind

    scores = pd.to_numeric(a.data.frame[column].map(lambda v: _clean(v).strip() or None), errors="coerce").to_numpy(dtype=float)
    scored = a.base & ~np.isnan(scores)
    a.score_column, a.scored = column, int(scored.sum())
    if not a.scored:
        raise InvalidInputError(f"{a.data.path}: no numeric values in {column!r} for --score")
    a.mean_score = float(scores[scored].mean())
    impacts = []
    for tag in a.tags:
        with_, rest = scores[scored & a.present[tag]], scores[scored & ~a.present[tag]]
        if len(with_) and len(rest):
            item = Impact(tag, len(with_), float(with_.mean()), float(rest.mean()))
            if len(with_) > 1 and len(rest) > 1 and (with_.std() > 0 or rest.std() > 0):
                item.p = float(ttest_ind(with_, rest, equal_var=False).pvalue)
            impacts.append(item)
    tested = [i for i in impacts if not math.isnan(i.p)]
    if tested:
        for item, q in zip(tested, false_discovery_control([i.p for i in tested], method="bh")):
            item.q = float(q)
    a.impacts = sorted(impacts, key=lambda i: i.impact)


# --------------------------------------------------------------------------- tables


SUMMARY_FIELDS = ["section", "column", "segment", "theme", "polarity", "label", "count", "base", "share",
                  "p_value", "q_value", "significant", "mean_with", "mean_without", "difference", "impact"]


def summary_rows(a: Analysis) -> list[dict]:
    """The report's numbers as one tidy table (one row per number group)."""

    def row(section, tag: Tag | None, **values):
        out = {"section": section, "theme": tag.theme if tag else "", "polarity": (tag.polarity or "") if tag else "",
               "label": a.data.label(tag) if tag else "(any theme)", **values}
        return {k: _round(out.get(k, "")) for k in SUMMARY_FIELDS}

    rows = [row("overall", None, count=int((_any_theme(a) & a.base).sum()), base=a.n,
                share=(_any_theme(a) & a.base).sum() / a.n if a.n else 0.0)]
    rows += [row("overall", t, count=a.count(t), base=a.n, share=a.count(t) / a.n if a.n else 0.0) for t in a.tags]
    for seg in a.segments:
        for (segment, tag), cell in seg.cells.items():
            rows.append(row("segment", tag, column=seg.column, segment=segment, count=cell.count, base=cell.base,
                            share=cell.share, p_value=cell.p, q_value=cell.q,
                            significant=("higher" if cell.higher else "lower") if cell.significant else ""))
    if a.trend:
        tr = a.trend
        for i, period in enumerate(tr.periods):
            for tag in a.tags:
                rows.append(row("trend", tag, column=tr.column, segment=period, count=tr.counts[tag][i], base=tr.sizes[i],
                                share=tr.counts[tag][i] / tr.sizes[i] if tr.sizes[i] else ""))
    for item in a.impacts:
        rows.append(row("impact", item.tag, column=a.score_column, count=item.count, base=a.scored,
                        mean_with=item.mean_with, mean_without=item.mean_without, difference=item.difference,
                        impact=item.impact, p_value=item.p, q_value=item.q,
                        significant=("higher" if item.difference > 0 else "lower") if item.q < ALPHA else ""))
    return rows


def _round(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else round(value, 6)
    return value


def _any_theme(a: Analysis) -> np.ndarray:
    out = np.zeros(len(a.base), dtype=bool)
    for tag in a.tags:
        out |= a.present[tag]
    return out


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


# --------------------------------------------------------------------------- charts


@dataclass
class Chart:
    slug: str  # file name stem for --format png
    title: str
    figure: object  # matplotlib Figure
    note: str = ""


def _mpl(text: str, limit: int = 40) -> str:
    """A label for matplotlib: shortened, with '$' kept literal (it would start mathtext)."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _style():
    import matplotlib

    return matplotlib.rc_context({
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans"],
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": "#555555",
        "axes.labelcolor": "#222222",
        "xtick.color": "#333333",
        "ytick.color": "#333333",
        "svg.fonttype": "none",  # text stays text: searchable, selectable, smaller
        "svg.hashsalt": "feedback-nlp",  # stable ids, so the same data gives the same file
    })


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in threads

    return Figure(figsize=(width, height), layout="constrained")


def percent_formatter(absolute: bool = False):
    """Tick labels in percent with as many decimals as the tick step needs (0.5% steps read
    0.5%, 1.0%, ..., not 0% 0% 1% 2%)."""
    from matplotlib.ticker import Formatter

    class Percent(Formatter):
        ticks: list[float] = []

        def set_locs(self, locs):  # matplotlib passes the tick values before formatting them
            self.ticks = list(locs)

        def __call__(self, value, pos=None):
            locs = sorted(self.ticks) if len(self.ticks) > 1 else [0, 1]
            step = min((b - a for a, b in zip(locs, locs[1:]) if b > a), default=1)
            decimals = 0 if step >= 1 - 1e-9 else 1 if step >= 0.1 - 1e-9 else 2
            return f"{abs(value) if absolute else value:.{decimals}f}%"

    return Percent()


def _pct(ax, axis="x", absolute=False):
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(percent_formatter(absolute))


def chart_shares(a: Analysis) -> Chart:
    themes = [t for t in a.data.theme_ids]
    n = a.n or 1

    def share(theme, polarity):
        tag = Tag(theme, polarity)
        return 100 * a.count(tag) / n if tag in a.present else 0.0

    neg = [share(t, "negative") for t in themes]
    pos = [share(t, "positive") for t in themes]
    other = [share(t, None) for t in themes]
    fig = _figure(8, 0.45 * len(themes) + 1.6)
    ax = fig.add_subplot()
    y = np.arange(len(themes))[::-1]
    ax.barh(y, [-v for v in neg], color=COMPLAINT, label="complaint")
    ax.barh(y, pos, color=PRAISE, label="praise")
    if any(other):
        ax.barh(y, other, left=pos, color=MENTION, hatch="//", label="mentioned")
    ax.set_yticks(y, [_mpl(a.data.name_of(t)) for t in themes])
    ax.axvline(0, color="#333333", linewidth=0.8)
    top = max([*neg, *(p + o for p, o in zip(pos, other)), 1.0])
    ax.set_xlim(-top * 1.25, top * 1.25)
    for yi, v in zip(y, neg):
        if v:
            ax.text(-v - top * 0.02, yi, f"{v:.0f}%", va="center", ha="right", fontsize=9)
    for yi, p, o in zip(y, pos, other):
        if p + o:
            ax.text(p + o + top * 0.02, yi, f"{p + o:.0f}%", va="center", ha="left", fontsize=9)
    _pct(ax, absolute=True)
    ax.set_xlabel(f"% of {a.n:,} comments  (complaints left, praise right)")
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    ax.set_title("Theme shares: praise vs complaint")
    return Chart("themes", "Theme shares: praise vs complaint", fig)


def chart_segments(a: Analysis, seg: Segments) -> Chart:
    shown = seg.segments[:MAX_CHART_SEGMENTS]
    groups = [p for p in ("negative", "positive", None) if any(t.polarity == p for t in a.tags)]
    height = max(2.6, 0.22 * len(shown) * max([sum(t.polarity == p for t in a.tags) for p in groups] or [1]) + 1.8)
    fig = _figure(11 if len(groups) > 1 else 7.5, height)
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False)[0]
    for ax, polarity in zip(axes, groups or [None]):
        tags = [t for t in a.tags if t.polarity == polarity]
        y = np.arange(len(tags))[::-1]
        width = 0.8 / len(shown)
        top = 1.0
        for k, segment in enumerate(shown):
            values = [100 * seg.cells[(segment, t)].share for t in tags]
            offsets = y + 0.4 - width * (k + 0.5)
            ax.barh(offsets, values, height=width * 0.92, color=PALETTE[k % len(PALETTE)],
                    label=f"{_mpl(segment, 28)} (n={seg.sizes[segment]:,})")
            for off, value, t in zip(offsets, values, tags):
                if seg.cells[(segment, t)].significant:
                    ax.text(value, off, " *", va="center", ha="left", fontsize=10, fontweight="bold")
            top = max([top, *values])
        ax.set_yticks(y, [_mpl(a.data.name_of(t.theme)) for t in tags])
        ax.set_xlim(0, top * 1.15)
        _pct(ax)
        ax.set_xlabel("% of the segment's comments")
        ax.set_title({"negative": "Complaints", "positive": "Praise", None: "Mentioned"}[polarity])
    fig.suptitle(f"Themes by {_mpl(seg.column)}", fontweight="bold")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(shown)), frameon=False, fontsize=9,
               title=f"{_mpl(seg.column)}   (* significant difference from the rest)", title_fontsize=9)
    note = "" if len(seg.segments) <= MAX_CHART_SEGMENTS else f"The chart shows the {MAX_CHART_SEGMENTS} largest segments; the table has all."
    return Chart(f"segments-{_slug(seg.column)}", f"Themes by {seg.column}", fig, note)


def chart_trend(a: Analysis, tr: Trend, limit: int = 6) -> Chart:
    groups = [p for p in ("negative", "positive", None) if any(t.polarity == p for t in a.tags)]
    fig = _figure(10, 2.2 + 2.6 * max(1, len(groups)))
    axes = fig.subplots(1 + max(1, len(groups)), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [0.6] + [1.0] * max(1, len(groups))})[:, 0]
    x = np.arange(len(tr.periods))
    axes[0].bar(x, tr.sizes, color=MENTION)
    axes[0].set_ylabel("comments")
    axes[0].yaxis.get_major_locator().set_params(integer=True)
    axes[0].set_title(f"Per {tr.granularity} of {_mpl(tr.column)}")
    colour = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(a.data.theme_ids)}
    marker = {t: MARKERS[i % len(MARKERS)] for i, t in enumerate(a.data.theme_ids)}
    for ax, polarity in zip(axes[1:], groups or [None]):
        tags = sorted((t for t in a.tags if t.polarity == polarity), key=lambda t: -a.count(t))[:limit]
        for tag in tags:
            share = [100 * c / s if s else np.nan for c, s in zip(tr.counts[tag], tr.sizes)]
            ax.plot(x, share, color=colour[tag.theme], marker=marker[tag.theme], markersize=4, linewidth=1.6,
                    label=_mpl(a.data.name_of(tag.theme)))
        ax.set_ylim(bottom=0)
        _pct(ax, "y")
        ax.set_ylabel("% of comments")
        ax.set_title({"negative": "Complaints", "positive": "Praise", None: "Mentioned"}[polarity], loc="left")
        if tags:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=9)
    step = max(1, math.ceil(len(x) / 16))
    axes[-1].set_xticks(x[::step], [tr.periods[i] for i in range(0, len(x), step)], rotation=45, ha="right")
    axes[-1].set_xlabel("week starting" if tr.granularity == "week" else "month")
    return Chart(f"trend-{_slug(tr.column)}", f"Trend per {tr.granularity} of {tr.column}", fig)


def chart_impact(a: Analysis) -> Chart:
    items = a.impacts
    fig = _figure(8.5, 0.42 * len(items) + 1.6)
    ax = fig.add_subplot()
    y = np.arange(len(items))[::-1]
    values = [i.impact for i in items]
    ax.barh(y, values, color=[POLARITY_COLOUR[i.tag.polarity] for i in items])
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_yticks(y, [_mpl(a.data.label(i.tag), 36) for i in items])
    span = max([abs(v) for v in values] + [1e-9])
    ax.set_xlim(min(0, min(values, default=0)) - span * 0.45, max(0, max(values, default=0)) + span * 0.45)
    for yi, item in zip(y, items):
        ax.text(item.impact + (span * 0.02 if item.impact >= 0 else -span * 0.02), yi,
                f"{item.difference:+.2f} × {item.count:,}".replace("-", "−"), va="center", ha="left" if item.impact >= 0 else "right", fontsize=9)
    ax.set_xlabel(f"impact on {_mpl(a.score_column)}: (mean with - mean without) × comments")
    ax.set_title(f"Impact ranking on {_mpl(a.score_column)} (mean {a.mean_score:.2f})")
    return Chart(f"impact-{_slug(a.score_column)}", f"Impact ranking on {a.score_column}", fig)


def charts(a: Analysis) -> list[Chart]:
    out = [chart_shares(a)]
    out += [chart_segments(a, seg) for seg in a.segments if a.tags]
    if a.trend and a.tags:
        out.append(chart_trend(a, a.trend))
    if a.impacts:
        out.append(chart_impact(a))
    return out


def _slug(text) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "column"


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


# --------------------------------------------------------------------------- HTML

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


def read_topics(path: str | Path | None) -> dict | None:
    """The JSON `feedback-nlp discover` wrote, or None."""
    if path is None:
        return None
    try:
        found = json.loads(Path(path).read_text(encoding="utf-8"))
        found["topics"] = [t for t in found["topics"] if isinstance(t.get("rows"), list)]
        return found
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path}: not the topics JSON `feedback-nlp discover` writes ({exc})") from None


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


# --------------------------------------------------------------------------- entry point


def build_report(
    tagged_path: str | Path,
    out_path: str | Path,
    by: list[str] | tuple[str, ...] = (),
    time: str | None = None,
    score: str | None = None,
    fmt: str = "html",
    *,
    text_column: str | None = None,
    examples: int = 3,
    lost_time: str | None = None,
    topics: str | Path | None = None,
) -> list[Path]:
    """Write the analyst report for a tagged file; returns the files written.

    ``fmt``: ``html`` (one self-contained file), ``png`` (``out_path`` is a folder of PNG
    charts plus ``summary.csv``), ``csv`` (the summary tables) or ``explorer`` (one
    self-contained interactive page, see :mod:`feedback_nlp.explorer`; ``lost_time``: a column
    of work hours lost per comment, summed per theme and segment there). ``topics``: the JSON of
    ``feedback-nlp discover`` on the same file: a Topics section, and a topic filter in the explorer.
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if len(set(by)) != len(by):
        raise InvalidInputError("each --by column once, please")
    if lost_time and fmt != "explorer":
        raise InvalidInputError("--lost-time is shown in the explorer: add --format explorer")
    found_topics = read_topics(topics)
    if fmt == "explorer":
        from .explorer import explorer_data, render_explorer

        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        page = explorer_data(read_tagged(tagged_path, text_column), list(by), time, score, lost_time, found_topics)
        out_path.write_text(render_explorer(page), encoding="utf-8")
        return [out_path]
    analysis = analyse(read_tagged(tagged_path, text_column), list(by), time, score)
    out_path = Path(out_path)
    if fmt == "csv":
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(_csv_text(summary_rows(analysis)), encoding="utf-8")
        return [out_path]
    with _style():
        chart_list = charts(analysis)
        if fmt == "html":
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(render_html(analysis, chart_list, examples, found_topics), encoding="utf-8")
            return [out_path]
        if out_path.exists() and not out_path.is_dir():
            raise InvalidInputError(f"{out_path} is a file; --format png writes a folder of charts")
        out_path.mkdir(parents=True, exist_ok=True)
        written = []
        for number, chart in enumerate(chart_list, start=1):
            target = out_path / f"{number:02d}-{chart.slug}.png"
            chart.figure.savefig(target, dpi=150, metadata={"Software": None})
            written.append(target)
        summary = out_path / "summary.csv"
        summary.write_text(_csv_text(summary_rows(analysis)), encoding="utf-8")
        return [*written, summary]
