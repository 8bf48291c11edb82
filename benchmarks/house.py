"""Before and after the layout change (issue 15): same answers, start-up, speed and memory, in one run.

    git worktree add /tmp/before 6ce1e01          # the last commit before it
    python benchmarks/house.py --before /tmp/before [--n 4000] [--runs 5]

Each side runs its own code and its own shipped model (format 1 before, format 2 after) in
fresh processes, alternating. Per side: the answers to the same N comments (the seed corpus,
all languages, shuffled) must be identical; throughput of `classify` on them (best of two
passes after a warm-up); a fresh CLI process timed from start to its answer for one comment,
with its peak RSS (median of --runs). Writes benchmarks/results/house.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from default_runtime import first_answer  # noqa: E402

WORKER = """
import json, sys, time, resource, hashlib
texts = json.load(open(sys.argv[1]))
from feedback_nlp import load_model
model = load_model()
model.classify(texts[:256])
answers = model.classify(texts)
best = 0.0
for _ in range(2):
    t0 = time.perf_counter(); model.classify(texts); best = max(best, len(texts) / (time.perf_counter() - t0))
digest = hashlib.sha256(json.dumps(answers, sort_keys=True).encode()).hexdigest()
json.dump(answers, open(sys.argv[2], "w"))
print(json.dumps({"per_s": best, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "sha256": digest}))
"""


def worker(code_root: Path, texts_file: Path, answers_file: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(code_root)}
    env.pop("FEEDBACK_NLP_MODEL", None)
    done = subprocess.run([sys.executable, "-c", WORKER, str(texts_file), str(answers_file)], capture_output=True,
                          text=True, env=env, cwd=code_root)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the commit before the change")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "house.json")
    args = parser.parse_args()
    texts = []
    for name in ("train", "dev", "test"):
        texts += [json.loads(line)["text"] for line in open(ROOT / "training" / "data" / f"{name}.jsonl", encoding="utf-8")]
    random.Random(15).shuffle(texts)
    texts = texts[: args.n]
    folder = Path(tempfile.mkdtemp())
    (folder / "texts.json").write_text(json.dumps(texts))
    sides = {"before": args.before.resolve(), "after": ROOT}
    result: dict = {name: {"per_s": [], "first_answer_s": [], "first_answer_rss_mb": [], "rss_mb": []} for name in sides}
    digests = {}
    for run in range(2):
        for name, root in sides.items():
            found = worker(root, folder / "texts.json", folder / f"{name}.json")
            result[name]["per_s"].append(found["per_s"])
            result[name]["rss_mb"].append(found["rss_mb"])
            digests[name] = found["sha256"]
    for _ in range(args.runs):
        for name, root in sides.items():
            seconds, rss = first_answer(root / "models" / "default", [], cwd=root)
            result[name]["first_answer_s"].append(seconds)
            result[name]["first_answer_rss_mb"].append(rss)
    before = json.loads((folder / "before.json").read_text())
    after = json.loads((folder / "after.json").read_text())
    differ = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    summary = {
        "n": len(texts),
        "identical_answers": not differ and len(before) == len(after),
        "differing_rows": len(differ),
        "sha256": digests,
        **{name: {"comments_per_s": round(max(v["per_s"]), 1), "peak_rss_mb": max(v["rss_mb"]),
                  "first_answer_s_median": round(statistics.median(v["first_answer_s"]), 2),
                  "first_answer_rss_mb_median": statistics.median(v["first_answer_rss_mb"])} for name, v in result.items()},
    }
    summary["speed_after_over_before"] = round(summary["after"]["comments_per_s"] / summary["before"]["comments_per_s"], 3)
    summary["first_answer_after_over_before"] = round(
        summary["after"]["first_answer_s_median"] / summary["before"]["first_answer_s_median"], 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    if differ:
        print(f"rows that differ, first: {differ[:5]}", file=sys.stderr)
        print(json.dumps(before[differ[0]])[:800], file=sys.stderr)
        print(json.dumps(after[differ[0]])[:800], file=sys.stderr)


if __name__ == "__main__":
    main()
