from hypothesis import given, settings, strategies as st

from feedback_nlp.text import EMAIL_RE, PHONE_RE, normalize, normalize_with_offsets, redact, split_sentences


def test_normalize_decodes_entities_and_joins_stray_line_breaks():
    assert normalize("Fast &amp; friendly\nservice\x07 thanks&nbsp;!") == "Fast & friendly service thanks !"


def test_line_break_before_a_new_sentence_is_a_boundary():
    sentences = split_sentences("Fixed quickly\nBut the tech was rude")
    assert [s.text for s in sentences] == ["Fixed quickly", "But the tech was rude"]


def test_sentence_offsets_point_into_the_original_text():
    text = "  Hi&nbsp;team,\r\nthe printer\non floor 3 works. Thanks &amp; cheers!  "
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == ["Hi team, the printer on floor 3 works.", "Thanks & cheers!"]
    assert text[sentences[1].start : sentences[1].end] == "Thanks &amp; cheers!"
    assert text[sentences[0].start : sentences[0].end].startswith("Hi&nbsp;team")


def test_empty_and_blank_texts_have_no_sentences():
    assert split_sentences("") == []
    assert split_sentences(" \n\t ") == []


def test_redaction_covers_email_phone_url_and_ids_but_keeps_ticket_numbers():
    text = "Mail jo.smith@acme.co.uk or call +44 20 7946 0958 / (555) 123-4567, see https://x.io/a, emp 1234567, INC0012345"
    out = redact(text)
    assert "acme" not in out and "7946" not in out and "123-4567" not in out and "x.io" not in out
    assert "1234567" not in out.replace("INC0012345", "")
    assert "INC0012345" in out
    assert "[EMAIL]" in out and "[PHONE]" in out and "[URL]" in out


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_unicode_gives_sentences_inside_the_text(text):
    for s in split_sentences(text):
        assert 0 <= s.start < s.end <= len(text)
        assert s.text.strip() == s.text and s.text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalisation_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_offset_maps_have_one_entry_per_character(text):
    norm, starts, ends = normalize_with_offsets(text)
    assert len(norm) == len(starts) == len(ends)
    assert all(0 <= a < b <= len(text) for a, b in zip(starts, ends))


_local = st.text(alphabet="abcxyz019._-", min_size=1, max_size=12)
emails = st.builds(lambda a, b, c: f"{a}@{b}.{c}", _local, st.text("abcdef", min_size=1, max_size=8), st.sampled_from(["com", "co.uk", "org"]))
phones = st.builds(lambda a, b, c: f"+{a} {b} {c}", st.integers(1, 99), st.integers(100, 9999), st.integers(100000, 9999999))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), emails, st.text(max_size=40), phones, st.text(max_size=40))
def test_redaction_never_leaks_an_email_or_phone(a, email, b, phone, c):
    out = redact(f"{a} {email} {b} {phone} {c}")
    assert not EMAIL_RE.search(out)
    assert not PHONE_RE.search(out)


# The same properties through a whole model (the fake encoder): what a user gets back.

@settings(max_examples=150, deadline=None)
@given(st.text())
def test_any_unicode_gives_a_valid_result_with_evidence_inside_the_text(_fitted, text):
    (result,) = _fitted.classify([text])
    assert set(result["scores"]) == {str(c) for c in _fitted.classes_}
    assert all(0.0 <= s <= 1.0 for s in result["scores"].values())
    for theme in result["themes"]:
        evidence = theme["evidence"]
        if evidence is not None:
            assert 0 <= evidence["start"] < evidence["end"] <= len(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40), emails, st.text(max_size=40), phones)
def test_redacted_batch_output_never_leaks_an_email_or_phone(_fitted, a, email, b, phone):
    from feedback_nlp import classify_records

    (row,) = classify_records(_fitted, [{"text": f"still broken {a} {email} rude {b} {phone}"}], redact=True)
    shown = [row["text"]] + [t["evidence"]["text"] for t in row["themes"] if t["evidence"]]
    assert not any(EMAIL_RE.search(s) or PHONE_RE.search(s) for s in shown)


def test_spacy_is_imported_as_it_is_and_a_thread_importing_torch_meanwhile_works():
    """spaCy loads through its normal import (no placeholder modules): another thread importing
    torch at the same moment gets torch, and spaCy's own CLI is the real one."""
    import subprocess
    import sys

    code = (
        "import importlib.util, sys, threading\n"
        "from feedback_nlp.text import sentencizer, split_sentences\n"
        "found = {}\n"
        "def other():\n"
        "    if importlib.util.find_spec('torch') is not None:\n"
        "        import torch; found['torch'] = torch.__name__\n"
        "t = threading.Thread(target=other); t.start(); sentencizer(); t.join()\n"
        "assert [s.text for s in split_sentences('Quick fix. But rude!')] == ['Quick fix.', 'But rude!']\n"
        "assert found.get('torch', 'torch') == 'torch'\n"
        "import spacy, spacy.cli\n"
        "assert hasattr(spacy.cli, 'download') and isinstance(spacy.info(markdown=False, silent=True), dict)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


FRENCH_CASES = [
    "Bonjour M. Dupont. Mme. Durand est là.", "Voir p. ex. le ticket n° 42... Merci!",
    "Le black-out a duré 2h. C'est-à-dire trop.", "J.-C. Martin m'a aidé ; super.",
    "Qu'est-ce qu'il a fait? Rien!!! Vraiment...", "Site: https://exemple.fr/aide?x=1. Ensuite rien.",
    "Il est 10 h. 3 techniciens. 4%. 5 €.", "aujourd'hui, prud'homme. Peut-être demain.",
    "«Pas résolu.» Après-midi perdu.", "Est-il venu ? Non. Etc. etc. Fin.",
]


def test_french_is_split_as_spacys_own_pipeline_does_without_its_word_pattern(tmp_path, monkeypatch):
    """French loads without spaCy's whole-word pattern (34 MB); every sentence of the corpus's
    French comments, and of hard cases (abbreviations, hyphens, elisions, URLs), comes out the same."""
    import json
    import subprocess
    from pathlib import Path

    import spacy

    from feedback_nlp import text

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lean = text._without_word_pattern("fr")
    assert lean is not None and lean.tokenizer.token_match is None
    assert len(list((tmp_path / "feedback-nlp").glob("spacy-*-fr-tokenizer-*.bin"))) == 1
    lean.add_pipe("sentencizer")
    own = spacy.blank("fr")
    own.add_pipe("sentencizer")
    assert own.tokenizer.token_match is not None  # what the lean one leaves out
    data = Path(__file__).resolve().parent.parent / "training" / "data"
    french = [row["text"] for name in ("train", "dev", "test") for row in map(json.loads, open(data / f"{name}.jsonl"))
              if row.get("language") == "fr"]
    assert len(french) > 500
    differ = [t for t in french + FRENCH_CASES
              if [(s.start_char, s.end_char) for s in lean(t).sents] != [(s.start_char, s.end_char) for s in own(t).sents]]
    assert differ == []
    assert [t.text for t in lean("M. Dupont, etc. Fini.")] == ["M.", "Dupont", ",", "etc.", "Fini", "."]  # its abbreviations

    def no_child(*args, **kwargs):
        raise AssertionError("the cached rules are read, not made again")

    monkeypatch.setattr(subprocess, "run", no_child)
    assert text._without_word_pattern("fr") is not None


def test_french_falls_back_to_spacys_own_pipeline_when_the_rules_cannot_be_cached(tmp_path, monkeypatch):
    import subprocess

    from feedback_nlp import text

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, b"", b"boom"))
    assert text._without_word_pattern("fr") is None
    assert not list(tmp_path.rglob("*.bin"))  # nothing half-written is left to be read later


def test_a_pipeline_that_learnt_too_many_words_is_replaced_and_splits_the_same(monkeypatch):
    """spaCy's vocabulary keeps every word it has seen: a server fed ticket numbers would grow
    without end. Past VOCABULARY_LIMIT the language's pipeline starts afresh."""
    from feedback_nlp import text

    texts = [f"Ticket INC{i:07d} was slow. User u{i * 7919} says: still broken!" for i in range(400)]
    first, _ = text.sentencizer("en")
    monkeypatch.setattr(text, "VOCABULARY_LIMIT", len(first.vocab) + 300)
    expected = [[(s.text, s.start, s.end) for s in sents] for sents in text.split_sentences_many(texts[:1])]
    seen, sizes, answers = {id(first)}, [], []
    for i in range(0, len(texts), 20):
        answers += [[(s.text, s.start, s.end) for s in sents] for sents in text.split_sentences_many(texts[i:i + 20])]
        nlp, _ = text.sentencizer("en")
        seen.add(id(nlp))
        sizes.append(len(nlp.vocab))
    assert len(seen) > 1  # replaced at least once
    assert max(sizes) <= text.VOCABULARY_LIMIT + 20 * 10  # at most one call's new words past the limit
    assert answers[0] == expected[0]
    assert answers[1] == [("Ticket INC0000001 was slow.", 0, 27), ("User u7919 says: still broken!", 28, 58)]
