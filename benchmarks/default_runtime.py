"""The shipped model on its default runtime against the previous model's opt-in fast path, in one run.

    git archive <old-commit> models/default | tar -x -C /tmp/before
    python benchmarks/default_runtime.py --before /tmp/before/models/default [--n 20000] [--runs 7]

"before" is copied to a temporary folder and exported there (ONNX int8), then run with
``--runtime onnx`` — the opt-in fast path of BENCHMARKS §5. "after" is models/default as
shipped, run with no flag. Both classify the same N comments (the seed corpus cycled to N)
in this one process, alternating, and a fresh CLI process is timed from start to its answer
for one comment (alternating, median of --runs) with its peak RSS. Quality on the challenge
set is measured for both. Writes benchmarks/results/default_runtime.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HWM = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
CLI = ("import atexit, sys; sys.argv = ['feedback-nlp'] + sys.argv[1:]; "
       f"atexit.register(lambda: print('RSS', {HWM}, file=sys.stderr)); from feedback_nlp.cli import app; app()")


def corpus(n: int) -> list[str]:
    texts = []
    for path in sorted((ROOT / "training" / "data").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in open(path, encoding="utf-8") if line.strip()]
    return [texts[i % len(texts)] for i in range(n)]


def first_answer(model: Path, flags: list[str], cwd: Path = ROOT) -> tuple[float, int]:
    cmd = [sys.executable, "-c", CLI, "classify", "-", "--model", str(model), *flags]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=b'{"text": "Quick fix but the technician was rude."}\n', capture_output=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(cwd)}, cwd=cwd)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.decode()[-2000:])
    rss = int(next(l for l in proc.stderr.decode().splitlines() if l.startswith("RSS")).split()[1])
    return seconds, rss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the previous shipped model folder")
    parser.add_argument("--after", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "default_runtime.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from feedback_nlp import evaluate, load_model
    from feedback_nlp.export import export_onnx
    from training.challenge import read_challenge

    tmp = Path(tempfile.mkdtemp(prefix="default-runtime-"))
    try:
        before = tmp / "before"
        shutil.copytree(args.before, before)
        export_onnx(before, int8=True)
        setups = {"before (opt-in fast path)": (before, ["--runtime", "onnx"]), "after (default, no flag)": (args.after, [])}
        models = {"before (opt-in fast path)": load_model(before, runtime="onnx"), "after (default, no flag)": load_model(args.after)}
        texts = corpus(args.n)
        distinct = list(dict.fromkeys(texts))[:5000]
        rates: dict = {name: {"batch": [], "distinct": []} for name in models}
        for model in models.values():
            model.classify(texts[:64])
        for _ in range(2):  # alternate, twice
            for name, model in models.items():
                t0 = time.perf_counter()
                model.classify(texts)
                rates[name]["batch"].append(args.n / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                model.classify(distinct)
                rates[name]["distinct"].append(len(distinct) / (time.perf_counter() - t0))
        starts: dict = {name: [] for name in setups}
        rss: dict = {name: [] for name in setups}
        for _ in range(args.runs):
            for name, (folder, flags) in setups.items():
                s, r = first_answer(folder, flags)
                starts[name].append(s)
                rss[name].append(r)
        ch_x, ch_y = read_challenge()
        results = {}
        for name, model in models.items():
            m = evaluate(model, ch_x, ch_y)
            results[name] = {
                "runtime": model.runtime_,
                "classify_per_s": round(max(rates[name]["batch"]), 1),
                "classify_distinct_per_s": round(max(rates[name]["distinct"]), 1),
                "start_to_first_answer_s_median": round(statistics.median(starts[name]), 3),
                "start_to_first_answer_s_range": [round(min(starts[name]), 3), round(max(starts[name]), 3)],
                "rss_mb_median": statistics.median(rss[name]),
                "challenge_macro_f1": round(m["macro_f1"], 4),
                "challenge_per_theme_f1": {t: round(v["f1"], 3) for t, v in m["per_theme"].items()},
                "challenge_polarity_accuracy": round(m["polarity_accuracy"], 4),
            }
        a, b = results["after (default, no flag)"], results["before (opt-in fast path)"]
        results["ratios_after_over_before"] = {
            "classify_per_s": round(a["classify_per_s"] / b["classify_per_s"], 3),
            "classify_distinct_per_s": round(a["classify_distinct_per_s"] / b["classify_distinct_per_s"], 3),
            "start_to_first_answer_s": round(a["start_to_first_answer_s_median"] / b["start_to_first_answer_s_median"], 3),
            "rss_mb": round(a["rss_mb_median"] / b["rss_mb_median"], 3),
        }
        results["n"] = args.n
        results["cpus"] = os.cpu_count()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
