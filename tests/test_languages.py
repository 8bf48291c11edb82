"""Language identification, per-language text handling and the language router (fake encoder)."""

import json

import numpy as np
import pytest

from feedback_nlp import HashingEncoder, ThemeClassifier, load_model, save_model, verify_model
from feedback_nlp.errors import ArtifactError, InvalidInputError
from feedback_nlp.languages import LanguageDetector, resolve_languages
from feedback_nlp.router import Engine, LanguageRouter, _align
from feedback_nlp.text import redact, split_clauses, split_sentences

EN = [
    ("the technician was quick and friendly", {"speed": "pos", "attitude": "pos"}),
    ("took three days to get a reply", {"speed": "neg"}),
    ("still broken after the fix", {"not_solved": "neg"}),
    ("passed from team to team, nobody owned it", {"bounced_around": "neg"}),
    ("he was rude and impatient", {"attitude": "neg"}),
    ("knew exactly what to do", {"skills": "pos"}),
    ("thanks", {}),
    ("great job", {}),
]
DE = [
    ("der techniker war schnell und freundlich", {"speed": "pos", "attitude": "pos"}),
    ("hat drei tage gedauert bis jemand geantwortet hat", {"speed": "neg"}),
    ("das problem besteht weiterhin nach der reparatur", {"not_solved": "neg"}),
    ("von einer abteilung zur anderen geschickt, keiner fuehlt sich zustaendig", {"bounced_around": "neg"}),
    ("er war unhoeflich und ungeduldig", {"attitude": "neg"}),
    ("wusste genau was zu tun war", {"skills": "pos"}),
    ("danke", {}),
    ("alles gut", {}),
]


def _rows(pairs, n=6):
    return [(f"{t} {k}" if k else t, y) for k in range(n) for t, y in pairs]


@pytest.fixture(scope="module")
def router():
    enc = HashingEncoder(dim=256)
    en = _rows(EN)
    both = en + _rows(DE)
    main = ThemeClassifier(encoder=enc, cv=3, languages=["en"]).fit([t for t, _ in en], [y for _, y in en])
    multi = ThemeClassifier(encoder=enc, cv=3, languages=["de", "fr", "es"]).fit(
        [t for t, _ in both], [y for _, y in both])
    return LanguageRouter([Engine("main", main), Engine("multilingual", multi)])


def test_detects_the_languages_of_comments_and_falls_back_when_unsure():
    found = LanguageDetector(default="en")
    assert found.detect([
        "Der Techniker war sehr freundlich, aber das Problem besteht weiterhin.",
        "Le technicien était très sympa et le problème est résolu.",
        "El técnico fue muy amable pero tardaron tres días en contestar.",
        "The technician was friendly but it took three days.",
    ]) == ["de", "fr", "es", "en"]
    # No letters, or too short to tell: the model's main language.
    assert found.detect(["", "12345", "👍", "ok"]) == ["en"] * 4
    assert LanguageDetector(default="de").detect(["ok"]) == ["de"]


def test_given_languages_win_and_bad_codes_name_the_field():
    assert resolve_languages(["ok", "hola"], "fr") == ["fr", "fr"]
    assert resolve_languages(["The printer is broken again.", "x"], [None, "es"]) == ["en", "es"]
    with pytest.raises(InvalidInputError, match=r"languages\[1\]"):
        resolve_languages(["a", "b"], [None, "not a code"])
    with pytest.raises(InvalidInputError, match="2 for 3"):
        resolve_languages(["a", "b", "c"], ["en", "de"])


def test_sentences_use_each_languages_abbreviations_and_capitals():
    # German "z.B." is not a sentence end; a line starting with a capital umlaut starts a new sentence.
    assert [s.text for s in split_sentences("Geht nicht, z.B. beim Drucken.\nÜberall Fehler", "de")] == [
        "Geht nicht, z.B. beim Drucken.", "Überall Fehler"]
    text = "Très rapide.\nÉcran réparé"
    spans = split_sentences(text, "fr")
    assert [text[s.start:s.end] for s in spans] == ["Très rapide.", "Écran réparé"]
    assert split_clauses("rapide mais pas très aimable") == ["rapide", "pas très aimable"]
    assert split_clauses("schnell, aber unfreundlich") == ["schnell", "unfreundlich"]
    assert split_clauses("rápido pero maleducado") == ["rápido", "maleducado"]


def test_redacts_european_phone_formats():
    for number in ("0171/1234567", "+49 (0)89 / 123 45 67", "06 12 34 56 78", "+34 612 34 56 78", "+48 512 345 678"):
        assert redact(f"ruf an: {number} danke") == "ruf an: [PHONE] danke", number


def test_classify_reports_the_language_and_flags_unsupported_ones(router):
    main = router.main
    out = main.classify(["the technician was quick and friendly", "der techniker war schnell"], ["en", "de"])
    assert out[0]["language"] == "en" and out[0]["language_supported"] is True and out[0]["themes"]
    # The main engine alone covers English only: a German comment is flagged, not scored.
    assert out[1] == {"themes": [], "scores": {}, "language": "de", "language_supported": False}
    # A model without languages scores every language.
    free = ThemeClassifier(encoder=HashingEncoder(dim=64), cv=3).fit([t for t, _ in _rows(EN)], [y for _, y in _rows(EN)])
    assert free.classify(["hola"], "es")[0]["language_supported"] is True


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
    assert "engines/multilingual/heads.joblib" in manifest["files"]
    assert "engines/multilingual/manifest.json" in manifest["files"]
    loaded = load_model(path)
    assert isinstance(loaded, LanguageRouter)
    texts = ["der techniker war schnell und freundlich", "he was rude and impatient"]
    assert loaded.classify(texts, ["de", "en"]) == router.classify(texts, ["de", "en"])
    # One encoder object serves both engines when their specs are equal.
    assert loaded.engines[1].model.encoder_ is loaded.main.encoder_
    heads = path / "engines" / "multilingual" / "heads.joblib"
    heads.write_bytes(heads.read_bytes() + b"x")
    with pytest.raises(ArtifactError, match="engines/multilingual/heads.joblib"):
        verify_model(path)
