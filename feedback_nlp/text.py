"""Text handling: normalise, split into sentences with offsets, redact PII.

Offsets always point into the text as the caller gave it, so an evidence span can be
highlighted in the original comment even after HTML entities were decoded and line
breaks or control characters were cleaned up.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

# An HTML entity (named or numeric), or a run of whitespace/control/invisible characters.
_TOKEN_RE = re.compile(
    r"(?P<entity>&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?)"
    r"|(?P<space>[\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200d\u2028\u2029\u2060\ufeff]+)"
)
_LINE_BREAK_RE = re.compile(r"[\n\r\u2028\u2029]")
# A line break is kept as a boundary when the next line starts like a new sentence or item:
# a capital letter of any script, a digit, a bullet, a quote or an opening ¿/¡.
_NEW_LINE_START_RE = re.compile(r"[0-9\-*•·–—\"'(«„“¿¡]")


def _starts_new_line(following: str) -> bool:
    return bool(following) and (following.isupper() or bool(_NEW_LINE_START_RE.match(following)))


@dataclass(frozen=True)
class Sentence:
    text: str  # the normalised sentence
    start: int  # offsets into the original text: original[start:end] is the sentence
    end: int


def normalize_with_offsets(text: str) -> tuple[str, list[int], list[int]]:
    """Normalise ``text`` and map every output character back to the input.

    Decodes HTML entities, turns runs of whitespace and control characters into one
    space (or one line break where a new line starts a new sentence), strips the ends.
    Returns ``(normalised, starts, ends)``: output character ``i`` comes from
    ``text[starts[i]:ends[i]]``.
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() > pos:
            out.append(text[pos : m.start()])
            starts.extend(range(pos, m.start()))
            ends.extend(range(pos + 1, m.start() + 1))
        if m.group("entity"):
            decoded = html.unescape(m.group())
            # Decoded entities that are themselves whitespace/control collapse like spaces.
            if _TOKEN_RE.fullmatch(decoded) and not decoded.startswith("&"):
                decoded = " "
        else:
            following = text[m.end() : m.end() + 1]
            is_break = bool(_LINE_BREAK_RE.search(m.group())) and _starts_new_line(following)
            decoded = "\n" if is_break else " "
        out.append(decoded)
        starts.extend([m.start()] * len(decoded))
        ends.extend([m.end()] * len(decoded))
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
        starts.extend(range(pos, len(text)))
        ends.extend(range(pos + 1, len(text) + 1))
    norm = "".join(out)
    # Collapse what entity decoding may have put next to a space, and strip the ends.
    keep = [
        i
        for i, ch in enumerate(norm)
        if not (ch in " \n" and (i == 0 or norm[i - 1] in " \n" or i == len(norm) - 1))
    ]
    if len(keep) != len(norm):
        norm = "".join(norm[i] for i in keep)
        starts = [starts[i] for i in keep]
        ends = [ends[i] for i in keep]
    if norm.endswith((" ", "\n")):
        norm, starts, ends = norm[:-1], starts[:-1], ends[:-1]
    return norm, starts, ends


def normalize(text: str) -> str:
    """Normalised text (see :func:`normalize_with_offsets`)."""
    return normalize_with_offsets(text)[0]


_SENTENCIZER_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()
_PIPELINES: dict[str, tuple] = {}
# spaCy's vocabulary learns every new word it tokenizes and never forgets one: a long-running
# server fed ticket numbers, names and typos grew by ~0.6 KB per new word without end (190 MB
# after 100,000 comments with unique ids, BENCHMARKS.md section 4). A pipeline that has learnt
# this many words is replaced by a fresh one (the same sentences; its vocabulary is only a cache).
VOCABULARY_LIMIT = 10_000


def sentencizer(language: str = "en"):
    """spaCy's blank pipeline for ``language`` with its sentencizer, and its punctuation: made
    once per language (0.05-0.8 s each; French's rules are made once per install, ~3 s, then
    cached) and again once its vocabulary passes ``VOCABULARY_LIMIT``, also when several
    threads ask at once; one language loading never holds up another."""
    with _LOCKS_LOCK:
        lock = _SENTENCIZER_LOCKS.setdefault(language, threading.Lock())
    with lock:
        found = _PIPELINES.get(language)
        if found is None or len(found[0].vocab) > VOCABULARY_LIMIT:
            found = _PIPELINES[language] = _sentencizer(language)
        return found


def _sentencizer(language: str = "en"):
    """spaCy's blank pipeline for ``language`` with its rule-based sentencizer, and its punctuation.

    Each language's tokenizer knows its own abbreviations ("z.B.", "p. ej."); languages whose
    blank pipeline needs an extra package (ja, ko, th, ...) use spaCy's multi-language one.
    """
    import spacy  # here, not at the top: ~0.6 s (more where torch is installed: spaCy's thinc imports it)

    nlp = _without_word_pattern(language) if language in _WORD_PATTERN_LANGUAGES else None
    if nlp is None:
        try:
            nlp = spacy.blank(language)
        except (ImportError, KeyError, ValueError, OSError):  # unknown code, or a tokenizer that needs a package
            nlp = spacy.blank("xx")
    nlp.add_pipe("sentencizer")
    punct = set(nlp.get_pipe("sentencizer").punct_chars)
    return nlp, punct


# Languages whose spaCy tokenizer has a whole-word pattern (``token_match``) that costs far
# more than the rest of it: French compiles ~300 case-insensitive Unicode alternatives of
# hyphenated and elided words ("black-out", "prud'homme") when its module is imported, 34 MB
# and ~2 s. The pattern only keeps such a word in one piece; it matches letters, hyphens
# and apostrophes only, so it never decides where a sentence ends.
_WORD_PATTERN_LANGUAGES = frozenset({"fr"})

_TOKENIZER_RULES = """
import sys, spacy
sys.stdout.buffer.write(spacy.blank(sys.argv[1]).tokenizer.to_bytes(exclude=["vocab", "token_match"]))
"""


def _without_word_pattern(language: str):
    """spaCy's multi-language blank pipeline with ``language``'s tokenizer rules (prefixes,
    suffixes, infixes, abbreviations such as "M." and "etc.") but not its whole-word pattern;
    None where that cannot be had (the caller loads spaCy's own pipeline).

    The rules are serialised once, by a child process (importing the language's module is
    what costs the memory), into the cache folder, keyed by spaCy's version and files.
    tests/test_text.py checks that sentences come out as with spaCy's own pipeline.
    """
    import subprocess
    import sys
    from importlib.util import find_spec
    from pathlib import Path

    import spacy

    from .files import plain_copy

    def serialise(source: Path, fh) -> None:
        done = subprocess.run([sys.executable, "-c", _TOKENIZER_RULES, language], capture_output=True, timeout=120)
        if done.returncode != 0 or not done.stdout:
            raise OSError(f"serialising spaCy's {language} tokenizer failed: {done.stderr.decode(errors='replace')[-300:]}")
        fh.write(done.stdout)

    try:
        source = Path(find_spec(f"spacy.lang.{language}").origin)
        rules = plain_copy(source, f"spacy-{spacy.__version__}-{language}-tokenizer", serialise, suffix=".bin")
        nlp = spacy.blank("xx")
        nlp.tokenizer.from_bytes(rules.read_bytes(), exclude=["vocab"])
        return nlp
    except Exception:  # no cache folder, no child process, a changed format: spaCy's own pipeline
        return None


def split_sentences(text: str, language: str = "en") -> list[Sentence]:
    """Sentences of ``text`` with offsets into ``text`` itself."""
    return split_sentences_many([text], [language])[0]


def split_sentences_many(texts: Sequence[str], languages: Sequence[str] | None = None) -> list[list[Sentence]]:
    """Sentences for many texts at once (spaCy runs over all texts of one language in one pass).

    ``languages``: one ISO 639-1 code per text (default English), choosing spaCy's pipeline.
    """
    if languages is not None and len(set(languages)) > 1:
        result: list[list[Sentence]] = [[] for _ in texts]
        for language in set(languages):
            rows = [i for i, code in enumerate(languages) if code == language]
            for i, sentences in zip(rows, split_sentences_many([texts[i] for i in rows], [language] * len(rows))):
                result[i] = sentences
        return result
    nlp, punct = sentencizer(languages[0] if languages else "en")
    normalised = [normalize_with_offsets(t or "") for t in texts]
    # Each line of a normalised text is segmented on its own; a line with no sentence
    # punctuation before its last character is one sentence and skips spaCy.
    pieces: list[tuple[int, int, str]] = []  # (text index, offset in normalised, line)
    for ti, (norm, _, _) in enumerate(normalised):
        offset = 0
        for line in norm.split("\n"):
            if line:
                pieces.append((ti, offset, line))
            offset += len(line) + 1
    needs_spacy = [p for p in pieces if any(ch in punct for ch in p[2][:-1])]
    spans: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for (ti, off, line), doc in zip(needs_spacy, nlp.pipe(p[2] for p in needs_spacy)):
        spans[(ti, off)] = [(s.start_char, s.end_char) for s in doc.sents]
    result: list[list[Sentence]] = [[] for _ in texts]
    for ti, off, line in pieces:
        norm, starts, ends = normalised[ti]
        for s, e in spans.get((ti, off), [(0, len(line))]):
            while s < e and line[s].isspace():
                s += 1
            while e > s and line[e - 1].isspace():
                e -= 1
            if s < e:
                result[ti].append(Sentence(line[s:e], starts[off + s], ends[off + e - 1]))
    return result


# Where one sentence can turn from one aspect to another: "fast but rude", "kind; clueless though".
# Contrast words of the languages the default model covers (en, de, fr, es, it, nl, pt, pl).
_CONTRAST_WORDS = (
    "but|though|although|however|whereas|yet|except"
    "|aber|jedoch|allerdings|obwohl|trotzdem|leider"
    "|mais|cependant|pourtant|toutefois|par contre|sauf que"
    "|pero|aunque|sin embargo|en cambio|eso sí"
    "|ma|però|tuttavia|anche se|peccato che"
    "|maar|echter|hoewel|alleen jammer"
    "|mas|porém|contudo|embora|só que"
    "|ale|jednak|chociaż|niestety"
)
_CLAUSE_BREAK_RE = re.compile(
    r"\s*(?:[;:]|\s[-–—]\s|,?\s+\b(?:" + _CONTRAST_WORDS + r")\b)\s*", re.IGNORECASE
)


def split_clauses(sentence: str) -> list[str]:
    """The parts of a sentence between contrast markers (used to read polarity per aspect)."""
    parts = [p.strip(" ,.") for p in _CLAUSE_BREAK_RE.split(sentence)]
    parts = [p for p in parts if len(p) >= 3]
    return parts if len(parts) > 1 else [sentence]


# --- PII redaction -------------------------------------------------------------------

EMAIL_RE = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
URL_RE = re.compile(r"(?:\b[a-zA-Z][a-zA-Z0-9+.-]*://|\bwww\.)[^\s<>\"']+")
# Seven or more digits, optionally grouped by spaces, dots, dashes or brackets, with an
# optional leading +: phone numbers in the usual national and international forms.
# Slashes too: German and Austrian numbers are often written 0171/1234567 or 089 / 123 45 67.
PHONE_RE = re.compile(r"(?<![\w@])\+?\(?\d(?:[\s()./-]{0,3}\d){6,}(?![\w@])")
# A standalone run of 5+ digits: employee, student or account numbers. Ticket ids such as
# INC0012345 are joined to letters and stay, because integrations need them.
ID_RE = re.compile(r"(?<![\w@])\d{5,}(?![\w@])")

_REDACTIONS = (
    (EMAIL_RE, "[EMAIL]"),
    (URL_RE, "[URL]"),
    (PHONE_RE, "[PHONE]"),
    (ID_RE, "[ID]"),
)


def redact(text: str) -> str:
    """Replace e-mail addresses, URLs, phone numbers and ID-like numbers with placeholders."""
    if not text:
        return text
    for _ in range(3):  # a replacement can expose a new match next to it; repeat to a fixpoint
        before = text
        for pattern, placeholder in _REDACTIONS:
            text = pattern.sub(placeholder, text)
        if text == before:
            break
    return text

