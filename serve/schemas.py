"""The wire format: request and response bodies, and the flat tags ITSM rules match on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from feedback_nlp.results import tags_for

from .settings import MAX_ITEMS

Id = str | int


Language = Field(None, pattern=r"^[a-z]{2,3}$", examples=["de"], description=(
    "ISO 639-1 code of the comment's language; omit to detect it."))


class Item(BaseModel):
    id: Id | None = Field(None, description="Your record's id (e.g. INC0012345), echoed back.", examples=["INC0012345"])
    text: str = Field(..., description="The survey comment.", examples=["Quick fix but the technician was rude"])
    language: str | None = Language


class ClassifyRequest(BaseModel):
    """Either one comment (`text`) or up to 256 (`items`)."""

    text: str | None = Field(None, description="One comment.", examples=["Quick fix but the technician was rude"])
    items: list[Item] | None = Field(None, min_length=1, max_length=MAX_ITEMS, description=f"1 to {MAX_ITEMS} comments.")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$", examples=["de"], description=(
        "ISO 639-1 code for every comment of the request (an item's own `language` wins); omit to detect."))

    # "Exactly one of text and items", stated in the schema so generated clients get it right.
    model_config = ConfigDict(json_schema_extra={
        "oneOf": [{"required": ["text"], "not": {"required": ["items"]}},
                  {"required": ["items"], "not": {"required": ["text"]}}],
        "examples": [
            {"text": "Quick fix but the technician was rude"},
            {"items": [{"id": "INC0012345", "text": "Still broken after three calls."}]},
        ]})

    @model_validator(mode="after")
    def _one_form(self):
        if (self.text is None) == (self.items is None):
            raise ValueError('give either "text" (one comment) or "items" (a list of {"id", "text"}), not both or neither')
        return self

    def to_items(self) -> list[Item]:
        items = self.items if self.items is not None else [Item(text=self.text)]
        return [item if item.language or not self.language else item.model_copy(update={"language": self.language})
                for item in items]


class ErrorBody(BaseModel):
    code: str
    message: str


class Evidence(BaseModel):
    text: str
    start: int
    end: int


class ThemeHit(BaseModel):
    theme: str
    score: float
    polarity: str | None
    polarity_score: float | None
    evidence: Evidence | None


class Result(BaseModel):
    id: Id | None
    themes: list[ThemeHit]
    scores: dict[str, float]
    tags: list[str] = Field(..., examples=[["feedback_speed_positive", "feedback_attitude_negative"]])
    truncated: bool | None = Field(None, description="Present (true) when the comment was cut to the model's limit.")
    language: str | None = Field(..., examples=["en"], description="ISO 639-1 code of the comment's language (given or detected).")
    language_supported: bool | None = Field(..., description=(
        "false when the model does not cover the language: the comment is not scored (no themes, no scores)."))
    error: ErrorBody | None = Field(None, description=(
        "Present when this one comment could not be classified; the others in the request were."))


class ModelRef(BaseModel):
    name: str
    version: str


class ClassifyResponse(BaseModel):
    model: ModelRef
    request_id: str
    results: list[Result]


class ErrorResponse(BaseModel):
    error: ErrorBody


def encode_results(items: list[Item], results: list[dict]) -> list[dict[str, Any]]:
    """The library's per-comment answers, with the caller's ids and the tags."""
    return [{"id": item.id, **result, "tags": tags_for(result)} for item, result in zip(items, results)]


def classify_pairs(model):
    """The batcher's model call: (text, language or None) pairs -> the model's answers."""
    def run(pairs: list[tuple[str, str | None]]) -> list[dict]:
        texts, codes = [t for t, _ in pairs], [code for _, code in pairs]
        return model.classify(texts) if not any(codes) else model.classify(texts, codes)
    return run
