"""The web page at /, end to end: a real uvicorn server with the tiny model, driven in headless
Chromium (Debian's chromium, through Playwright's Python package). A screenshot is written to
tests/artifacts/web.png for people to look at."""

import csv
import io
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import needs_chromium

from serve.app import STATIC, create_app

ARTIFACTS = Path(__file__).parent / "artifacts"

RUDE = "He was rude and dismissive."
QUICK = "Very quick response, fixed within minutes."


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("FEEDBACK_NLP_"):
            monkeypatch.delenv(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server():
    """uvicorn in a thread, with settings from the FEEDBACK_NLP_* environment as `feedback-nlp serve` has."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_config=None, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not become ready"
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def server(model_dir, monkeypatch):
    monkeypatch.setenv("FEEDBACK_NLP_MODEL", str(model_dir))
    with running_server() as base:
        yield base




@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # The browser logs each refused request; asking without a key first is how the page learns it needs one.
    assert [e for e in errors if "status of 401" not in e] == [], errors


def download_rows(page) -> tuple[str, list[dict]]:
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    text = Path(download.path()).read_text(encoding="utf-8")
    return download.suggested_filename, list(csv.DictReader(io.StringIO(text)))


def test_static_files_name_no_outside_url():
    files = list(STATIC.iterdir())
    assert {f.name for f in files} >= {"index.html", "app.js", "style.css"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        for ref in ("http://", "https://", "//cdn", "@import"):
            assert ref not in text, f"{path.name} names {ref}"


def test_page_is_served_with_a_strict_policy(server):
    answer = httpx.get(f"{server}/")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert 'id="comments"' in answer.text
    assert httpx.get(f"{server}/static/app.js").status_code == 200
    assert "/" not in httpx.get(f"{server}/openapi.json").json()["paths"]


@needs_chromium
def test_paste_comments_see_themes_and_download(server, page):
    page.goto(f"{server}/")
    page.wait_for_selector("#model:has-text('Model tiny')")
    page.fill("#comments", f"{RUDE}\n\n{QUICK}\nThe new laptops are far too heavy.\n")
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Done')")

    items = page.locator("#list > li")
    assert items.count() == 3  # the blank line is not a comment
    first = items.nth(0)
    assert "Attitude: complaint" in first.locator(".chip").all_inner_texts()[0]
    assert first.locator("mark").inner_text() == RUDE
    assert first.locator("mark").get_attribute("class") == "negative"
    assert "Speed: praise" in " ".join(items.nth(1).locator(".chip").all_inner_texts())
    assert page.locator("#chart svg g.bar").count() == 5  # one bar group per theme of the model
    assert page.locator("#chart svg g.bar[data-theme='attitude'] rect").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True)

    name, rows = download_rows(page)
    assert name == "comments.tagged.csv"
    assert [r["text"] for r in rows] == [RUDE, QUICK, "The new laptops are far too heavy."]
    assert "attitude:negative" in rows[0]["themes"].split(";") and "speed:positive" in rows[1]["themes"]
    assert list(rows[0]) == ["text", "themes", "score_speed", "score_attitude", "score_skills", "score_not_solved",
                             "score_bounced_around", "language", "language_supported"]
    assert rows[0]["language"] == "en" and rows[0]["language_supported"] == "True"


@needs_chromium
def test_languages_are_shown_and_the_list_filters_by_language(server, page):
    page.goto(f"{server}/")
    page.wait_for_selector("#model:has-text('Model tiny')")
    german = "Der Techniker war sehr freundlich, aber das Problem besteht weiterhin."
    french = "Le technicien était très sympa et le problème est résolu."
    page.fill("#comments", f"{RUDE}\n{german}\n{QUICK}\n{french}\n")
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Done')")
    assert "en 50% (2)" in page.inner_text("#languages-text") and "de 25% (1)" in page.inner_text("#languages-text")
    assert page.locator("#list > li .chip.language").all_inner_texts() == ["en", "de", "en", "fr"]
    page.select_option("#language-filter", "de")
    visible = page.locator("#list > li:visible")
    assert visible.count() == 1 and german in visible.nth(0).inner_text()
    page.select_option("#language-filter", "")
    assert page.locator("#list > li:visible").count() == 4
    # Switching to CSV mode clears the pasted comments' results.
    page.check("input[name=mode][value=csv]")
    assert page.locator("#results").is_hidden()


@needs_chromium
def test_chart_labels_stay_readable_on_a_phone(server, browser):
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{server}/")
        page.wait_for_selector("#model:has-text('Model tiny')")
        page.fill("#comments", f"{RUDE}\n{QUICK}\n")
        page.click("#submit")
        page.wait_for_selector("#status:has-text('Done')")
        sizes = page.eval_on_selector_all("#chart svg text", "els => els.map(e => e.getBoundingClientRect().height)")
        assert sizes and min(sizes) >= 9, sizes  # CSS pixels: the chart scrolls sideways instead of shrinking
    finally:
        context.close()


@needs_chromium
def test_upload_a_csv_choose_the_column_and_download(server, page, tmp_path):
    export = tmp_path / "export.csv"
    comments = [RUDE, QUICK, 'Slow, and "fixed" twice;\nstill broken after the fix, not solved.'] * 100  # 300: two requests
    with export.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ticket", "team", "comment"])
        writer.writerows([f"INC{i:05d}", "Finance, EMEA", text] for i, text in enumerate(comments))
    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/v1/classify") else None)

    page.goto(f"{server}/")
    page.wait_for_selector("#model:has-text('Model tiny')")
    page.check("input[name=mode][value=csv]")
    page.set_input_files("#csv-file", str(export))
    page.wait_for_selector("#csv-info:has-text('300 row(s)')")
    assert page.input_value("#text-column") == "comment"  # guessed from its name
    page.click("#submit")
    page.wait_for_selector("#status:has-text('Done')")

    assert len(requests) == 2  # 256 + 44: the API's limit per request
    assert page.locator("#list > li").count() == 300
    assert "Not solved" in " ".join(page.locator("#list > li").nth(2).locator(".chip").all_inner_texts())
    # Its evidence sentence spans the line break inside the cell: highlighted by its offsets.
    assert "still broken" in page.locator("#list > li").nth(2).locator("mark").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "web-csv.png"))

    name, rows = download_rows(page)
    assert name == "export.tagged.csv" and len(rows) == 300
    assert list(rows[0])[:4] == ["ticket", "team", "comment", "themes"]
    assert rows[2]["comment"] == comments[2] and rows[2]["team"] == "Finance, EMEA"
    assert "not_solved:negative" in rows[2]["themes"].split(";")
    assert [r["ticket"] for r in rows] == [f"INC{i:05d}" for i in range(300)]


@needs_chromium
def test_a_key_can_be_pasted_when_the_server_needs_one(model_dir, monkeypatch, page):
    monkeypatch.setenv("FEEDBACK_NLP_MODEL", str(model_dir))
    monkeypatch.setenv("FEEDBACK_NLP_API_KEYS", "s3cret")
    with running_server() as base:
        page.goto(f"{base}/")
        page.wait_for_selector("#key-box:not([hidden])")
        page.fill("#api-key", "wrong")
        page.click("#use-key")
        page.wait_for_selector("#status:has-text('not accepted')")
        page.fill("#api-key", "s3cret")
        page.click("#use-key")
        page.wait_for_selector("#model:has-text('Model tiny')")
        page.fill("#comments", RUDE)
        page.click("#submit")
        page.wait_for_selector("#status:has-text('Done')")
        assert page.locator("#list > li mark").inner_text() == RUDE
