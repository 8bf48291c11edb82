"""Peak memory of the batch CLI on a large CSV: does RSS stay flat as rows go by?

    python benchmarks/memory.py --n 1000000 [--model DIR] [--runtime onnx]

Writes an N-row CSV (the seed corpus cycled, one id per row), runs `feedback-nlp classify` on it
in a fresh process and samples that process's resident memory (VmRSS) every second, with the
output file's size as the progress measure. Prints RSS at 10%, 25%, 50%, 75% and 100% of the
output and the peak; writes benchmarks/results/memory-N.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from throughput import corpus  # noqa: E402


def rss_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--model", default=None)
    parser.add_argument("--runtime", default=None, choices=[None, "torch", "onnx"])
    args = parser.parse_args()
    texts = corpus(min(args.n, 10_000))
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        with open(src, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "comment"])
            w.writerows((f"S{i:07d}", texts[i % len(texts)]) for i in range(args.n))
        cmd = [sys.executable, "-m", "feedback_nlp", "classify", str(src), "--text-column", "comment",
               "-o", str(out), "--no-progress"]
        cmd += ["--model", args.model] if args.model else []
        cmd += ["--runtime", args.runtime] if args.runtime else []
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
        samples = []  # (seconds, rss MB, output bytes)
        while proc.poll() is None:
            mb = rss_mb(proc.pid)
            if mb is not None:
                samples.append((round(time.perf_counter() - t0, 1), round(mb, 1), out.stat().st_size if out.exists() else 0))
            time.sleep(1.0)
        seconds = time.perf_counter() - t0
        err = proc.stderr.read()
        if proc.returncode != 0:
            raise SystemExit(f"classify failed ({proc.returncode}): {err[-2000:]}")
        with open(out, encoding="utf-8", newline="") as fh:
            rows_out = sum(1 for _ in csv.reader(fh)) - 1
    final = samples[-1][2] or 1
    marks = {}
    for frac in (0.10, 0.25, 0.50, 0.75, 1.00):
        hit = next((s for s in samples if s[2] >= frac * final), samples[-1])
        marks[f"{int(frac * 100)}%"] = hit[1]
    result = {
        "n": args.n, "rows_out": rows_out, "runtime": args.runtime or "model default", "seconds": round(seconds, 1),
        "rows_per_s": round(args.n / seconds, 1), "rss_mb_at_output": marks,
        "peak_rss_mb": max(s[1] for s in samples), "samples": samples[:: max(1, len(samples) // 200)],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(f"{args.n} rows in {seconds:.0f} s ({args.n / seconds:.0f}/s), {rows_out} rows out")
    print("RSS at share of output written: " + ", ".join(f"{k} {v:.0f} MB" for k, v in marks.items()))
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    path = ROOT / "benchmarks" / "results" / f"memory-{args.n}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
