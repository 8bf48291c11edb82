"""One base error for the library; every domain error derives from it.

Messages say what is wrong, where (file, row, field) and how to fix it. Only the
edges (CLI, HTTP server) translate these into exit codes or status codes.
"""

from __future__ import annotations


class FeedbackNLPError(Exception):
    """Base class of every error feedback-nlp raises on purpose."""

    exit_code = 1


class InvalidInputError(FeedbackNLPError, ValueError):
    """The data a user gave us cannot be used as it is (missing column, bad label, ...)."""

    exit_code = 2


class ArtifactError(FeedbackNLPError):
    """A model folder is missing, incomplete, altered or of an unknown format."""

    exit_code = 3


class EncoderError(FeedbackNLPError):
    """The sentence encoder cannot be found or loaded."""

    exit_code = 4
