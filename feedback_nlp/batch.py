"""Stream a file of comments through a model, chunk by chunk.

Every input row gives exactly one output row, in input order. Rows that could not be
read, or whose text was missing or too long, are counted and reported with their row
numbers at the end (and in an optional errors file); they still get an output row.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .data import ERROR_FIELD, Chunk, Writer, columns_of, detect_format, iter_chunks, _clean
from .errors import InvalidInputError
from .text import redact as redact_text

MAX_REPORTED = 1000  # row problems kept in memory for the summary; all go to the errors file


@dataclass
class Summary:
    rows: int = 0
    tagged: Counter = field(default_factory=Counter)  # theme -> rows tagged with it
    empty: int = 0
    truncated: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (row, id, problem)
    problem_count: int = 0

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "tagged": dict(self.tagged),
            "empty": self.empty,
            "truncated": self.truncated,
            "problems": self.problem_count,
        }


def classify_records(model, rows: list[dict], text_column: str = "text", *, redact: bool = False) -> list[dict]:
    """Classify rows in memory: each row gains ``themes`` and ``scores`` (and ``truncated``)."""
    texts = [_clean(row.get(text_column)) for row in rows]
    results = model.classify(texts)
    out = []
    for row, result in zip(rows, results):
        row = dict(row)
        if redact:
            if isinstance(row.get(text_column), str):
                row[text_column] = redact_text(row[text_column])
            for theme in result["themes"]:
                if theme.get("evidence"):
                    theme["evidence"]["text"] = redact_text(theme["evidence"]["text"])
        row.update(result)
        out.append(row)
    return out


def classify_file(
    model,
    input_path: str | Path,
    output_path: str | Path,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    chunk_size: int = 512,
    redact: bool = False,
    errors_path: str | Path | None = None,
    progress: bool = False,
) -> Summary:
    in_fmt = detect_format(input_path)
    out_fmt = detect_format(output_path)
    if str(output_path) != "-" and Path(output_path).resolve() == Path(str(input_path)).resolve():
        raise InvalidInputError("the output file would overwrite the input; choose another -o")
    summary = Summary()
    writer = Writer(output_path, out_fmt, [str(c) for c in model.classes_])
    errors_fh = open(errors_path, "w", encoding="utf-8") if errors_path else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit=" comments", desc="classify", dynamic_ncols=True, mininterval=0.5)
    try:
        for chunk in iter_chunks(input_path, chunk_size, in_fmt):
            if summary.rows == 0:
                _check_columns(chunk, text_column, id_column, input_path)
            _note_problems(chunk, text_column, id_column, model.max_chars, summary, errors_fh)
            results = classify_records(model, chunk.rows, text_column, redact=redact)
            for i, problem in chunk.errors.items():
                results[i][ERROR_FIELD] = problem
            for row in results:
                summary.tagged.update(t["theme"] for t in row["themes"])
            summary.rows += len(results)
            writer.write(results)
            if bar is not None:
                bar.update(len(results))
        if summary.rows == 0:
            writer.write([])
    finally:
        writer.close()
        if errors_fh:
            errors_fh.close()
        if bar is not None:
            bar.close()
    return summary


def _check_columns(chunk: Chunk, text_column: str, id_column: str | None, path) -> None:
    columns = columns_of(chunk)
    for name, what in ((text_column, "text"), (id_column, "id")):
        if name and name not in columns:
            raise InvalidInputError(
                f"{path}: no {what} column {name!r}; columns are: {', '.join(map(str, columns)) or '(none)'}"
                + (f" (use --{what}-column)" if what else "")
            )


def _note_problems(chunk: Chunk, text_column, id_column, max_chars, summary: Summary, errors_fh) -> None:
    for i, row in enumerate(chunk.rows):
        number = chunk.first_row + i
        problems = []
        if i in chunk.errors:
            problems.append(chunk.errors[i])
        text = row.get(text_column)
        if text_column not in row and i not in chunk.errors:
            problems.append(f"no {text_column!r} field")
        text = _clean(text)
        if not text.strip():
            summary.empty += 1
        if len(text) > max_chars:
            summary.truncated += 1
            problems.append(f"text of {len(text):,} characters truncated to {max_chars:,} for the model")
        if "\ufffd" in text:
            problems.append("undecodable bytes replaced")
        if "\x00" in text:
            problems.append("NUL characters replaced")
        if id_column and not _clean(row.get(id_column)).strip():
            problems.append(f"empty id in {id_column!r}")
        for problem in problems:
            summary.problem_count += 1
            row_id = _clean(row.get(id_column)) if id_column else ""
            if len(summary.problems) < MAX_REPORTED:
                summary.problems.append((number, row_id, problem))
            if errors_fh:
                errors_fh.write(json.dumps({"row": number, "id": row_id, "problem": problem}) + "\n")
