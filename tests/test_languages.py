"""Language identification and per-language text handling (fake encoder); the router itself is in test_router.py."""

import json

import pytest

from feedback_nlp import HashingEncoder, ThemeClassifier, load_model, save_model
from feedback_nlp.errors import InvalidInputError
from feedback_nlp.languages import LanguageDetector, resolve_languages
from feedback_nlp.router import Engine, LanguageRouter
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


def test_an_unsupported_language_is_named_only_when_the_detector_is_sure():
    found = LanguageDetector(default="en")
    covered = ["en", "de", "fr", "es"]
    # Short English that reads a little Danish stays English; a short Spanish one that reads
    # a little Catalan goes to Spanish; a clear Swedish sentence is named Swedish.
    assert found.detect(["Sighed at me. Twice.", "super agil el servicio", "Tack för hjälpen, allt fungerar nu."],
                        covered) == ["en", "es", "sv"]


def test_the_identifier_keeps_only_its_languages_and_answers_as_py3langid_does(tmp_path, monkeypatch):
    import numpy as np
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    import feedback_nlp.languages as languages

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # fresh plain copies, made here
    chosen = ("en", "de", "fr", "sv", "ja")
    ours = languages._from_plain_copy(chosen)
    assert ours is not None
    assert sorted(ours.nb_classes) == sorted(chosen) and ours.nb_ptc.shape[1] == len(chosen)
    assert isinstance(ours.tk_nextmove, memoryview)  # memory-mapped from the cache folder
    assert any(p.suffix == ".npy" for p in (tmp_path / "feedback-nlp").iterdir())
    theirs = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    theirs.set_languages(list(chosen))
    for text in ["der Techniker war schnell", "merci beaucoup", "tack så mycket för hjälpen",
                 "ありがとうございました", "took three days", "", "ok \udc00"]:
        assert ours.classify(text)[0] == theirs.classify(text)[0]
        assert np.isclose(ours.classify(text)[1], theirs.classify(text)[1])
        assert ours.rank(text) == theirs.rank(text)


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


def test_cli_classify_takes_a_language_and_a_language_column(router, tmp_path):
    from typer.testing import CliRunner

    from feedback_nlp.cli import app

    path = save_model(router, tmp_path / "routed")
    src = tmp_path / "in.csv"
    src.write_text("text,lang\nder techniker war schnell und freundlich,de\ntook three days to get a reply,\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = CliRunner().invoke(app, ["classify", str(src), "-o", str(out), "-m", str(path), "--language-column", "lang"])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["language"] for r in rows] == ["de", "en"]
    assert {t["theme"] for t in rows[0]["themes"]} == {"speed", "attitude"}
    done = CliRunner().invoke(app, ["classify", str(src), "-o", str(out), "-m", str(path), "--language", "sv"])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["language"], r["language_supported"], r["themes"]) for r in rows] == [("sv", False, [])] * 2
    flat = tmp_path / "out.csv"
    assert CliRunner().invoke(app, ["classify", str(src), "-o", str(flat), "-m", str(path), "--language", "sv"]).exit_code == 0
    import csv

    first = next(csv.DictReader(flat.open(encoding="utf-8")))
    assert first["language"] == "sv" and first["language_supported"] == "False" and first["score_speed"] == ""


@pytest.mark.anyio
async def test_http_answers_carry_the_language_and_take_it_per_request_or_item(router, tmp_path):
    import httpx

    from serve.app import create_app
    from serve.settings import Settings

    app = create_app(Settings(model=save_model(router, tmp_path / "routed")))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            for _ in range(200):
                if (await client.get("/readyz")).status_code == 200:
                    break
                import asyncio

                await asyncio.sleep(0.1)
            r = await client.post("/v1/classify", json={"text": "The printer was fixed within the hour, thank you."})
            assert r.status_code == 200 and r.json()["results"][0]["language"] == "en"
            r = await client.post("/v1/classify", json={"language": "de", "items": [
                {"id": 1, "text": "der techniker war schnell und freundlich"},
                {"id": 2, "text": "tack", "language": "sv"}]})
            assert r.status_code == 200
            first, second = r.json()["results"]
            assert first["language"] == "de" and first["language_supported"] is True and first["themes"]
            assert (second["id"], second["language"], second["language_supported"]) == (2, "sv", False)
            assert second["themes"] == [] and second["scores"] == {} and second["tags"] == []
            r = await client.post("/v1/classify", json={"text": "x", "language": "German"})
            assert r.status_code in (400, 422)


def test_training_routes_rows_to_engines_by_language(tmp_path):
    from training.pipeline import TrainConfig, train_model

    data = tmp_path / "data.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for lang, pairs in (("en", EN), ("de", DE)):
            for text, themes in _rows(pairs):
                fh.write(json.dumps({"text": text, "themes": themes, "language": lang}) + "\n")
    config = TrainConfig(encoder="hashing", cv=3, languages="en", embedding_cache=None,
                         engines=[{"name": "multilingual", "encoder": "hashing", "languages": "de,fr", "lexical_weight": 0.0,
                                  "language_weight": 2}])
    lines = []
    model, _ = train_model(data, tmp_path / "out", config, log=lines.append)
    assert isinstance(model, LanguageRouter)
    assert any(line.startswith(f"main engine: {len(EN) * 6} rows in en") for line in lines), lines
    loaded = load_model(tmp_path / "out")
    assert [e.name for e in loaded.engines] == ["main", "multilingual"]
    assert loaded.engines[1].languages == ("de", "fr") and loaded.main.languages == ["en"]
    out = loaded.classify(["der techniker war schnell und freundlich", "hej"], ["de", "sv"])
    assert {t["theme"] for t in out[0]["themes"]} == {"speed", "attitude"} and out[1]["language_supported"] is False
    with pytest.raises(InvalidInputError, match=r"engines\[0\]"):
        TrainConfig(engines=[{"encoder": "use"}]).engine_params()
