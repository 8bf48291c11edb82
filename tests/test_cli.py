import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feedback_nlp.cli import app

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def write_csv(path, rows, header=("id", "comment", "team")):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_classify_csv_keeps_columns_and_adds_themes_and_scores(model_dir, tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, [["1", "Quick fix but he was rude.", "A"], ["2", "", "B"], ["3", "Thanks!", "A"]])
    out = tmp_path / "out.csv"
    result = invoke("classify", src, "-o", out, "--text-column", "comment", "--id-column", "id", "--model", model_dir)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0])[:3] == ["id", "comment", "team"]
    assert {"themes", "score_speed", "score_attitude", "score_skills", "score_not_solved", "score_bounced_around"} <= set(rows[0])
    assert "speed:positive" in rows[0]["themes"] and "attitude:negative" in rows[0]["themes"]
    assert rows[1]["themes"] == ""


def test_classify_jsonl_output_contract(model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "still broken", "meta": {"team": "A"}}\n{"text": "transferred between teams"}\n')
    out = tmp_path / "out.jsonl"
    assert invoke("classify", src, "-o", out, "--model", model_dir).exit_code == 0
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert rows[0]["meta"] == {"team": "A"} and rows[0]["text"] == "still broken"
    assert rows[0]["themes"][0]["theme"] == "not_solved"
    assert set(rows[0]["scores"]) == {"speed", "attitude", "skills", "not_solved", "bounced_around"}
    assert rows[1]["themes"][0]["theme"] == "bounced_around"


def test_classify_parquet_to_parquet(model_dir, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["friendly and quick", "slow"], "n": [1, 2]}), src)
    out = tmp_path / "out.parquet"
    assert invoke("classify", src, "-o", out, "--model", model_dir, "--chunk-size", "1").exit_code == 0
    table = pq.read_table(out).to_pylist()
    assert [r["n"] for r in table] == [1, 2] and "score_speed" in table[0] and "speed" in table[0]["themes"]


def test_stdin_to_stdout(model_dir):
    result = invoke("classify", "-", "--model", model_dir, input='{"text": "rude"}\n{"text": "ok"}\n')
    lines = [json.loads(l) for l in result.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 2 and lines[0]["themes"][0]["theme"] == "attitude"


def test_stdin_to_a_file_and_resume_from_stdin_is_refused(model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    result = invoke("classify", "-", "-o", out, "--model", model_dir, input='{"text": "rude"}\n{"text": "ok"}\n')
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 2 and not (tmp_path / "out.jsonl.progress.json").exists()
    again = invoke("classify", "-", "-o", tmp_path / "again.jsonl", "--resume", "--model", model_dir, input='{"text": "ok"}\n')
    assert again.exit_code == 2 and "not stdin" in again.stderr


def test_missing_text_column_exits_2_listing_columns(model_dir, tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, [["1", "hi", "A"]])
    result = invoke("classify", src, "--model", model_dir)
    assert result.exit_code == 2
    assert "no text column 'text'" in result.stderr and "id, comment, team" in result.stderr


def test_bad_rows_are_kept_and_reported(model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    huge = "still broken " * 10_000
    src.write_bytes(
        b'{"id": "a", "text": "rude"}\n'
        b'not json at all\n'
        b'{"id": "c", "text": "bad \xff\xfe bytes, transferred"}\n'
        b'{"id": "d", "text": "nul \\u0000 char"}\n'
        + json.dumps({"id": "e", "text": huge}).encode() + b"\n"
        b'{"id": "f"}\n'
        b'["a", "list"]\n'
    )
    out = tmp_path / "out.jsonl"
    errors = tmp_path / "errors.jsonl"
    result = invoke("classify", src, "-o", out, "--model", model_dir, "--id-column", "id", "--errors-file", errors)
    assert result.exit_code == 0, result.output
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(rows) == 7
    assert rows[1]["_error"].startswith("unreadable JSON") and rows[1]["themes"] == []
    assert rows[4]["truncated"] is True
    problems = [json.loads(l) for l in errors.read_text().splitlines()]
    reported = {p["row"] for p in problems}
    assert {2, 3, 4, 5, 6, 7} <= reported
    assert "row 2" in result.stderr and "truncated" in result.stderr


def test_redact_option(model_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "still broken, call me on +44 20 7946 0958 or jo@x.com"}\n')
    out = tmp_path / "out.jsonl"
    invoke("classify", src, "-o", out, "--model", model_dir, "--redact")
    text = out.read_text()
    assert "7946" not in text and "jo@x.com" not in text and "[PHONE]" in text


def test_train_evaluate_info(tmp_path):
    from conftest import DATA

    out = tmp_path / "m"
    result = invoke("train", DATA / "tiny.jsonl", "-o", out, "--set", "encoder=hashing", "--set", "cv=3", "--eval", DATA / "tiny.jsonl")
    assert result.exit_code == 0, result.output
    assert "evaluation: macro_f1" in result.stderr
    assert (out / "manifest.json").exists() and "Metrics: evaluation" in (out / "MODEL_CARD.md").read_text()
    result = invoke("evaluate", DATA / "tiny.jsonl", "--model", out, "--json")
    metrics = json.loads(result.stdout)
    assert metrics["macro_f1"] > 0.6 and set(metrics["per_theme"]) == {"speed", "attitude", "skills", "not_solved", "bounced_around"}
    assert metrics["polarity_accuracy"] > 0.8
    result = invoke("info", "--model", out)
    assert "threshold" in result.stdout and "hashing" in result.stdout


def test_train_single_label_csv(tmp_path):
    src = tmp_path / "b.csv"
    rows = [[t, c] for t, c in [("card not arrived", "card"), ("where is my card", "card"), ("reset my pin", "pin"), ("forgot pin", "pin")] * 4]
    write_csv(src, rows, header=("text", "category"))
    out = tmp_path / "m"
    result = invoke("train", src, "-o", out, "--label-column", "category", "--set", "encoder=hashing")
    assert result.exit_code == 0, result.output
    metrics = json.loads(invoke("evaluate", src, "--model", out, "--label-column", "category", "--json").stdout)
    assert metrics["accuracy"] == 1.0


def test_train_reports_bad_data(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "fast", "themes": {"speed": "sideways"}}\n')
    result = invoke("train", src, "-o", tmp_path / "m", "--set", "encoder=hashing")
    assert result.exit_code == 2 and "row 1" in result.stderr and "sideways" in result.stderr
    result = invoke("train", src, "-o", tmp_path / "m", "--set", "nonsense=1")
    assert result.exit_code == 2 and "unknown config key" in result.stderr


def test_missing_model_is_a_clear_error(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "x"}\n')
    result = invoke("classify", src, "--model", tmp_path / "nope")
    assert result.exit_code == 3 and "model folder not found" in result.stderr


def test_training_is_reproducible(tmp_path):
    from conftest import DATA

    from feedback_nlp import load_model

    texts = [json.loads(l)["text"] for l in (DATA / "tiny.jsonl").read_text().splitlines()]
    for name in ("a", "b"):
        assert invoke("train", DATA / "tiny.jsonl", "-o", tmp_path / name, "--set", "encoder=hashing", "--set", "cv=3", "--set", "seed=3").exit_code == 0
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    assert (a.thresholds_ == b.thresholds_).all()
    assert (a.predict_proba(texts) == b.predict_proba(texts)).all()
    ma = json.loads((tmp_path / "a" / "manifest.json").read_text())
    mb = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert ma["files"]["heads.npz"] == mb["files"]["heads.npz"]
    assert ma["training"]["data_sha256"] == mb["training"]["data_sha256"]


def test_retrain_base_model_with_new_feedback(tmp_path):
    from conftest import DATA

    from feedback_nlp import load_model

    base = tmp_path / "base"
    assert invoke("train", DATA / "tiny.jsonl", "-o", base, "--set", "encoder=hashing", "--set", "cv=3", "--set", "C=10").exit_code == 0
    new = tmp_path / "new.jsonl"
    new.write_text("\n".join(json.dumps({"text": t, "themes": {"bounced_around": "neg"}}) for t in
                             ["ping pong between desk and network team", "ping pong again between teams", "endless ping pong"]) + "\n")
    result = invoke("train", "--base", base, "--add", new, "-o", tmp_path / "next")
    assert result.exit_code == 0, result.output
    before, after = load_model(base), load_model(tmp_path / "next")
    assert after.training_["rows"] == before.training_["rows"] + 3
    assert after.get_params()["C"] == 10.0  # the base model's config carries over
    j = list(after.classes_).index("bounced_around")
    probe = ["total ping pong"]
    assert after.predict_proba(probe)[0, j] > before.predict_proba(probe)[0, j]
    # Own comments can be made to count more than the base data (own_weight).
    result = invoke("train", "--base", base, "--add", new, "-o", tmp_path / "heavy", "--set", "own_weight=8")
    assert result.exit_code == 0, result.output
    heavy = load_model(tmp_path / "heavy")
    assert heavy.training_["config"]["own_weight"] == 8.0
    assert heavy.predict_proba(probe)[0, j] > after.predict_proba(probe)[0, j]
    assert invoke("train", "--base", base, "--add", new, "-o", tmp_path / "bad", "--set", "own_weight=0").exit_code != 0


def test_progress_is_logged_with_total_and_percent_when_not_in_a_terminal(model_dir, tmp_path, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"slow reply number {i}"}) + "\n" for i in range(30)), encoding="utf-8")
    monkeypatch.setenv("FEEDBACK_NLP_PROGRESS_EVERY_S", "0")
    result = runner.invoke(app, ["classify", str(src), "-o", str(tmp_path / "out.jsonl"), "-m", str(model_dir),
                                 "--chunk-size", "10"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("classify: ")]
    assert lines[0].startswith("classify: 10 of 30 rows (33%)") and "rows/s" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("classify: 30 of 30 rows (100%)")
    quiet = runner.invoke(app, ["classify", str(src), "-o", str(tmp_path / "out2.jsonl"), "-m", str(model_dir), "--no-progress"])
    assert not [line for line in quiet.output.splitlines() if line.startswith("classify: ")]


def test_row_counts_for_progress_are_cheap_and_right(tmp_path):
    import pandas as pd

    from feedback_nlp.batch import count_rows

    (tmp_path / "a.csv").write_text('text,id\n"two\nlines",1\nplain,2\n', encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"text": "a"}\n\n{"text": "b"}\n', encoding="utf-8")
    pd.DataFrame({"text": ["a", "b", "c"]}).to_parquet(tmp_path / "a.parquet")
    assert (count_rows(tmp_path / "a.csv", "csv"), count_rows(tmp_path / "a.jsonl", "jsonl"),
            count_rows(tmp_path / "a.parquet", "parquet"), count_rows("-", "jsonl")) == (2, 2, 3, None)


def test_command_modules_import_alone():
    import subprocess
    import sys

    for code in ("import training.cli, serve.cli", "import serve.cli, training.cli; from feedback_nlp.cli import app"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
