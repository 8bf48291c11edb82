"""compare, promote/rollback, suggest + Label Studio/Argilla, audit and the HTML report, with the fake encoder."""

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from feedback_nlp import HashingEncoder, ThemeClassifier, load_model, save_model
from feedback_nlp.registry import default_model_path, promote_model, promotion_history, rollback_model
from feedback_nlp.cli import app
from feedback_nlp.errors import ArtifactError
from training.compare import bootstrap_f1_difference, compare_models
from training.suggest import import_labels, max_min_select, suggest, uncertainty

from conftest import DATA, read_jsonl

runner = CliRunner()
TINY = DATA / "tiny.jsonl"
THEMES = ["speed", "attitude", "skills", "not_solved", "bounced_around"]


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def registry(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("FEEDBACK_NLP_HOME", str(home))
    monkeypatch.delenv("FEEDBACK_NLP_MODEL", raising=False)
    return home


@pytest.fixture(scope="session")
def _worse_dir(tiny_rows, tmp_path_factory):
    """A model trained on shuffled labels: much worse on the tiny corpus."""
    texts = [r["text"] for r in tiny_rows]
    labels = [r["themes"] for r in tiny_rows]
    random.Random(0).shuffle(labels)
    model = ThemeClassifier(encoder=HashingEncoder(dim=256), cv=3, C=10.0).fit(texts, labels)
    return save_model(model, tmp_path_factory.mktemp("models") / "worse", name="worse")


# --- compare ----------------------------------------------------------------------------


def test_bootstrap_matches_f1_and_is_paired():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    Y = rng.integers(0, 2, (200, 3))
    A = np.where(rng.random(Y.shape) < 0.7, Y, 1 - Y)
    macro, per_theme = bootstrap_f1_difference(Y, A, A, n_boot=200)
    assert macro.champion == pytest.approx(f1_score(Y, A, average="macro"))
    assert (macro.low, macro.diff, macro.high) == (0, 0, 0)  # same predictions: every resample agrees
    B = Y.copy()
    macro, _ = bootstrap_f1_difference(Y, A, B, n_boot=200)
    assert macro.challenger == 1.0 and macro.low > 0


def test_compare_cli_better_challenger_exits_0(model_dir, _worse_dir):
    result = invoke("compare", "--champion", _worse_dir, "--challenger", model_dir, "--data", TINY, "--n-boot", 300)
    assert result.exit_code == 0, result.output
    assert "macro F1" in result.stdout and "challenger is better" in result.stdout
    for theme in THEMES:
        assert theme in result.stdout


def test_compare_cli_worse_or_same_challenger_exits_1(model_dir, _worse_dir):
    assert invoke("compare", "--champion", model_dir, "--challenger", _worse_dir, "--data", TINY).exit_code == 1
    result = invoke("compare", "--champion", model_dir, "--challenger", model_dir, "--data", TINY, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["better"] is False and data["macro_f1"]["diff"] == 0 and set(data["per_theme"]) == set(THEMES)


def test_compare_api_rejects_different_themes(fitted):
    other = ThemeClassifier(encoder=HashingEncoder(), cv=2).fit(["slow", "rude", "quick", "kind"], [{"pace": None}, {"manner": None}] * 2)
    with pytest.raises(Exception, match="different themes"):
        compare_models(fitted, other, ["slow"], [{"speed": "neg"}])


# --- promote / rollback --------------------------------------------------------------------


def test_promote_classify_uses_it_and_rollback(registry, model_dir, fitted, tmp_path):
    assert invoke("promote", model_dir).exit_code == 0
    promoted = default_model_path()
    assert promoted.parent == registry / "models" and promoted.name.startswith("tiny-")
    assert load_model().path_ == promoted  # no path: the promoted model
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "He was rude."}\n{"text": "still broken"}\n')
    out = tmp_path / "out.jsonl"
    result = invoke("classify", src, "-o", out, "--no-progress")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["themes"][0]["theme"] == "attitude" and rows[1]["themes"][0]["theme"] == "not_solved"

    second = save_model(fitted, tmp_path / "second", name="second")
    promote_model(second)
    assert load_model().manifest_["name"] == "second"
    assert len(promotion_history()) == 2
    listing = invoke("promote", "--list")
    assert "second" in listing.stdout and "tiny" in listing.stdout

    assert invoke("promote", "--rollback").exit_code == 0
    assert default_model_path() == promoted and load_model().manifest_["name"] == "tiny"
    assert rollback_model() is None  # back to "none promoted"
    assert not (registry / "current.json").exists()
    result = invoke("promote", "--rollback")
    assert result.exit_code == ArtifactError.exit_code and "nothing to roll back" in result.stderr


def test_promote_refuses_a_tampered_model(registry, model_dir):
    (model_dir / "heads.npz").write_bytes(b"tampered")
    result = invoke("promote", model_dir)
    assert result.exit_code == ArtifactError.exit_code and "sha256" in result.stderr
    assert not (registry / "current.json").exists()


# --- suggest / import ----------------------------------------------------------------------


UNLABELLED = [
    "slow response", "Slow response!", "slow response and rude", "rude but quick", "the survey",
    "still broken but friendly", "transferred and slow", "clueless and slow", "ok", "thanks for the help",
    "the printer", "quick", "kind", "still waiting for a reply", "knew the problem",
    "transferred to another team and still broken", "fine I guess", "great", "", "friendly but clueless",
]


def _unlabelled_file(tmp_path):
    path = tmp_path / "unlabelled.jsonl"
    path.write_text("".join(json.dumps({"id": f"c{i}", "text": t}) + "\n" for i, t in enumerate(UNLABELLED)))
    return path


def test_uncertainty_and_max_min():
    u = uncertainty(np.array([[0.5, 0.0], [0.9, 0.1], [0.3, 0.0]]), np.array([0.5, 0.5]))
    assert u[0] == 1.0 and u[1] < u[2] < 1
    V = np.array([[1, 0], [1, 0.01], [0, 1], [0.99, 0.0]])
    assert sorted(max_min_select(V, 2)) == [0, 2]  # the near-duplicates 1 and 3 are skipped


def test_suggest_api_picks_n_distinct(fitted):
    chosen = suggest(fitted, UNLABELLED[:-1], 6, pool_factor=3)
    assert len(chosen) == 6 and len({c.text for c in chosen}) == 6
    assert [c.uncertainty for c in chosen] == sorted((c.uncertainty for c in chosen), reverse=True)


def test_suggest_cli_jsonl(model_dir, tmp_path):
    out = tmp_path / "to_label.jsonl"
    result = invoke("suggest", _unlabelled_file(tmp_path), "--model", model_dir, "-n", 8, "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert len(rows) == 8
    texts = [r["text"].lower().strip("!") for r in rows]
    assert len(set(texts)) == 8 and "" not in texts
    assert all({"id", "text", "themes", "scores", "uncertainty"} <= set(r) for r in rows)
    assert all(set(r["scores"]) == set(THEMES) for r in rows)


def test_label_studio_round_trip(model_dir, tmp_path):
    out = tmp_path / "tasks.json"
    result = invoke("suggest", _unlabelled_file(tmp_path), "--model", model_dir, "-n", 5, "-o", out, "--format", "label-studio")
    assert result.exit_code == 0, result.output
    tasks = json.loads(out.read_text())
    assert len(tasks) == 5
    config = (tmp_path / "tasks.label_config.xml").read_text()
    assert '<Choices name="themes" toName="text"' in config and 'value="speed:negative"' in config
    for task in tasks:
        assert isinstance(task["data"]["text"], str) and task["data"]["id"].startswith("c")
        (pred,) = task["predictions"]
        (res,) = pred["result"]
        assert res["from_name"] == "themes" and res["to_name"] == "text" and res["type"] == "choices"
        assert all(c.split(":")[0] in THEMES for c in res["value"]["choices"])
    # An annotator accepts the first 4 suggestions, changes nothing on task 5, skips nothing.
    for task in tasks[:4]:
        task["annotations"] = [{"result": task["predictions"][0]["result"], "was_cancelled": False}]
    tasks[0]["annotations"][0]["result"] = [{"from_name": "themes", "to_name": "text", "type": "choices",
                                             "value": {"choices": ["speed:negative", "not_solved"]}}]
    out.write_text(json.dumps(tasks))
    labelled = tmp_path / "labelled.jsonl"
    result = invoke("import-labels", out, "--format", "label-studio", "-o", labelled)
    assert result.exit_code == 0, result.output
    assert "1 without annotation skipped" in result.stderr
    rows = read_jsonl(labelled)
    assert len(rows) == 4 and rows[0] == {"text": tasks[0]["data"]["text"], "themes": {"speed": "neg", "not_solved": None}}
    from feedback_nlp import read_labelled

    assert len(read_labelled(labelled)[0]) == 4  # directly trainable


def test_argilla_round_trip(model_dir, tmp_path):
    out = tmp_path / "records.json"
    assert invoke("suggest", _unlabelled_file(tmp_path), "--model", model_dir, "-n", 3, "-o", out, "--format", "argilla").exit_code == 0
    data = json.loads(out.read_text())
    assert data["settings"]["questions"][0]["name"] == "themes"
    assert "attitude:positive" in data["settings"]["questions"][0]["labels"]
    records = data["records"]
    assert len(records) == 3 and all(r["suggestions"][0]["question_name"] == "themes" for r in records)
    records[0]["responses"] = [{"question_name": "themes", "value": ["attitude:negative"], "status": "submitted"}]
    records[1]["responses"] = [{"question_name": "themes", "value": ["skills:positive"], "status": "draft"}]
    out.write_text(json.dumps(data))
    texts, labels, skipped = import_labels(out, "argilla")
    assert texts == [records[0]["fields"]["text"]] and labels == [{"attitude": "neg"}] and skipped == 2
    # Argilla's flat record export reads too.
    flat = [{"text": "slow", "themes.responses": [["speed:negative"]], "themes.responses.status": ["submitted"]}]
    out.write_text(json.dumps(flat))
    assert import_labels(out, "argilla")[1] == [{"speed": "neg"}]


# --- audit ---------------------------------------------------------------------------------


def _audit_corpus(tmp_path):
    rng = random.Random(0)
    tails = ["today", "this week", "on monday", "again", "for my laptop", "with the vpn", "last time", "overall"]
    phrases = {
        "speed": ["the fix was quick and fast", "a fast quick reply", "quick and fast service"],
        "attitude": ["the agent was rude and impolite", "so rude and impolite", "rude impolite tech"],
        "skills": ["clueless tech guessed wrong", "knowledgeable and knew the cause", "clueless wrong diagnosis"],
        "not_solved": ["the printer is still broken", "still broken and not working", "it is still not working"],
        "bounced_around": ["transferred between teams", "passed around and transferred", "transferred to another team"],
    }
    rows = []
    for theme, texts in phrases.items():
        for i in range(10):
            rows.append({"text": f"{texts[i % 3]} {rng.choice(tails)} {i}", "themes": {theme: None}})
    rows[13]["themes"] = {"speed": None}  # an attitude comment labelled as speed
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows[13]["text"]


def test_audit_finds_a_flipped_label(tmp_path):
    path, flipped = _audit_corpus(tmp_path)
    result = invoke("audit", path, "--set", "encoder=hashing", "--set", "cv=4", "-n", 5, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    top = report["issues"][0]
    assert top["row"] == 14 and top["text"] == flipped
    fixes = {(f["theme"], f["action"]) for f in top["fixes"]}
    assert fixes == {("speed", "remove"), ("attitude", "add")}
    text = invoke("audit", path, "--set", "encoder=hashing", "--set", "cv=4", "-n", 3).stdout
    assert "remove speed" in text and "add attitude" in text


# --- report --------------------------------------------------------------------------------


def test_evaluate_report_is_self_contained(model_dir, tmp_path, tiny_rows):
    data = tmp_path / "eval.jsonl"
    rows = [dict(r) for r in tiny_rows]
    rows.append({"text": "Quick. <script>alert(1)</script> & rude", "themes": {"skills": "neg"}})  # FP + FN, needs escaping
    rows[0] = {"text": rows[0]["text"], "themes": {}}  # a false positive for speed
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "report.html"
    result = invoke("evaluate", data, "--model", model_dir, "--report", report)
    assert result.exit_code == 0, result.output
    assert "macro_f1" in result.stdout
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for theme in THEMES:
        assert theme in html and f'id="errors-{theme}"' in html
    assert "<svg" in html and "<path" in html
    assert "False positives" in html and "False negatives" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "&lt;script&gt;" in html and "<mark>" in html
    assert "macro F1" in html and "polarity accuracy" in html


def test_end_to_end_train_evaluate_compare_promote(tmp_path, monkeypatch):
    """The ML engineer's loop in one go, through the CLI only."""
    from conftest import DATA

    from feedback_nlp.cli import app as cli_app

    monkeypatch.setenv("FEEDBACK_NLP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FEEDBACK_NLP_MODEL", raising=False)
    run = lambda *a: CliRunner().invoke(cli_app, [str(x) for x in a], catch_exceptions=False)
    data = DATA / "tiny.jsonl"
    weak, strong = tmp_path / "weak", tmp_path / "strong"
    assert run("train", data, "-o", weak, "--set", "encoder=hashing", "--set", "C=0.001", "--set", "threshold=0.9").exit_code == 0
    assert run("train", data, "-o", strong, "--set", "encoder=hashing", "--set", "cv=3", "--set", "C=10").exit_code == 0
    report = tmp_path / "report.html"
    assert run("evaluate", data, "--model", strong, "--report", report).exit_code == 0 and report.stat().st_size > 1000
    assert run("compare", "--champion", weak, "--challenger", strong, "--data", data, "--n-boot", "200").exit_code == 0
    assert run("compare", "--champion", strong, "--challenger", weak, "--data", data, "--n-boot", "200").exit_code == 1
    assert run("promote", weak).exit_code == 0
    assert run("promote", strong).exit_code == 0
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "transferred between teams"}\n')
    assert run("classify", src, "-o", tmp_path / "out.jsonl").exit_code == 0  # no --model: the promoted one
    assert json.loads((tmp_path / "out.jsonl").read_text())["themes"][0]["theme"] == "bounced_around"
    assert run("promote", "--rollback").exit_code == 0
    from feedback_nlp.registry import default_model_path

    assert json.loads((default_model_path() / "manifest.json").read_text())["training"]["config"]["C"] == 0.001


def test_evaluate_record_keeps_the_metrics_in_the_folder(model_dir, tmp_path, tiny_rows):
    from feedback_nlp import verify_model

    data = tmp_path / "holdout.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in tiny_rows[:20]))
    result = CliRunner().invoke(app, ["evaluate", str(data), "--model", str(model_dir), "--record", "holdout", "--json"])
    assert result.exit_code == 0, result.output
    manifest = verify_model(model_dir)  # still verifies: the card and manifest were re-hashed
    printed = json.loads(result.stdout)
    assert manifest["metrics"]["holdout"]["macro_f1"] == printed["macro_f1"]
    assert manifest["metrics"]["holdout"]["data"] == str(data)
    assert "## Metrics: holdout" in (model_dir / "MODEL_CARD.md").read_text()
