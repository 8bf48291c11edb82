"""ThemeClassifier: a frozen sentence encoder (the body) plus plain scikit-learn heads.

Multi-label themes are scored per sentence and combined per theme by the maximum, so a
theme hidden in one sentence of a long comment is found and that sentence is the
evidence. Training is multiple-instance: a comment's label teaches its best-matching
sentence, and every sentence of a comment without the theme is a negative example.
Per-theme thresholds are tuned on out-of-fold scores. Polar themes get a polarity head
applied to the evidence sentence.

Single-label data (one class name per row) trains a multinomial head on whole texts and
predicts the top class through the same interface.

scikit-learn fits the heads; a fitted head keeps only its weights (numpy), and the class speaks
scikit-learn's estimator protocol itself (get_params, set_params, tags, score), so loading a
model and classifying never imports scikit-learn, scipy or pandas (about 1 s and 160 MB of a
fresh process's start-up).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .encoders import Encoder, load_encoder
from .errors import InvalidInputError
from .heads import ConstantHead, LinearHead, SoftmaxHead
from .labels import is_single_label, normalize_label
from .languages import resolve_languages
from .lexical import LexicalHeads, NgramVocabulary
from .metrics import label_matrix
from .results import Result, scored, theme_hit, unscored
from .runtime import warm_up
from .taxonomy import DEFAULT_TAXONOMY, Taxonomy
from .text import Sentence, split_clauses, split_sentences_many

MAX_CHARS = 20_000
_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def _safe_char(match: re.Match) -> str:
    return " " if match.group() == "\x00" else "\ufffd"

MAX_SENTENCES = 64  # per comment; beyond this the rest of a very long comment is not scored


@dataclass
class _Units:
    """The pieces of a batch of comments that get encoded."""

    sentences: list[list[Sentence]]  # per comment
    unit_index: list[list[int]]  # per comment: rows in `vectors`; [0] is the whole comment
    vectors: np.ndarray  # [n_unique_units, dim]
    truncated: list[bool]
    clauses: dict[int, list[int]]  # a sentence's row -> its clauses' rows, where it turns ("quick, but rude")
    texts: list[str]  # per row of `vectors`: the text it stands for (for the lexical heads)


def _pool(parts: np.ndarray, weights: list[int]) -> np.ndarray:
    """The weighted mean of ``parts``, as long as they are on average (an encoded text's length)."""
    v = np.average(parts, axis=0, weights=weights)
    norm = float(np.linalg.norm(v))
    return v * (float(np.linalg.norm(parts, axis=1).mean()) / norm) if norm > 0 else v


def _logistic(C, class_weight, random_state):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight=class_weight, max_iter=3000, random_state=random_state)


def _fit_binary(X, y, C, class_weight, random_state, sample_weight=None):
    y = np.asarray(y, dtype=int)
    if y.min() == y.max():
        return ConstantHead(y[0])
    head = _logistic(C, class_weight, random_state).fit(X, y, sample_weight=sample_weight)
    return LinearHead(head.coef_[0], head.intercept_[0])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fit_calibrator(scores: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Platt scaling on the logit of out-of-fold scores: (slope, intercept)."""
    if truth.min() == truth.max():
        return 1.0, 0.0
    # Mild L2 keeps the slope finite when out-of-fold scores separate the classes perfectly.
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1.0, max_iter=1000).fit(_logit(scores)[:, None], truth, sample_weight=weights)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _best_f1_threshold(scores: np.ndarray, truth: np.ndarray, target_precision: float | None,
                       weights: np.ndarray | None = None) -> float:
    """Threshold on ``scores`` that maximises F1 (or recall at a target precision), each row counted ``weights`` times."""
    if truth.sum() == 0:
        return 0.5
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order]
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)[order]
    tp = np.cumsum(t * w)
    fp = np.cumsum((1 - t) * w)
    # Only cut between distinct scores.
    last = np.r_[s[1:] != s[:-1], True]
    tp, fp, cut = tp[last], fp[last], s[last]
    precision = tp / (tp + fp)
    recall = tp / (t * w).sum()
    if target_precision is not None:
        ok = np.flatnonzero(precision >= target_precision)
        if len(ok):
            i = ok[np.argmax(recall[ok])]
            return float(cut[i])
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    i = int(np.argmax(f1))
    # Put the threshold halfway to the next lower score so it is not tied to one example.
    nxt = s[np.searchsorted(-s, -cut[i], side="right")] if i + 1 < len(cut) else cut[i] - 0.05
    return float(max(1e-6, (cut[i] + nxt) / 2))


class ThemeClassifier:
    """Tags comments with themes, polarity, confidence and evidence.

    Parameters
    ----------
    encoder : encoder spec (model name, local path, dict, "a+b") or an Encoder; None = the default
        (all-MiniLM-L6-v2 and the Universal Sentence Encoder side by side).
    taxonomy : Taxonomy, path to a taxonomy JSON file, or None to infer from labels.
    sentence_level : train on sentences too and let them score (True), or whole comments only.
    sentence_weight : how a comment's score combines its parts when ``sentence_level``:
        ``(1 - w) * whole + w * max(whole, best sentence)``; 1 = the best sentence decides,
        lower values let the whole comment's context (e.g. "... all fixed now") temper it.
    C, polarity_C : inverse regularisation of the theme and polarity heads.
    class_weight : passed to the heads ("balanced" or None).
    threshold : "f1" (tune per theme on out-of-fold scores), "precision" (meet
        ``target_precision``, else best F1), or a number used for every theme.
    cv : folds for threshold tuning (and calibration).
    clause_polarity : read a theme's polarity from the clause of its evidence sentence that
        carries the theme, when the sentence turns at "but", "though", ";" and the like.
    calibration : "sigmoid" maps each theme's scores to calibrated probabilities, fitted
        on out-of-fold scores (Platt scaling); None keeps the heads' raw scores.
    lexical_weight : multi-label only: share of a lexical model in each theme score (0 = off): per sentence,
        ``(1 - w) * encoder head + w * TF-IDF n-gram head`` (see ``feedback_nlp.lexical``);
        the encoder heads alone pick the evidence and read polarity.
    lexical_C : inverse regularisation of the lexical heads.
    whole_vector : how a comment of several sentences gets its whole-comment vector: "mean"
        (the word-weighted mean of its sentence vectors, so every character is encoded once)
        or "encode" (encode the whole comment as well: about 1.7x the encoder work).
    languages : ISO 639-1 codes of the languages the model is meant for, the first being its
        main one (e.g. ``["en"]``); comments detected in another language are answered with
        ``"language_supported": false`` and no themes. None: every language is scored.
    """

    def __init__(
        self,
        encoder=None,
        taxonomy=None,
        sentence_level: bool = True,
        sentence_weight: float = 1.0,
        C: float = 16.0,
        polarity_C: float = 16.0,
        class_weight: str | None = None,
        threshold="f1",
        target_precision: float | None = None,
        cv: int = 5,
        calibration: str | None = "sigmoid",
        clause_polarity: bool = True,
        max_chars: int = MAX_CHARS,
        batch_size: int = 64,
        random_state: int = 0,
        whole_vector: str = "mean",
        lexical_weight: float = 0.0,
        lexical_C: float = 10.0,
        languages: Sequence[str] | None = None,
    ):
        self.encoder = encoder
        self.taxonomy = taxonomy
        self.sentence_level = sentence_level
        self.sentence_weight = sentence_weight
        self.C = C
        self.polarity_C = polarity_C
        self.class_weight = class_weight
        self.threshold = threshold
        self.target_precision = target_precision
        self.cv = cv
        self.calibration = calibration
        self.clause_polarity = clause_polarity
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.random_state = random_state
        self.whole_vector = whole_vector
        self.lexical_weight = lexical_weight
        self.lexical_C = lexical_C
        self.languages = languages

    # ------------------------------------------------------------------ scikit-learn protocol
    _estimator_type = "classifier"

    @classmethod
    def _param_names(cls) -> list[str]:
        return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        known = self._param_names()
        for name, value in params.items():
            if name not in known:
                raise ValueError(f"invalid parameter {name!r} for ThemeClassifier; valid: {', '.join(known)}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(multi_label=True),
            input_tags=InputTags(two_d_array=False, string=True),
        )

    def __repr__(self) -> str:
        default = ThemeClassifier.__init__.__defaults__ or ()
        names = self._param_names()
        defaults = dict(zip(names[len(names) - len(default):], default))
        changed = [f"{n}={getattr(self, n)!r}" for n in names if n not in defaults or getattr(self, n) is not defaults[n]
                   and getattr(self, n) != defaults[n]]
        return f"ThemeClassifier({', '.join(changed)})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this ThemeClassifier is not fitted yet: call fit, or load a model with load_model")

    # ------------------------------------------------------------------ labels
    def _parse_y(self, y):
        """-> (mode, taxonomy, Y [n,k] int, polarity {theme: array of 1/0/-1})."""
        if hasattr(y, "ndim") and getattr(y, "ndim") == 2:
            Y = np.asarray(y, dtype=int)
            taxonomy = self._given_taxonomy() or Taxonomy.from_labels({f"theme_{j}": set() for j in range(Y.shape[1])})
            if len(taxonomy) != Y.shape[1]:
                raise InvalidInputError(f"label matrix has {Y.shape[1]} columns, taxonomy {len(taxonomy)} themes")
            return "multi", taxonomy, Y, {t: np.full(len(Y), -1) for t in taxonomy.polar_ids}
        if is_single_label(y):
            labels = np.asarray([str(v) for v in y])
            classes = sorted(set(labels))
            taxonomy = self._given_taxonomy() or Taxonomy.from_labels({c: set() for c in classes})
            unknown = sorted(set(classes) - set(taxonomy.ids))
            if unknown:
                raise InvalidInputError(f"labels not in the taxonomy: {', '.join(unknown)}")
            return "single", taxonomy, labels, {}
        rows = [normalize_label(v, where=f"row {i + 1}: ") for i, v in enumerate(y)]
        seen: dict[str, set] = {}
        for row in rows:
            for theme, pol in row.items():
                seen.setdefault(theme, set()).add(pol)
        taxonomy = self._given_taxonomy() or Taxonomy.from_labels(seen)
        for i, row in enumerate(rows):
            for theme in row:
                if theme not in taxonomy:
                    raise InvalidInputError(
                        f"row {i + 1}: unknown theme {theme!r}; the taxonomy has {', '.join(taxonomy.ids)}"
                    )
        Y = np.array([[int(t in row) for t in taxonomy.ids] for row in rows], dtype=int).reshape(len(rows), len(taxonomy))
        polarity = {
            t: np.array([{"positive": 1, "negative": 0}.get(row.get(t), -1) if t in row else -1 for row in rows])
            for t in taxonomy.polar_ids
        }
        return "multi", taxonomy, Y, polarity

    def _given_taxonomy(self) -> Taxonomy | None:
        if self.taxonomy is None:
            return None
        if isinstance(self.taxonomy, Taxonomy):
            return self.taxonomy
        if isinstance(self.taxonomy, dict):
            return Taxonomy.from_dict(self.taxonomy)
        if self.taxonomy == "default":
            return DEFAULT_TAXONOMY
        return Taxonomy.from_file(self.taxonomy)

    # ------------------------------------------------------------------ encoding
    def _prepare(self, X) -> tuple[list[str], list[bool]]:
        texts, truncated = [], []
        for i, x in enumerate(X):
            if x is None or (isinstance(x, float) and math.isnan(x)):
                x = ""
            if not isinstance(x, str):
                raise InvalidInputError(f"row {i + 1}: text must be a string, got {type(x).__name__}")
            # NUL and lone UTF-16 surrogates (valid in JSON, unencodable in UTF-8) become one
            # character each, so evidence offsets still point into the text as given.
            x = _UNSAFE.sub(_safe_char, x)
            truncated.append(len(x) > self.max_chars)
            texts.append(x[: self.max_chars])
        return texts, truncated

    def _units(self, X, encoder: Encoder, languages: Sequence[str] | None = None) -> _Units:
        """Split, deduplicate and encode. Every distinct text is encoded once; with
        ``whole_vector="mean"`` a comment's vector is the mean of its sentences' and a sentence
        that turns at "but", ";" ... is the mean of its clauses', so each character is encoded
        once and the clauses are at hand for reading polarity."""
        if self.whole_vector not in ("mean", "encode"):
            raise InvalidInputError(f"whole_vector must be 'mean' or 'encode', not {self.whole_vector!r}")
        mean = self.whole_vector == "mean"
        texts, truncated = self._prepare(X)
        self.load_resources(encoder)
        sentences = split_sentences_many(texts, languages)
        slots: list = []  # per row of `vectors`: a text to encode, or (rows, weights) to pool
        rows_by_key: dict[tuple[str, str], int] = {}
        clauses: dict[int, list[int]] = {}
        unit_texts: list[str] = []

        def unit(key: tuple[str, str], slot) -> int:
            if key not in rows_by_key:
                rows_by_key[key] = len(slots)
                slots.append(slot)
                unit_texts.append(key[1])
            return rows_by_key[key]

        def words(pieces: list[str]) -> list[int]:
            return [max(1, len(p.split())) for p in pieces]

        def sentence(text: str) -> int:
            parts = split_clauses(text) if self.clause_polarity else [text]
            if len(parts) == 1:
                return unit(("text", text), text)
            rows = [unit(("text", c), c) for c in parts]
            row = unit(("sentence", text), (rows, words(parts))) if mean else unit(("text", text), text)
            clauses[row] = rows
            return row

        unit_index: list[list[int]] = []
        for sents in sentences:
            parts = [s.text for s in sents[:MAX_SENTENCES]]
            if not parts:
                unit_index.append([])
                continue
            rows = [sentence(p) for p in parts]
            if len(rows) == 1:
                unit_index.append(rows)
                continue
            whole = " ".join(parts)
            whole_row = unit(("whole", whole), (rows, words(parts))) if mean else unit(("text", whole), whole)
            unit_index.append([whole_row] + rows)

        encoded = [i for i, slot in enumerate(slots) if isinstance(slot, str)]
        if not encoded:
            return _Units(sentences, unit_index, np.zeros((0, 1), np.float32), truncated, clauses, unit_texts)
        found = np.asarray(encoder.encode([slots[i] for i in encoded], batch_size=self.batch_size), dtype=np.float32)
        vectors = np.empty((len(slots), found.shape[1]), dtype=np.float32)
        vectors[encoded] = found
        for i, slot in enumerate(slots):  # a pooled row only uses rows made before it
            if not isinstance(slot, str):
                vectors[i] = _pool(vectors[slot[0]], slot[1])
        return _Units(sentences, unit_index, vectors, truncated, clauses, unit_texts)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Fit the heads. ``sample_weight``: how much each text counts (e.g. an organisation's own
        comments above the seed corpus); it weights the heads, the calibration and the thresholds."""
        try:
            return self._fit(list(X), y, sample_weight)
        finally:  # state that only lives while fitting
            for name in ("_weights", "_lexical_X", "_vocabulary"):
                self.__dict__.pop(name, None)

    def _fit(self, X: list, y, sample_weight):
        if not 0.0 <= float(self.lexical_weight) <= 1.0:
            raise InvalidInputError(f"lexical_weight must be between 0 and 1, not {self.lexical_weight!r}")
        if len(X) != len(y):
            raise InvalidInputError(f"{len(X)} texts but {len(y)} labels")
        if len(X) == 0:
            raise InvalidInputError("no training data")
        weights = None
        if sample_weight is not None:
            weights = np.asarray(sample_weight, dtype=float).ravel()
            if len(weights) != len(X) or not np.all(np.isfinite(weights)) or (weights <= 0).any():
                raise InvalidInputError(f"sample_weight must hold {len(X)} positive numbers, one per text")
        self._weights = weights
        mode, taxonomy, Y, polarity = self._parse_y(y)
        self.encoder_ = load_encoder(self.encoder)
        self.mode_ = mode
        self.taxonomy_ = taxonomy
        self.classes_ = np.array(taxonomy.ids)
        units = self._units(X, self.encoder_)
        empty = [i for i, u in enumerate(units.unit_index) if not u]
        if empty:
            raise InvalidInputError(
                f"{len(empty)} training texts are empty (rows {', '.join(str(i + 1) for i in empty[:10])}); "
                "remove them or give them text"
            )
        if mode == "single":
            whole = units.vectors[[u[0] for u in units.unit_index]]
            head = _logistic(self.C, self.class_weight, self.random_state).fit(whole, Y, sample_weight=weights)
            self.head_ = SoftmaxHead(head.coef_, head.intercept_, head.classes_)
            self.classes_ = self.head_.classes_
            self.thresholds_ = np.zeros(len(self.classes_))
            self.polarity_heads_ = {}
            return self
        missing = [t for j, t in enumerate(taxonomy.ids) if Y[:, j].sum() == 0]
        if missing:
            raise InvalidInputError(
                f"no training example has theme(s) {', '.join(missing)}; add examples or drop them from the taxonomy"
            )
        self._lexical_X = None
        if self.lexical_weight > 0:
            self._vocabulary = NgramVocabulary.fit([units.texts[u[0]] for u in units.unit_index])
            self._lexical_X = LexicalHeads.matrix(self._vocabulary.transform(units.texts), self._vocabulary.size)
        self.theme_heads_, self.polarity_heads_, self.lexical_heads_ = self._fit_heads(units, list(range(len(X))), Y, polarity)
        self.calibrators_ = None
        self.thresholds_ = self._tune_thresholds(units, Y, polarity)
        return self

    def _fit_heads(self, units: _Units, rows: list[int], Y, polarity):
        """Fit one theme head per theme and one polarity head per polar theme on ``rows``."""
        V = units.vectors
        whole = np.array([units.unit_index[i][0] for i in rows])
        weights = getattr(self, "_weights", None)
        row_w = None if weights is None else weights[rows]
        theme_heads = []
        lexical_columns: list = []
        evidence_unit: dict[tuple[int, int], int] = {}
        for j in range(Y.shape[1]):
            y = Y[rows, j]
            head = _fit_binary(V[whole], y, self.C, self.class_weight, self.random_state, row_w)
            if self.sentence_level:
                extra_x, extra_y, extra_w = [], [], []
                for r, label in zip(rows, y):
                    sent_units = units.unit_index[r][1:]
                    if not sent_units:
                        continue
                    if label:
                        # The sentence the first head finds most on-theme carries the label.
                        p = head.predict_proba(V[sent_units])[:, 1]
                        best = sent_units[int(np.argmax(p))]
                        evidence_unit[(r, j)] = best
                        extra_x.append(best)
                        extra_y.append(1)
                        extra_w.append(1.0 if weights is None else weights[r])
                    else:
                        extra_x.extend(sent_units)
                        extra_y.extend([0] * len(sent_units))
                        extra_w.extend([1.0 if weights is None else weights[r]] * len(sent_units))
                if extra_x:
                    head = _fit_binary(
                        np.vstack([V[whole], V[extra_x]]), np.r_[y, extra_y], self.C, self.class_weight, self.random_state,
                        None if weights is None else np.r_[row_w, extra_w],
                    )
            theme_heads.append(head)
            if self._lexical_X is not None:
                unit_rows, unit_y, unit_w = whole, y, row_w
                if self.sentence_level and extra_x:
                    unit_rows, unit_y = np.r_[whole, extra_x], np.r_[y, extra_y]
                    unit_w = None if weights is None else np.r_[row_w, extra_w]
                lexical_columns.append(LexicalHeads.fit_column(self._lexical_X[unit_rows], unit_y, self.lexical_C,
                                                               unit_w, self.random_state))
        lexical = None
        if self._lexical_X is not None:
            lexical = LexicalHeads.from_columns(self._vocabulary, lexical_columns)
        polarity_heads = {}
        for t, pol in polarity.items():
            j = self.taxonomy_.ids.index(t)
            xs, ys, ws = [], [], []
            for r in rows:
                if pol[r] >= 0:
                    w = 1.0 if weights is None else weights[r]
                    xs.append(units.unit_index[r][0])
                    ys.append(pol[r])
                    ws.append(w)
                    if (r, j) in evidence_unit:
                        xs.append(evidence_unit[(r, j)])
                        ys.append(pol[r])
                        ws.append(w)
            if ys:
                polarity_heads[t] = _fit_binary(V[xs], ys, self.polarity_C, self.class_weight, self.random_state,
                                                None if weights is None else np.array(ws))
            else:
                polarity_heads[t] = ConstantHead(0.0)  # no polarity labels seen: negative by default
        return theme_heads, polarity_heads, lexical

    def _tune_thresholds(self, units: _Units, Y, polarity) -> np.ndarray:
        """Out-of-fold scores -> calibrators and per-theme thresholds."""
        k = Y.shape[1]
        fixed = None if isinstance(self.threshold, str) else float(self.threshold)
        if fixed is None and self.threshold not in ("f1", "precision"):
            raise InvalidInputError(f"threshold must be 'f1', 'precision' or a number, not {self.threshold!r}")
        if self.calibration not in (None, "none", "sigmoid"):
            raise InvalidInputError(f"calibration must be 'sigmoid' or None, not {self.calibration!r}")
        n = len(Y)
        folds = min(self.cv, int(Y.sum(axis=0).min()), n)
        if folds < 2:
            return np.full(k, 0.5 if fixed is None else fixed)
        oof = np.zeros((n, k))
        # Stratify on the rarest theme so every fold sees it.
        rare = int(np.argmin(Y.sum(axis=0)))
        from sklearn.model_selection import StratifiedKFold

        splits = StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(np.zeros(n), Y[:, rare])
        for train, test in splits:
            heads, _, lexical = self._fit_heads(units, list(train), Y, polarity)
            oof[test] = self._theme_scores(units, heads, list(test), lexical)[0]
        if self.calibration == "sigmoid":
            self.calibrators_ = [_fit_calibrator(oof[:, j], Y[:, j], self._weights) for j in range(k)]
            oof = self._calibrate(oof)
        self.oof_scores_ = oof
        if fixed is not None:
            return np.full(k, fixed)
        target = self.target_precision if self.threshold == "precision" else None
        return np.array([_best_f1_threshold(oof[:, j], Y[:, j], target, self._weights) for j in range(k)])

    # ------------------------------------------------------------------ scoring
    def _theme_scores(self, units: _Units, heads, rows: list[int], lexical=None):
        """Comment-level scores [len(rows), k] and, per comment and theme, the best sentence index."""
        V = units.vectors
        needed = sorted({u for r in rows for u in units.unit_index[r]})
        pos = {u: i for i, u in enumerate(needed)}
        k = len(heads)
        P = np.column_stack([h.predict_proba(V[needed])[:, 1] for h in heads]) if needed else np.zeros((0, k))
        if lexical is not None and needed:
            w = float(self.lexical_weight)
            X = getattr(self, "_lexical_X", None)
            if X is not None:  # fitting: the rows are already vectorised
                lex = 1.0 / (1.0 + np.exp(-(np.asarray(X[needed] @ lexical.coef) + lexical.intercept)))
            else:
                lex = lexical.predict_proba([units.texts[u] for u in needed])
            P = (1 - w) * P + w * lex
        scores = np.zeros((len(rows), k))
        best_sentence = np.zeros((len(rows), k), dtype=int)
        for i, r in enumerate(rows):
            idx = units.unit_index[r]
            if not idx:
                continue
            p = P[[pos[u] for u in idx]]
            if len(idx) == 1:
                scores[i] = p[0]
                continue
            sentence_p = p[1:]
            best_sentence[i] = np.argmax(sentence_p, axis=0)
            if self.sentence_level:
                w = self.sentence_weight
                scores[i] = (1 - w) * p[0] + w * p.max(axis=0)
            else:
                scores[i] = p[0]
        return scores, best_sentence

    def _analyse(self, X, languages: Sequence[str] | None = None):
        self._check_fitted()
        X = list(X)
        units = self._units(X, self.encoder_, languages)
        rows = list(range(len(X)))
        if self.mode_ == "single":
            scores = np.zeros((len(X), len(self.classes_)))
            has = [i for i in rows if units.unit_index[i]]
            if has:
                scores[has] = self.head_.predict_proba(units.vectors[[units.unit_index[i][0] for i in has]])
            return units, scores, np.zeros(scores.shape, dtype=int)
        scores, best = self._theme_scores(units, self.theme_heads_, rows, getattr(self, "lexical_heads_", None))
        has_text = np.array([bool(u) for u in units.unit_index], dtype=bool)
        scores[has_text] = self._calibrate(scores[has_text])
        return units, scores, best

    def _calibrate(self, scores: np.ndarray) -> np.ndarray:
        calibrators = getattr(self, "calibrators_", None)
        if not calibrators:
            return scores
        out = np.empty_like(scores)
        for j, (a, b) in enumerate(calibrators):
            out[:, j] = 1.0 / (1.0 + np.exp(-(a * _logit(scores[:, j]) + b)))
        return out

    def predict_proba(self, X, languages: Sequence[str] | None = None) -> np.ndarray:
        """Score of every theme for every text, shape [n, n_themes].

        ``languages``: one ISO 639-1 code per text (chooses the sentence splitter; default English).
        """
        return self._analyse(X, languages)[1]

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Boolean [n, k]: which themes each comment is tagged with."""
        if self.mode_ == "single":
            out = np.zeros(scores.shape, dtype=bool)
            nonempty = scores.sum(axis=1) > 0
            out[np.flatnonzero(nonempty), scores[nonempty].argmax(axis=1)] = True
            return out
        return scores >= self.thresholds_

    def predict(self, X):
        """Multi-label: indicator matrix [n, k]. Single-label: the top class per text."""
        scores = self.predict_proba(X)
        if self.mode_ == "single":
            return self.classes_[scores.argmax(axis=1)]
        return self.decide(scores).astype(int)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy for single-label models; macro-F1 over themes for multi-label ones."""
        if self.mode_ == "single":
            right = (self.predict(X) == np.asarray([str(v) for v in y])).astype(float)
            return float(np.average(right, weights=sample_weight))
        from sklearn.metrics import f1_score

        # Columns follow the model's themes, whatever subset of them the given labels use.
        Y = np.asarray(y) if getattr(y, "ndim", 1) == 2 else label_matrix(y, [str(c) for c in self.classes_])
        return float(f1_score(Y, self.predict(X), average="macro", zero_division=0))

    def _polarity_scores(self, units: _Units, requests: dict[str, list[tuple[int, int]]]) -> dict:
        """Positive-polarity probability per (comment, theme), read from the evidence.

        When the evidence sentence turns at a contrast marker ("quick, but rude"), the theme
        head picks the clause that carries the theme and the polarity is read from it.
        """
        if not requests:
            return {}
        V = units.vectors
        ids = [str(c) for c in self.classes_]
        out = {}
        for theme, reqs in requests.items():
            head = self.theme_heads_[ids.index(theme)]
            chosen = []
            for _, unit in reqs:
                rows = units.clauses.get(unit)
                chosen.append(V[rows[int(np.argmax(head.predict_proba(V[rows])[:, 1]))]] if rows else V[unit])
            p = self.polarity_heads_[theme].predict_proba(np.vstack(chosen))[:, 1]
            for (i, _), value in zip(reqs, p):
                out[(i, theme)] = float(value)
        return out

    def load_resources(self, encoder=None) -> None:
        """Load what answering needs (sentence splitter, language identifier, encoder weights)
        now, overlapped, instead of piecemeal on the first comments (see ``runtime.warm_up``)."""
        warm_up(encoder if encoder is not None else self.encoder_, self.main_language)

    # ------------------------------------------------------------------ fitted state
    def fitted_state(self) -> dict:
        """The fitted heads as a tree a model folder stores (``feedback_nlp.heads.pack``); with
        the manifest's thresholds, classes and taxonomy it is the whole fitted model."""
        self._check_fitted()
        if self.mode_ == "single":
            return {"mode": "single", "head": self.head_}
        return {"mode": "multi", "theme_heads": self.theme_heads_, "polarity_heads": self.polarity_heads_,
                "calibrators": getattr(self, "calibrators_", None), "lexical": getattr(self, "lexical_heads_", None)}

    def set_fitted_state(self, state: dict) -> None:
        """The inverse of :meth:`fitted_state` (mode_ must be set)."""
        if state.get("mode") != self.mode_:
            raise InvalidInputError(f"heads of a {state.get('mode')!r} model given to a {self.mode_!r} one")
        if self.mode_ == "single":
            self.head_ = state["head"]
            self.polarity_heads_ = {}
        else:
            self.theme_heads_ = state["theme_heads"]
            self.polarity_heads_ = state["polarity_heads"]
            self.calibrators_ = state.get("calibrators")
            self.lexical_heads_ = state.get("lexical")

    @property
    def main_language(self) -> str:
        """The language a comment is taken to be in when detection is unsure."""
        return self.languages[0] if self.languages else "en"

    def supports(self, language: str) -> bool:
        return not self.languages or language in self.languages

    def classify(self, X, languages: Sequence[str | None] | str | None = None) -> list[Result]:
        """The full answer per text: tagged themes (score, polarity, evidence), all scores, and
        the comment's language (detected, or given: one code for all texts or one per text).

        A comment in a language outside ``languages`` gets ``"language_supported": false``,
        no themes and no scores.
        """
        self._check_fitted()
        X = list(X)
        texts = self._prepare(X)[0]
        self.load_resources()
        codes = resolve_languages(texts, languages, default=self.main_language, supported=self.languages)
        supported = [self.supports(c) for c in codes]
        keep = [i for i, ok in enumerate(supported) if ok]
        results = [unscored(c) for c in codes]
        if keep:
            for i, result in zip(keep, self._classify([X[i] for i in keep], [codes[i] for i in keep])):
                results[i] = result
        return results

    def _classify(self, X: list, languages: list[str]) -> list[Result]:
        units, scores, best = self._analyse(X, languages)
        tagged = self.decide(scores)
        ids = [str(c) for c in self.classes_]
        polar = set(self.taxonomy_.polar_ids) if self.mode_ == "multi" else set()
        results = []
        # Polarity of each tagged polar theme is read from its evidence sentence.
        pol_requests: dict[str, list[tuple[int, int]]] = {}
        for i in range(len(scores)):
            for j in np.flatnonzero(tagged[i]):
                if ids[j] in polar:
                    sent = int(best[i, j])
                    idx = units.unit_index[i]
                    unit = idx[0] if len(idx) == 1 else idx[1 + sent]
                    pol_requests.setdefault(ids[j], []).append((i, unit))
        pol_scores = self._polarity_scores(units, pol_requests)
        for i in range(len(scores)):
            themes = []
            sents = units.sentences[i]
            for j in sorted(np.flatnonzero(tagged[i]), key=lambda j: -scores[i, j]):
                theme = ids[j]
                sent = sents[int(best[i, j])] if sents else None
                polarity, polarity_score = None, None
                if self.mode_ == "multi" and theme in polar:
                    p_pos = pol_scores[(i, theme)]
                    polarity = "positive" if p_pos >= 0.5 else "negative"
                    polarity_score = max(p_pos, 1 - p_pos)
                elif self.mode_ == "multi":
                    polarity = self.taxonomy_[theme].fixed_polarity
                themes.append(theme_hit(theme, scores[i, j], polarity, polarity_score, sent))
            results.append(scored(themes, dict(zip(ids, scores[i])), languages[i], truncated=bool(units.truncated[i])))
        return results
