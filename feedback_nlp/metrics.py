"""Quality metrics of a model on labelled data."""

from __future__ import annotations

import numpy as np

from .labels import normalize_label


def label_matrix(labels, theme_ids: list[str]) -> np.ndarray:
    rows = [normalize_label(v) for v in labels]
    return np.array([[int(t in r) for t in theme_ids] for r in rows], dtype=int).reshape(len(rows), len(theme_ids))


def multilabel_metrics(Y: np.ndarray, P: np.ndarray, theme_ids: list[str]) -> dict:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(Y, P, average=None, zero_division=0)
    per_theme = {
        t: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for t, p, r, f, s in zip(theme_ids, precision, recall, f1, support)
    }
    return {
        "n": int(len(Y)),
        "per_theme": per_theme,
        "macro_f1": float(f1_score(Y, P, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(Y, P, average="micro", zero_division=0)),
        "exact_match": float((Y == P).all(axis=1).mean()) if len(Y) else 0.0,
    }


def evaluate(model, texts, labels, results: list[dict] | None = None) -> dict:
    """Per-theme precision/recall/F1, macro/micro F1 and polarity accuracy.

    Polarity accuracy counts comments where a polar theme is both labelled (with a
    polarity) and predicted: the share whose predicted polarity matches.
    """
    results = results if results is not None else model.classify(texts)
    ids = [str(c) for c in model.classes_]
    if model.mode_ == "single":
        truth = np.array([str(v) for v in labels])
        predicted = np.array([r["themes"][0]["theme"] if r["themes"] else "" for r in results])
        Y = (truth[:, None] == np.array(ids)[None, :]).astype(int)
        P = (predicted[:, None] == np.array(ids)[None, :]).astype(int)
        out = multilabel_metrics(Y, P, ids)
        out["accuracy"] = float((truth == predicted).mean())
        return out
    Y = label_matrix(labels, ids)
    P = np.array([[int(any(t["theme"] == i for t in r["themes"])) for i in ids] for r in results]).reshape(len(results), len(ids))
    out = multilabel_metrics(Y, P, ids)
    polar = set(model.taxonomy_.polar_ids)
    hits = total = 0
    per_theme_pol: dict[str, list[int]] = {t: [0, 0] for t in polar}
    for label, result in zip(labels, results):
        truth_row = normalize_label(label)
        for t in result["themes"]:
            want = truth_row.get(t["theme"])
            if t["theme"] in polar and want is not None:
                total += 1
                ok = int(t["polarity"] == want)
                hits += ok
                per_theme_pol[t["theme"]][0] += ok
                per_theme_pol[t["theme"]][1] += 1
    out["polarity_accuracy"] = hits / total if total else None
    out["polarity_n"] = total
    for t, (ok, n) in per_theme_pol.items():
        out["per_theme"][t]["polarity_accuracy"] = ok / n if n else None
    return out
