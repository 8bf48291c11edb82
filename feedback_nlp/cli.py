"""The `feedback-nlp` command line. A shell: decode arguments, call the library, report.

The one edge of the library that knows the whole project: it registers its own commands,
then those of the project's ``training`` (train, evaluate, ...) and ``serve`` (serve)
packages, then any third-party plugin of the entry-point group ``feedback_nlp.commands``.
No library module imports this one.
"""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .cli_errors import handle_errors

app = typer.Typer(
    name="feedback-nlp",
    help="Tag IT service-desk survey comments with themes, polarity and evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"feedback-nlp {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
):
    """Tag IT service-desk survey comments with themes, polarity and evidence."""


@app.command()
@handle_errors
def classify(
    input: str = typer.Argument(..., help="CSV, TSV, JSONL, Parquet or Excel file; - for JSONL on stdin."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output file (format from its extension); default: INPUT.tagged.EXT, or stdout for -."),
    text_column: str = typer.Option("text", help="Column holding the comment."),
    id_column: Optional[str] = typer.Option(None, help="Column identifying each row (for error reports)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder (default: the promoted or shipped model)."),
    redact: bool = typer.Option(False, help="Redact e-mails, phone numbers, URLs and ID numbers in the output text and evidence."),
    errors_file: Optional[Path] = typer.Option(None, help="Write one JSON line per row problem here."),
    chunk_size: int = typer.Option(512, min=1, help="Rows read, encoded and written at a time."),
    progress: bool = typer.Option(True, help="Progress on stderr: a bar in a terminal, else a line every 10 s (FEEDBACK_NLP_PROGRESS_EVERY_S)."),
    runtime: Optional[str] = typer.Option(None, help="Encoder runtime: torch or onnx (needs `feedback-nlp export DIR --onnx`); default: the model folder's choice, else torch."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its checkpoint (OUTPUT.progress.json; JSONL/CSV/TSV output)."),
    use_ray: bool = typer.Option(False, "--ray", help="Run on Ray Data (Parquet/CSV file or folder in, a folder of files out); needs the [ray] extra."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster to use with --ray, e.g. ray://head:10001 or auto (default: a local Ray)."),
    language: Optional[str] = typer.Option(None, help="ISO 639-1 code of every comment's language (e.g. de); default: detected per comment."),
    language_column: Optional[str] = typer.Option(None, help="Column holding each row's language code (empty cells: detected)."),
):
    """Tag every comment in a file; every input row gives one output row."""
    from .registry import load_model
    from .batch import classify_file

    if output is None:
        if input == "-":
            output = "-"
        else:
            path = Path(input)
            output = str(path.with_name(f"{path.stem}.tagged{path.suffix if path.suffix.lower() not in ('.xlsx', '.xls') else '.csv'}"))
    if use_ray or ray_address:
        from .distributed import classify_path
        from .errors import InvalidInputError

        if resume or errors_file or input == "-":
            raise InvalidInputError("--ray reads files (not stdin) and has no --resume or --errors-file; Ray retries failed tasks itself")
        files = classify_path(input, output, model=model, text_column=text_column, address=ray_address,
                              batch_size=chunk_size, redact=redact, runtime=runtime)
        typer.echo(f"-> {output} ({len(files)} files, on Ray)", err=True)
        return
    loaded = load_model(model, runtime=runtime)
    summary = classify_file(
        loaded, input, output, text_column=text_column, id_column=id_column, chunk_size=chunk_size,
        redact=redact, errors_path=errors_file, progress=progress, resume=resume,
        language=language, language_column=language_column,
    )
    if summary.resumed:
        typer.echo(f"resumed after row {summary.resumed} (from {output}.progress.json)", err=True)
    tagged = ", ".join(f"{t} {n}" for t, n in summary.tagged.most_common()) or "none"
    typer.echo(f"{summary.rows} rows -> {output}; themes: {tagged}; empty: {summary.empty}; truncated: {summary.truncated}", err=True)
    if summary.problem_count:
        typer.echo(f"{summary.problem_count} row problem(s) (rows kept, see below):", err=True)
        for row, row_id, problem in summary.problems[:20]:
            typer.echo(f"  row {row}{f' (id {row_id})' if row_id else ''}: {problem}", err=True)
        if summary.problem_count > 20:
            typer.echo(f"  ... and {summary.problem_count - 20} more" + (f" in {errors_file}" if errors_file else " (use --errors-file)"), err=True)


@app.command()
@handle_errors
def info(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder (default: the promoted or shipped model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    runtime: Optional[str] = typer.Option(None, help="Show the encoder this runtime would use: torch or onnx; default: the model folder's choice, else torch."),
):
    """Show a model's taxonomy, thresholds, encoder and metrics."""
    from .artifacts import runtime_encoder_spec, verify_model
    from .registry import default_model_path

    path = model or default_model_path()
    manifest = verify_model(path)
    encoder = runtime_encoder_spec(manifest, path, runtime)
    if as_json:
        typer.echo(json.dumps({"path": str(path), **manifest}, indent=2))
        return
    typer.echo(f"model    {manifest['name']} {manifest['version']} ({path})")
    typer.echo(f"encoder  {json.dumps(manifest['encoder'])}")
    shown = {k: encoder[k] for k in ("kind", "model", "path", "quantized") if k in encoder}
    typer.echo(f"runtime  {runtime or manifest.get('runtime') or 'torch'}: {json.dumps(shown)}")
    typer.echo(f"mode     {manifest['mode']}-label, {len(manifest['classes'])} themes")
    for theme in manifest["taxonomy"]["themes"]:
        polarity = "polar" if theme.get("polar") else (theme.get("fixed_polarity") or "")
        typer.echo(f"  {theme['id']:<16} threshold {manifest['thresholds'][theme['id']]:.3f}  {polarity:<9} {theme['name']}")
    for split, metrics in (manifest.get("metrics") or {}).items():
        parts = [f"{k} {metrics[k]:.3f}" for k in ("macro_f1", "micro_f1", "accuracy", "polarity_accuracy") if metrics.get(k) is not None]
        typer.echo(f"metrics  {split}: " + ", ".join(parts))


@app.command()
@handle_errors
def upgrade(
    model: Path = typer.Argument(..., help="Model folder of an older format (format_version 1, with heads.joblib)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the upgraded folder here instead of replacing MODEL."),
):
    """Convert a model folder of an older format to the current one (heads as JSON + arrays, no pickle)."""
    from .artifacts import FORMAT_VERSION, read_manifest
    from .upgrade import upgrade_model

    before = read_manifest(model, any_version=True).get("format_version")
    target = upgrade_model(model, output)
    if before == FORMAT_VERSION:
        typer.echo(f"{model}: already format {FORMAT_VERSION}; nothing to do")
    else:
        typer.echo(f"{target}: format {before} -> {FORMAT_VERSION}, verified")


@app.command()
@handle_errors
def export(
    model: Path = typer.Argument(..., help="Model folder whose encoder to export."),
    onnx: bool = typer.Option(False, "--onnx", help="Export the encoder to ONNX (the only format so far)."),
    int8: bool = typer.Option(False, "--int8", help="Quantise the weights to int8 (dynamic): smaller and faster, cosine ~0.99 to fp32."),
    make_default: bool = typer.Option(False, "--make-default", help="Make ONNX the folder's default runtime."),
):
    """Export a model's encoder into its folder (MODEL/onnx/) for the fast, torch-free runtime."""
    from .errors import InvalidInputError
    from .export import export_onnx

    if not onnx:
        raise InvalidInputError("name the format to export to: --onnx")
    report = export_onnx(model, int8=int8, make_default=make_default, log=lambda m: typer.echo(m, err=True))
    a = report["agreement"]
    kind = "int8" if int8 else "fp32"
    typer.echo(
        f"{report['file']} ({report['size_mb']} MB): cosine to torch min {a[kind + '_cosine_min']:.4f}, "
        f"mean {a[kind + '_cosine_mean']:.4f} on {a['texts']} texts; manifest updated"
    )
    typer.echo(f"use it: feedback-nlp classify FILE --model {model} --runtime onnx")


@app.command()
@handle_errors
def report(
    tagged: str = typer.Argument(..., metavar="TAGGED", help="Output of `classify` (CSV, TSV, JSONL, Parquet or Excel) with any extra columns the export had."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Report file (a folder for --format png); default: TAGGED.report.html, TAGGED.report/ or TAGGED.report.csv."),
    by: list[str] = typer.Option([], "--by", metavar="COL", help="Column to compare segments of (team, desk, service...); repeat for several."),
    time: Optional[str] = typer.Option(None, "--time", metavar="COL", help="Date column for trends (per week, or per month for spans over six months)."),
    score: Optional[str] = typer.Option(None, "--score", metavar="COL", help="Numeric column (e.g. a 0-10 happiness score) for the impact ranking."),
    fmt: str = typer.Option("html", "--format", metavar="html|png|csv|explorer", help="html (one self-contained file), png (a folder of charts and summary.csv), csv (the summary tables) or explorer (an interactive page: filter, click through to comments, export)."),
    lost_time: Optional[str] = typer.Option(None, "--lost-time", metavar="COL", help="With --format explorer: a column of work hours lost per comment, summed per theme and segment."),
    topics: Optional[Path] = typer.Option(None, "--topics", metavar="JSON", help="What `feedback-nlp discover` wrote for this file: a Topics section (html) or a topic filter (explorer)."),
    text_column: Optional[str] = typer.Option(None, metavar="COL", help="Column holding the comment (default: text, comment, ... or the longest)."),
    examples: int = typer.Option(3, min=0, help="Example comments quoted per theme and polarity."),
):
    """Build the analyst report: theme shares, segments, trend, impact ranking and examples."""
    from .report import build_report

    if output is None:
        stem = Path(tagged).name.split(".")[0] or "feedback"
        name = f"{stem}.explorer.html" if fmt == "explorer" else f"{stem}.report" + {"html": ".html", "png": "", "csv": ".csv"}.get(fmt, "")
        output = Path(tagged).with_name(name)
    written = build_report(tagged, output, by=by, time=time, score=score, fmt=fmt, text_column=text_column,
                           examples=examples, lost_time=lost_time, topics=topics)
    typer.echo(f"wrote {output}" + (f" ({len(written)} files)" if fmt == "png" else ""), err=True)


@app.command()
@handle_errors
def discover(
    tagged: str = typer.Argument(..., metavar="TAGGED", help="Output of `classify` (CSV, TSV, JSONL, Parquet or Excel)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Topics as JSON; default: TAGGED.topics.json."),
    theme: Optional[str] = typer.Option(None, help="Topics within one theme (e.g. not_solved) instead of the comments without a theme."),
    polarity: Optional[str] = typer.Option(None, metavar="positive|negative", help="With --theme: only its praise or its complaints."),
    k: Optional[int] = typer.Option(None, "--k", min=2, help="Number of topics, if you know it (default: found from the data)."),
    time: Optional[str] = typer.Option(None, "--time", metavar="COL", help="Date column: each topic's comments per month."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model whose encoder gives the vectors (default: the promoted or shipped model)."),
    text_column: Optional[str] = typer.Option(None, metavar="COL", help="Column holding the comment (default: text, comment, ... or the longest)."),
    examples: int = typer.Option(3, min=1, help="Example comments per topic."),
):
    """Find what comments are about beyond the themes: topics with keywords, size and examples."""
    import json

    from .topics import discover_file

    if polarity is not None and polarity not in ("positive", "negative"):
        raise typer.BadParameter("positive or negative", param_hint="--polarity")
    found = discover_file(tagged, model=model, theme=theme, polarity=polarity, k=k, time=time,
                          text_column=text_column, examples=examples)
    if output is None:
        stem = Path(tagged).name.split(".")[0] or "feedback"
        output = Path(tagged).with_name(f"{stem}.topics.json")
    Path(output).write_text(json.dumps(found, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    typer.echo(f"{found['comments']:,} {found['selection']}: {len(found['topics'])} topics -> {output}")
    for t in found["topics"][:15]:
        typer.echo(f"  {t['id']:>3}  {t['size']:>6,}  {100 * t['share']:5.1f}%  {t['label']}")
    if len(found["topics"]) > 15:
        typer.echo(f"  ... {len(found['topics']) - 15} more in {output}")


# The project's own command groups; a missing optional extra (serve needs [serve]) leaves a
# command that says what to install instead of failing the whole CLI.
OWN_COMMANDS = {"training": "training.cli", "serve": "serve.cli"}


def _register(name: str, load) -> None:
    try:
        load()(app)
    except ImportError as exc:  # an optional extra is not installed
        @app.command(name=name, help=f"(unavailable: {exc})", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
        def unavailable(ctx: typer.Context, _exc=str(exc), _name=name):
            typer.echo(f"error: `{_name}` needs packages that are not installed ({_exc})", err=True)
            raise typer.Exit(1)


def _register_commands() -> None:
    for name, module in OWN_COMMANDS.items():
        _register(name, lambda module=module: importlib.import_module(module).register)
    for ep in entry_points(group="feedback_nlp.commands"):  # third-party plugins
        if ep.module not in OWN_COMMANDS.values():
            _register(ep.name, ep.load)


_register_commands()
