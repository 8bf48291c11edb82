"""Two model folders on the challenge set: per theme, per brief, and per kind of hard case.

    git archive <old-commit> models/default | tar -x -C /tmp/before
    python benchmarks/challenge.py --before /tmp/before/models/default [--after models/default]

Per kind (the `kind` each challenge comment was written for: 1 thanks-wrapped praise, 2 bare
adjective lists, 3 terse complaint fragments, 4 self-resolution / partial answers, 5 referrals,
6 negated complaints, 7 stories that end fixed, 8 no-theme look-alikes, 9 long multi-topic,
10 ordinary) the figure is the share of comments whose predicted theme set is exactly the gold
set. Writes benchmarks/results/challenge_per_kind.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "challenge_per_kind.json")
    args = parser.parse_args()

    from feedback_nlp import evaluate, load_model
    from feedback_nlp.labels import normalize_label
    from training.challenge import FOLDER

    rows = [json.loads(line) for line in open(FOLDER / "challenge.jsonl", encoding="utf-8")]
    kinds_of = [set([r["kind"]] if isinstance(r["kind"], int) else (r["kind"] or [])) for r in rows]
    out: dict = {}
    for name, folder in (("before", args.before), ("after", args.after)):
        model = load_model(folder)
        results = model.classify([r["text"] for r in rows])
        entry: dict = {"model": str(folder), "runtime": model.runtime_, "kinds": {}, "briefs": {}}
        for kind in sorted(set().union(*kinds_of)):
            idx = [i for i, k in enumerate(kinds_of) if kind in k]
            exact = sum({t["theme"] for t in results[i]["themes"]} == set(normalize_label(rows[i]["themes"])) for i in idx)
            entry["kinds"][str(kind)] = {"n": len(idx), "exact": round(exact / len(idx), 3)}
        for part in sorted({r["part"] for r in rows}):
            idx = [i for i, r in enumerate(rows) if r["part"] == part]
            m = evaluate(model, [rows[i]["text"] for i in idx], [rows[i]["themes"] for i in idx], results=[results[i] for i in idx])
            entry["briefs"][part] = round(m["macro_f1"], 4)
        m = evaluate(model, [r["text"] for r in rows], [r["themes"] for r in rows], results=results)
        entry["macro_f1"] = round(m["macro_f1"], 4)
        entry["polarity_accuracy"] = round(m["polarity_accuracy"], 4)
        entry["per_theme_f1"] = {t: round(v["f1"], 3) for t, v in m["per_theme"].items()}
        out[name] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
