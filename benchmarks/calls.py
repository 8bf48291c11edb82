"""One long comment at a time, then the batch path's chunks, in one process.

    python benchmarks/calls.py --model DIR [--threads N]

Prints the mean latency of `model.classify([comment])` over the 56 first seed comments longer
than 300 characters (what an idle server's slowest answers are made of), the comments/s and CPU
per comment of `classify` on 3,072 shuffled seed comments in 512-comment chunks (the batch CLI's
engine), and the largest difference between vectors encoded alone and together. Used to compare
how an encoder spends its threads (BENCHMARKS.md section 4): run it on two checkouts, minutes apart.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from feedback_nlp import load_model

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=None, help="Encoder threads (default: one per core).")
    args = parser.parse_args()
    model = load_model(args.model, threads=args.threads)
    texts = [json.loads(line)["text"] for split in ("train", "test")
             for line in open(ROOT / "training" / "data" / f"{split}.jsonl", encoding="utf-8")]
    longs = [t for t in texts if len(t) > 300][:56]
    model.classify(longs[:3])  # warm-up
    latencies = []
    for _ in range(2):
        start = time.perf_counter()
        for text in longs:
            model.classify([text])
        latencies.append((time.perf_counter() - start) / len(longs) * 1000)
    random.Random(0).shuffle(texts)
    batch = texts[:3072]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(batch), 512):
        model.classify(batch[i : i + 512])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    alone = np.vstack([model.encoder_.encode([t]) for t in batch[:200]])
    together = model.encoder_.encode(batch[:200])
    print(f"long comment, alone: {np.mean(latencies):.1f} ms ({', '.join(f'{x:.1f}' for x in latencies)})")
    print(f"batch: {len(batch) / elapsed:.1f} comments/s, CPU {cpu / len(batch) * 1000:.2f} ms per comment")
    print(f"vectors alone vs together: max difference {float(np.abs(alone - together).max()):.1e}")


if __name__ == "__main__":
    main()
