"""Lexical features: TF-IDF weighted word and character n-grams, and linear heads on them.

A sentence encoder reads meaning but blurs wording: misspellings ("reponse", "refered"),
rare words and set phrases ("run-around", "pillar to post") are where a lexical model is
strong, and where an encoder trained on other text is weak. The classifier blends the two
per sentence (``ThemeClassifier(lexical_weight=...)``).

Features: word 1-2-grams (tokens of two or more word characters) and character 2-5-grams
inside each whitespace-separated token padded with spaces, lowercased; sublinear term
frequency times smoothed IDF, each block L2-normalised. Only n-grams seen in at least
``min_df`` training comments are kept. Everything is plain Python and numpy at prediction
time (scikit-learn fits the heads), and a token's character n-grams are computed once and
remembered, since survey comments reuse a small vocabulary. The n-gram columns are held
compactly (:class:`GramColumns`): a served model's 180,000 n-grams take ~5 MB, not ~20 MB of
Python dictionaries and strings.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

_WORD = re.compile(r"\w\w+")
CHAR_SIZES = (2, 3, 4, 5)
_CACHE_LIMIT = 10_000  # tokens whose character columns are remembered (~0.3 KB each); then it starts afresh


def _words(text: str) -> list[str]:
    tokens = _WORD.findall(text)
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def _chars(token: str) -> list[str]:
    padded = f" {token} "
    return [padded[i : i + n] for n in CHAR_SIZES for i in range(len(padded) - n + 1)]


class GramColumns(Mapping):
    """n-gram -> column for ``grams[i]`` -> ``start + i``: a read-only mapping held as one string
    of all the n-grams, their end offsets and their sorted hashes (about 5x smaller than a
    dict of str -> int). :meth:`lookup` finds many n-grams in one vectorised search; every
    hit is checked against the n-gram itself, so a hash collision can never pick a column."""

    def __init__(self, grams: Sequence[str], start: int = 0):
        grams = list(grams)
        self.start = int(start)
        self._text = "".join(grams)
        self._ends = np.cumsum(np.fromiter(map(len, grams), dtype=np.int64, count=len(grams)))
        hashes = np.fromiter(map(hash, grams), dtype=np.int64, count=len(grams))
        order = np.argsort(hashes, kind="stable")
        self._hashes = hashes[order]
        self._rows = order.astype(np.int32)

    def __reduce__(self):
        # Rebuilt where it lands: str hashes differ between processes (PYTHONHASHSEED), so the
        # sorted hashes must never travel in a pickle (a Ray actor, a joblib worker).
        return (GramColumns, (list(self), self.start))

    def _gram(self, row: int) -> str:
        return self._text[(int(self._ends[row - 1]) if row else 0) : int(self._ends[row])]

    def lookup(self, grams: Sequence[str]) -> np.ndarray:
        """Column of each of ``grams`` (int64), -1 where it has none."""
        n, size = len(grams), len(self._hashes)
        out = np.full(n, -1, dtype=np.int64)
        if not n or not size:
            return out
        wanted = np.fromiter(map(hash, grams), dtype=np.int64, count=n)
        at = np.minimum(np.searchsorted(self._hashes, wanted), size - 1)
        hit = np.flatnonzero(self._hashes[at] == wanted)
        rows = self._rows[at[hit]].astype(np.int64)
        ends = self._ends[rows]
        starts = np.where(rows > 0, self._ends[rows - 1], 0)
        text, found, columns = self._text, [], []
        for k, row, a, b in zip(hit.tolist(), rows.tolist(), starts.tolist(), ends.tolist()):
            if text[a:b] != grams[k]:  # another n-gram with the same hash: look at the others that share it
                row = self._same_hash(grams[k], int(at[k]))
                if row < 0:
                    continue
            found.append(k)
            columns.append(row)
        out[found] = np.asarray(columns, dtype=np.int64) + self.start
        return out

    def _same_hash(self, gram: str, i: int) -> int:
        h = self._hashes[i]
        while i < len(self._hashes) and self._hashes[i] == h:
            if self._gram(int(self._rows[i])) == gram:
                return int(self._rows[i])
            i += 1
        return -1

    def __getitem__(self, gram: str) -> int:
        column = int(self.lookup([gram])[0]) if isinstance(gram, str) else -1
        if column < 0:
            raise KeyError(gram)
        return column

    def __iter__(self) -> Iterator[str]:  # in column order
        return (self._gram(row) for row in range(len(self._ends)))

    def __len__(self) -> int:
        return len(self._ends)


class NgramVocabulary:
    """Word and character n-gram columns with their IDF; turns texts into sparse TF-IDF rows."""

    def __init__(self, words: Sequence[str] | Mapping[str, int], chars: Sequence[str] | Mapping[str, int], idf: np.ndarray):
        """``words`` and ``chars``: the n-grams in column order (a mapping n-gram -> column is
        taken in its columns' order); the word columns come first, then the character ones."""
        def in_order(grams) -> list[str]:
            return sorted(grams, key=grams.__getitem__) if isinstance(grams, Mapping) else list(grams)

        words = in_order(words)
        self.words = GramColumns(words)  # word n-gram -> column
        self.chars = GramColumns(in_order(chars), start=len(words))  # character n-gram -> column
        self.idf = np.asarray(idf, dtype=np.float32)
        self._token_columns: dict[str, np.ndarray] = {}

    @property
    def size(self) -> int:
        return len(self.idf)

    def __getstate__(self):
        return {"words": list(self.words), "chars": list(self.chars), "idf": self.idf}

    def __setstate__(self, state):
        self.__init__(state["words"], state["chars"], state["idf"])

    @classmethod
    def fit(cls, texts: Sequence[str], min_df: int = 2) -> "NgramVocabulary":
        word_df: Counter = Counter()
        char_df: Counter = Counter()
        for text in texts:
            lowered = text.lower()
            word_df.update(set(_words(lowered)))
            char_df.update({g for token in lowered.split() for g in _chars(token)})
        words = sorted(g for g, n in word_df.items() if n >= min_df)
        chars = sorted(g for g, n in char_df.items() if n >= min_df)
        n = len(texts)
        idf = [math.log((1 + n) / (1 + word_df[g])) + 1 for g in words]
        idf += [math.log((1 + n) / (1 + char_df[g])) + 1 for g in chars]
        return cls(words, chars, np.array(idf))

    def _char_columns(self, token: str) -> np.ndarray:
        columns = self._token_columns.get(token)
        if columns is None:
            columns = self.chars.lookup(_chars(token))
            columns = columns[columns >= 0].astype(np.int32)
            if len(self._token_columns) >= _CACHE_LIMIT:
                self._token_columns.clear()
            self._token_columns[token] = columns
        return columns

    def transform(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR arrays (indptr, indices, data) of the TF-IDF rows of ``texts``.

        The n-grams of the whole batch are gathered into flat arrays first and weighted in a
        few numpy operations: per-text numpy calls would cost more than the counting.
        """
        n = len(texts)
        word_grams: list[str] = []
        gram_counts: list[int] = []
        char_parts: list[np.ndarray] = []
        char_lengths: list[int] = []
        for text in texts:
            lowered = text.lower()
            grams = _words(lowered)
            word_grams.extend(grams)
            gram_counts.append(len(grams))
            total = 0
            for token in lowered.split():
                columns = self._char_columns(token)
                char_parts.append(columns)
                total += len(columns)
            char_lengths.append(total)
        size = np.int64(max(1, self.size))
        rows_index = np.arange(n, dtype=np.int64)
        word_cols = self.words.lookup(word_grams)
        found = word_cols >= 0
        word_rows = np.repeat(rows_index, gram_counts)[found]
        char_cols = np.concatenate(char_parts).astype(np.int64) if char_parts else np.zeros(0, np.int64)
        keys, values = [], []
        for rows_of, cols in ((word_rows, word_cols[found]), (np.repeat(rows_index, char_lengths), char_cols)):
            if not len(cols):
                continue
            unique, counts = np.unique(rows_of * size + cols, return_counts=True)
            rows = unique // size
            weight = (1.0 + np.log(counts)) * self.idf[unique % size]
            norms = np.sqrt(np.bincount(rows, weights=weight * weight, minlength=n))
            keys.append(unique)
            values.append(weight / norms[rows])
        if not keys:
            return np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32)
        key = np.concatenate(keys)
        value = np.concatenate(values)
        order = np.argsort(key, kind="stable")  # word columns come before character columns in a row
        key, value = key[order], value[order]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(key // size, minlength=n), out=indptr[1:])
        return indptr, (key % size).astype(np.int32), value.astype(np.float32)


class LexicalHeads:
    """One logistic head per theme on TF-IDF n-grams: p = sigmoid(x . w + b), weights as arrays."""

    kind = "lexical"  # how feedback_nlp.heads stores it

    def __init__(self, vocabulary: NgramVocabulary, coef: np.ndarray, intercept: np.ndarray):
        self.vocabulary = vocabulary
        self.coef = np.asarray(coef, dtype=np.float32)  # [n_columns, n_themes]
        self.intercept = np.asarray(intercept, dtype=np.float32)

    @staticmethod
    def matrix(rows: tuple[np.ndarray, np.ndarray, np.ndarray], size: int):
        """The scipy CSR matrix of ``transform``'s arrays (training only)."""
        from scipy.sparse import csr_matrix

        indptr, indices, data = rows
        return csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, size))

    @staticmethod
    def fit_column(X, y, C: float, sample_weight=None, random_state: int = 0) -> tuple[np.ndarray, float]:
        """One theme's weights on a CSR matrix ``X`` of TF-IDF rows with 0/1 labels ``y``."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, dtype=int)
        if y.min() == y.max():
            return np.zeros(X.shape[1], dtype=np.float32), (10.0 if y[0] else -10.0)
        lr = LogisticRegression(C=C, max_iter=3000, random_state=random_state).fit(X, y, sample_weight=sample_weight)
        return lr.coef_[0].astype(np.float32), float(lr.intercept_[0])

    @classmethod
    def from_columns(cls, vocabulary: NgramVocabulary, columns: list[tuple[np.ndarray, float]]) -> "LexicalHeads":
        return cls(vocabulary, np.column_stack([c for c, _ in columns]), np.array([b for _, b in columns]))

    def predict_proba_rows(self, rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Theme probabilities [n, k] of CSR rows from ``vocabulary.transform``."""
        indptr, indices, data = rows
        n = len(indptr) - 1
        z = np.zeros((n, self.coef.shape[1]), dtype=np.float64)
        if len(indices):
            contributions = self.coef[indices] * data[:, None]
            nonempty = np.flatnonzero(indptr[1:] > indptr[:-1])
            z[nonempty] = np.add.reduceat(contributions, indptr[:-1][nonempty], axis=0)
        return 1.0 / (1.0 + np.exp(-(z + self.intercept)))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba_rows(self.vocabulary.transform(texts))

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """n-grams in column order (JSON), IDF and weights (arrays): see ``feedback_nlp.heads``."""
        vocabulary = self.vocabulary
        return ({"words": list(vocabulary.words), "chars": list(vocabulary.chars)},
                {"idf": vocabulary.idf, "coef": self.coef, "intercept": self.intercept})

    @classmethod
    def from_state(cls, meta: dict, arrays) -> "LexicalHeads":
        return cls(NgramVocabulary(meta["words"], meta["chars"], arrays["idf"]), arrays["coef"], arrays["intercept"])
