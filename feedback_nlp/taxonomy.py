"""Themes and the taxonomy a model predicts.

The five default themes follow THEMES.md. A custom taxonomy comes from a JSON file
or from the labels seen in training data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import InvalidInputError


@dataclass(frozen=True)
class Theme:
    id: str
    name: str
    description: str = ""
    polar: bool = False  # carries a predicted polarity (positive/negative)
    fixed_polarity: str | None = None  # for non-polar themes that are always one way

    def to_dict(self) -> dict:
        return asdict(self)


class Taxonomy:
    """An ordered, immutable set of themes."""

    def __init__(self, themes: Iterable[Theme], name: str = "custom"):
        self.themes: tuple[Theme, ...] = tuple(themes)
        self.name = name
        ids = [t.id for t in self.themes]
        if not ids:
            raise InvalidInputError("a taxonomy needs at least one theme")
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise InvalidInputError(f"duplicate theme ids in taxonomy: {', '.join(duplicates)}")
        self._by_id = {t.id: t for t in self.themes}

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.themes]

    @property
    def polar_ids(self) -> list[str]:
        return [t.id for t in self.themes if t.polar]

    def __len__(self) -> int:
        return len(self.themes)

    def __iter__(self) -> Iterator[Theme]:
        return iter(self.themes)

    def __contains__(self, theme_id: object) -> bool:
        return theme_id in self._by_id

    def __getitem__(self, theme_id: str) -> Theme:
        try:
            return self._by_id[theme_id]
        except KeyError:
            raise InvalidInputError(
                f"unknown theme {theme_id!r}; this taxonomy has: {', '.join(self.ids)}"
            ) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and self.themes == other.themes

    def __repr__(self) -> str:
        return f"Taxonomy({self.name!r}, {self.ids})"

    def to_dict(self) -> dict:
        return {"name": self.name, "themes": [t.to_dict() for t in self.themes]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Taxonomy:
        try:
            themes = [
                Theme(
                    id=str(t["id"]),
                    name=str(t.get("name") or t["id"]),
                    description=str(t.get("description", "")),
                    polar=bool(t.get("polar", False)),
                    fixed_polarity=t.get("fixed_polarity"),
                )
                for t in data["themes"]
            ]
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(
                'a taxonomy is {"themes": [{"id": ..., "name": ..., "description": ..., "polar": bool}]}'
                f"; problem: {exc!r}"
            ) from None
        return cls(themes, name=str(data.get("name", "custom")))

    @classmethod
    def from_file(cls, path: str | Path) -> Taxonomy:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError(f"taxonomy file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def from_labels(cls, seen: Mapping[str, set]) -> Taxonomy:
        """Build a taxonomy from training labels: {theme id: set of polarities seen}.

        When every id is a default theme, those default themes are used (in the default
        order) with their names, descriptions and polarity flags. Otherwise a theme is
        polar when both polarities were seen for it.
        """
        if seen and set(seen) <= set(DEFAULT_TAXONOMY.ids):
            if set(seen) == set(DEFAULT_TAXONOMY.ids):
                return DEFAULT_TAXONOMY
            return cls([t for t in DEFAULT_TAXONOMY if t.id in seen], name=DEFAULT_TAXONOMY.name)
        themes = [
            Theme(id=i, name=i.replace("_", " ").capitalize(), polar={"positive", "negative"} <= set(p))
            for i, p in sorted(seen.items())
        ]
        return cls(themes, name="from-labels")


DEFAULT_TAXONOMY = Taxonomy(
    [
        Theme(
            "speed",
            "Speed",
            "How fast or slow the service was: response time, time to resolve, waiting, hold "
            "time, callbacks.",
            polar=True,
        ),
        Theme(
            "attitude",
            "Attitude",
            "The service person's manner: friendly, patient, polite, went above and beyond, "
            "followed up; or rude, dismissive, condescending, impatient.",
            polar=True,
        ),
        Theme(
            "skills",
            "Skills",
            "Competence and knowledge: knew what to do, explained clearly, thorough "
            "troubleshooting; or clueless, wrong diagnosis, reading from a script.",
            polar=True,
        ),
        Theme(
            "not_solved",
            "Not solved",
            "The issue was not actually resolved: still broken, came back, only a workaround, "
            "closed without a fix.",
            fixed_polarity="negative",
        ),
        Theme(
            "bounced_around",
            "Bounced around",
            "Passed between people or teams, reassigned, told to contact someone else, had to "
            "repeat information, nobody owned it.",
            fixed_polarity="negative",
        ),
    ],
    name="it-service-desk",
)
