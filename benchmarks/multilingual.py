"""Per-language quality of the default model and of candidate multilingual engines.

Trains each candidate engine on the corpus's train split (English and the multilingual
parts), routes English to the shipped English engine, and scores held-out comments written
by writers who wrote no training data (``training/multilingual/heldout/``): a parallel set (the
same 260 comments in en/de/fr/es) and native sets per language.

    python benchmarks/multilingual.py --out benchmarks/results/multilingual.json      # candidates
    python benchmarks/multilingual.py --shipped --out benchmarks/results/multilingual_shipped.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feedback_nlp import load_model  # noqa: E402
from feedback_nlp.classifier import ThemeClassifier  # noqa: E402
from feedback_nlp.encoders import CachedEncoder, load_encoder  # noqa: E402
from feedback_nlp.languages import ENCODER_LANGUAGES  # noqa: E402
from feedback_nlp.metrics import label_matrix  # noqa: E402
from feedback_nlp.router import Engine, LanguageRouter  # noqa: E402

HELDOUT = ROOT / "training" / "multilingual" / "heldout"
IDS = ["speed", "attitude", "skills", "not_solved", "bounced_around"]


def read(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def macro(Y, P):
    from sklearn.metrics import f1_score

    present = [j for j in range(Y.shape[1]) if Y[:, j].any()]
    return float(f1_score(Y[:, present], P[:, present], average="macro", zero_division=0))


def heldout_sets():
    sets = {}
    for f in sorted(HELDOUT.glob("*.jsonl")):
        rows = read(f)
        sets[f.stem] = rows
    return sets


def evaluate(model, sets, given_language: bool):
    out = {}
    for name, rows in sets.items():
        texts = [r["text"] for r in rows]
        Y = label_matrix([r["themes"] for r in rows], IDS)
        langs = [r.get("language", "en") for r in rows] if given_language else None
        P = model.predict(texts, langs) if isinstance(model, LanguageRouter) else model.predict(texts)
        out[name] = round(macro(Y, P), 4)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--cache", default="/tmp/mlx/cache")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--candidates", default="lex=0.5;lex=0.5,w=3;lex=0.7",
                    help="semicolon-separated engines: lex=<lexical weight>, w=<weight of non-English rows>, en_only")
    ap.add_argument("--shipped", action="store_true", help="only score the model folder as shipped (no candidates)")
    args = ap.parse_args(argv)
    train = read(ROOT / "training" / "data" / "train.jsonl")
    sets = heldout_sets()
    if args.shipped:  # the model folder as it is: routed by its own engines
        model = load_model(args.model)
        results = {"shipped": {"model": str(args.model), "routed_given": evaluate(model, sets, True),
                               "routed_detected": evaluate(model, sets, False)}}
        print(json.dumps(results, indent=2))
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        return
    main_engine = load_model(args.model)
    main_engine.languages = ["en"]  # the main engine answers English; the candidates the rest
    results = {"main_alone": evaluate(main_engine, sets, True)}
    print("main_alone", results["main_alone"], flush=True)
    use = CachedEncoder(load_encoder({"kind": "use", "tokenizer": "sentencepiece"}), args.cache)
    covered = [c for c in ENCODER_LANGUAGES if c != "en"]
    for name in args.candidates.split(";"):
        opts = dict(kv.split("=") for kv in name.split(",") if "=" in kv)
        rows = [r for r in train if r.get("language", "en") == "en"] if "en_only" in name else train
        w = float(opts.get("lex", 0.5))
        other = float(opts.get("w", 1))
        weights = [other if r.get("language", "en") != "en" else 1.0 for r in rows] if other != 1 else None
        t = time.time()
        engine = ThemeClassifier(encoder=use, lexical_weight=w, languages=covered)
        engine.fit([r["text"] for r in rows], [r["themes"] for r in rows], sample_weight=weights)
        fit_s = time.time() - t
        router = LanguageRouter([Engine("main", main_engine), Engine("multilingual", engine)])
        results[name] = {"fit_s": round(fit_s, 1), "routed_given": evaluate(router, sets, True),
                         "routed_detected": evaluate(router, sets, False),
                         "engine_alone_en": {k: v for k, v in evaluate(engine, {k: sets[k] for k in sets if k.endswith("_en")}, True).items()}}
        print(name, results[name], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
