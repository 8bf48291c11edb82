"""Classify datasets too big for one machine on Ray Data (``pip install 'feedback-nlp[ray]'``).

    >>> import ray
    >>> from feedback_nlp.distributed import classify_dataset
    >>> ds = ray.data.read_parquet("s3://bucket/comments/")
    >>> tagged = classify_dataset(ds, model="/models/default", text_column="comment", concurrency=8)
    >>> tagged.write_parquet("s3://bucket/tagged/")

The output has the batch CLI's CSV/Parquet columns: the input's columns, then ``themes``
("theme:polarity;...") and one ``score_<theme>`` per theme. :class:`BatchClassifier` is plain
Python (a pandas DataFrame in, one out, the model loaded once per instance); Ray is imported
only by the functions that need it, so ``import feedback_nlp`` never pulls it in.
See docs/scale-out.md for clusters, GPU actors and Spark.
"""

from __future__ import annotations

from pathlib import Path

from .batch import classify_records
from .data import FORMATS, detect_format
from .results import RESULT_KEYS, flat_arrow_types, flat_columns, flatten_rows
from .errors import InvalidInputError

RAY_FORMATS = ("parquet", "csv")


class BatchClassifier:
    """A callable class for ``Dataset.map_batches(..., batch_format="pandas")``.

    ``model`` is a model folder (each actor loads it once; on a cluster the path must exist
    on every node) or a model already loaded (Ray ships it to each actor by pickling it).
    ``encode_batch_size`` overrides the model's encoder batch (larger suits a GPU).
    """

    def __init__(self, model=None, *, text_column: str = "text", redact: bool = False, runtime: str | None = None,
                 encode_batch_size: int | None = None):
        if hasattr(model, "classify") and hasattr(model, "classes_"):
            self.model = model
        else:
            from .registry import load_model

            self.model = load_model(model, runtime=runtime)
        if encode_batch_size:
            self.model.set_params(batch_size=encode_batch_size)
        self.text_column = text_column
        self.redact = redact
        self.theme_ids = [str(c) for c in self.model.classes_]
        self.added = flat_columns(self.theme_ids)

    def __call__(self, batch):
        import pandas as pd

        if self.text_column not in batch.columns:
            raise InvalidInputError(
                f"no text column {self.text_column!r}; columns are: {', '.join(map(str, batch.columns))} (use --text-column)"
            )
        column = batch[self.text_column].astype(object)
        texts = column.where(column.notna(), None).tolist()
        # The same conversion as the batch CLI's CSV/Parquet writer, on the text alone, so the
        # other columns keep their Arrow types.
        rows = classify_records(self.model, [{self.text_column: t} for t in texts], self.text_column, redact=self.redact) if texts else []
        flat = pd.DataFrame(flatten_rows(rows, self.theme_ids), index=batch.index, columns=[self.text_column, *self.added])
        out = batch.drop(columns=[c for c in (*self.added, *RESULT_KEYS) if c in batch.columns])
        if self.redact:
            out[self.text_column] = flat[self.text_column]
        for name in self.added:
            out[name] = flat[name].astype("float64" if name.startswith("score_") else object)
        return out


def _compute(concurrency):
    from ray.data import ActorPoolStrategy

    if concurrency is None:
        return ActorPoolStrategy(min_size=1, max_size=None)
    if isinstance(concurrency, int):
        return ActorPoolStrategy(size=concurrency)
    low, high = concurrency
    return ActorPoolStrategy(min_size=low, max_size=high)


def classify_dataset(
    ds,
    model=None,
    *,
    text_column: str = "text",
    concurrency: int | tuple[int, int] | None = None,
    batch_size: int = 256,
    num_gpus: float | None = None,
    encode_batch_size: int | None = None,
    redact: bool = False,
    runtime: str | None = None,
):
    """Add ``themes`` and ``score_<theme>`` columns to a Ray Dataset (lazily, like any map).

    ``concurrency``: actors (each with its own model), or ``(min, max)`` to autoscale;
    default: autoscale from one. ``batch_size``: rows per call. ``num_gpus``: per actor (1 puts
    each actor on a GPU, where a larger ``encode_batch_size``, e.g. 512, pays).
    ``model``: a model folder (default: the promoted or shipped one) or a loaded model.
    """
    if model is None or isinstance(model, (str, Path)):
        from .registry import default_model_path

        model = str(Path(model).resolve() if model is not None else default_model_path())
    kwargs = {"num_gpus": num_gpus} if num_gpus else {}
    return ds.map_batches(
        BatchClassifier,
        fn_constructor_kwargs={"model": model, "text_column": text_column, "redact": redact, "runtime": runtime,
                               "encode_batch_size": encode_batch_size},
        batch_format="pandas",
        batch_size=batch_size,
        compute=_compute(concurrency),
        **kwargs,
    )


def _format(path: str) -> str:
    """parquet or csv, from the path's extension or (a local folder) from the files in it."""
    try:
        return detect_format(path)
    except InvalidInputError:
        folder = Path(path)
        if folder.is_dir():
            found = {FORMATS[p.suffix.lower()] for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS}
            if len(found) == 1:
                return found.pop()
        raise InvalidInputError(f"{path}: cannot tell the format; name it .parquet or .csv (a folder of them works too)") from None


def _local_csv_header(path: str) -> list[str] | None:
    import csv

    p = Path(path)
    first = p if p.is_file() else next(iter(sorted(p.rglob("*.csv"))), None) if p.is_dir() else None
    if first is None:
        return None
    with open(first, encoding="utf-8-sig", errors="replace", newline="") as fh:
        return next(csv.reader(fh), None)


ROWS_PER_FILE = 1_000_000


def _theme_ids(model) -> list[str]:
    """The model's theme ids without loading it in the driver (its manifest says them)."""
    if hasattr(model, "classes_"):
        return [str(c) for c in model.classes_]
    from .artifacts import read_manifest
    from .registry import default_model_path

    return [str(c) for c in read_manifest(model if model is not None else default_model_path())["classes"]]


def _output_schema(ds, theme_ids: list[str]):
    """The input's Arrow schema plus the added columns: every output file gets exactly this one,
    even where a batch holds only nulls in a column."""
    import pyarrow as pa

    base = ds.schema()
    base = getattr(base, "base_schema", base)
    types = flat_arrow_types(theme_ids)  # in the order of flat_columns
    fields = [f for f in base if f.name not in (*types, *RESULT_KEYS)]
    return pa.schema(fields + [pa.field(n, t) for n, t in types.items()])


def _write_in_order(tagged, output_path: str, fmt: str, schema, rows_per_file: int = ROWS_PER_FILE) -> list[str]:
    """Write ``tagged`` as part-00000.<fmt>, part-00001.<fmt>, ... in the dataset's row order.

    Ray's own writers run in parallel and do not keep the row order inside a file, so the
    driver writes: it receives the batches in order (``preserve_order``) and streams them out.
    Classifying is the costly part; writing Parquet or CSV keeps up with many actors."""
    import pyarrow.csv as pacsv
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    if "://" in output_path:
        fs, root = pafs.FileSystem.from_uri(output_path)
    else:
        fs, root = pafs.LocalFileSystem(), str(Path(output_path).resolve())
    fs.create_dir(root, recursive=True)
    written: list[str] = []
    sink = writer = None
    in_file = 0

    def close():
        if writer is not None:
            writer.close()
            sink.close()

    def next_part():
        nonlocal sink, writer, in_file
        close()
        name = f"part-{len(written):05d}.{fmt}"
        sink = fs.open_output_stream(f"{root}/{name}")
        writer = pq.ParquetWriter(sink, schema) if fmt == "parquet" else pacsv.CSVWriter(sink, schema)
        written.append(f"{root}/{name}" if "://" not in output_path else f"{output_path.rstrip('/')}/{name}")
        in_file = 0

    try:
        for batch in tagged.iter_batches(batch_format="pyarrow", batch_size=None):
            table = batch.select(schema.names).cast(schema)
            start = 0
            while start < table.num_rows:
                if writer is None or in_file >= rows_per_file:
                    next_part()
                piece = table.slice(start, rows_per_file - in_file)
                writer.write_table(piece)
                in_file += piece.num_rows
                start += piece.num_rows
        if writer is None:  # no rows: still one file with the columns
            next_part()
    finally:
        close()
    return written


def classify_path(
    input_path: str,
    output_path: str,
    *,
    model=None,
    text_column: str = "text",
    address: str | None = None,
    concurrency: int | tuple[int, int] | None = None,
    batch_size: int = 256,
    num_gpus: float | None = None,
    redact: bool = False,
    runtime: str | None = None,
    rows_per_file: int = ROWS_PER_FILE,
) -> list[str]:
    """Read Parquet or CSV (a file, a folder, or a cloud URI), classify on Ray, write a folder
    of Parquet or CSV files (``part-00000`` onwards, ``rows_per_file`` rows each) at
    ``output_path``: every input row once, in input order. Returns the files written."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise InvalidInputError("--ray needs Ray: pip install 'feedback-nlp[ray]'") from None
    in_fmt = _format(input_path)
    try:
        out_fmt = detect_format(output_path)
    except InvalidInputError:
        out_fmt = in_fmt
    for name, fmt in ((input_path, in_fmt), (output_path, out_fmt)):
        if fmt not in RAY_FORMATS:
            raise InvalidInputError(f"{name}: with --ray, use Parquet or CSV (got {fmt})")
    out = Path(output_path)
    if "://" not in output_path and out.exists() and (out.is_file() or any(out.iterdir())):
        raise InvalidInputError(f"{output_path}: already exists; Ray writes a folder of files there: choose a new -o or delete it")
    started = False
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
        started = True
    context = ray.data.DataContext.get_current()
    kept = context.execution_options.preserve_order
    context.execution_options.preserve_order = True  # batches reach the driver in input order
    try:
        if in_fmt == "parquet":
            ds = ray.data.read_parquet(input_path)
        else:
            import pyarrow as pa
            import pyarrow.csv as pacsv

            header = _local_csv_header(input_path)  # read every column as text, as the batch CLI does
            options = {"convert_options": pacsv.ConvertOptions(column_types={h: pa.string() for h in header})} if header else {}
            ds = ray.data.read_csv(input_path, **options)
        columns = ds.schema().names
        if text_column not in columns:
            raise InvalidInputError(f"no text column {text_column!r}; columns are: {', '.join(columns)} (use --text-column)")
        tagged = classify_dataset(
            ds, model, text_column=text_column, concurrency=concurrency, batch_size=batch_size,
            num_gpus=num_gpus, redact=redact, runtime=runtime,
        )
        return _write_in_order(tagged, output_path, out_fmt, _output_schema(ds, _theme_ids(model)), rows_per_file)
    finally:
        context.execution_options.preserve_order = kept
        if started:
            ray.shutdown()
