"""How every command reports a library error: one line on stderr and the error's exit code.

Its own module so command plug-ins (training, serve) import it without importing the CLI that
registers them (which made `import training.cli` a circle).
"""

from __future__ import annotations

import functools

import typer

from .errors import FeedbackNLPError


def handle_errors(func):
    """Turn library errors into a one-line message on stderr and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FeedbackNLPError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper
