"""Stream a file of comments through a model, chunk by chunk.

Every input row gives exactly one output row, in input order. Rows that could not be
read, whose text was missing or too long, or whose id was empty or repeated are counted
and reported with their row numbers at the end (and in an optional errors file); they
still get an output row.

JSONL, CSV and TSV outputs are checkpointed after every chunk in ``OUTPUT.progress.json``
(the rows done and the output's length, fsync'd), so a killed run can be resumed: the
output is cut back to the last checkpoint and the rows already done are skipped. The
checkpoint is removed when a run completes. Parquet output cannot be resumed: a Parquet
file is unreadable until its footer is written at the very end.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import HEAD_ARRAYS
from .data import ERROR_FIELD, Chunk, Writer, columns_of, detect_format, iter_chunks, _clean
from .errors import InvalidInputError
from .files import write_atomic
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
    resumed: int = 0  # rows already done by an earlier, interrupted run

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "tagged": dict(self.tagged),
            "empty": self.empty,
            "truncated": self.truncated,
            "problems": self.problem_count,
            "resumed": self.resumed,
        }


class SeenIds:
    """The ids seen so far, each kept as a 64-bit hash with the row it was first seen at.

    Recent ids sit in a dict; from time to time they move into two sorted numpy arrays
    (16 bytes an id), so ten million ids take a few hundred MB at most rather than the
    gigabytes a set of strings can. Two different ids with the same hash would be reported as a
    duplicate: odds of about n**2 / 2**65, 1 in 3,700 for 100 million ids.
    """

    def __init__(self, spill: int = 1 << 18):
        self.spill = spill
        self._recent: dict[int, int] = {}
        self._keys = np.empty(0, np.uint64)
        self._rows = np.empty(0, np.int64)

    def first_row(self, value: str, row: int) -> int | None:
        """Record ``value`` at ``row``; return the row it was first seen at, if it was seen before."""
        key = int.from_bytes(hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        first = self._recent.get(key)
        if first is not None:
            return first
        if len(self._keys):
            i = int(np.searchsorted(self._keys, np.uint64(key)))
            if i < len(self._keys) and int(self._keys[i]) == key:
                return int(self._rows[i])
        self._recent[key] = row
        # Spilling when the dict reaches 1/8 of the arrays keeps the total copying linear.
        if len(self._recent) >= max(self.spill, len(self._keys) // 8):
            keys = np.fromiter(self._recent.keys(), np.uint64, len(self._recent))
            rows = np.fromiter(self._recent.values(), np.int64, len(self._recent))
            order = np.argsort(keys)
            at = np.searchsorted(self._keys, keys[order])
            self._keys = np.insert(self._keys, at, keys[order])
            self._rows = np.insert(self._rows, at, rows[order])
            self._recent.clear()
        return None

    def __len__(self) -> int:
        return len(self._recent) + len(self._keys)


def count_rows(path: str | Path, fmt: str) -> int | None:
    """How many rows a file holds, when that is cheap to know (a line count; Parquet's footer);
    None for stdin and Excel. A CSV row with line breaks inside a quoted cell is counted as it
    is read, so the total is read with the csv module too."""
    if str(path) == "-":
        return None
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if fmt == "jsonl":
            with open(path, "rb") as fh:
                return sum(1 for line in fh if line.strip())
        if fmt in ("csv", "tsv"):
            import csv

            csv.field_size_limit(1 << 30)
            with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
                return max(0, sum(1 for _ in csv.reader(fh, delimiter="\t" if fmt == "tsv" else ",")) - 1)
    except OSError:
        return None
    return None


class Progress:
    """Rows done, with total, percent, rate and time left where the total is known: a bar in a
    terminal, a log line every ``every_s`` seconds on stderr otherwise (piped, in a job log)."""

    def __init__(self, total: int | None, *, initial: int = 0, every_s: float | None = None, stream=None):
        self.total, self.done, self.stream = total, initial, stream or sys.stderr
        self.every_s = every_s if every_s is not None else float(os.environ.get("FEEDBACK_NLP_PROGRESS_EVERY_S", 10))
        self.started = self.last = time.monotonic()
        self.initial = initial
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit=" comments", desc="classify", dynamic_ncols=True,
                             mininterval=0.5, file=self.stream)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-9, (now or time.monotonic()) - self.started)
        rate = (self.done - self.initial) / elapsed
        text = f"classify: {self.done:,}"
        if self.total:
            text += f" of {self.total:,} rows ({100 * self.done / self.total:.0f}%)"
        else:
            text += " rows"
        text += f", {rate:,.0f} rows/s"
        if self.total and rate > 0 and self.done < self.total:
            left = (self.total - self.done) / rate
            text += f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.done > self.initial:
            self.stream.write(self.line() + "\n")
            self.stream.flush()


def checkpoint_path(output_path: str | Path) -> Path:
    """Where a run writing ``output_path`` keeps its checkpoint."""
    return Path(f"{output_path}.progress.json")


def classify_records(model, rows: list[dict], text_column: str = "text", *, redact: bool = False,
                     language: str | None = None, language_column: str | None = None) -> list[dict]:
    """Classify rows in memory: each row gains ``themes``, ``scores``, ``language`` and
    ``language_supported`` (and ``truncated``). ``language``: one code for every row;
    ``language_column``: a column with each row's code (empty: detected); default: detected."""
    texts = [_clean(row.get(text_column)) for row in rows]
    languages = language
    if language_column is not None:
        languages = [(_clean(row.get(language_column)).strip().lower() or language) for row in rows]
    # Models that only take texts (wrappers, older plug-ins) still work when no language is given.
    results = model.classify(texts) if languages is None else model.classify(texts, languages)
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
    resume: bool = False,
    language: str | None = None,
    language_column: str | None = None,
) -> Summary:
    """Classify every row of ``input_path`` into ``output_path`` (format from the extension).

    With ``resume=True`` a run that was interrupted (killed, out of memory, Ctrl-C) goes on
    from its last checkpoint with the same arguments; without a checkpoint it starts from
    the beginning. The summary then covers the whole file.
    """
    in_fmt = detect_format(input_path)
    out_fmt = detect_format(output_path)
    if str(output_path) != "-" and Path(output_path).resolve() == Path(str(input_path)).resolve():
        raise InvalidInputError("the output file would overwrite the input; choose another -o")
    # stdin cannot be read again, so a run from it keeps no checkpoint
    checkpointed = str(output_path) != "-" and str(input_path) != "-" and out_fmt in Writer.RESUMABLE
    if resume and str(input_path) == "-":
        raise InvalidInputError("--resume needs an input file, not stdin")
    if resume and not checkpointed:
        raise InvalidInputError(
            f"{output_path}: --resume needs a .jsonl, .csv or .tsv output file (a Parquet file is unreadable "
            "until it is complete); write JSONL or CSV and convert afterwards, or run without --resume"
        )
    theme_ids = [str(c) for c in model.classes_]
    progress_path = checkpoint_path(output_path) if checkpointed else None
    fingerprint = _fingerprint(model, input_path, text_column, id_column, redact, errors_path) if checkpointed else {}
    state = _read_checkpoint(progress_path, fingerprint, output_path, errors_path) if resume else None
    summary = Summary()
    skip = 0
    if state:
        skip = summary.resumed = state["rows"]
        _restore(summary, state["summary"])
        writer = Writer(output_path, out_fmt, theme_ids, resume_at=state["output_bytes"], columns=state["columns"],
                        keep_text=(text_column, id_column or text_column), numbers_from_text=in_fmt in ("csv", "tsv", "excel"))
        errors_fh = _reopen(errors_path, state["errors_bytes"]) if errors_path else None
    else:
        if progress_path is not None:
            progress_path.unlink(missing_ok=True)
        writer = Writer(output_path, out_fmt, theme_ids, keep_text=(text_column, id_column or text_column),
                        numbers_from_text=in_fmt in ("csv", "tsv", "excel"))
        errors_fh = open(errors_path, "w", encoding="utf-8") if errors_path else None
    seen = SeenIds() if id_column else None
    bar = Progress(count_rows(input_path, in_fmt), initial=skip) if progress else None
    completed = False
    try:
        first = True
        for chunk in iter_chunks(input_path, chunk_size, in_fmt):
            if first:
                _check_columns(chunk, text_column, id_column, input_path)
                first = False
            if skip:
                chunk, skip = _skip(chunk, skip, id_column, seen)
                if chunk is None:
                    continue
            _note_problems(chunk, text_column, id_column, model.max_chars, summary, errors_fh, seen)
            results = classify_records(model, chunk.rows, text_column, redact=redact, language=language,
                                       language_column=language_column)
            for i, problem in chunk.errors.items():
                results[i][ERROR_FIELD] = problem
            for row in results:
                summary.tagged.update(t["theme"] for t in row["themes"])
            summary.rows += len(results)
            writer.write(results)
            if progress_path is not None:
                _write_checkpoint(progress_path, fingerprint, summary, writer, errors_fh)
            if bar is not None:
                bar.update(len(results))
        if skip:
            raise InvalidInputError(
                f"{input_path}: has fewer rows than the checkpoint in {progress_path} says were done; "
                "run without --resume to start over"
            )
        if summary.rows == 0:
            writer.write([])
        completed = True
    finally:
        writer.close()
        if errors_fh:
            errors_fh.close()
        if bar is not None:
            bar.close()
    if completed and progress_path is not None:
        progress_path.unlink(missing_ok=True)
    return summary


# --- checkpoints -------------------------------------------------------------------------

CHECKPOINT_VERSION = 1


def _fingerprint(model, input_path, text_column, id_column, redact, errors_path) -> dict:
    """What must not change between a run and its resumption."""
    path = Path(input_path)
    head = hashlib.sha256()
    with open(path, "rb") as fh:
        head.update(fh.read(1 << 20))
    manifest = getattr(model, "manifest_", None) or {}
    return {
        "input": str(path.resolve()),
        "input_bytes": path.stat().st_size,
        "input_head_sha256": head.hexdigest(),
        "text_column": text_column,
        "id_column": id_column,
        "redact": redact,
        "errors_file": str(Path(errors_path).resolve()) if errors_path else None,
        "model": {"classes": [str(c) for c in model.classes_], "heads": (manifest.get("files") or {}).get(HEAD_ARRAYS)},
    }


def _write_checkpoint(path: Path, fingerprint: dict, summary: Summary, writer: Writer, errors_fh) -> None:
    # Output first, checkpoint second: a kill in between leaves rows past the checkpoint,
    # which a resumed run cuts off and writes again.
    state = {
        "version": CHECKPOINT_VERSION,
        **fingerprint,
        "rows": summary.rows,
        "output_bytes": writer.sync(),
        "errors_bytes": _sync(errors_fh) if errors_fh else None,
        "columns": writer.columns,
        "summary": {
            "tagged": dict(summary.tagged), "empty": summary.empty, "truncated": summary.truncated,
            "problem_count": summary.problem_count, "problems": summary.problems,
        },
    }
    write_atomic(path, lambda fh: fh.write(json.dumps(state).encode("utf-8")), durable=True)


def _sync(fh) -> int:
    fh.flush()
    os.fsync(fh.fileno())
    return os.fstat(fh.fileno()).st_size


def _read_checkpoint(path: Path, fingerprint: dict, output_path, errors_path) -> dict | None:
    """The checkpoint to resume from, or None when there is none (start from the beginning)."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: unreadable checkpoint ({exc}); delete it and run without --resume") from None
    if state.get("version") != CHECKPOINT_VERSION:
        raise InvalidInputError(f"{path}: checkpoint from another feedback-nlp version; run without --resume")
    changed = [key for key, value in fingerprint.items() if state.get(key) != value]
    if changed:
        raise InvalidInputError(
            f"{path}: the run being resumed differs in {', '.join(changed)}; resume with the same input, "
            "model and options, or run without --resume to start over"
        )
    for name, size in ((output_path, state["output_bytes"]), (errors_path, state["errors_bytes"])):
        if name and (not Path(name).is_file() or Path(name).stat().st_size < size):
            raise InvalidInputError(
                f"{name}: missing or shorter than the checkpoint in {path} says; run without --resume to start over"
            )
    return state


def _restore(summary: Summary, saved: dict) -> None:
    summary.rows = summary.resumed
    summary.tagged.update(saved["tagged"])
    summary.empty = saved["empty"]
    summary.truncated = saved["truncated"]
    summary.problem_count = saved["problem_count"]
    summary.problems = [tuple(p) for p in saved["problems"]]


def _reopen(path, size: int):
    with open(path, "r+b") as fh:
        fh.truncate(size)
    return open(path, "a", encoding="utf-8")


def _skip(chunk: Chunk, skip: int, id_column, seen: SeenIds | None) -> tuple[Chunk | None, int]:
    """Drop the rows a resumed run already did (remembering their ids); return the rest."""
    take = min(skip, len(chunk.rows))
    if seen is not None:
        for i, row in enumerate(chunk.rows[:take]):
            if row_id := _clean(row.get(id_column)).strip():
                seen.first_row(row_id, chunk.first_row + i)
    if take == len(chunk.rows):
        return None, skip - take
    rest = Chunk(
        chunk.rows[take:], chunk.first_row + take,
        {i - take: e for i, e in chunk.errors.items() if i >= take},
        {i - take: n for i, n in chunk.notes.items() if i >= take},
    )
    return rest, 0


def _check_columns(chunk: Chunk, text_column: str, id_column: str | None, path) -> None:
    columns = columns_of(chunk)
    for name, what in ((text_column, "text"), (id_column, "id")):
        if name and name not in columns:
            raise InvalidInputError(
                f"{path}: no {what} column {name!r}; columns are: {', '.join(map(str, columns)) or '(none)'}"
                + (f" (use --{what}-column)" if what else "")
            )


def _note_problems(chunk: Chunk, text_column, id_column, max_chars, summary: Summary, errors_fh,
                   seen: SeenIds | None = None) -> None:
    for i, row in enumerate(chunk.rows):
        number = chunk.first_row + i
        problems = []
        if i in chunk.errors:
            problems.append(chunk.errors[i])
        if i in chunk.notes:
            problems.append(chunk.notes[i])
        text = row.get(text_column)
        if text_column not in row and i not in chunk.errors:
            problems.append(f"no {text_column!r} field")
        text = _clean(text)
        if not text.strip():
            summary.empty += 1
            if text_column in row:  # README promises rows without text by number, in --errors-file too
                problems.append("empty text (no themes)")
        if len(text) > max_chars:
            summary.truncated += 1
            problems.append(f"text of {len(text):,} characters truncated to {max_chars:,} for the model")
        if "\ufffd" in text and i not in chunk.notes:
            problems.append("undecodable bytes replaced")
        if "\x00" in text:
            problems.append("NUL characters replaced")
        if id_column:
            row_id = _clean(row.get(id_column)).strip()
            if not row_id:
                problems.append(f"empty id in {id_column!r}")
            elif seen is not None and (first := seen.first_row(row_id, number)) is not None:
                problems.append(f"duplicate id {row_id!r} (first at row {first})")
        for problem in problems:
            summary.problem_count += 1
            row_id = _clean(row.get(id_column)) if id_column else ""
            if len(summary.problems) < MAX_REPORTED:
                summary.problems.append((number, row_id, problem))
            if errors_fh:
                errors_fh.write(json.dumps({"row": number, "id": row_id, "problem": problem}) + "\n")
