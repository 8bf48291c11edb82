"""Reading a tagged file: the output of ``classify`` (CSV, TSV, JSONL, Parquet or Excel), its
themes per row, which column holds the comment, dates, and the topics JSON of ``discover``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import _clean, detect_format, iter_chunks
from ..errors import InvalidInputError
from ..labels import parse_polarity
from ..taxonomy import DEFAULT_TAXONOMY

POLARITY_WORD = {"negative": "complaint", "positive": "praise", None: "mentioned"}


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


_POLARITY_WORDS = ("", "none", "null", "negative", "neg", "positive", "pos")  # a subset of what parse_polarity reads


def _polarity(value, where: str) -> str | None:
    value = (_clean(value) or "").strip().lower()
    if value in _POLARITY_WORDS:
        return parse_polarity(value)
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
