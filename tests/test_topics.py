"""Topic discovery (`feedback-nlp discover`) on comments without a theme (fake encoder)."""

import json

import numpy as np
from typer.testing import CliRunner

from feedback_nlp.cli import app
from feedback_nlp.topics import discover_topics

GROUPS = {
    "vpn": ["vpn drops every hour", "the vpn client will not connect", "vpn slow from home", "cannot reach vpn gateway"],
    "printer": ["printer on floor two jams", "printer prints blank pages", "the printer is out of toner", "printer queue stuck"],
    "password": ["password expires too often", "password rules are annoying", "new password policy is strict",
                 "password reset portal confusing"],
}


def rows(n=6):
    out = []
    for name, texts in GROUPS.items():
        for i in range(n):
            for text in texts:
                out.append({"text": f"{text} {name} {i}", "themes": [], "scores": {}, "closed": f"2026-{9 + i % 3:02d}-10"})
    out.append({"text": "slow and rude", "themes": [{"theme": "speed", "polarity": "negative"}], "scores": {}, "closed": "2026-10-01"})
    return out


def test_topics_group_the_comments_and_name_them(fake_encoder):
    data = rows()[:-1]
    texts = [r["text"] for r in data]
    labels, topics = discover_topics(texts, fake_encoder.encode(texts), k=3)
    assert sorted(t.size for t in topics) == [24, 24, 24]
    for name in GROUPS:
        group = {labels[i] for i, t in enumerate(texts) if name in t}
        assert len(group) == 1  # each group is one topic
        assert name in topics[group.pop()].keywords[:2]
    found, _ = discover_topics(texts, fake_encoder.encode(texts))  # the number of topics found from the data
    assert len(set(found.tolist())) >= 2


def test_cli_discover_writes_topics_of_the_comments_without_a_theme(model_dir, tmp_path):
    tagged = tmp_path / "export.tagged.jsonl"
    tagged.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    out = tmp_path / "topics.json"
    result = CliRunner().invoke(app, ["discover", str(tagged), "-m", str(model_dir), "--k", "3", "--time", "closed", "-o", str(out)])
    assert result.exit_code == 0, result.output
    found = json.loads(out.read_text())
    assert found["comments"] == 72 and found["selection"] == "comments without a theme"
    assert sorted(t["size"] for t in found["topics"]) == [24, 24, 24]
    assert {kw for t in found["topics"] for kw in t["keywords"][:1]} == set(GROUPS)
    assert all(len(t["examples"]) == 3 and sum(t["per_month"].values()) == 24 for t in found["topics"])
    assert 73 not in {r for t in found["topics"] for r in t["rows"]}  # the themed comment (row 73) is not in any
    assert "3 topics" in result.output
    within = CliRunner().invoke(app, ["discover", str(tagged), "-m", str(model_dir), "--theme", "speed", "-o", str(out)])
    assert within.exit_code == 2 and "too few" in within.output  # one comment: nothing to group


def test_topics_go_into_the_report_and_the_explorer(model_dir, tmp_path):
    tagged = tmp_path / "export.tagged.jsonl"
    tagged.write_text("".join(json.dumps(r) + "\n" for r in rows()), encoding="utf-8")
    topics = tmp_path / "topics.json"
    assert CliRunner().invoke(app, ["discover", str(tagged), "-m", str(model_dir), "--k", "3", "-o", str(topics)]).exit_code == 0
    report = tmp_path / "report.html"
    done = CliRunner().invoke(app, ["report", str(tagged), "-o", str(report), "--topics", str(topics)])
    assert done.exit_code == 0, done.output
    html = report.read_text(encoding="utf-8")
    assert 'id="topics"' in html and all(name in html.split('id="topics"')[1] for name in GROUPS)
    page = tmp_path / "explorer.html"
    done = CliRunner().invoke(app, ["report", str(tagged), "-o", str(page), "--format", "explorer", "--topics", str(topics)])
    assert done.exit_code == 0, done.output
    data = json.loads(page.read_text(encoding="utf-8").split('type="application/json">')[1].split("</script>")[0])
    assert len(data["topics"]) == 3
    assert sum(1 for c in data["comments"] if "o" in c) == 72  # every comment without a theme has its topic
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    assert CliRunner().invoke(app, ["report", str(tagged), "--topics", str(bad)]).exit_code == 2
