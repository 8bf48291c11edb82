import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score

from feedback_nlp import HashingEncoder, InvalidInputError, ThemeClassifier


def test_init_only_stores_params_and_clone_round_trips(fake_encoder):
    model = ThemeClassifier(encoder=fake_encoder, C=2.0, sentence_level=False)
    assert model.get_params()["C"] == 2.0
    copy = clone(model)
    assert copy.get_params()["sentence_level"] is False and not hasattr(copy, "classes_")
    copy.set_params(C=7.0)
    assert copy.C == 7.0


def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        ThemeClassifier(encoder=HashingEncoder()).predict(["hello"])


def test_multilabel_fit_predict_and_output_contract(fitted):
    assert list(fitted.classes_) == ["speed", "attitude", "skills", "not_solved", "bounced_around"]
    results = fitted.classify(["Quick fix but he was rude.", "", "Thanks!"])
    first = results[0]
    assert {t["theme"] for t in first["themes"]} >= {"speed", "attitude"}
    by_theme = {t["theme"]: t for t in first["themes"]}
    assert by_theme["speed"]["polarity"] == "positive" and by_theme["attitude"]["polarity"] == "negative"
    for theme in first["themes"]:
        assert set(theme) == {"theme", "score", "polarity", "polarity_score", "evidence"}
        assert 0 <= theme["score"] <= 1 and 0.5 <= theme["polarity_score"] <= 1
        assert set(theme["evidence"]) == {"text", "start", "end"}
    scores = [t["score"] for t in first["themes"]]
    assert scores == sorted(scores, reverse=True)
    assert set(first["scores"]) == set(fitted.classes_)
    assert results[1]["themes"] == [] and all(v == 0.0 for v in results[1]["scores"].values())
    assert results[2]["themes"] == []


def test_evidence_is_the_sentence_that_carries_the_theme(fitted):
    text = "Thanks for your help today, all good. The printer is still broken though."
    result = fitted.classify([text])[0]
    theme = next(t for t in result["themes"] if t["theme"] == "not_solved")
    ev = theme["evidence"]
    assert ev["text"] == "The printer is still broken though."
    assert text[ev["start"] : ev["end"]] == ev["text"]
    assert theme["polarity"] == "negative" and theme["polarity_score"] is None


def test_sentence_level_finds_a_theme_hidden_in_a_long_comment(tiny_rows, fake_encoder):
    texts = [r["text"] for r in tiny_rows]
    labels = [r["themes"] for r in tiny_rows]
    hidden = ("Thanks for all the help today. All good now. Appreciate your hard work, great job. "
              "I was transferred between three teams.")
    sentence = ThemeClassifier(encoder=fake_encoder, cv=3, C=10.0).fit(texts, labels)
    whole = ThemeClassifier(encoder=fake_encoder, cv=3, C=10.0, sentence_level=False).fit(texts, labels)
    j = list(sentence.classes_).index("bounced_around")
    assert sentence.predict_proba([hidden])[0, j] > whole.predict_proba([hidden])[0, j]
    assert "bounced_around" in [t["theme"] for t in sentence.classify([hidden])[0]["themes"]]


def test_thresholds_are_tuned_per_theme(fitted):
    assert fitted.thresholds_.shape == (5,)
    assert len(set(np.round(fitted.thresholds_, 6))) > 1


def test_fixed_threshold_and_precision_strategy(tiny_rows, fake_encoder):
    texts = [r["text"] for r in tiny_rows]
    labels = [r["themes"] for r in tiny_rows]
    fixed = ThemeClassifier(encoder=fake_encoder, threshold=0.4).fit(texts, labels)
    assert np.allclose(fixed.thresholds_, 0.4)
    strict = ThemeClassifier(encoder=fake_encoder, cv=3, threshold="precision", target_precision=0.99).fit(texts, labels)
    loose = ThemeClassifier(encoder=fake_encoder, cv=3).fit(texts, labels)
    assert (strict.thresholds_ >= loose.thresholds_ - 1e-9).all()


def test_label_formats_are_equivalent(tiny_rows, fake_encoder):
    texts = [r["text"] for r in tiny_rows]
    as_dicts = [r["themes"] for r in tiny_rows]
    as_strings = [";".join(f"{k}:{v}" for k, v in r["themes"].items()) for r in tiny_rows]
    a = ThemeClassifier(encoder=fake_encoder, cv=3).fit(texts, as_dicts)
    b = ThemeClassifier(encoder=fake_encoder, cv=3).fit(texts, as_strings)
    assert np.allclose(a.predict_proba(texts), b.predict_proba(texts))


def test_unknown_theme_and_empty_text_are_named(fake_encoder):
    from feedback_nlp import DEFAULT_TAXONOMY

    with pytest.raises(InvalidInputError, match="row 2: unknown theme 'speedy'"):
        ThemeClassifier(encoder=fake_encoder, taxonomy=DEFAULT_TAXONOMY).fit(["a", "b"], [{"speed": "pos"}, {"speedy": "neg"}])
    with pytest.raises(InvalidInputError, match="empty"):
        ThemeClassifier(encoder=fake_encoder).fit(["fast", "  "], [{"speed": "pos"}, {}])


def test_single_label_data_predicts_top_class(fake_encoder):
    texts = ["card not arrived", "where is my card", "card still missing", "reset my pin", "forgot pin", "change pin please"] * 3
    labels = ["card_arrival"] * 3 + ["pin"] * 3
    labels = labels * 3
    model = ThemeClassifier(encoder=fake_encoder, C=10.0).fit(texts, labels)
    assert model.mode_ == "single"
    assert list(model.predict(["my card has not arrived", "new pin"])) == ["card_arrival", "pin"]
    result = model.classify(["pin reset"])[0]
    assert [t["theme"] for t in result["themes"]] == ["pin"] and result["themes"][0]["polarity"] is None
    assert model.score(texts, labels) == 1.0


def test_works_inside_cross_val_score_and_grid_search(fake_encoder):
    texts = ["card not arrived", "where is my card", "card still missing", "reset my pin", "forgot pin", "change pin please"] * 4
    labels = (["card_arrival"] * 3 + ["pin"] * 3) * 4
    scores = cross_val_score(ThemeClassifier(encoder=fake_encoder), texts, labels, cv=3)
    assert scores.mean() > 0.8
    grid = GridSearchCV(ThemeClassifier(encoder=fake_encoder), {"C": [0.5, 5.0]}, cv=2).fit(texts, labels)
    assert grid.best_params_["C"] in (0.5, 5.0)


def test_multilabel_score_is_macro_f1(fitted, tiny_rows):
    texts = [r["text"] for r in tiny_rows]
    labels = [r["themes"] for r in tiny_rows]
    assert 0.5 < fitted.score(texts, labels) <= 1.0


def test_long_and_hostile_text_is_truncated_not_fatal(fitted):
    long = "the printer is still broken. " * 5000
    results = fitted.classify([long, "nul\x00char", None, float("nan")])
    assert results[0]["truncated"] is True and len(results) == 4
    assert all(t["evidence"]["end"] <= fitted.max_chars for t in results[0]["themes"])
    assert results[2]["themes"] == [] and results[3]["themes"] == []
    with pytest.raises(InvalidInputError, match="row 1"):
        fitted.classify([123])


def test_duplicate_texts_are_encoded_once(fitted):
    calls = []
    inner = fitted.encoder_

    class Counting:
        dim = inner.dim

        def encode(self, texts, batch_size=64):
            calls.append(len(texts))
            return inner.encode(texts)

        def spec(self):
            return inner.spec()

    fitted.encoder_ = Counting()
    fitted.classify(["thanks", "thanks", "thanks", "slow"])
    assert calls == [2]


def counting(fitted):
    seen: list[str] = []
    inner = fitted.encoder_

    class Counting:
        dim = inner.dim

        def encode(self, texts, batch_size=64):
            seen.extend(texts)
            return inner.encode(texts)

        def spec(self):
            return inner.spec()

    fitted.encoder_ = Counting()
    return seen


def test_whole_comment_vector_is_the_mean_of_its_sentences(fitted):
    """By default every sentence is encoded once and the whole comment is not encoded again."""
    comment = "The agent was lovely. It took three weeks to fix. Thanks"
    seen = counting(fitted)
    fitted.classify([comment, "slow"])
    assert fitted.whole_vector == "mean"
    assert sorted(seen) == sorted(["The agent was lovely.", "It took three weeks to fix.", "Thanks", "slow"])

    units = fitted._units([comment], fitted.encoder_)
    whole, sentences = units.vectors[units.unit_index[0][0]], units.vectors[units.unit_index[0][1:]]
    weights = np.array([4, 6, 1])  # words per sentence
    expected = (weights[:, None] * sentences).sum(axis=0) / weights.sum()
    cosine = whole @ expected / (np.linalg.norm(whole) * np.linalg.norm(expected))
    assert cosine > 0.9999 and np.isclose(np.linalg.norm(whole), np.linalg.norm(sentences, axis=1).mean())

    # A sentence that turns is encoded as its clauses; its polarity is read from them, no second call.
    seen.clear()
    result = fitted.classify(["Quick fix but he was rude."])[0]
    assert sorted(seen) == ["Quick fix", "he was rude"]
    assert {t["theme"]: t["polarity"] for t in result["themes"]}.get("attitude") == "negative"

    seen.clear()
    fitted.set_params(whole_vector="encode")
    fitted.classify([comment])
    assert comment in seen and len(seen) == 4
    with pytest.raises(InvalidInputError, match="whole_vector"):
        fitted.set_params(whole_vector="sum").classify([comment])


def test_polarity_is_read_from_the_clause_that_carries_the_theme(fitted):
    from feedback_nlp.text import split_clauses

    assert split_clauses("Tech seemed knowledgeable but was really impatient with me.") == [
        "Tech seemed knowledgeable", "was really impatient with me"]
    assert split_clauses("Quick and friendly.") == ["Quick and friendly."]
    seen = []
    inner = fitted.encoder_.encode
    fitted.encoder_.encode = lambda texts, batch_size=64: seen.append(list(texts)) or inner(texts)
    try:
        result = fitted.classify(["slow response, waited days but so kind and patient"])[0]
    finally:
        del fitted.encoder_.encode
    got = {t["theme"]: t["polarity"] for t in result["themes"]}
    assert got == {"speed": "negative", "attitude": "positive"}
    assert ["slow response, waited days", "so kind and patient"] in seen  # the clauses were encoded


def test_sample_weight_makes_heavier_examples_count_more(tiny_rows, fake_encoder):
    import numpy as np
    import pytest

    from feedback_nlp.errors import InvalidInputError

    texts = [r["text"] for r in tiny_rows]
    labels = [r["themes"] for r in tiny_rows]
    # Two comments that say the same thing ("zorp") with opposite labels; weight decides which wins.
    texts += ["zorp zorp desk", "zorp zorp desk again"]
    labels += [{"bounced_around": "neg"}, {}]
    probe = ["zorp zorp"]
    j = None

    def score(weights):
        nonlocal j
        model = ThemeClassifier(encoder=fake_encoder, cv=3, C=10.0).fit(texts, labels, sample_weight=weights)
        j = list(model.classes_).index("bounced_around")
        assert not hasattr(model, "_weights")  # weights are not kept in the fitted model
        return model.predict_proba(probe)[0, j]

    plain = np.ones(len(texts))
    up, down = plain.copy(), plain.copy()
    up[-2] = 20.0
    down[-1] = 20.0
    assert score(up) > score(plain) > score(down)
    with pytest.raises(InvalidInputError, match="sample_weight"):
        ThemeClassifier(encoder=fake_encoder, cv=3).fit(texts, labels, sample_weight=[1.0] * 3)
    with pytest.raises(InvalidInputError, match="sample_weight"):
        ThemeClassifier(encoder=fake_encoder, cv=3).fit(texts, labels, sample_weight=[0.0] * len(texts))


def test_encoders_never_see_lone_surrogates_or_nul(fitted):
    seen = []
    inner = fitted.encoder_

    class Recording:
        dim = inner.dim

        def spec(self):
            return inner.spec()

        def encode(self, texts, batch_size=64):
            seen.extend(texts)
            return inner.encode(texts, batch_size=batch_size)

    fitted.encoder_ = Recording()
    results = fitted.classify(["quick \ud83d fix", "rude\x00 and slow \udfff"])
    assert len(results) == 2 and seen
    assert not any(ch == "\x00" or "\ud800" <= ch <= "\udfff" for text in seen for ch in text)
    assert all(text.encode("utf-8") for text in seen)


def test_any_json_string_gives_one_answer_with_offsets_inside_it(_fitted):
    """Surrogates (Cs), private use (Co), unassigned (Cn), controls and NUL included."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    anything = st.text(alphabet=st.characters(exclude_categories=()), max_size=120)

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.lists(anything, min_size=1, max_size=4))
    def check(texts):
        results = _fitted.classify(texts)
        assert len(results) == len(texts)
        for text, result in zip(texts, results):
            for hit in result["themes"]:
                assert 0 <= hit["evidence"]["start"] <= hit["evidence"]["end"] <= len(text)

    check()
