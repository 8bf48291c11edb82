"""classify throughput against the raw encoder on the same comments, in one run.

    python benchmarks/throughput.py [--n 5000] [--model DIR]

Measures, on the same N comments (the seed corpus cycled to N):
  raw encoder  the model's encoder on the N whole texts (MiniLM + USE; calls cut by token
               length, at most 64 texts each)
  classify     model.classify of the N texts in memory (normalise, split, dedupe, encode, heads)
  CLI          `feedback-nlp classify` on a CSV of them, end to end in a fresh process
               (start-up, model load, reading, writing), with its peak RSS
Writes benchmarks/results/throughput-N.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def corpus(n: int) -> list[str]:
    texts = []
    for split in ("train", "dev", "test"):
        texts += [json.loads(l)["text"] for l in open(ROOT / "training" / "data" / f"{split}.jsonl", encoding="utf-8")]
    return [texts[i % len(texts)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from feedback_nlp import load_model

    texts = corpus(args.n)
    model = load_model(args.model)
    model.classify(texts[:64])  # load and warm up

    def raw_rate() -> float:
        t0 = time.perf_counter()
        model.encoder_.encode(texts, batch_size=64)
        return args.n / (time.perf_counter() - t0)

    raw_before = raw_rate()
    t0 = time.perf_counter()
    model.classify(texts)
    mem = args.n / (time.perf_counter() - t0)
    raw_after = raw_rate()  # the raw rate on both sides of classify: drift shows as a gap
    raw = (raw_before + raw_after) / 2

    class Recording:  # what classify hands the encoder, without encoding it
        dim = model.encoder_.dim
        seen: list[str] = []

        def encode(self, batch, batch_size=64):
            self.seen.extend(batch)
            return np.ones((len(batch), self.dim), dtype=np.float32)

    model._units(texts, Recording())
    encoded_chars = sum(map(len, Recording.seen))

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.csv"
        with open(src, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "text"])
            w.writerows([i, t] for i, t in enumerate(texts))
        cmd = [sys.executable, "-m", "feedback_nlp", "classify", str(src), "-o", str(Path(tmp) / "out.csv"), "--no-progress"]
        if args.model:
            cmd += ["--model", args.model]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        cli_s = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    unique = len(set(texts))
    result = {
        "n": args.n,
        "unique_texts": unique,
        "raw_encoder_per_s": round(raw, 1),
        "raw_encoder_before_after": [round(raw_before, 1), round(raw_after, 1)],
        "whole_vector": model.whole_vector,
        "encoded_units": len(Recording.seen),
        "encoded_chars_over_raw": round(encoded_chars / sum(map(len, texts)), 3),
        "classify_in_memory_per_s": round(mem, 1),
        "classify_over_raw": round(mem / raw, 3),
        "cli_end_to_end_per_s": round(args.n / cli_s, 1),
        "cli_seconds": round(cli_s, 1),
        "cli_peak_rss_mb": round(peak_mb),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(f"{'':<28}{'comments/s':>12}")
    print(f"{'raw encoder':<28}{raw:>12.1f}   (before {raw_before:.1f}, after {raw_after:.1f})")
    print(f"{'classify (in memory)':<28}{mem:>12.1f}   ratio {mem / raw:.3f}; encodes {len(Recording.seen)} units, "
          f"{encoded_chars / sum(map(len, texts)):.2f}x the raw characters")
    print(f"{'feedback-nlp classify CLI':<28}{args.n / cli_s:>12.1f}   {cli_s:.1f} s incl. start-up, peak RSS {peak_mb:.0f} MB")
    out = ROOT / "benchmarks" / "results" / f"throughput-{args.n}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
