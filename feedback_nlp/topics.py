"""Topic discovery: what the comments without a theme (or within one theme) are about.

Comments are grouped by their sentence vectors (the model's own encoder), with scikit-learn:

1. How many topics: HDBSCAN on a 20-dimensional PCA projection finds the dense groups; its
   count is the number of topics. The smallest group worth naming is 0.25% of the comments
   (at least 5).
2. Which topic each comment is in: k-means with that many centres on the full vectors, so
   every comment gets one (HDBSCAN alone leaves ~half of them as noise on short texts).
3. A readable label: class-based TF-IDF (each topic's comments as one document; a word's
   weight is its frequency in the topic times log(1 + average topic size / its frequency
   over all topics)), the top words and word pairs.

``k`` skips step 1. Measured on Banking77's test split (77 known intents): BENCHMARKS.md §9.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import InvalidInputError
from .report.tagged import parse_times, read_tagged

MIN_TOPIC_SHARE = 0.0025
MIN_TOPIC_SIZE = 5


@dataclass
class Topic:
    id: int
    keywords: list[str]
    size: int
    share: float
    examples: list[int]  # row indices of the comments nearest the topic's centre
    rows: list[int] = field(repr=False, default_factory=list)

    @property
    def label(self) -> str:
        return " · ".join(self.keywords[:4])


def count_topics(vectors: np.ndarray, *, min_topic_share: float = MIN_TOPIC_SHARE,
                 min_topic_size: int = MIN_TOPIC_SIZE, random_state: int = 0) -> int:
    """How many dense groups HDBSCAN finds (at least 2, at most one per ``min_topic_size`` comments)."""
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    n = len(vectors)
    smallest = max(min_topic_size, math.ceil(n * min_topic_share))
    dims = min(20, vectors.shape[1], n - 1)
    projected = PCA(dims, random_state=random_state).fit_transform(vectors) if dims >= 2 else vectors
    labels = HDBSCAN(min_cluster_size=smallest, min_samples=3, copy=True).fit_predict(projected)
    found = len(set(labels.tolist()) - {-1})
    return int(min(max(2, found), max(2, n // min_topic_size)))


def keywords_per_topic(texts: Sequence[str], labels: np.ndarray, k: int, top: int = 6) -> list[list[str]]:
    """Class-based TF-IDF: the words and word pairs that set each topic apart."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [" ".join(texts[i] for i in np.flatnonzero(labels == t)) for t in range(k)]
    try:
        vectorizer = CountVectorizer(ngram_range=(1, 2), stop_words="english", min_df=1, token_pattern=r"(?u)\b[^\W\d_]{2,}\b")
        counts = vectorizer.fit_transform(docs).toarray().astype(float)
    except ValueError:  # nothing but stop words
        return [[] for _ in range(k)]
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    average = counts.sum() / max(k, 1)
    idf = np.log(1 + average / np.maximum(counts.sum(axis=0), 1))
    weights = tf * idf
    out = []
    for t in range(k):
        order = np.argsort(-weights[t])
        chosen: list[str] = []
        for j in order:
            if weights[t, j] <= 0 or len(chosen) == top:
                break
            word = str(words[j])
            if any(word in c.split() or c in word.split() for c in chosen):  # "vpn" and "vpn connection": one
                continue
            chosen.append(word)
        out.append(chosen)
    return out


def discover_topics(texts: Sequence[str], vectors: np.ndarray, *, k: int | None = None, examples: int = 3,
                    min_topic_share: float = MIN_TOPIC_SHARE, min_topic_size: int = MIN_TOPIC_SIZE,
                    random_state: int = 0) -> tuple[np.ndarray, list[Topic]]:
    """(topic of every text, the topics largest first). ``k``: the number of topics, if known."""
    from sklearn.cluster import KMeans

    n = len(texts)
    if n != len(vectors):
        raise InvalidInputError(f"{n} texts but {len(vectors)} vectors")
    if n < 2 * min_topic_size:
        raise InvalidInputError(f"{n} comments are too few to find topics in (at least {2 * min_topic_size})")
    V = np.asarray(vectors, dtype=np.float32)
    V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
    if k is None:
        k = count_topics(V, min_topic_share=min_topic_share, min_topic_size=min_topic_size, random_state=random_state)
    if not 2 <= k <= n:
        raise InvalidInputError(f"the number of topics must be between 2 and the number of comments ({n}), not {k}")
    km = KMeans(k, n_init=4, random_state=random_state).fit(V)
    labels = km.labels_
    # Number topics largest first.
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    renumber = np.empty(k, dtype=int)
    renumber[order] = np.arange(k)
    labels = renumber[labels]
    centres = km.cluster_centers_[order]
    words = keywords_per_topic(texts, labels, k)
    topics = []
    for t in range(k):
        rows = np.flatnonzero(labels == t)
        nearest = rows[np.argsort(-(V[rows] @ centres[t]))]
        picked, seen = [], set()
        for i in nearest:  # the same comment twice shows nothing new
            key = " ".join(str(texts[i]).lower().split())
            if key not in seen:
                seen.add(key)
                picked.append(int(i))
            if len(picked) == examples:
                break
        topics.append(Topic(t, words[t], int(len(rows)), float(len(rows) / n), picked, rows.tolist()))
    return labels, topics


def discover_file(tagged: str, *, model=None, theme: str | None = None, polarity: str | None = None,
                  k: int | None = None, time: str | None = None, text_column: str | None = None,
                  examples: int = 3) -> dict:
    """Topics in a file tagged by ``classify``: of its comments without a theme, or (``theme``,
    optionally ``polarity``) of those with it. ``model``: a loaded model or a folder (its encoder
    gives the vectors; default: the default model). ``time``: a date column for each topic's
    comments per month. Returns a JSON-ready dict."""
    from .registry import load_model

    data = read_tagged(tagged, text_column)
    if data.text_column is None:
        raise InvalidInputError(f"{tagged}: no comment column found (use --text-column)")
    frame = data.frame
    texts_all = frame[data.text_column].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    unscored = (frame["language_supported"].map(lambda v: str(v).strip().lower() in ("false", "0"))
                if "language_supported" in frame.columns else None)
    rows = []
    for i, hits in enumerate(data.hits):
        if not texts_all.iloc[i].strip() or (unscored is not None and unscored.iloc[i]):
            continue
        if theme is None:
            keep = not hits
        else:
            keep = any(h.tag.theme == theme and (polarity is None or h.tag.polarity == polarity) for h in hits)
        if keep:
            rows.append(i)
    what = "comments without a theme" if theme is None else f"comments tagged {theme}" + (f" ({polarity})" if polarity else "")
    texts = [texts_all.iloc[i] for i in rows]
    loaded = model if model is not None and hasattr(model, "classify") else load_model(model)
    vectors = loaded.encoder_.encode(texts) if texts else np.zeros((0, 1), np.float32)
    labels, topics = discover_topics(texts, vectors, k=k, examples=examples)
    periods = None
    if time:
        if time not in frame.columns:
            raise InvalidInputError(f"{tagged}: no column {time!r} (--time)")
        when = parse_times(frame[time]).iloc[rows]
        periods = when.dt.to_period("M").astype(str).where(when.notna(), None).tolist()
    out_topics = []
    for t in topics:
        entry = {"id": t.id, "label": t.label, "keywords": t.keywords, "size": t.size, "share": round(t.share, 4),
                 "examples": [texts[i] for i in t.examples], "rows": [rows[i] + 1 for i in t.rows]}
        if periods is not None:
            counts: dict[str, int] = {}
            for i in t.rows:
                if periods[i]:
                    counts[periods[i]] = counts.get(periods[i], 0) + 1
            entry["per_month"] = dict(sorted(counts.items()))
        out_topics.append(entry)
    return {"file": str(tagged), "selection": what, "comments": len(texts), "topics": out_topics}
