"""The explorer page (`report --format explorer`), driven in headless Chromium from a file."""

import csv
import io
import json
from pathlib import Path

import pytest
from conftest import needs_chromium
from typer.testing import CliRunner

from feedback_nlp.cli import app



def hit(theme, polarity, text, sentence):
    start = text.index(sentence)
    return {"theme": theme, "score": 0.9, "polarity": polarity, "polarity_score": 0.9,
            "evidence": {"text": " ".join(sentence.split()), "start": start, "end": start + len(sentence)}}


def rows():
    out = []
    for i in range(60):
        team = ["Finance", "Sales", "Plant"][i % 3]
        month = f"2026-{9 + i % 3:02d}-1{i % 9}"
        if i % 4 == 0:
            text = f"Ticket {i}: the agent was rude\nand dismissive. Fixed in the end."
            themes = [hit("attitude", "negative", text, "the agent was rude\nand dismissive.")]
            hours, score = 3.0, 2
        elif i % 4 == 1:
            text = f"Sorted within minutes, thanks ({i})."
            themes = [hit("speed", "positive", text, text)]
            hours, score = 0.0, 9
        elif i % 4 == 2:
            text = f"Still broken after three calls, case {i}. Passed between teams."
            themes = [hit("not_solved", "negative", text, f"Still broken after three calls, case {i}."),
                      hit("bounced_around", "negative", text, "Passed between teams.")]
            hours, score = 5.0, 1
        else:
            text = f"Der Drucker ist neu, danke {i}."
            themes = []
            hours, score = 0.5, 7
        out.append({"text": text, "themes": themes, "scores": {}, "team": team, "closed": month,
                    "happiness": score, "hours_lost": hours, "language": "de" if i % 4 == 3 else "en",
                    "language_supported": True})
    return out


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explorer")
    tagged = folder / "survey.tagged.jsonl"
    tagged.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    result = CliRunner().invoke(app, ["report", str(tagged), "--format", "explorer", "--by", "team", "--time", "closed",
                                      "--score", "happiness", "--lost-time", "hours_lost"])
    assert result.exit_code == 0, result.output
    page = folder / "survey.explorer.html"
    assert page.is_file()
    return page


def test_the_page_is_one_offline_file(explorer):
    html = explorer.read_text(encoding="utf-8")
    for ref in ("http://", "https://", "<link", "src="):
        assert ref not in html, ref
    assert '"lost_time":"hours_lost"' in html


def test_lost_time_needs_the_explorer(tmp_path):
    tagged = tmp_path / "t.jsonl"
    tagged.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    result = CliRunner().invoke(app, ["report", str(tagged), "--lost-time", "hours_lost"])
    assert result.exit_code == 2 and "--format explorer" in result.output




@pytest.fixture(scope="module")
def page(explorer, browser):
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(explorer.as_uri())
    yield page
    assert errors == []
    context.close()


@needs_chromium
def test_clicking_a_theme_bar_lists_exactly_its_comments(page):
    assert page.inner_text("#counts").startswith("60 of 60 comments shown")
    page.click("#bars g.bar[data-theme='attitude'][data-polarity='negative']")
    items = page.locator("#list > li")
    assert items.count() == 15
    for i in range(items.count()):
        assert items.nth(i).locator(".chip[data-theme='attitude'][data-polarity='negative']").count() == 1
    # The evidence spans a line break in the comment and is highlighted by its offsets.
    assert items.nth(0).locator("mark").text_content() == "the agent was rude\nand dismissive."
    assert "Mean happiness: 2.00" in page.inner_text("#active")
    page.click("#reset")
    assert page.inner_text("#counts").startswith("60 of 60")


@needs_chromium
def test_filters_and_export_round_trip(page):
    page.click("#reset")
    page.select_option("#f-seg-0", "Finance")
    page.select_option("#f-theme", "not_solved")
    shown = page.locator("#list > li").count()
    expected = [r for r in rows() if r["team"] == "Finance" and any(h["theme"] == "not_solved" for h in r["themes"])]
    assert shown == len(expected) == 5
    with page.expect_download() as info:
        page.click("#export")
    exported = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert [r["text"] for r in exported] == [r["text"] for r in expected]
    assert all(r["team"] == "Finance" and "not_solved:negative" in r["themes"] for r in exported)
    # Hours lost per theme, for what is shown: 5 comments x 5 hours.
    assert "25.0" in page.inner_text("#lost")
    page.click("#reset")
    page.fill("#f-search", "drucker")
    page.wait_for_function("document.querySelectorAll('#list > li').length === 15")
    page.click("#reset")
    page.click("#trend g.point[data-month='2026-10']")
    assert page.locator("#list > li").count() == 20


@needs_chromium
def test_a_topic_from_discover_filters_the_list(tmp_path, browser):
    tagged = tmp_path / "survey.tagged.jsonl"
    data = rows()
    tagged.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    untagged = [i + 1 for i, r in enumerate(data) if not r["themes"]]
    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps({"selection": "comments without a theme", "comments": len(untagged), "topics": [
        {"id": 0, "label": "drucker · neu", "size": 10, "share": 0.67, "examples": [], "rows": untagged[:10]},
        {"id": 1, "label": "danke", "size": 5, "share": 0.33, "examples": [], "rows": untagged[10:]}]}), encoding="utf-8")
    page_file = tmp_path / "explorer.html"
    result = CliRunner().invoke(app, ["report", str(tagged), "--format", "explorer", "--topics", str(topics), "-o", str(page_file)])
    assert result.exit_code == 0, result.output
    page = browser.new_page()
    page.goto(page_file.as_uri())
    page.select_option("#f-topic", "1")
    assert page.locator("#list > li").count() == 5 and "topic danke" in page.inner_text("#active")
    page.close()
