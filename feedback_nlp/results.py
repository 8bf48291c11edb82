"""One comment's answer: its shape, how it is built, and how it is flattened.

:meth:`ThemeClassifier.classify <feedback_nlp.classifier.ThemeClassifier.classify>`
returns one :class:`Result` per comment; the constructors here are the only place those
dicts are built, and the flat (CSV/Parquet) columns and the ITSM tags are derived here too.

This module sits low in the import graph: the standard library, ``errors`` and ``labels``
only (pyarrow is imported lazily by :func:`flat_arrow_types`).
"""

from typing import NotRequired, TypedDict


class Evidence(TypedDict):
    """The sentence a theme was read from, with its character offsets in the comment."""

    text: str
    start: int
    end: int


class ThemeHit(TypedDict):
    """One tagged theme of a comment."""

    theme: str
    score: float
    polarity: str | None  # "positive" | "negative" | None
    polarity_score: float | None  # None for a theme whose polarity is not predicted
    evidence: Evidence | None


class Result(TypedDict):
    """The full answer for one comment."""

    themes: list[ThemeHit]
    scores: dict[str, float]
    truncated: NotRequired[bool]  # present (True) only when the comment was cut to the model's limit
    language: str | None
    language_supported: bool


def _round(value: float) -> float:
    return round(float(value), 4)


def theme_hit(theme: str, score: float, polarity: str | None, polarity_score: float | None, sentence) -> ThemeHit:
    """One tagged theme; ``sentence`` is the evidence (anything with text/start/end) or None."""
    evidence: Evidence | None = (
        {"text": sentence.text, "start": sentence.start, "end": sentence.end} if sentence else None
    )
    return {
        "theme": theme,
        "score": _round(score),
        "polarity": polarity,
        "polarity_score": None if polarity_score is None else _round(polarity_score),
        "evidence": evidence,
    }


def scored(themes: list[ThemeHit], scores: dict[str, float], language: str | None, *, truncated: bool = False) -> Result:
    """The answer for a comment the model scored (``scores`` are rounded here)."""
    result: Result = {"themes": themes, "scores": {t: _round(s) for t, s in scores.items()}}  # type: ignore[typeddict-item]
    if truncated:
        result["truncated"] = True
    result["language"] = language
    result["language_supported"] = True
    return result


def unscored(language: str | None) -> Result:
    """The answer for a comment in a language the model does not cover: no themes, no scores."""
    return {"themes": [], "scores": {}, "language": language, "language_supported": False}


# --- flat output (CSV / Parquet / Ray) -------------------------------------------------


RESULT_KEYS = ("themes", "scores", "truncated", "language", "language_supported")


def flat_columns(theme_ids: list[str]) -> list[str]:
    """The columns classification adds to CSV/Parquet output, in order."""
    return ["themes", *(f"score_{t}" for t in theme_ids), "language", "language_supported"]


def flat_arrow_types(theme_ids: list[str]) -> dict:
    """The Arrow type of every column :func:`flat_columns` names (Parquet and Ray output)."""
    import pyarrow as pa

    return {name: pa.float64() if name.startswith("score_") else pa.bool_() if name == "language_supported" else pa.string()
            for name in flat_columns(theme_ids)}


def flatten_rows(rows: list[dict], theme_ids: list[str]) -> list[dict]:
    """Classified rows as flat columns (the CSV/Parquet output): the input's columns, then
    ``themes`` ("theme:polarity;theme..."), one ``score_<theme>`` per theme (empty when the
    comment was not scored), ``language`` and ``language_supported``."""
    flat = []
    for row in rows:
        out = {k: v for k, v in row.items() if k not in RESULT_KEYS}
        out["themes"] = ";".join(
            f"{t['theme']}:{t['polarity']}" if t.get("polarity") else t["theme"] for t in row["themes"]
        )
        has_scores = row.get("language_supported", True)  # a comment in an unsupported language has no scores
        for theme in theme_ids:
            out[f"score_{theme}"] = row["scores"].get(theme, 0.0) if has_scores else None
        out["language"] = row.get("language")
        out["language_supported"] = row.get("language_supported")
        flat.append(out)
    return flat


# --- tags (serve) ----------------------------------------------------------------------


def tags_for(result: dict) -> list[str]:
    """Flat strings for rules without scripting: ``feedback_<theme>[_<polarity>]``.

    A theme with a predicted polarity gets it in the tag (``feedback_speed_negative``);
    one that is always one way does not (``feedback_not_solved``).
    """
    tags = []
    for hit in result["themes"]:
        tag = f"feedback_{hit['theme']}"
        if hit.get("polarity_score") is not None:
            tag += f"_{hit['polarity']}"
        tags.append(tag)
    return tags
