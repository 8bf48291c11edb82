"""The report's numbers: theme shares, each ``by`` segment against the rest of its column
(Fisher's exact test, Benjamini-Hochberg), shares per week or month, the impact ranking on a
score column, and all of it as one tidy summary table (CSV)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import _clean
from ..errors import InvalidInputError
from .tagged import Tag, Tagged, _require, parse_times

MAX_SEGMENTS = 12  # per `by` column; smaller ones are pooled as "(other)"
ALPHA = 0.05  # false discovery rate for the significance markers
WEEKLY_UP_TO_DAYS = 183  # a span up to ~6 months is shown per week, longer per month
POLARITY_ORDER = {"negative": 0, "positive": 1, None: 2}


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
