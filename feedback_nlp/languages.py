"""Which language each comment is written in (offline), and which languages a model covers.

Detection uses py3langid (a naive-Bayes byte n-gram model that ships inside its PyPI wheel,
~7,000 short comments/s on one core). Survey comments are often two or three words ("ok thx",
"super", "top"), where any detector guesses; a guess below ``min_confidence`` falls back to
the model's primary language, which scores such generic words as well as any other engine.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from .errors import InvalidInputError
from .files import plain_copy

# The languages of the multilingual Universal Sentence Encoder v3 (the default model's second
# encoder): comments in these are scored; others are flagged "language_supported": false.
ENCODER_LANGUAGES: tuple[str, ...] = (
    "ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh",
)
# What the detector chooses among: the covered languages plus the ones most often met beside
# them in European and global workforces, so a Swedish or Czech comment is named, not forced
# into the nearest covered language.
DETECTED_LANGUAGES: tuple[str, ...] = ENCODER_LANGUAGES + (
    "bg", "ca", "cs", "da", "el", "et", "fi", "he", "hi", "hr", "hu", "id", "lt", "lv", "ms",
    "no", "ro", "sk", "sl", "sr", "sv", "uk", "vi",
)
NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian", "it": "Italian",
    "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "ms": "Malay", "nl": "Dutch",
    "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "th": "Thai", "tr": "Turkish", "uk": "Ukrainian",
    "vi": "Vietnamese", "zh": "Chinese",
}
DEFAULT_MIN_CONFIDENCE = 0.5
# A language the model does not cover is only named when the detector is this sure: below it,
# the likeliest covered language is taken ("Sighed at me. Twice." reads 0.68 Danish).
UNSUPPORTED_MIN_CONFIDENCE = 0.9
_LETTER_RE = re.compile(r"[^\W\d_]")
_CODE_RE = re.compile(r"^[a-z]{2,3}$")


def check_language(code: object, field: str = "language") -> str:
    """A lower-case ISO 639-1 code, or InvalidInputError naming the field."""
    if not isinstance(code, str) or not _CODE_RE.match(code.strip().lower()):
        raise InvalidInputError(f"{field}: expected an ISO 639-1 language code such as 'en' or 'de', got {code!r}")
    return code.strip().lower()


class LanguageDetector:
    """``detect(texts) -> list[str]``: one ISO 639-1 code per text.

    ``default`` is returned for texts without letters and for guesses below ``min_confidence``
    (probabilities normalised over ``languages``).
    """

    def __init__(self, default: str = "en", min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 languages: Sequence[str] = DETECTED_LANGUAGES):
        self.default = check_language(default, "default")
        self.min_confidence = float(min_confidence)
        self.languages = tuple(languages)

    def _model(self):
        return identifier(self.languages)

    def load(self) -> None:
        """Load the identifier now (it is otherwise loaded on first use)."""
        self._model()

    def detect_one(self, text: str, supported: Sequence[str] | None = None) -> tuple[str, float]:
        """(language, confidence) for one text; the default with confidence 0.0 when unsure.

        With ``supported``, a language outside it is returned only at UNSUPPORTED_MIN_CONFIDENCE
        or above; otherwise the likeliest supported language (if sure enough) or the default.
        """
        if not text or not _LETTER_RE.search(text):
            return self.default, 0.0
        code, p = self._model().classify(text)
        if supported is not None and code not in supported and p < UNSUPPORTED_MIN_CONFIDENCE:
            # The likeliest covered language, its probability renormalised over the covered ones.
            ranked = [(c, q) for c, q in self._model().rank(text) if c in supported]
            total = sum(q for _, q in ranked)
            code, p = (ranked[0][0], ranked[0][1] / total) if ranked and total > 0 else (self.default, 0.0)
        if p < self.min_confidence:
            return self.default, 0.0
        return str(code), float(p)

    def detect(self, texts: Sequence[str], supported: Sequence[str] | None = None) -> list[str]:
        return [self.detect_one(t, supported)[0] for t in texts]


_IDENTIFIERS: dict[tuple, object] = {}
_IDENTIFIER_LOCK = threading.Lock()


def identifier(languages: Sequence[str] = DETECTED_LANGUAGES):
    """py3langid's identifier restricted to ``languages``, loaded once per process.

    Built from plain copies of py3langid's model in the cache folder (see :func:`_from_plain_copy`);
    from the package's LZMA-compressed file (~0.7 s; decompressing releases the GIL, so it can
    load beside other work) where no copy can be made.
    """
    key = tuple(languages)
    with _IDENTIFIER_LOCK:
        if key not in _IDENTIFIERS:
            found = _from_plain_copy(key)
            if found is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                found = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                found.set_languages(list(key))
            _IDENTIFIERS[key] = found
        return _IDENTIFIERS[key]


def _from_plain_copy(languages: tuple[str, ...]):
    """The identifier for ``languages``, from uncompressed copies of py3langid's model kept in
    the cache folder (:func:`feedback_nlp.files.plain_copy`); None when no copy can be made or
    read (the caller then loads the package's file as usual).

    Loading skips the LZMA inflate (most of the 0.7 s), and memory holds only what detection
    reads: the probability table's columns of ``languages`` (7 of its 27 MB for the default
    38 languages: py3langid's own ``set_languages`` keeps the whole table beside the subset),
    and the byte automaton's 37 MB transition table memory-mapped, so only the states real
    text reaches become resident (about half of it over 5,000 comments in 8 languages).
    BENCHMARKS.md section 4 has the memory this saves a server.
    """
    import lzma
    import shutil
    from array import array
    from pathlib import Path

    import numpy as np

    def inflate(source, fh) -> None:
        with lzma.open(source) as src:
            shutil.copyfileobj(src, fh, length=1 << 20)

    def unsigned(values) -> np.ndarray:  # py3langid stores its tables as signed integers of the same size
        return np.ascontiguousarray(values).view(f"u{values.dtype.itemsize}")

    def transitions(packed, fh) -> None:
        with np.load(packed, allow_pickle=False) as data:
            np.save(fh, unsigned(data["nextmove"]))

    try:
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        plain = plain_copy(Path(MODEL_DIR) / MODEL_FILE, "py3langid", inflate)
        nextmove = np.load(plain_copy(plain, "py3langid-nextmove", transitions, suffix=".npy"), mmap_mode="r")
        with np.load(plain, allow_pickle=False) as data:
            classes, row = data["classes"].tolist(), unsigned(data["nextmove_row"])
            wanted = set(languages)
            chosen = [i for i, code in enumerate(classes) if code in wanted]
            # Memoryviews: indexing gives plain ints, as py3langid's own lists do (the output table
            # takes 0.4 MB so, against 3.7 MB as a list of ints).
            return LanguageIdentifier(
                np.ascontiguousarray(data["ptc"][:, chosen]), np.asarray(data["pc"])[chosen], [classes[i] for i in chosen],
                memoryview(nextmove), memoryview(np.ascontiguousarray(data["out_feat"])), norm_probs=True,
                tk_row=array(row.dtype.char, row.tobytes()))
    except Exception:  # a read-only home, a changed model layout: the package's own loading
        return None


_DETECTORS: dict[tuple, LanguageDetector] = {}


def detector(default: str = "en", min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> LanguageDetector:
    """A shared detector per setting (the identifier is loaded once per process, on first use)."""
    key = (default, float(min_confidence))
    if key not in _DETECTORS:
        _DETECTORS[key] = LanguageDetector(default, min_confidence)
    return _DETECTORS[key]


def resolve_languages(texts: Sequence[str], given: Sequence[str | None] | str | None = None, *,
                      default: str = "en", min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                      supported: Sequence[str] | None = None) -> list[str]:
    """One language per text: the given one (a code for all, or one per text, None = detect) or
    detected (see :meth:`LanguageDetector.detect_one` for ``supported``)."""
    if isinstance(given, str):
        code = check_language(given)
        return [code] * len(texts)
    if given is not None and len(given) != len(texts):
        raise InvalidInputError(f"languages: got {len(given)} for {len(texts)} texts")
    found = detector(default, min_confidence)
    out = []
    for i, text in enumerate(texts):
        code = given[i] if given is not None else None
        out.append(check_language(code, f"languages[{i}]") if code else found.detect_one(text, supported)[0])
    return out
