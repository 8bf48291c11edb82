"""One comment's answer (feedback_nlp.results): the classifier's answers have exactly the declared
shape, flatten to the declared columns, give the ITSM tags, and the server declares the same fields."""

import re
import types
import typing

import pytest

from feedback_nlp.results import (
    Evidence,
    Result,
    ThemeHit,
    flat_arrow_types,
    flat_columns,
    flatten_rows,
    tags_for,
    theme_hit,
    unscored,
)


def _problems(value, tp, where="result") -> list[str]:
    """Where ``value`` does not have type ``tp`` (TypedDicts, unions, lists, dicts, plain types)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [_problems(value, option, where) for option in typing.get_args(tp)]
        return [] if any(not p for p in options) else [f"{where}: {value!r} is not {tp}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, not a list"]
        (item,) = typing.get_args(tp)
        return [p for i, v in enumerate(value) for p in _problems(v, item, f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not a dict"]
        key, item = typing.get_args(tp)
        return [p for k, v in value.items() for p in _problems(k, key, f"{where} key") + _problems(v, item, f"{where}[{k!r}]")]
    if typing.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not a {tp.__name__}"]
        hints = typing.get_type_hints(tp)
        found = [f"{where}: no {k!r}" for k in tp.__required_keys__ if k not in value]
        found += [f"{where}: unknown key {k!r}" for k in value if k not in hints]
        return found + [p for k, v in value.items() if k in hints for p in _problems(v, hints[k], f"{where}.{k}")]
    if tp is type(None):
        return [] if value is None else [f"{where}: {value!r} is not None"]
    if tp is float:  # an int score would be a wire change too
        return [] if isinstance(value, float) else [f"{where}: {value!r} is not a float"]
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: {value!r} is not an int"]
    return [] if isinstance(value, tp) else [f"{where}: {value!r} is not {tp.__name__}"]


@pytest.fixture
def answers(fitted):
    """Answers of every kind: scored, truncated, and in a language the model does not cover."""
    fitted.languages = ["en"]
    texts = ["Quick fix but the technician was rude", "Still broken after three calls.",
             "slow " * (fitted.max_chars // 5 + 10), "Schnelle Hilfe, danke", ""]
    codes = ["en", "en", "en", "de", "en"]
    return fitted.classify(texts, codes), fitted


def test_the_shape_checker_catches_a_wrong_answer():
    good = unscored("de")
    assert _problems(good, Result) == []
    assert _problems({**good, "extra": 1}, Result) == ["result: unknown key 'extra'"]
    assert _problems({k: v for k, v in good.items() if k != "scores"}, Result) == ["result: no 'scores'"]
    assert _problems({**good, "scores": {"speed": 1}}, Result)  # an int, not a float
    hit = theme_hit("speed", 0.5, "positive", 0.7, None)
    assert _problems({**good, "themes": [{**hit, "evidence": {"text": "x", "start": 0}}]}, Result)


def test_classify_answers_have_exactly_the_declared_shape(answers):
    results, model = answers
    assert [r["language_supported"] for r in results] == [True, True, True, False, True]
    assert "truncated" in results[2] and not any("truncated" in r for i, r in enumerate(results) if i != 2)
    assert sum(len(r["themes"]) for r in results) > 0  # hits were checked, not just empty lists
    assert any(h["evidence"] for r in results for h in r["themes"])
    for i, result in enumerate(results):
        assert _problems(result, Result, f"result {i}") == []
    for result in results:
        if result["language_supported"]:
            assert list(result["scores"]) == [str(c) for c in model.classes_]
            for hit in result["themes"]:
                assert hit["polarity"] in ("positive", "negative", None)
                assert hit["evidence"] is None or hit["evidence"]["text"]


def test_flatten_rows_gives_the_input_s_keys_then_the_flat_columns(answers):
    results, model = answers
    ids = [str(c) for c in model.classes_]
    rows = [{"id": i, "text": f"comment {i}", **result} for i, result in enumerate(results)]
    flat = flatten_rows(rows, ids)
    assert len(flat) == len(rows)
    for row in flat:
        assert list(row) == ["id", "text", *flat_columns(ids)]
    assert list(flat_arrow_types(ids)) == flat_columns(ids)
    unsupported = flat[3]
    assert unsupported["language"] == "de" and unsupported["language_supported"] is False
    assert unsupported["themes"] == ""
    assert all(unsupported[f"score_{t}"] is None for t in ids)
    supported = flat[0]
    assert all(isinstance(supported[f"score_{t}"], float) for t in ids)
    assert supported["themes"] == ";".join(
        f"{h['theme']}:{h['polarity']}" if h["polarity"] else h["theme"] for h in results[0]["themes"])


def test_tags_for_names_the_theme_and_a_predicted_polarity(answers):
    result = {"themes": [theme_hit("speed", 0.91, "negative", 0.8, None),
                         theme_hit("not_solved", 0.7, "negative", None, None),
                         theme_hit("attitude", 0.6, "positive", 0.55, None)]}
    assert tags_for(result) == ["feedback_speed_negative", "feedback_not_solved", "feedback_attitude_positive"]
    assert tags_for(unscored("de")) == []
    results, _ = answers
    for result in results:
        tags = tags_for(result)
        assert len(tags) == len(result["themes"])
        for tag, hit in zip(tags, result["themes"]):
            assert re.fullmatch(rf"feedback_{re.escape(hit['theme'])}(_(positive|negative))?", tag)


def test_theme_hit_rounds_and_reads_the_evidence_sentence():
    class Sentence:
        text, start, end = "too slow", 4, 12

    hit = theme_hit("speed", 0.123456, "negative", 0.987654, Sentence())
    assert hit == {"theme": "speed", "score": 0.1235, "polarity": "negative", "polarity_score": 0.9877,
                   "evidence": {"text": "too slow", "start": 4, "end": 12}}
    assert list(hit) == ["theme", "score", "polarity", "polarity_score", "evidence"]
    assert theme_hit("x", 1, None, None, None)["evidence"] is None


def test_the_server_declares_the_same_fields_as_the_library():
    from serve import schemas

    server_only = {"id", "tags", "error"}
    assert set(schemas.Result.model_fields) == set(typing.get_type_hints(Result)) | server_only
    assert set(schemas.ThemeHit.model_fields) == set(typing.get_type_hints(ThemeHit))
    assert set(schemas.Evidence.model_fields) == set(typing.get_type_hints(Evidence))
    # the optional key is optional on the wire too
    assert Result.__optional_keys__ == {"truncated"}
    assert not schemas.Result.model_fields["truncated"].is_required()
