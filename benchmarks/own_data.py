"""Does an organisation's own labelled data count? Retraining on part of one brief, scored on the rest.

    python benchmarks/own_data.py [--model models/default] [--own 200] [--weights 1,3,10]

Each challenge-set brief (training/challenge/parts/, other writers' organisations and
registers) plays one organisation: --own of its comments are its "own labelled feedback",
the others are its held-out comments. For each own_weight the model's heads are retrained on
the model's own training data plus the own comments, on the model's fine-tuned encoder —
exactly what

    feedback-nlp train --base MODEL --add own.jsonl --set finetune=false --set own_weight=W

does (here through the Python API, so the encoder's vectors are computed once for all runs).
Scored on the organisation's held-out comments against the model as shipped.
Writes benchmarks/results/own_data.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--own", type=int, default=200)
    parser.add_argument("--weights", default="1,3,10")
    parser.add_argument("--seeds", type=int, default=2, help="random own/held-out splits per brief")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "own_data.json")
    args = parser.parse_args()

    from feedback_nlp import ThemeClassifier, evaluate, load_model
    from feedback_nlp.encoders import CachedEncoder
    from feedback_nlp.labels import normalize_label
    from training.challenge import FOLDER
    from training.pipeline import base_encoder, read_base

    shipped = load_model(args.model, runtime="torch")
    base_texts, base_labels, config = read_base(args.model)
    encoder = CachedEncoder(base_encoder(args.model) or shipped.encoder_)
    params = {k: v for k, v in shipped.get_params().items() if k != "encoder"}
    results: dict = {"model": str(args.model), "own": args.own, "briefs": {}}
    for part in sorted((FOLDER / "parts").glob("*.jsonl")):
        rows = [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line.strip()]
        runs = []
        for seed in range(args.seeds):
            order = list(range(len(rows)))
            random.Random(seed).shuffle(order)
            own = [rows[i] for i in order[: args.own]]
            held = [rows[i] for i in order[args.own :]]
            hx, hy = [r["text"] for r in held], [normalize_label(r["themes"]) for r in held]
            run = {"seed": seed, "shipped": round(evaluate(shipped, hx, hy)["macro_f1"], 4)}
            for w in [float(x) for x in args.weights.split(",")]:
                t0 = time.perf_counter()
                texts = base_texts + [r["text"] for r in own]
                labels = base_labels + [normalize_label(r["themes"]) for r in own]
                weights = [1.0] * len(base_texts) + [w] * len(own)
                model = ThemeClassifier(encoder=encoder, **params).fit(texts, labels, sample_weight=weights)
                m = evaluate(model, hx, hy)
                run[f"own_weight={w:g}"] = round(m["macro_f1"], 4)
                run[f"own_weight={w:g} per theme"] = {t: round(v["f1"], 3) for t, v in m["per_theme"].items()}
                print(f"{part.stem} seed {seed} own_weight {w:g}: {m['macro_f1']:.4f} (shipped {run['shipped']:.4f}, "
                      f"{time.perf_counter() - t0:.0f} s)", flush=True)
            runs.append(run)
        results["briefs"][part.stem] = runs
    summary = {}
    for key in [k for k in results["briefs"][next(iter(results["briefs"]))][0] if k.startswith("own_weight") and "per" not in k]:
        gains = [r[key] - r["shipped"] for runs in results["briefs"].values() for r in runs]
        summary[key] = {"mean_gain": round(sum(gains) / len(gains), 4), "min_gain": round(min(gains), 4)}
    results["summary"] = summary
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
