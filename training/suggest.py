"""Active learning: which unlabelled comments are most worth labelling next.

1. Uncertainty. For each theme, how close the score is to that theme's threshold,
   scaled so 0 is "at the threshold" and 1 is "as far as it can be" (0 or 1); a
   comment's margin is its smallest over themes, its uncertainty ``1 - margin``.
   Single-label models use the gap between the top two class probabilities.
2. Diversity. From the most uncertain ``pool_factor * n`` comments (exact duplicates
   removed), pick greedily the comment farthest (cosine distance on the model's own
   embeddings) from those already picked, starting from the most uncertain one
   (k-center greedy), so the n are not near-duplicates of each other.

Exports carry the model's suggestions pre-filled: our JSONL (directly trainable once
corrected), Label Studio tasks with ``predictions``, or Argilla-style records with
``suggestions``. :func:`import_labels` reads annotated Label Studio and Argilla
exports back into training JSONL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from feedback_nlp.data import iter_chunks
from feedback_nlp.errors import InvalidInputError
from feedback_nlp.labels import normalize_label, parse_polarity, parse_theme_string, short_polarity
from feedback_nlp.text import normalize

FORMATS = ("jsonl", "label-studio", "argilla")
QUESTION = "themes"  # the Label Studio control / Argilla question holding the themes
FIELD = "text"  # the Label Studio object / Argilla field holding the comment


@dataclass
class Suggestion:
    row: int  # 1-based row in the unlabelled file
    text: str
    uncertainty: float
    scores: dict[str, float]
    themes: dict[str, str | None]  # the model's suggestion, {theme: "pos" | "neg" | None}
    extra: dict  # the input row's other fields


def _clean(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


def uncertainty(scores: np.ndarray, thresholds: np.ndarray, single: bool = False) -> np.ndarray:
    """1 at a theme's threshold, falling to 0 at the far end of the score range."""
    scores = np.asarray(scores, dtype=np.float64)
    if single:
        top2 = -np.sort(-scores, axis=1)[:, :2] if scores.shape[1] > 1 else np.c_[scores, np.zeros(len(scores))]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    t = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-6, 1 - 1e-6)
    room = np.where(scores >= t, 1 - t, t)
    margin = np.abs(scores - t) / room
    return 1.0 - np.clip(margin.min(axis=1), 0, 1)


def max_min_select(vectors: np.ndarray, n: int, first: int = 0) -> list[int]:
    """Greedy k-center: indices of ``n`` rows, each the farthest (cosine) from those chosen."""
    m = len(vectors)
    if m == 0 or n <= 0:
        return []
    V = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    V = V / np.where(norms == 0, 1, norms)
    chosen = [first]
    nearest = 1 - V @ V[first]  # distance of every row to its nearest chosen row
    nearest[first] = -np.inf
    while len(chosen) < min(n, m):
        nxt = int(np.argmax(nearest))  # ties -> lowest index, i.e. the more uncertain one
        chosen.append(nxt)
        nearest = np.minimum(nearest, 1 - V @ V[nxt])
        nearest[chosen] = -np.inf
    return chosen


def _read_unlabelled(path, text_column: str) -> tuple[list[int], list[str], list[dict]]:
    rows, texts, extras = [], [], []
    seen: set[str] = set()
    for chunk in iter_chunks(path, chunk_size=10_000):
        for i, row in enumerate(chunk.rows):
            if i in chunk.errors:
                continue
            if chunk.first_row == 1 and i == 0 and text_column not in row:
                raise InvalidInputError(f"{path}: no column {text_column!r}; columns: {', '.join(map(str, row))}")
            text = _clean(row.get(text_column))
            key = normalize(text).lower()
            if not key or key in seen:
                continue  # empty texts and exact duplicates are never worth labelling twice
            seen.add(key)
            rows.append(chunk.first_row + i)
            texts.append(text)
            extras.append({k: v for k, v in row.items() if k not in (text_column, "themes")})
    return rows, texts, extras


def suggest(model, texts, n: int = 50, *, pool_factor: int = 10, batch_size: int = 2048,
            rows: list[int] | None = None, extras: list[dict] | None = None) -> list[Suggestion]:
    """The ``n`` comments most worth labelling next, most uncertain first."""
    if n < 1:
        raise InvalidInputError("n must be at least 1")
    texts = list(texts)
    if not texts:
        raise InvalidInputError("no comments to choose from")
    single = model.mode_ == "single"
    scores = np.vstack([model.predict_proba(texts[s : s + batch_size]) for s in range(0, len(texts), batch_size)])
    unc = uncertainty(scores, model.thresholds_, single=single)
    order = np.argsort(-unc, kind="stable")
    pool = order[: max(n, pool_factor * n)]
    vectors = model.encoder_.encode([texts[i] for i in pool], batch_size=getattr(model, "batch_size", 64))
    picked = pool[max_min_select(vectors, n)]
    picked = picked[np.argsort(-unc[picked], kind="stable")]
    results = model.classify([texts[i] for i in picked])
    out = []
    for i, result in zip(picked, results):
        themes = {t["theme"]: short_polarity(t.get("polarity")) for t in result["themes"]}
        out.append(Suggestion(
            row=rows[i] if rows else int(i) + 1, text=texts[i], uncertainty=round(float(unc[i]), 4),
            scores=result["scores"], themes=themes, extra=extras[i] if extras else {},
        ))
    return out


def suggest_file(model, path, n: int = 50, *, text_column: str = "text", pool_factor: int = 10) -> list[Suggestion]:
    rows, texts, extras = _read_unlabelled(path, text_column)
    if not texts:
        raise InvalidInputError(f"{path}: no non-empty comments")
    return suggest(model, texts, n, pool_factor=pool_factor, rows=rows, extras=extras)


# --- export --------------------------------------------------------------------------


def theme_choices(taxonomy) -> list[str]:
    """Annotation choices: ``theme:positive`` / ``theme:negative`` for polar themes, the id otherwise."""
    out = []
    for theme in taxonomy:
        out += [f"{theme.id}:positive", f"{theme.id}:negative"] if theme.polar else [theme.id]
    return out


def _choices_of(themes: dict) -> list[str]:
    return [f"{t}:{parse_polarity(p)}" if p in ("pos", "neg") else t for t, p in themes.items()]


def label_studio_config(taxonomy) -> str:
    """A Label Studio labelling interface matching :func:`to_label_studio`."""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in theme_choices(taxonomy))
    return (
        "<View>\n"
        f'  <Text name="{FIELD}" value="${FIELD}"/>\n'
        f'  <Choices name="{QUESTION}" toName="{FIELD}" choice="multiple" showInLine="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def _model_version(model) -> str:
    manifest = getattr(model, "manifest_", None) or {}
    return " ".join(str(manifest[k]) for k in ("name", "version") if manifest.get(k)) or "feedback-nlp"


def to_label_studio(suggestions: list[Suggestion], model) -> list[dict]:
    """Label Studio tasks (``data`` + ``predictions``) to import into a project using :func:`label_studio_config`."""
    version = _model_version(model)
    tasks = []
    for s in suggestions:
        tasks.append({
            "data": {FIELD: s.text, "row": s.row, "uncertainty": s.uncertainty, **_jsonable(s.extra)},
            "predictions": [{
                "model_version": version,
                "score": round(1 - s.uncertainty, 4),
                "result": [{
                    "from_name": QUESTION, "to_name": FIELD, "type": "choices",
                    "value": {"choices": _choices_of(s.themes)},
                }],
            }],
        })
    return tasks


def to_argilla(suggestions: list[Suggestion], model) -> dict:
    """Our Argilla-style file: dataset settings plus records with ``suggestions`` and empty ``responses``.

    ``settings`` names one text field and one multi-label question whose labels are
    :func:`theme_choices`; each record's suggestion holds the model's choices with their
    scores. Annotators' answers go in ``responses`` as
    ``{"question_name": "themes", "value": [...], "status": "submitted"}``.
    """
    version = _model_version(model)
    ids = [str(c) for c in model.classes_]
    records = []
    for s in suggestions:
        choices = _choices_of(s.themes)
        records.append({
            "id": str(s.row),
            "fields": {FIELD: s.text},
            "metadata": {"row": s.row, "uncertainty": s.uncertainty, **_jsonable(s.extra)},
            "suggestions": [{
                "question_name": QUESTION, "value": choices, "agent": version,
                "score": [round(float(s.scores.get(c.partition(":")[0], 0.0)), 4) for c in choices],
            }],
            "responses": [],
        })
    return {
        "settings": {
            "fields": [{"name": FIELD, "type": "text"}],
            "questions": [{"name": QUESTION, "type": "multi_label_selection", "labels": theme_choices(model.taxonomy_)
                           if model.mode_ == "multi" else ids}],
        },
        "records": records,
    }


def _jsonable(extra: dict) -> dict:
    return json.loads(json.dumps(extra, default=str))


def write_suggestions(suggestions: list[Suggestion], model, path, fmt: str = "jsonl") -> list[Path]:
    """Write the suggestions; returns the files written (Label Studio also gets its labelling config)."""
    path = Path(path)
    if fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            for s in suggestions:
                row = {**_jsonable(s.extra), "row": s.row, "text": s.text, "themes": s.themes,
                       "uncertainty": s.uncertainty, "scores": s.scores}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return [path]
    if fmt == "label-studio":
        path.write_text(json.dumps(to_label_studio(suggestions, model), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        config = path.with_name(path.stem + ".label_config.xml")
        config.write_text(label_studio_config(model.taxonomy_), encoding="utf-8")
        return [path, config]
    if fmt == "argilla":
        path.write_text(json.dumps(to_argilla(suggestions, model), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return [path]
    raise InvalidInputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


# --- import --------------------------------------------------------------------------


def _load_json(path) -> object:
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"input file not found: {path}")
    raw = path.read_text(encoding="utf-8-sig")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        try:  # JSON lines
            return [json.loads(line) for line in raw.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}: neither JSON nor JSON lines ({exc})") from None


def _themes_from_choices(choices, where: str) -> dict:
    if isinstance(choices, str):
        choices = [choices]
    themes: dict = {}
    for choice in choices or []:
        themes.update(parse_theme_string(str(choice), where=where))
    return {t: short_polarity(p) for t, p in themes.items()}


def _from_label_studio(tasks, path) -> tuple[list[str], list[dict], int]:
    if isinstance(tasks, dict):
        tasks = [tasks]
    texts, labels, skipped = [], [], 0
    for i, task in enumerate(tasks):
        where = f"{path}: task {i + 1}: "
        if not isinstance(task, dict):
            raise InvalidInputError(f"{where}not a JSON object")
        if "data" in task:  # the full JSON export
            data = task["data"]
            done = [a for a in task.get("annotations") or task.get("completions") or [] if not a.get("was_cancelled")]
            if not done:
                skipped += 1
                continue
            result = done[-1].get("result") or []
            choices = [c for r in result if r.get("from_name") == QUESTION or r.get("type") == "choices"
                       for c in (r.get("value") or {}).get("choices", [])]
        else:  # JSON-MIN export: the data fields and each control's answer side by side
            data = task
            if QUESTION not in task:
                skipped += 1
                continue
            answer = task[QUESTION]
            choices = answer.get("choices", []) if isinstance(answer, dict) else answer
        if FIELD not in data:
            raise InvalidInputError(f"{where}no {FIELD!r} in the task data; fields: {', '.join(map(str, data))}")
        texts.append(_clean(data[FIELD]))
        labels.append(_themes_from_choices(choices, where))
    return texts, labels, skipped


def _from_argilla(data, path) -> tuple[list[str], list[dict], int]:
    records = data.get("records") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise InvalidInputError(f"{path}: expected a list of records or an object with 'records'")
    texts, labels, skipped = [], [], 0
    for i, rec in enumerate(records):
        where = f"{path}: record {i + 1}: "
        if not isinstance(rec, dict):
            raise InvalidInputError(f"{where}not a JSON object")
        fields = rec.get("fields") if isinstance(rec.get("fields"), dict) else rec
        if FIELD not in fields:
            raise InvalidInputError(f"{where}no {FIELD!r} field")
        value = None
        responses = rec.get("responses")
        if isinstance(responses, list):  # nested: [{"question_name", "value", "status"}]
            submitted = [r for r in responses if r.get("question_name", QUESTION) == QUESTION
                         and r.get("status", "submitted") == "submitted"]
            if submitted:
                value = submitted[0].get("value")
        elif isinstance(responses, dict):  # {"themes": [{"value", "user_id"}], ...}
            answers = responses.get(QUESTION) or []
            if answers:
                value = answers[0].get("value") if isinstance(answers[0], dict) else answers[0]
        if value is None and f"{QUESTION}.responses" in rec:  # flat export: "themes.responses": [[...], ...]
            statuses = rec.get(f"{QUESTION}.responses.status") or []
            for j, answer in enumerate(rec.get(f"{QUESTION}.responses") or []):
                if j >= len(statuses) or statuses[j] == "submitted":
                    value = answer
                    break
        if value is None:
            skipped += 1
            continue
        texts.append(_clean(fields[FIELD]))
        labels.append(_themes_from_choices(value, where))
    return texts, labels, skipped


def import_labels(path, fmt: str) -> tuple[list[str], list[dict], int]:
    """Read an annotated Label Studio or Argilla export: (texts, theme labels, rows skipped as unannotated)."""
    data = _load_json(path)
    if fmt == "label-studio":
        texts, labels, skipped = _from_label_studio(data, path)
    elif fmt == "argilla":
        texts, labels, skipped = _from_argilla(data, path)
    else:
        raise InvalidInputError(f"unknown format {fmt!r}; use label-studio or argilla")
    for label in labels:
        normalize_label(label)  # fail early on a polarity we cannot read
    return texts, labels, skipped
