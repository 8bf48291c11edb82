"""The analyst report: what hurts, where, and since when — from the output of ``classify``.

:func:`build_report` reads a tagged file (CSV, TSV, JSONL, Parquet or Excel, with whatever
extra columns the export had) and writes one of:

- ``html``: one self-contained file that opens offline — charts are inline SVG, nothing is
  fetched from anywhere; every quoted comment is PII-redacted and all text is HTML-escaped;
- ``png``: a folder of PNG charts plus ``summary.csv``, for slides;
- ``csv``: the summary tables as one tidy CSV;
- ``explorer``: one self-contained interactive page (:mod:`feedback_nlp.report.explorer`).

Sections: theme shares split into praise and complaint; the same per segment of each ``by``
column, with Fisher's exact test of each segment against the rest of that column
(Benjamini-Hochberg corrected across the column's tests); shares per week or month of the
``time`` column; an impact ranking on a numeric ``score`` column — (mean score of comments
with the theme and polarity - mean of the rest) x comments with it, the NPS driver analysis;
and example comments per theme with the evidence sentence highlighted.

One module per job, each importing only those listed before it: ``tagged`` (reading a tagged
file), ``analysis`` (the numbers and the summary table), ``charts`` (matplotlib), ``html`` (the
report page), ``explorer`` (the interactive page; reads ``tagged`` only) and ``build``
(:func:`build_report`, which uses them all). This module only re-exports.
"""

from .analysis import SUMMARY_FIELDS, Analysis, Cell, Impact, Segments, Trend, analyse, summary_rows
from .build import FORMATS, build_report
# Not the function charts.charts: the name `charts` here stays the submodule.
from .charts import Chart, chart_impact, chart_segments, chart_shares, chart_trend, percent_formatter
from .explorer import explorer_data, render_explorer, score_bands
from .html import quote_comment, render_html, svg_of
from .tagged import Hit, Tag, Tagged, parse_times, read_tagged, read_topics

__all__ = [
    "FORMATS", "build_report",
    "Tag", "Hit", "Tagged", "read_tagged", "parse_times", "read_topics",
    "Cell", "Segments", "Trend", "Impact", "Analysis", "analyse", "summary_rows", "SUMMARY_FIELDS",
    "Chart", "chart_shares", "chart_segments", "chart_trend", "chart_impact", "percent_formatter",
    "render_html", "svg_of", "quote_comment",
    "explorer_data", "render_explorer", "score_bands",
]
