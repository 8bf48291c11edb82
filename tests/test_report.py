import json
"""The analyst report, on a small file tagged by the tiny model (fake encoder)."""

import csv
import random
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from feedback_nlp import InvalidInputError, classify_file, load_model
from feedback_nlp.cli import app
from feedback_nlp.report import analyse, build_report, read_tagged

PRAISE = ["Very quick response, fixed within minutes.", "The technician was friendly and patient.",
          "Knowledgeable tech, knew exactly what to do.", "Super fast turnaround, thanks"]
COMPLAINT = ["He was rude and dismissive.", "Took three days to get a reply.",
             "Still broken after the fix, not solved.", "I was on hold for 40 minutes, way too slow"]
EMAIL = "jane.doe@example.com"
SECTIONS = ["chart-themes", "chart-segments-team", "chart-segments-desk", "chart-trend-closed", "chart-impact-score"]


def write_export(path, rows=80, days=70, seed=0):
    """An export as a service desk would give it: ticket, comment, team, desk, closed date, 0-10 score.

    The outsourced desk gets mostly complaints and low scores, so its difference is real.
    """
    rng = random.Random(seed)
    out = []
    for i in range(rows):
        desk = "outsourced" if i % 2 else "internal"
        bad = rng.random() < (0.85 if desk == "outsourced" else 0.15)
        text = rng.choice(COMPLAINT if bad else PRAISE)
        out.append({"ticket": f"INC{i:05d}", "comment": text, "team": ["Finance", "HR", "R&D <lab>"][i % 3], "desk": desk,
                    "closed": (pd.Timestamp("2026-07-01") + pd.Timedelta(days=i * days // rows)).strftime("%Y-%m-%d"),
                    "score": rng.randint(0, 4) if bad else rng.randint(7, 10)})
    out[3]["comment"] = f"He was rude and dismissive. Write to me at {EMAIL} about it."
    out[5]["comment"] = "<script>alert(1)</script> Took three days to get a reply."
    out.append({"ticket": "INC99999", "comment": "", "team": "HR", "desk": "internal", "closed": "", "score": ""})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(out[0]))
        writer.writeheader()
        writer.writerows(out)
    return path


@pytest.fixture(scope="module")
def tagged(_model_dir, tmp_path_factory):
    """The export tagged into each output format of `classify`."""
    folder = tmp_path_factory.mktemp("report")
    export = write_export(folder / "export.csv")
    model = load_model(_model_dir)
    paths = {}
    for ext in ("csv", "jsonl", "parquet"):
        paths[ext] = folder / f"export.tagged.{ext}"
        classify_file(model, export, paths[ext], text_column="comment")
    return paths


def build(tagged_path, out, **kw):
    kw = {"by": ["team", "desk"], "time": "closed", "score": "score", **kw}
    return build_report(tagged_path, out, **kw)


def test_html_report_has_every_chart_table_and_section(tagged, tmp_path):
    out = tmp_path / "report.html"
    assert build(tagged["jsonl"], out, examples=50) == [out]
    page = out.read_text(encoding="utf-8")
    for chart in SECTIONS:
        assert f'id="{chart}"' in page
    assert page.count("<svg") == len(SECTIONS)
    for table in ("themes", "segments", "trend", "impact"):
        assert f'<table class="{table}">' in page
    assert page.count('<table class="segments">') == 2
    # segments with counts and a significance marker, and the test named
    assert "outsourced" in page and "internal" in page
    assert re.search(r"\d+ \(\d+\.\d%\) <span class=\"up\"", page)
    assert "Fisher&#x27;s exact test" in page or "Fisher's exact test" in page
    assert "Benjamini-Hochberg" in page
    # trend per week (the span is ten weeks), impact ranking, examples with evidence highlighted
    assert "Per week of closed" in page and "2026-07-06" in page
    assert 'id="impact"' in page and "Impact ranking" in page
    assert "<mark>" in page and "<blockquote" in page
    # PII redacted, user text escaped, nothing fetched from anywhere
    assert EMAIL not in page and "[EMAIL]" in page
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "R&amp;D &lt;lab&gt;" in page and "R&D <lab>" not in page
    for ref in ("http://", "https://", "//cdn", "<link", " src="):
        assert ref not in page


def test_csv_input_quotes_whole_comments(tagged, tmp_path):
    out = tmp_path / "report.html"
    build(tagged["csv"], out, by=["desk"], examples=50)
    page = out.read_text(encoding="utf-8")
    assert "<mark>" not in page and "no evidence sentences" in page
    assert EMAIL not in page and "[EMAIL]" in page
    assert 'id="chart-segments-desk"' in page and "http" not in page.replace("http-equiv", "")


def test_report_without_options_has_shares_and_examples_only(tagged, tmp_path):
    out = tmp_path / "report.html"
    build_report(tagged["parquet"], out)
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 1 and 'id="chart-themes"' in page
    assert 'id="trend"' not in page and 'id="impact"' not in page and '<table class="segments">' not in page
    assert "80 comments (1 row without a comment left out)" in page


def test_png_format_writes_a_folder_of_charts_and_the_tables(tagged, tmp_path):
    out = tmp_path / "charts"
    written = build(tagged["jsonl"], out, fmt="png")
    names = sorted(p.name for p in written)
    assert names == ["01-themes.png", "02-segments-team.png", "03-segments-desk.png", "04-trend-closed.png",
                     "05-impact-score.png", "summary.csv"]
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_csv_format_numbers_match_the_data(tagged, tmp_path):
    out = tmp_path / "summary.csv"
    build(tagged["csv"], out, fmt="csv")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {r["section"] for r in rows} == {"overall", "segment", "trend", "impact"}

    data = pd.read_csv(tagged["csv"], dtype=str, keep_default_na=False)
    data = data[data["comment"] != ""]
    has = data["themes"].str.split(";").map(lambda tags: "attitude:negative" in tags)
    overall = next(r for r in rows if r["section"] == "overall" and r["theme"] == "attitude" and r["polarity"] == "negative")
    assert int(overall["count"]) == has.sum() and int(overall["base"]) == len(data) == 80

    segment = next(r for r in rows if r["section"] == "segment" and r["segment"] == "outsourced"
                   and r["theme"] == "attitude" and r["polarity"] == "negative")
    assert int(segment["count"]) == (has & (data["desk"] == "outsourced")).sum()
    assert segment["significant"] == "higher" and float(segment["q_value"]) < 0.05

    impacts = [r for r in rows if r["section"] == "impact"]
    assert [float(r["impact"]) for r in impacts] == sorted(float(r["impact"]) for r in impacts)
    score = data["score"].astype(float)
    attitude = next(r for r in impacts if r["theme"] == "attitude" and r["polarity"] == "negative")
    expected = (score[has].mean() - score[~has].mean()) * has.sum()
    assert float(attitude["impact"]) == pytest.approx(expected, abs=1e-4)
    assert float(impacts[0]["impact"]) < 0 < float(impacts[-1]["impact"])


def test_trend_is_per_month_over_long_spans(_model_dir, tmp_path):
    export = write_export(tmp_path / "export.csv", rows=60, days=400)
    tagged = tmp_path / "export.tagged.csv"
    classify_file(load_model(_model_dir), export, tagged, text_column="comment")
    trend = analyse(read_tagged(tagged), time="closed").trend
    assert trend.granularity == "month" and trend.periods[0] == "2026-07" and trend.periods[-1] == "2027-07"
    assert sum(trend.sizes) == 60


def test_cli_report(tagged, tmp_path):
    runner = CliRunner()
    out = tmp_path / "report.csv"
    result = runner.invoke(app, ["report", str(tagged["csv"]), "-o", str(out), "--by", "desk", "--time", "closed",
                                 "--score", "score", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("section,")

    result = runner.invoke(app, ["report", str(tagged["csv"]), "-o", str(out), "--by", "channel"])
    assert result.exit_code == 2 and "no column 'channel' for --by" in result.output
    result = runner.invoke(app, ["report", str(tagged["csv"]), "--format", "pdf"])
    assert result.exit_code == 2 and "unknown report format" in result.output


def test_a_file_that_was_not_tagged_is_refused(tmp_path):
    export = write_export(tmp_path / "export.csv", rows=8)
    with pytest.raises(InvalidInputError, match="no 'themes' column"):
        build_report(export, tmp_path / "r.html")


def test_a_file_in_several_languages_gets_shares_per_language_and_skips_unscored_rows(tmp_path):
    from feedback_nlp.report import analyse, read_tagged

    rows = (
        [{"text": f"slow reply {i}", "themes": [{"theme": "speed", "polarity": "negative"}], "language": "en",
          "language_supported": True} for i in range(30)]
        + [{"text": f"sehr freundlich {i}", "themes": [{"theme": "attitude", "polarity": "positive"}], "language": "de",
            "language_supported": True} for i in range(20)]
        + [{"text": f"tack {i}", "themes": [], "scores": {}, "language": "sv", "language_supported": False} for i in range(10)]
    )
    for row in rows:
        row.setdefault("scores", {"speed": 0.9, "attitude": 0.9})
    path = tmp_path / "tagged.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    a = analyse(read_tagged(path))
    assert a.n == 50  # the Swedish comments were not scored: not counted as "no theme"
    [seg] = a.segments
    assert seg.column == "language" and set(seg.segments) == {"en", "de"}
    assert seg.sizes["en"] == 30 and seg.sizes["de"] == 20


def test_evidence_across_a_line_break_is_highlighted_by_its_offsets():
    from feedback_nlp.report import quote_comment

    text = "Printer fixed quickly,\nthanks Sam. Call me on 0171/1234567"
    evidence = {"text": "Printer fixed quickly, thanks Sam.", "start": 0, "end": 34}
    quoted = str(quote_comment(text, evidence["text"], (evidence["start"], evidence["end"])))
    assert quoted.startswith("<mark>Printer fixed quickly,\nthanks Sam.</mark>")
    assert "[PHONE]" in quoted and "1234567" not in quoted
    # Without offsets (CSV) or with offsets that do not fit, the sentence is searched for.
    assert "<mark>" not in str(quote_comment(text, evidence["text"]))
    assert str(quote_comment("thanks Sam. Great.", "thanks Sam.", (50, 60))).startswith("<mark>thanks Sam.</mark>")


def test_percent_ticks_keep_the_decimals_their_step_needs():
    from feedback_nlp.report import percent_formatter

    fmt = percent_formatter()
    assert fmt.format_ticks([0, 0.5, 1.0, 1.5, 2.0]) == ["0.0%", "0.5%", "1.0%", "1.5%", "2.0%"]
    assert fmt.format_ticks([0, 10, 20]) == ["0%", "10%", "20%"]
    signed = percent_formatter(absolute=True)
    signed.set_locs([-1.0, -0.5, 0, 0.5])
    assert signed(-0.5) == "0.5%"


def test_dates_in_mixed_formats_parse_without_warnings():
    import warnings

    import pandas as pd

    from feedback_nlp.report import parse_times

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = parse_times(pd.Series(["03/11/2026 14:02", "2026-11-04", "Nov 5 2026", "", "not a date"]))
    assert parsed.notna().tolist() == [True, True, True, False, False]


def test_the_latest_period_is_a_finding_only_when_the_change_is_significant(tmp_path):
    from feedback_nlp.report import analyse, read_tagged
    from feedback_nlp.report.html import _findings

    def tagged(last_share):
        rows = []
        for month, share in (("2026-09", 0.05), ("2026-10", 0.05), ("2026-11", last_share)):
            for i in range(400):
                slow = i < share * 400
                rows.append({"text": f"comment {month} {i}", "closed": f"{month}-15",
                             "themes": [{"theme": "speed", "polarity": "negative"}] if slow else [],
                             "scores": {"speed": 0.9 if slow else 0.1}})
        path = tmp_path / f"t{last_share}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return [str(f) for f in _findings(analyse(read_tagged(path), time="closed"))]

    assert not any("of 2026-11" in f for f in tagged(0.06))  # 24/400 against 20/400: chance
    jump = [f for f in tagged(0.20) if "of 2026-11" in f]
    assert jump and "Fisher's exact test p =" in jump[0]


def test_examples_are_sure_of_the_polarity_too_and_more_are_folded(tmp_path):
    from feedback_nlp.report import build_report

    def hit(score, polarity_score):
        return [{"theme": "attitude", "score": score, "polarity": "negative", "polarity_score": polarity_score,
                 "evidence": None}]

    rows = [{"text": "Never condescending, always kind.", "themes": hit(0.99, 0.51)}]  # unsure it is a complaint
    rows += [{"text": f"He was rude to me, ticket {i}.", "themes": hit(0.90, 0.99)} for i in range(6)]
    path = tmp_path / "tagged.jsonl"
    path.write_text("".join(json.dumps({**r, "scores": {"attitude": r["themes"][0]["score"]}}) + "\n" for r in rows),
                    encoding="utf-8")
    build_report(path, tmp_path / "report.html", examples=3)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    shown, _, folded = html.split('id="examples')[-1].partition("<details>")
    assert shown.count("He was rude to me") == 3 and "Never condescending" not in shown
    assert "4 more" in folded and "Never condescending" in folded
