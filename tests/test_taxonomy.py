import json

import pytest

from feedback_nlp import DEFAULT_TAXONOMY, InvalidInputError, Taxonomy


def test_default_themes_follow_themes_md():
    assert DEFAULT_TAXONOMY.ids == ["speed", "attitude", "skills", "not_solved", "bounced_around"]
    assert DEFAULT_TAXONOMY.polar_ids == ["speed", "attitude", "skills"]
    assert DEFAULT_TAXONOMY["not_solved"].fixed_polarity == "negative"
    assert all(t.description for t in DEFAULT_TAXONOMY)


def test_custom_taxonomy_from_file(tmp_path):
    path = tmp_path / "tax.json"
    path.write_text(json.dumps({"name": "hr", "themes": [{"id": "pay", "name": "Pay", "polar": True}, {"id": "hours"}]}))
    tax = Taxonomy.from_file(path)
    assert tax.ids == ["pay", "hours"] and tax.polar_ids == ["pay"] and tax["hours"].name == "hours"
    assert Taxonomy.from_dict(tax.to_dict()) == tax


def test_taxonomy_from_labels_keeps_the_default_when_ids_match():
    all_five = {t: {None} for t in DEFAULT_TAXONOMY.ids}
    assert Taxonomy.from_labels(all_five) is DEFAULT_TAXONOMY
    partial = Taxonomy.from_labels({"not_solved": {None}, "speed": {"positive"}})
    assert partial.ids == ["speed", "not_solved"] and partial["speed"] == DEFAULT_TAXONOMY["speed"]
    custom = Taxonomy.from_labels({"billing": {"positive", "negative"}, "login": {None}})
    assert custom.ids == ["billing", "login"] and custom.polar_ids == ["billing"]


def test_bad_taxonomy_files_are_named(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        Taxonomy.from_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InvalidInputError, match="bad.json"):
        Taxonomy.from_file(tmp_path / "bad.json")
    with pytest.raises(InvalidInputError, match="duplicate"):
        Taxonomy.from_dict({"themes": [{"id": "a"}, {"id": "a"}]})
