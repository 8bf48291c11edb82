"""Read and write feedback: CSV, TSV, JSONL, Parquet and Excel, labelled or not.

Unlabelled input is streamed in chunks so memory stays flat on millions of rows.
Undecodable bytes are replaced, never fatal; a row that cannot be read is reported
with its row number and still produces an output row.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInputError
from .labels import normalize_label, short_polarity
from .results import flat_arrow_types, flatten_rows

FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".txt": "csv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "excel", ".xls": "excel",
}  # fmt: skip
ERROR_FIELD = "_error"


def detect_format(path: str | Path) -> str:
    if str(path) == "-":
        return "jsonl"
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in FORMATS:
        return FORMATS[suffixes[-1]]
    raise InvalidInputError(
        f"{path}: unknown file type; use one of {', '.join(sorted(FORMATS))} (or - for JSONL on stdin)"
    )


@dataclass
class Chunk:
    rows: list[dict]
    first_row: int  # 1-based number of the first data row in the input
    errors: dict[int, str] = field(default_factory=dict)  # index in rows -> problem
    notes: dict[int, str] = field(default_factory=dict)  # index in rows -> a fix made while reading


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def repair_strings(value):
    """``value`` with unpaired UTF-16 surrogates (valid in JSON, unwritable as UTF-8) replaced
    by U+FFFD in every string it holds; and whether anything was replaced."""
    if isinstance(value, str):
        fixed = _SURROGATE_RE.sub("\ufffd", value)
        return fixed, fixed != value
    if isinstance(value, dict):
        out, changed = {}, False
        for k, v in value.items():
            k2, c1 = repair_strings(k)
            v2, c2 = repair_strings(v)
            out[k2] = v2
            changed = changed or c1 or c2
        return out, changed
    if isinstance(value, list):
        pairs = [repair_strings(v) for v in value]
        return [v for v, _ in pairs], any(c for _, c in pairs)
    return value, False


def _clean(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value if isinstance(value, str) else str(value)


def iter_chunks(path: str | Path, chunk_size: int = 1000, fmt: str | None = None) -> Iterator[Chunk]:
    """Yield the input's rows in chunks, every row exactly once, in order."""
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        yield from _jsonl_chunks(path, chunk_size)
    elif fmt in ("csv", "tsv"):
        yield from _csv_chunks(path, chunk_size, "\t" if fmt == "tsv" else ",")
    elif fmt == "parquet":
        yield from _parquet_chunks(path, chunk_size)
    elif fmt == "excel":
        yield from _excel_chunks(path, chunk_size)
    else:  # pragma: no cover - detect_format guards this
        raise InvalidInputError(f"unknown format {fmt}")


def _open_text(path) -> io.TextIOBase:
    if str(path) == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"input file not found: {path}")
    if path.suffix.lower() == ".gz":
        import gzip

        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def _jsonl_chunks(path, chunk_size) -> Iterator[Chunk]:
    with _open_text(path) as fh:
        chunk = Chunk([], 1)
        number = 0
        for line in fh:
            if not line.strip():
                continue  # blank lines are not rows
            number += 1
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"a line must be a JSON object, got {type(row).__name__}")
                row, repaired = repair_strings(row)
                if repaired:
                    chunk.notes[len(chunk.rows)] = "unpaired UTF-16 surrogates replaced with U+FFFD"
            except ValueError as exc:
                chunk.errors[len(chunk.rows)] = f"unreadable JSON ({exc})"
                row = {"_raw": line.rstrip("\r\n")[:10_000]}
            chunk.rows.append(row)
            if len(chunk.rows) >= chunk_size:
                yield chunk
                chunk = Chunk([], number + 1)
        if chunk.rows:
            yield chunk


def _csv_chunks(path, chunk_size, delimiter) -> Iterator[Chunk]:
    csv.field_size_limit(1 << 30)
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        header = [h.replace("\x00", "").strip() or f"column_{i + 1}" for i, h in enumerate(header)]
        chunk = Chunk([], 1)
        number = 0
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                number += 1
                chunk.errors[len(chunk.rows)] = f"unreadable CSV ({exc})"
                chunk.rows.append({h: "" for h in header})
                continue
            number += 1
            if any("\x00" in v for v in values):
                chunk.notes[len(chunk.rows)] = "NUL characters replaced"
            row = {h: v.replace("\x00", " ") for h, v in zip(header, values)}
            for h in header[len(values) :]:
                row[h] = ""
            if len(values) > len(header):
                chunk.errors[len(chunk.rows)] = f"{len(values)} fields but the header has {len(header)}; extra fields dropped"
            chunk.rows.append(row)
            if len(chunk.rows) >= chunk_size:
                yield chunk
                chunk = Chunk([], number + 1)
        if chunk.rows:
            yield chunk


def _parquet_chunks(path, chunk_size) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise InvalidInputError(f"input file not found: {path}")
    number = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
        rows = batch.to_pylist()
        yield Chunk(rows, number)
        number += len(rows)


def _excel_chunks(path, chunk_size) -> Iterator[Chunk]:
    import pandas as pd

    if not Path(path).is_file():
        raise InvalidInputError(f"input file not found: {path}")
    frame = pd.read_excel(path, dtype=str, keep_default_na=False)
    rows = frame.to_dict("records")
    for start in range(0, len(rows), chunk_size):
        yield Chunk(rows[start : start + chunk_size], start + 1)


def columns_of(chunk: Chunk) -> list[str]:
    seen: dict[str, None] = {}
    for row in chunk.rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def read_labelled(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = None,
    themes_column: str = "themes",
) -> tuple[list[str], list]:
    """Read a labelled file: texts and labels (theme dicts, or class names with ``label_column``)."""
    texts: list[str] = []
    labels: list = []
    column = label_column or themes_column
    for chunk in iter_chunks(path, chunk_size=10_000):
        if chunk.first_row == 1 and chunk.rows:
            cols = columns_of(chunk)
            for needed in (text_column, column):
                if needed not in cols:
                    raise InvalidInputError(
                        f"{path}: no column {needed!r}; columns: {', '.join(map(str, cols))}"
                    )
        for i, row in enumerate(chunk.rows):
            number = chunk.first_row + i
            if i in chunk.errors:
                raise InvalidInputError(f"{path}: row {number}: {chunk.errors[i]}")
            if text_column not in row:
                raise InvalidInputError(f"{path}: row {number}: no {text_column!r} field")
            texts.append(_clean(row[text_column]))
            value = row.get(column)
            if label_column:
                if value is None or _clean(value).strip() == "":
                    raise InvalidInputError(f"{path}: row {number}: empty label in {label_column!r}")
                labels.append(_clean(value).strip())
            else:
                labels.append(normalize_label(value, where=f"{path}: row {number}: "))
    if not texts:
        raise InvalidInputError(f"{path}: no rows")
    return texts, labels


def read_column(path: str | Path, column: str) -> list[str | None] | None:
    """One optional column of a data file (e.g. ``language``), one value per row; None when absent."""
    values: list[str | None] = []
    found = False
    for chunk in iter_chunks(path, chunk_size=10_000):
        if chunk.first_row == 1 and chunk.rows:
            found = column in columns_of(chunk)
            if not found:
                return None
        for row in chunk.rows:
            value = row.get(column)
            values.append(_clean(value).strip() or None if value is not None else None)
    return values if found else None


def write_labelled(path: str | Path, texts, labels) -> None:
    """Write texts with theme labels as JSONL (``{"text", "themes": {id: pos|neg|null}}``)."""
    with open(path, "w", encoding="utf-8") as fh:
        for text, label in zip(texts, labels):
            themes = {k: short_polarity(v) for k, v in normalize_label(label).items()}
            fh.write(json.dumps({"text": text, "themes": themes}, ensure_ascii=False) + "\n")


# --- writers ---------------------------------------------------------------------------


_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]+)?")


def _as_number(value):
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value):
        return float(value) if "." in value else int(value)
    return value


class Writer:
    """Writes classified rows in the output format, chunk by chunk.

    JSONL, CSV and TSV outputs can be checkpointed: :meth:`sync` makes what was written
    durable and returns its length in bytes; a later Writer made with ``resume_at`` (that
    length) and ``columns`` (the CSV header) cuts the file back to it and appends.
    """

    RESUMABLE = ("jsonl", "csv", "tsv")

    def __init__(self, path: str | Path, fmt: str, theme_ids: list[str], *,
                 resume_at: int | None = None, columns: list[str] | None = None, keep_text: Sequence[str] = (),
                 numbers_from_text: bool = False):
        self.path, self.fmt, self.theme_ids = path, fmt, theme_ids
        # CSV/Excel cells are text; in JSONL a cell like "10" or "7.5" becomes a number (not the
        # comment itself, nor "007" or "1e3", which a person would not have meant as one).
        self.numbers_from_text, self.keep_text = numbers_from_text, set(keep_text)
        self._fh = None
        self._csv = None
        self._parquet = None
        self._schema = None
        self._columns = columns
        if resume_at is not None:
            if fmt not in self.RESUMABLE or str(path) == "-":
                raise InvalidInputError(f"{path}: only {', '.join(self.RESUMABLE)} output files can be resumed")
            with open(path, "r+b") as fh:  # drop whatever was written after the checkpoint
                fh.truncate(resume_at)
            self._fh = open(path, "a", encoding="utf-8", newline="" if fmt != "jsonl" else None)
            if fmt != "jsonl" and resume_at > 0:
                self._csv = self._dict_writer(columns or [])

    def _flat(self, rows: list[dict]) -> list[dict]:
        return flatten_rows(rows, self.theme_ids)

    def _dict_writer(self, columns: list[str]):
        self._columns = columns
        return csv.DictWriter(
            self._fh, fieldnames=columns, delimiter="\t" if self.fmt == "tsv" else ",", extrasaction="ignore"
        )

    def write(self, rows: list[dict]) -> None:
        if self.fmt == "jsonl":
            if self._fh is None:
                self._fh = sys.stdout if str(self.path) == "-" else open(self.path, "w", encoding="utf-8")
            if self.numbers_from_text:
                rows = [{k: _as_number(v) if k not in self.keep_text else v for k, v in r.items()} for r in rows]
            self._fh.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
        elif self.fmt in ("csv", "tsv"):
            flat = self._flat(rows)
            if self._csv is None:
                if self._fh is None:
                    self._fh = open(self.path, "w", encoding="utf-8", newline="")
                self._csv = self._dict_writer(list(flat[0]) if flat else [])
                self._csv.writeheader()
            self._csv.writerows(flat)
        elif self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            flat = self._flat(rows)
            if self._parquet is None:
                table = pa.Table.from_pylist(flat)
                # The added columns' types are fixed, whatever the first chunk holds (all-null scores
                # when its comments were in an unsupported language).
                types = flat_arrow_types(self.theme_ids)
                fixed = [pa.field(f.name, types[f.name]) if f.name in types else f for f in table.schema]
                self._schema = pa.schema(fixed)
                table = table.cast(self._schema)
                self._parquet = pq.ParquetWriter(self.path, self._schema)
            else:
                table = pa.Table.from_pylist(flat, schema=self._schema)
            self._parquet.write_table(table)
        elif self.fmt == "excel":
            raise InvalidInputError("Excel output is not supported; write .csv, .jsonl or .parquet")

    @property
    def columns(self) -> list[str] | None:
        """The CSV/TSV header once written (needed to resume)."""
        return self._columns

    def sync(self) -> int:
        """Flush and fsync what was written; return the output's length in bytes."""
        if self._fh is None or self._fh is sys.stdout:
            return 0
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return os.fstat(self._fh.fileno()).st_size

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._fh is not None and self._fh is not sys.stdout:
            self._fh.close()
        elif self._fh is sys.stdout:
            sys.stdout.flush()
