"""The entry point: :func:`build_report` writes the report for a tagged file in one of :data:`FORMATS`."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from .analysis import _csv_text, analyse, summary_rows
from .charts import _style, charts
from .explorer import explorer_data, render_explorer
from .html import render_html
from .tagged import read_tagged, read_topics

FORMATS = ("html", "png", "csv", "explorer")


def build_report(
    tagged_path: str | Path,
    out_path: str | Path,
    by: list[str] | tuple[str, ...] = (),
    time: str | None = None,
    score: str | None = None,
    fmt: str = "html",
    *,
    text_column: str | None = None,
    examples: int = 3,
    lost_time: str | None = None,
    topics: str | Path | None = None,
) -> list[Path]:
    """Write the analyst report for a tagged file; returns the files written.

    ``fmt``: ``html`` (one self-contained file), ``png`` (``out_path`` is a folder of PNG
    charts plus ``summary.csv``), ``csv`` (the summary tables) or ``explorer`` (one
    self-contained interactive page, see :mod:`feedback_nlp.report.explorer`; ``lost_time``: a column
    of work hours lost per comment, summed per theme and segment there). ``topics``: the JSON of
    ``feedback-nlp discover`` on the same file: a Topics section, and a topic filter in the explorer.
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if len(set(by)) != len(by):
        raise InvalidInputError("each --by column once, please")
    if lost_time and fmt != "explorer":
        raise InvalidInputError("--lost-time is shown in the explorer: add --format explorer")
    found_topics = read_topics(topics)
    if fmt == "explorer":
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        page = explorer_data(read_tagged(tagged_path, text_column), list(by), time, score, lost_time, found_topics)
        out_path.write_text(render_explorer(page), encoding="utf-8")
        return [out_path]
    analysis = analyse(read_tagged(tagged_path, text_column), list(by), time, score)
    out_path = Path(out_path)
    if fmt == "csv":
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(_csv_text(summary_rows(analysis)), encoding="utf-8")
        return [out_path]
    with _style():
        chart_list = charts(analysis)
        if fmt == "html":
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(render_html(analysis, chart_list, examples, found_topics), encoding="utf-8")
            return [out_path]
        if out_path.exists() and not out_path.is_dir():
            raise InvalidInputError(f"{out_path} is a file; --format png writes a folder of charts")
        out_path.mkdir(parents=True, exist_ok=True)
        written = []
        for number, chart in enumerate(chart_list, start=1):
            target = out_path / f"{number:02d}-{chart.slug}.png"
            chart.figure.savefig(target, dpi=150, metadata={"Software": None})
            written.append(target)
        summary = out_path / "summary.csv"
        summary.write_text(_csv_text(summary_rows(analysis)), encoding="utf-8")
        return [*written, summary]
