"""Lexical n-gram features and the classifier's blend of encoder and lexical heads."""

import json
import math
from collections import Counter

import numpy as np
import pytest

from feedback_nlp import ThemeClassifier, load_model, save_model
from feedback_nlp.errors import InvalidInputError
from feedback_nlp.lexical import LexicalHeads, NgramVocabulary, _chars, _words


def _brute_force(vocabulary, text):
    """The definition, one text at a time: sublinear tf x idf, each block L2-normalised."""
    low = text.lower()
    blocks = [Counter(c for c in map(vocabulary.words.get, _words(low)) if c is not None),
              Counter(c for c in (vocabulary.chars.get(g) for t in low.split() for g in _chars(t)) if c is not None)]
    out = np.zeros(vocabulary.size)
    for block in blocks:
        b = np.zeros(vocabulary.size)
        for c, k in block.items():
            b[c] = (1 + math.log(k)) * vocabulary.idf[c]
        if b.any():
            out += b / np.linalg.norm(b)
    return out


def test_transform_matches_the_definition_and_handles_odd_text(tiny_rows):
    texts = [r["text"] for r in tiny_rows]
    vocabulary = NgramVocabulary.fit(texts, min_df=2)
    probe = texts[:10] + ["", "ok", "a", "QUICK quick Quick!!", "réponse très rapide 👍", "\ud83d lone surrogate", "x" * 5000]
    X = LexicalHeads.matrix(vocabulary.transform(probe), vocabulary.size).toarray()
    for i, text in enumerate(probe):
        assert np.allclose(X[i], _brute_force(vocabulary, text), atol=1e-5), text
    assert not X[probe.index("")].any()
    # Case does not matter; n-grams seen in fewer than min_df texts are dropped.
    assert np.allclose(X[probe.index("QUICK quick Quick!!")],
                       LexicalHeads.matrix(vocabulary.transform(["quick quick quick!!"]), vocabulary.size).toarray()[0])
    rare = NgramVocabulary.fit(["zzyzx once", "other text", "other words"], min_df=2)
    assert "zzyzx" not in rare.words and "other" in rare.words


def test_heads_predict_the_same_from_rows_and_texts(tiny_rows):
    texts = [r["text"] for r in tiny_rows]
    y = np.array([int("speed" in r["themes"]) for r in tiny_rows])
    vocabulary = NgramVocabulary.fit(texts)
    X = LexicalHeads.matrix(vocabulary.transform(texts), vocabulary.size)
    heads = LexicalHeads.from_columns(vocabulary, [LexicalHeads.fit_column(X, y, C=10.0), LexicalHeads.fit_column(X, 1 - y, C=10.0)])
    p = heads.predict_proba(texts)
    assert p.shape == (len(texts), 2)
    assert np.allclose(p[:, 0], 1 / (1 + np.exp(-(X @ heads.coef[:, 0] + heads.intercept[0]))), atol=1e-5)
    assert ((p[:, 0] > 0.5) == y).mean() > 0.9


def test_blend_finds_a_misspelt_cue_the_encoder_does_not_know(tiny_rows, fake_encoder, tmp_path):
    texts = [r["text"] for r in tiny_rows]
    labels = [r["themes"] for r in tiny_rows]
    # A cue only the characters carry: "refered"/"referd" share n-grams the hashing encoder's words do not.
    texts += ["got refered to payroll", "refered me onwards", "refered again to facilities", "they refered me to HR"]
    labels += [{"bounced_around": "neg"}] * 4
    plain = ThemeClassifier(encoder=fake_encoder, cv=3, C=10.0).fit(texts, labels)
    blend = ThemeClassifier(encoder=fake_encoder, cv=3, C=10.0, lexical_weight=0.5).fit(texts, labels)
    j = list(blend.classes_).index("bounced_around")
    probe = ["referd to finance"]
    assert blend.predict_proba(probe)[0, j] > plain.predict_proba(probe)[0, j]
    assert plain.lexical_heads_ is None and blend.lexical_heads_ is not None
    assert not hasattr(blend, "_lexical_X") and not hasattr(blend, "_vocabulary")  # fitting state is not kept
    # The blend survives a save and load, with the same answers.
    save_model(blend, tmp_path / "m")
    loaded = load_model(tmp_path / "m", encoder=fake_encoder)
    assert loaded.get_params()["lexical_weight"] == 0.5
    assert np.allclose(loaded.predict_proba(texts[:8] + probe), blend.predict_proba(texts[:8] + probe))
    with pytest.raises(InvalidInputError, match="lexical_weight"):
        ThemeClassifier(encoder=fake_encoder, lexical_weight=1.5).fit(texts, labels)


def test_a_blend_model_classifies_without_scikit_learn_or_scipy(tiny_rows, tmp_path):
    from conftest import assert_classifies_without

    from feedback_nlp import HashingEncoder

    texts = [r["text"] for r in tiny_rows]
    model = ThemeClassifier(encoder=HashingEncoder(dim=64), cv=3, lexical_weight=0.5).fit(texts, [r["themes"] for r in tiny_rows])
    save_model(model, tmp_path / "m")
    assert_classifies_without(tmp_path / "m")


def test_gram_columns_find_every_gram_and_never_a_wrong_one(monkeypatch):
    from feedback_nlp import lexical
    from feedback_nlp.lexical import GramColumns

    grams = ["ab", "bc", " x ", "é", "\ud83d", "日本", "b"]
    columns = GramColumns(grams, start=10)
    assert columns.lookup(grams).tolist() == list(range(10, 17))
    assert columns.lookup(["zz", "ab", "", "a"]).tolist() == [-1, 10, -1, -1]
    assert list(columns) == grams and len(columns) == 7
    assert columns["bc"] == 11 and columns.get("zz") is None and "zz" not in columns and "日本" in columns
    assert GramColumns([]).lookup(["a"]).tolist() == [-1]
    # Every n-gram with the same hash: each is still found by its text, and an unseen one is not.
    monkeypatch.setattr(lexical, "hash", lambda gram: 7, raising=False)
    same = GramColumns(grams, start=0)
    assert same.lookup(grams[::-1] + ["zz"]).tolist() == list(range(6, -1, -1)) + [-1]


def test_gram_columns_pickled_into_another_process_still_find_their_grams(tmp_path):
    """str hashes differ between processes: a pickle must carry the n-grams, not their hashes."""
    import os
    import pickle
    import subprocess
    import sys

    from feedback_nlp.lexical import GramColumns

    grams = [f"g{i}" for i in range(200)] + ["réponse", " x "]
    path = tmp_path / "columns.pkl"
    path.write_bytes(pickle.dumps(GramColumns(grams, start=5)))
    code = ("import pickle, sys; c = pickle.loads(open(sys.argv[1], 'rb').read()); "
            "print(c.lookup(['g0', 'g199', 'réponse', ' x ', 'nope']).tolist())")
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.stdout.strip() == "[5, 204, 205, 206, -1]", done.stderr[-2000:]
