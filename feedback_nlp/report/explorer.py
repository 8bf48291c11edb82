"""The explorer: one self-contained, offline HTML page over a tagged file.

``feedback-nlp report TAGGED --format explorer`` writes it. The page holds the comments as
JSON (redacted like the report's quotes) and a small script of its own — no library, nothing
from a network — that filters them by theme, polarity, every ``--by`` segment, month,
language, score band and free text; draws theme bars and a monthly trend that can be clicked
to list the comments behind them, every evidence sentence highlighted by its offsets; shows
the mean score and, with ``--lost-time``, the hours lost per theme and segment; and exports
the filtered comments as CSV.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..data import _clean
from ..errors import InvalidInputError
from ..text import redact
from .tagged import POLARITY_WORD, Tagged, parse_times

TEMPLATE = Path(__file__).with_name("explorer.html")


def _number(value) -> float | None:
    try:
        x = float(str(value).replace(",", ".")) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) or math.isinf(x) else x


def score_bands(scores: list[float | None]) -> list[tuple[str, float, float]]:
    """Bands for the score filter: 0-6 / 7-8 / 9-10 for 0-10 scales (detractors, passives,
    promoters), else the score's thirds."""
    values = sorted(s for s in scores if s is not None)
    if not values:
        return []
    if values[0] >= 0 and values[-1] <= 10 and all(float(v).is_integer() for v in values):
        return [("0–6", 0, 6), ("7–8", 7, 8), ("9–10", 9, 10)]
    lo, hi = values[len(values) // 3], values[2 * len(values) // 3]
    return [(f"≤ {lo:g}", -math.inf, lo), (f"{lo:g}–{hi:g}", lo, hi), (f"> {hi:g}", hi, math.inf)]


def explorer_data(data: Tagged, by=(), time: str | None = None, score: str | None = None,
                  lost_time: str | None = None, topics: dict | None = None) -> dict:
    """The page's data: themes, columns and one record per comment."""
    frame = data.frame
    for column, option in [*((b, "--by") for b in by), (time, "--time"), (score, "--score"), (lost_time, "--lost-time")]:
        if column and column not in frame.columns:
            raise InvalidInputError(f"{data.path}: no column {column!r} ({option}); columns: {', '.join(map(str, frame.columns))}")
    texts = frame[data.text_column].tolist() if data.text_column else [""] * len(frame)
    months = None
    if time:
        parsed = parse_times(frame[time])
        months = [None if pd.isna(t) else t.strftime("%Y-%m") for t in parsed]
    scores = [_number(v) for v in frame[score]] if score else None
    lost = [_number(v) for v in frame[lost_time]] if lost_time else None
    languages = frame["language"].tolist() if "language" in frame.columns else None
    topic_of: dict[int, int] = {}
    for t in (topics or {}).get("topics", []):
        for row in t["rows"]:
            topic_of[int(row) - 1] = int(t["id"])
    records = []
    for i, hits in enumerate(data.hits):
        text = _clean(texts[i])
        record: dict = {"t": redact(text), "h": []}
        for hit in hits:
            entry = [hit.tag.theme, hit.tag.polarity or ""]
            if hit.span and 0 <= hit.span[0] < hit.span[1] <= len(text):
                # Offsets index the comment as tagged; after redaction they index the redacted text.
                start = len(redact(text[:hit.span[0]]))
                entry += [start, start + len(redact(text[hit.span[0]:hit.span[1]]))]
            record["h"].append(entry)
        record["s"] = [_clean(frame[b].iloc[i]).strip() or "(blank)" for b in by]
        if months is not None:
            record["m"] = months[i]
        if scores is not None:
            record["v"] = scores[i]
        if lost is not None:
            record["l"] = lost[i]
        if languages is not None:
            record["g"] = _clean(languages[i]) or None
        if i in topic_of:
            record["o"] = topic_of[i]
        records.append(record)
    return {
        "file": Path(data.path).name,
        "themes": [{"id": t, "name": data.name_of(t)} for t in data.theme_ids],
        "polarity_words": POLARITY_WORD,
        "by": list(by), "time": time, "score": score, "lost_time": lost_time,
        "bands": [[name, lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None]
                  for name, lo, hi in score_bands(scores or [])],
        "topics": [{"id": int(t["id"]), "label": str(t.get("label", t["id"]))} for t in (topics or {}).get("topics", [])],
        "comments": records,
    }


def render_explorer(page_data: dict) -> str:
    template = TEMPLATE.read_text(encoding="utf-8")
    # "</" would end the script element early: JSON allows it escaped.
    payload = json.dumps(page_data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return template.replace("/*DATA*/null", payload, 1)
