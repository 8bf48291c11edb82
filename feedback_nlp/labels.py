"""Label formats: one normal form for every way a user can write theme labels.

Multi-label rows become ``{theme_id: "positive" | "negative" | None}``; a single-label
row (one class name, e.g. Banking77) stays a string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import InvalidInputError

_POLARITY = {
    "pos": "positive", "positive": "positive", "+": "positive", "praise": "positive",
    "neg": "negative", "negative": "negative", "-": "negative", "complaint": "negative",
    "": None, "none": None, "null": None,
}  # fmt: skip


def parse_polarity(value, *, where: str = "") -> str | None:
    if value is None:
        return None
    key = str(value).strip().lower()
    if key in _POLARITY:
        return _POLARITY[key]
    raise InvalidInputError(
        f"{where}unknown polarity {value!r}; use pos/neg, positive/negative or null"
    )


SHORT_POLARITY = {"positive": "pos", "negative": "neg", None: None}  # the short form label files are written in


def short_polarity(value, *, where: str = "") -> str | None:
    """Any polarity word :func:`parse_polarity` accepts, in the short form files use: pos, neg or None."""
    return SHORT_POLARITY[parse_polarity(value, where=where)]


def parse_theme_string(value: str, *, where: str = "") -> dict[str, str | None]:
    """``"speed:neg;not_solved"`` -> ``{"speed": "negative", "not_solved": None}``."""
    themes: dict[str, str | None] = {}
    for part in str(value).replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        theme, _, polarity = part.partition(":")
        themes[theme.strip()] = parse_polarity(polarity.strip() or None, where=where)
    return themes


def normalize_label(value, *, where: str = "") -> dict[str, str | None]:
    """Normalise one multi-label row (dict, list of ids, or ``a:neg;b`` string)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k).strip(): parse_polarity(v, where=where) for k, v in value.items()}
    if isinstance(value, str):
        return parse_theme_string(value, where=where)
    if isinstance(value, Sequence) or hasattr(value, "__iter__"):
        themes: dict[str, str | None] = {}
        for item in value:
            themes.update(parse_theme_string(str(item), where=where))
        return themes
    raise InvalidInputError(f"{where}cannot read theme labels from {value!r}")


def is_single_label(y) -> bool:
    """True when every label is one class name (e.g. Banking77), not a set of themes.

    Strings in the theme syntax (``speed:neg;not_solved``, or empty for no theme) are
    multi-label; so are dicts and lists.
    """
    try:
        values = list(y)
    except TypeError:
        return False
    if not values:
        return False
    for v in values:
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            return False
        if isinstance(v, str) and (not v.strip() or ":" in v or ";" in v):
            return False
    return True
