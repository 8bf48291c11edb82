"""Agreement between the corpus labels and a blind second annotation of a random sample.

    python -m training.relabel_agreement      # reads training/data/relabel/, prints JSON

The sample (300 comments drawn at random from the first nine briefs, seed 7, and 150 from the last four, seed 11) was given to a second annotator as text
only; they labelled it from the theme definitions without seeing the corpus labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score

from feedback_nlp.taxonomy import DEFAULT_TAXONOMY

FOLDER = Path(__file__).parent / "data" / "relabel"
FOLDER_V2 = Path(__file__).parent / "data" / "relabel_v2"  # the v2 parts; labels.jsonl as above
# The held-out native de/fr/es sets (issue 18), labelled again blind: {"id", "language", "heldout", "blind"}.
FOLDER_ML = Path(__file__).parent / "multilingual" / "relabel"


def label_agreement(a: list[dict], b: list[dict]) -> dict:
    """Agreement of two annotations of the same comments (theme -> polarity dicts, row by row)."""
    ids = DEFAULT_TAXONOMY.ids
    A = np.array([[int(t in r) for t in ids] for r in a])
    B = np.array([[int(t in r) for t in ids] for r in b])
    both = [(x[t], y[t]) for x, y in zip(a, b) for t in DEFAULT_TAXONOMY.polar_ids if t in x and t in y]
    return {
        "n": len(a),
        "macro_f1": round(float(f1_score(A, B, average="macro")), 4),
        "per_theme_f1": {t: round(float(v), 3) for t, v in zip(ids, f1_score(A, B, average=None))},
        "cohen_kappa": {t: round(float(cohen_kappa_score(A[:, j], B[:, j])), 3) for j, t in enumerate(ids)},
        "rows_identical": round(float((A == B).all(axis=1).mean()), 4),
        "polarity_agreement": round(sum(x == y for x, y in both) / max(1, len(both)), 4),
        "polarity_n": len(both),
    }


def agreement(folder: Path = FOLDER) -> dict:
    rows = [json.loads(l) for l in open(folder / "labels.jsonl", encoding="utf-8")]
    return label_agreement([r["corpus"] for r in rows], [r["blind"] for r in rows])


def multilingual_agreement(folder: Path = FOLDER_ML) -> dict:
    rows = [json.loads(l) for l in open(folder / "labels.jsonl", encoding="utf-8")]
    out = {"all": label_agreement([r["heldout"] for r in rows], [r["blind"] for r in rows])}
    for lang in sorted({r["language"] for r in rows}):
        part = [r for r in rows if r["language"] == lang]
        out[lang] = label_agreement([r["heldout"] for r in part], [r["blind"] for r in part])
    return out


if __name__ == "__main__":
    print(json.dumps({"v1": agreement(FOLDER), "v2": agreement(FOLDER_V2), "multilingual_heldout": multilingual_agreement()},
                     indent=2))
