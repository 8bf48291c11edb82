"""feedback_nlp.router: the language router sends each comment to its engine (fake encoder)."""

import json

import numpy as np
import pytest

from feedback_nlp import HashingEncoder, ThemeClassifier, load_model, save_model, verify_model
from feedback_nlp.errors import ArtifactError
from feedback_nlp.router import Engine, LanguageRouter, _align

from test_languages import DE, EN, _rows, router  # noqa: F401  (router: the shared fixture)


def test_router_sends_each_comment_to_the_engine_of_its_language(router):
    texts = ["der techniker war schnell und freundlich", "took three days to get a reply", "tack så mycket"]
    out = router.classify(texts, ["de", "en", "sv"])
    assert [r["language"] for r in out] == ["de", "en", "sv"]
    assert [r["language_supported"] for r in out] == [True, True, False]
    assert {t["theme"] for t in out[0]["themes"]} == {"speed", "attitude"}
    assert [t["theme"] for t in out[1]["themes"]] == ["speed"]
    assert out[2]["themes"] == [] and out[2]["scores"] == {}
    # The German comment is scored by the multilingual engine, on the main engine's threshold scale.
    engine = router.engines[1].model
    raw = engine.predict_proba([texts[0]], ["de"])
    assert np.allclose(router.predict_proba([texts[0]], ["de"]), _align(raw, engine.thresholds_, router.main.thresholds_))
    # predict_proba + decide agree with classify for every language.
    tagged = router.decide(router.predict_proba(texts, ["de", "en", "sv"]))
    ids = [str(c) for c in router.classes_]
    assert [{ids[j] for j in np.flatnonzero(row)} for row in tagged] == [{t["theme"] for t in r["themes"]} for r in out]


def test_the_engines_of_one_call_run_side_by_side_with_the_answers_of_one_at_a_time(router):
    import threading

    texts = ["der techniker war schnell und freundlich", "took three days to get a reply",
             "er war unhoeflich und ungeduldig", "still broken after the fix"] * 3
    languages = ["de", "en", "de", "en"] * 3
    alone = [router.engines[0 if code == "en" else 1].model.classify([t], [code]) for t, code in zip(texts, languages)]
    # Each engine waits at a barrier that opens only when both are inside classify at once.
    both_inside = threading.Barrier(2, timeout=10)
    engines = [engine.model for engine in router.engines]
    originals = [model.classify for model in engines]

    def waiting(original):
        def classify(X, languages=None):
            both_inside.wait()
            return original(X, languages)
        return classify

    try:
        for model, original in zip(engines, originals):
            model.classify = waiting(original)
        together = router.classify(texts, languages)
    finally:
        for model in engines:
            del model.classify
    assert not both_inside.broken
    for one, answer in zip(alone, together):
        expected = one[0]
        assert answer["language"] == expected["language"]
        assert [t["theme"] for t in answer["themes"]] == [t["theme"] for t in expected["themes"]]
    assert [r["scores"] for r, code in zip(together, languages) if code == "en"] == [
        one[0]["scores"] for one, code in zip(alone, languages) if code == "en"]


def test_a_router_survives_pickling_as_ray_ships_a_loaded_model(router):
    import pickle

    texts, languages = ["der techniker war schnell und freundlich", "took three days to get a reply"], ["de", "en"]
    copy = pickle.loads(pickle.dumps(router))
    assert copy.classify(texts, languages) == router.classify(texts, languages)


def test_align_maps_thresholds_onto_the_main_scale_monotonically():
    own, main = np.array([0.2, 0.7]), np.array([0.5, 0.4])
    grid = np.linspace(0, 1, 101)[:, None].repeat(2, axis=1)
    mapped = _align(grid, own, main)
    assert np.all(np.diff(mapped, axis=0) >= 0)
    assert np.allclose(_align(own[None], own, main), main[None])
    assert np.allclose(mapped[0], 0) and np.allclose(mapped[-1], 1)


def test_router_folder_round_trip_and_tamper_check(router, tmp_path):
    path = save_model(router, tmp_path / "routed")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["languages"] == ["en"]
    assert manifest["engines"] == [{"name": "multilingual", "path": "engines/multilingual", "languages": ["de", "fr", "es"]}]
    assert "engines/multilingual/heads.npz" in manifest["files"]
    assert "engines/multilingual/manifest.json" in manifest["files"]
    loaded = load_model(path)
    assert isinstance(loaded, LanguageRouter)
    texts = ["der techniker war schnell und freundlich", "he was rude and impatient"]
    assert loaded.classify(texts, ["de", "en"]) == router.classify(texts, ["de", "en"])
    # One encoder object serves both engines when their specs are equal.
    assert loaded.engines[1].model.encoder_ is loaded.main.encoder_
    heads = path / "engines" / "multilingual" / "heads.npz"
    heads.write_bytes(heads.read_bytes() + b"x")
    with pytest.raises(ArtifactError, match="engines/multilingual/heads.npz"):
        verify_model(path)


def test_language_engines_load_when_their_first_comment_comes(router, tmp_path):
    loaded = load_model(save_model(router, tmp_path / "routed"))
    assert not loaded.engines[1].loaded and loaded.engines[1].languages == ("de", "fr", "es")
    loaded.classify(["took three days to get a reply"], "en")
    assert not loaded.engines[1].loaded  # English only so far
    loaded.classify(["der techniker war schnell"], "de")
    assert loaded.engines[1].loaded
    fresh = load_model(tmp_path / "routed")
    fresh.load_engines()
    assert all(e.loaded for e in fresh.engines)
