"""`feedback-nlp serve` (registered through an entry point). Placeholder replaced by the serving work."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
