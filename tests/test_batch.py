"""Batch runs that lose nothing: resume after a kill, per-row problems, duplicate ids."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from conftest import DATA, ROOT, read_jsonl
from feedback_nlp import classify_file, load_model
from feedback_nlp.batch import SeenIds, checkpoint_path
from feedback_nlp.cli import app
from feedback_nlp.errors import InvalidInputError

TEXTS = [r["text"] for r in read_jsonl(DATA / "tiny.jsonl")]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def write_input(path, n, fmt):
    ids = [f"r{i:05d}" for i in range(n)]
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "text": TEXTS[k % len(TEXTS)]}) + "\n" for k, i in enumerate(ids)))
    else:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "text"])
            w.writerows([i, TEXTS[k % len(TEXTS)]] for k, i in enumerate(ids))
    return ids


def output_ids(path, fmt):
    if fmt == "jsonl":
        return [json.loads(line).get("id") for line in path.read_text(encoding="utf-8").splitlines()]
    with open(path, newline="", encoding="utf-8") as fh:
        return [row["id"] for row in csv.DictReader(fh)]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_run_killed_with_sigkill_resumes_with_every_row_once_in_order(model_dir, tmp_path, fmt):
    src, out = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    ids = write_input(src, 4000, fmt)
    progress = checkpoint_path(out)
    cmd = [sys.executable, "-m", "feedback_nlp", "classify", str(src), "-o", str(out), "--model", str(model_dir),
           "--id-column", "id", "--chunk-size", "25", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        try:
            if json.loads(progress.read_text())["rows"] >= 300:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = json.loads(progress.read_text())["rows"]
    assert 300 <= done < len(ids)
    with open(out, "ab") as fh:  # a row torn half-way, as a kill during a write leaves it
        fh.write(b'{"id": "torn' if fmt == "jsonl" else b'r99999,"half a comm')
    result = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"resumed after row {done}" in result.stderr
    assert f"{len(ids)} rows" in result.stderr
    assert output_ids(out, fmt) == ids
    assert not progress.exists()


class StopAfter:
    """The model, stopping (like a kill) after ``calls`` chunks."""

    def __init__(self, model, calls):
        self.model, self.calls = model, calls

    def __getattr__(self, name):
        return getattr(self.model, name)

    def classify(self, texts):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return self.model.classify(texts)


def test_resumed_output_errors_and_summary_match_an_uninterrupted_run(model_dir, tmp_path):
    rows = [{"id": f"i{k % 37}", "text": TEXTS[k % len(TEXTS)] + (" \x00" if k % 11 == 0 else "")} for k in range(120)]
    rows[50].pop("id")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = load_model(model_dir)
    options = {"id_column": "id", "chunk_size": 16}
    whole = classify_file(model, src, tmp_path / "whole.csv", errors_path=tmp_path / "whole.err", **options)
    out, err = tmp_path / "out.csv", tmp_path / "out.err"
    with pytest.raises(KeyboardInterrupt):
        classify_file(StopAfter(model, 3), src, out, errors_path=err, **options)
    assert json.loads(checkpoint_path(out).read_text())["rows"] == 48
    resumed = classify_file(model, src, out, errors_path=err, resume=True, **options)
    assert resumed.resumed == 48
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert err.read_text() == (tmp_path / "whole.err").read_text()  # duplicates across the break too
    assert {**resumed.to_dict(), "resumed": 0} == whole.to_dict() and resumed.problems == whole.problems
    assert sum("duplicate id" in p for _, _, p in whole.problems) == 120 - 37 - 1


def test_resume_refuses_a_changed_run_and_parquet_output(model_dir, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, 40, "jsonl")
    model = load_model(model_dir)
    with pytest.raises(KeyboardInterrupt):
        classify_file(StopAfter(model, 1), src, out, chunk_size=10)
    with pytest.raises(InvalidInputError, match="differs in redact"):
        classify_file(model, src, out, chunk_size=10, redact=True, resume=True)
    with pytest.raises(InvalidInputError, match="Parquet"):
        classify_file(model, src, tmp_path / "out.parquet", resume=True)
    # A different chunk size is fine; no checkpoint means starting from the beginning.
    assert classify_file(model, src, out, chunk_size=7, resume=True).resumed == 10
    assert output_ids(out, "jsonl") == [f"r{i:05d}" for i in range(40)]
    assert classify_file(model, src, out, resume=True).resumed == 0 and len(output_ids(out, "jsonl")) == 40


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_every_kind_of_bad_row_keeps_its_output_row_and_is_reported(model_dir, tmp_path, fmt):
    huge = "still broken " * 80_000  # ~1 MB
    good = "quick and friendly"
    src, out, errors = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}", tmp_path / "errors.jsonl"
    if fmt == "jsonl":
        lines = [
            b'{"id": "a", "text": "rude"}',
            b'{"id": "b", "text": "bad \xff\xfe bytes"}',
            b'{"id": "c", "text": "nul \\u0000 here"}',
            json.dumps({"id": "d", "text": huge}).encode(),
            json.dumps({"text": good}).encode(),  # no id
            b'{"id": "a", "text": "again"}',  # duplicate id
            b'{"id": "g", "text": "cut',  # unreadable
            json.dumps({"id": "h"}).encode(),  # no text
        ]
        src.write_bytes(b"\n".join(lines) + b"\n")
    else:
        lines = [
            b"id,text",
            b"a,rude",
            b"b,bad \xff\xfe bytes",
            b"c,nul \x00 here",
            f"d,{huge}".encode(),
            b",quick and friendly",  # no id
            b"a,again",  # duplicate id
            b"g,too,many,fields",
            b'h,"a comment over\ntwo lines"',
        ]
        src.write_bytes(b"\r\n".join(lines) + b"\r\n")
    result = invoke("classify", src, "-o", out, "--model", model_dir, "--id-column", "id", "--errors-file", errors)
    assert result.exit_code == 0, result.output
    assert len(output_ids(out, fmt)) == 8
    problems = {(p["row"], p["problem"].split(" (")[0].split(" of ")[0]) for p in read_jsonl(errors)}
    assert {(2, "undecodable bytes replaced"), (3, "NUL characters replaced"), (4, "text"),
            (5, "empty id in 'id'"), (6, "duplicate id 'a'")} <= problems
    assert 7 in {row for row, _ in problems}
    assert "row 6 (id a): duplicate id 'a' (first at row 1)" in result.stderr
    assert "truncated: 1" in result.stderr


def test_seen_ids_find_duplicates_across_spills():
    seen = SeenIds(spill=4)
    firsts = [seen.first_row(f"id{i % 30}", i) for i in range(100)]
    assert firsts[:30] == [None] * 30
    assert firsts[30:] == [i % 30 for i in range(30, 100)]
    assert len(seen) == 30


def test_lone_surrogates_in_jsonl_give_rows_and_a_note(model_dir, tmp_path):
    from feedback_nlp import load_model
    from feedback_nlp.batch import classify_file

    src = tmp_path / "in.jsonl"
    # As JSON allows and JavaScript clients send when they cut a string mid-emoji.
    src.write_text('{"id": "a", "text": "Great service \\ud83d"}\n{"id": "b\\udc00", "text": "slow and rude"}\n'
                   '{"id": "c", "text": "fine"}\n', encoding="utf-8")
    for ext in ("jsonl", "csv", "parquet"):
        out, errors = tmp_path / f"out.{ext}", tmp_path / f"errors-{ext}.jsonl"
        summary = classify_file(load_model(model_dir), src, out, errors_path=errors, id_column="id")
        assert summary.rows == 3
        problems = [json.loads(line) for line in errors.read_text().splitlines()]
        assert [(p["row"], p["problem"]) for p in problems] == [
            (1, "unpaired UTF-16 surrogates replaced with U+FFFD"), (2, "unpaired UTF-16 surrogates replaced with U+FFFD")]
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["Great service \ufffd", "slow and rude", "fine"]
    assert rows[1]["id"] == "b\ufffd"


def test_rows_without_text_are_in_the_errors_file(model_dir, tmp_path):
    from feedback_nlp import load_model
    from feedback_nlp.batch import classify_file

    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,slow and rude\n2,\n3,   \n", encoding="utf-8")
    errors = tmp_path / "errors.jsonl"
    summary = classify_file(load_model(model_dir), src, tmp_path / "out.csv", errors_path=errors, id_column="id")
    assert summary.rows == 3 and summary.empty == 2
    assert [(p["row"], p["id"], p["problem"]) for p in map(json.loads, errors.read_text().splitlines())] == [
        (2, "2", "empty text (no themes)"), (3, "3", "empty text (no themes)")]


def test_csv_numbers_are_numbers_in_jsonl_output(model_dir, tmp_path):
    from feedback_nlp import load_model
    from feedback_nlp.batch import classify_file

    src = tmp_path / "in.csv"
    src.write_text("ticket,text,happiness,hours,code\n0012,10,10,7.5,1e3\nINC7,slow,-3,0,007\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    classify_file(load_model(model_dir), src, out, id_column="ticket")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["ticket"], r["text"], r["happiness"], r["hours"], r["code"]) for r in rows] == [
        ("0012", "10", 10, 7.5, "1e3"), ("INC7", "slow", -3, 0, "007")]
