"""Speed, start-up and memory of the default path before and after language routing, in one run.

    git worktree add /tmp/before a1612d8
    python benchmarks/languages_speed.py --before /tmp/before [--n 10000] [--runs 5]

"before" is the code and shipped model of that checkout, "after" this checkout's; each side
runs in its own processes (its own code), alternating, both as shipped (no flag). Each classifies the same N English comments (the seed
corpus's English rows cycled to N) and the same N comments of the whole corpus (85% English,
15% de/fr/es/it/nl/pt/pl), alternating, twice, best of two. A fresh CLI process is timed from
start to its answer for one comment with its peak RSS (median of --runs). Also the English
challenge set's macro-F1 for both. Writes benchmarks/results/languages_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from default_runtime import first_answer  # noqa: E402


def rows() -> list[dict]:
    out = []
    for name in ("train", "dev", "test"):
        out += [json.loads(line) for line in open(ROOT / "training" / "data" / f"{name}.jsonl", encoding="utf-8")]
    return out


WORKER = """
import json, sys, time, resource
texts = json.load(open(sys.argv[1]))
from feedback_nlp import load_model
model = load_model()
model.classify(texts["mixed"][:256])
out = {}
for name, batch in texts.items():
    t0 = time.perf_counter(); model.classify(batch); out[name] = len(batch) / (time.perf_counter() - t0)
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps(out))
"""


def worker(code_root: Path, texts_file: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(code_root)}
    env.pop("FEEDBACK_NLP_MODEL", None)
    done = subprocess.run([sys.executable, "-c", WORKER, str(texts_file)], capture_output=True, text=True,
                          env=env, cwd=code_root)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the previous commit")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "languages_speed.json")
    args = parser.parse_args()
    data = rows()
    english = [r["text"] for r in data if r.get("language", "en") == "en"]
    mixed = [r["text"] for r in data]
    sets = {"english": [english[i % len(english)] for i in range(args.n)],
            "mixed": [mixed[(i * 7919) % len(mixed)] for i in range(args.n)]}
    texts_file = Path(tempfile.mkstemp(suffix=".json")[1])
    texts_file.write_text(json.dumps(sets))
    sides = {"before": args.before.resolve(), "after": ROOT}
    batch: dict = {name: [] for name in sides}
    starts: dict = {name: [] for name in sides}
    rss: dict = {name: [] for name in sides}
    for _ in range(2):
        for name, root in sides.items():
            batch[name].append(worker(root, texts_file))
    for _ in range(args.runs):
        for name, root in sides.items():
            s, r = first_answer(root / "models" / "default", [], cwd=root)
            starts[name].append(s)
            rss[name].append(r)
    results: dict = {}
    for name in sides:
        results[name] = {
            "classify_english_per_s": round(max(b["english"] for b in batch[name]), 1),
            "classify_mixed_per_s": round(max(b["mixed"] for b in batch[name]), 1),
            "batch_peak_rss_mb": max(b["rss_mb"] for b in batch[name]),
            "start_to_first_answer_s_median": round(statistics.median(starts[name]), 3),
            "cli_one_comment_rss_mb_median": statistics.median(rss[name]),
        }
    a, b = results["after"], results["before"]
    results["ratios_after_over_before"] = {k: round(a[k] / b[k], 3) for k in a}
    results["n"] = args.n
    results["cpus"] = os.cpu_count()
    texts_file.unlink()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
