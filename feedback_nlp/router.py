"""One model, several engines: each comment goes to the engine trained for its language.

The default model pairs an English engine (a fine-tuned English encoder, the best there is
for English comments) with a multilingual engine (the multilingual Universal Sentence
Encoder and n-gram heads trained on English, German, French and Spanish comments) for the
other languages that encoder covers. A :class:`LanguageRouter` looks like one classifier:
the first engine is the main one; its taxonomy, themes and thresholds are the model's.

Scores of the other engines are put on the main engine's scale, per theme, by the monotone
piecewise-linear map that sends each engine's threshold to the main engine's threshold (and
0 to 0, 1 to 1): a comment is tagged with a theme exactly when its own engine would tag it,
and ``predict_proba`` + ``decide`` agree with ``classify`` for every language.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from .classifier import ThemeClassifier
from .errors import InvalidInputError
from .languages import resolve_languages
from .results import unscored
from .runtime import CallPool
from .text import sentencizer


class Engine:
    """One engine of a router: a fitted classifier, or a loader that makes it on first use
    (a process that only ever sees English never loads the other engines)."""

    def __init__(self, name: str, model: ThemeClassifier | None = None, *,
                 languages: Sequence[str] | None = None, load: Callable[[], ThemeClassifier] | None = None):
        if model is None and load is None:
            raise InvalidInputError(f"engine {name!r}: give a model or a loader")
        self.name = name
        self._model, self._load = model, load
        self._languages = tuple(languages) if languages is not None else None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def __getstate__(self):
        # Shipped whole (Ray pickles a loaded model to each actor): the engine loaded first.
        return {"name": self.name, "model": self.model, "languages": self._languages}

    def __setstate__(self, state):
        self.__init__(state["name"], state["model"], languages=state["languages"])

    @property
    def model(self) -> ThemeClassifier:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    @property
    def languages(self) -> tuple[str, ...]:
        if self._languages is None:
            self._languages = tuple(self.model.languages or ())
        return self._languages


def _align(scores: np.ndarray, own: np.ndarray, main: np.ndarray) -> np.ndarray:
    """Map scores [n, k] so that ``own`` thresholds land on ``main`` thresholds (monotone)."""
    own = np.clip(own, 1e-6, 1 - 1e-6)
    main = np.clip(main, 1e-6, 1 - 1e-6)
    low = scores * (main / own)
    high = main + (scores - own) * ((1 - main) / (1 - own))
    return np.where(scores < own, low, high)


class LanguageRouter:
    """A model whose comments are scored by the engine that covers their language.

    ``engines``: the main engine first; every engine's ``languages`` lists what it covers
    (the main one's first language is the fallback when detection is unsure). A comment in
    no engine's languages is answered ``"language_supported": false`` with no themes.
    """

    def __init__(self, engines: Sequence[Engine]):
        if not engines:
            raise InvalidInputError("a LanguageRouter needs at least one engine")
        self.engines = list(engines)
        self._pool = CallPool(len(self.engines), "feedback-nlp-engine")  # see _per_engine
        for engine in self.engines[1:]:
            if engine.loaded:
                self.check_engine(engine.model, engine.name)

    def check_engine(self, model: ThemeClassifier, name: str) -> ThemeClassifier:
        if [str(c) for c in model.classes_] != [str(c) for c in self.main.classes_]:
            raise InvalidInputError(f"engine {name!r} has other themes than the main engine")
        return model

    def load_engines(self) -> None:
        """Load every engine now (a server does, so no request waits for one)."""
        for engine in self.engines:
            engine.model.load_resources()

    def load_sentence_splitters(self) -> None:
        """Load spaCy's pipeline of every covered language now (French alone takes ~4 s); a
        server runs this in the background once it is ready."""
        for language in self.languages:
            sentencizer(language)

    # -- the main engine stands for the model
    @property
    def main(self) -> ThemeClassifier:
        return self.engines[0].model

    def __getattr__(self, name):
        # Everything a classifier exposes that routing does not change (classes_, taxonomy_,
        # thresholds_, encoder_, metrics_, manifest_, path_, get_params, ...) is the main engine's.
        if name.startswith("__") or name == "engines":
            raise AttributeError(name)
        return getattr(self.main, name)

    @property
    def languages(self) -> list[str]:
        seen: list[str] = []
        for engine in self.engines:
            seen += [c for c in engine.languages if c not in seen]
        return seen

    @property
    def main_language(self) -> str:
        return self.main.main_language

    def supports(self, language: str) -> bool:
        return self.engine_for(language) is not None

    def engine_for(self, language: str) -> int | None:
        for i, engine in enumerate(self.engines):
            if not engine.languages or language in engine.languages:
                return i
        return None

    def route(self, X, languages=None) -> tuple[list, list[str], list[int | None]]:
        X = list(X)
        texts = self.main._prepare(X)[0]
        self.main.load_resources()
        covered = None if any(not e.languages for e in self.engines) else self.languages
        codes = resolve_languages(texts, languages, default=self.main_language, supported=covered)
        return X, codes, [self.engine_for(c) for c in codes]

    def _groups(self, chosen: list[int | None]):
        for e in range(len(self.engines)):
            rows = [i for i, c in enumerate(chosen) if c == e]
            if rows:
                yield e, rows

    def _per_engine(self, method: str, X: list, codes: list[str], chosen: list[int | None]):
        """(engine, rows, what its ``method`` gave for those rows) for each engine with rows. The
        engines run side by side: a batch's English comments and its other languages' are
        independent calls, and one alone leaves a core idle (BENCHMARKS.md §4)."""
        groups = list(self._groups(chosen))
        every = self._pool.map(lambda group: getattr(self.engines[group[0]].model, method)(
            [X[i] for i in group[1]], [codes[i] for i in group[1]]), groups)
        return [(e, rows, answer) for (e, rows), answer in zip(groups, every)]

    def _to_main(self, e: int, scores: np.ndarray) -> np.ndarray:
        if e == 0:
            return scores
        return _align(scores, np.asarray(self.engines[e].model.thresholds_, float), np.asarray(self.main.thresholds_, float))

    # -- the classifier surface
    def classify(self, X, languages: Sequence[str | None] | str | None = None) -> list[dict]:
        X, codes, chosen = self.route(X, languages)
        results: list[dict] = [
            unscored(c) for c in codes
        ]
        ids = [str(c) for c in self.main.classes_]
        for e, rows, answers in self._per_engine("classify", X, codes, chosen):
            for i, answer in zip(rows, answers):
                if e and answer["scores"]:
                    raw = np.array([[answer["scores"][t] for t in ids]])
                    mapped = dict(zip(ids, self._to_main(e, raw)[0]))
                    answer["scores"] = {t: round(float(mapped[t]), 4) for t in ids}
                    for theme in answer["themes"]:
                        theme["score"] = answer["scores"][theme["theme"]]
                results[i] = answer
        return results

    def predict_proba(self, X, languages: Sequence[str | None] | str | None = None) -> np.ndarray:
        X, codes, chosen = self.route(X, languages)
        out = np.zeros((len(X), len(self.main.classes_)))
        for e, rows, scores in self._per_engine("predict_proba", X, codes, chosen):
            out[rows] = self._to_main(e, scores)
        return out

    def decide(self, scores: np.ndarray) -> np.ndarray:
        return self.main.decide(scores)

    def predict(self, X, languages=None):
        return self.decide(self.predict_proba(X, languages)).astype(int)

    def score(self, X, y, sample_weight=None) -> float:
        from sklearn.metrics import f1_score

        from .metrics import label_matrix

        Y = np.asarray(y) if getattr(y, "ndim", 1) == 2 else label_matrix(y, [str(c) for c in self.main.classes_])
        return float(f1_score(Y, self.predict(X), average="macro", zero_division=0))

    def __repr__(self) -> str:
        return "LanguageRouter(" + ", ".join(f"{e.name}={list(e.languages) or 'any'}" for e in self.engines) + ")"
