"""Topic discovery against known topics: Banking77's test split (3,080 questions, 77 intents).

    python benchmarks/topics.py [--model DIR]

The vectors are the model's encoder's (as `feedback-nlp discover` uses them). Reports NMI and
ARI against the intents for: the default (number of topics found from the data), the same
with the true number given (k=77), and plain k-means with the true k on the same vectors.
Writes benchmarks/results/topics.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "banking77" / "test.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "topics.json")
    args = ap.parse_args()
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from feedback_nlp import load_model
    from feedback_nlp.topics import discover_topics

    rows = list(csv.DictReader(open(args.data, encoding="utf-8")))
    texts, truth = [r["text"] for r in rows], [r["category"] for r in rows]
    t0 = time.perf_counter()
    vectors = np.asarray(load_model(args.model).encoder_.encode(texts), dtype=np.float32)
    encode_s = time.perf_counter() - t0
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def score(labels, seconds, k):
        return {"topics": int(k), "nmi": round(float(normalized_mutual_info_score(truth, labels)), 4),
                "ari": round(float(adjusted_rand_score(truth, labels)), 4), "seconds": round(seconds, 2)}

    results = {"data": str(args.data.name), "comments": len(texts), "intents": len(set(truth)), "encode_s": round(encode_s, 1)}
    t0 = time.perf_counter()
    labels, topics = discover_topics(texts, vectors)
    results["discover_default_unknown_k"] = score(labels, time.perf_counter() - t0, len(topics))
    results["discover_default_unknown_k"]["largest_topics"] = [t.label for t in topics[:10]]
    t0 = time.perf_counter()
    labels, topics = discover_topics(texts, vectors, k=len(set(truth)))
    results["discover_known_k"] = score(labels, time.perf_counter() - t0, len(topics))
    t0 = time.perf_counter()
    plain = KMeans(len(set(truth)), n_init=10, random_state=0).fit_predict(unit)
    results["plain_kmeans_true_k"] = score(plain, time.perf_counter() - t0, len(set(truth)))
    results["nmi_gap_default_vs_plain_true_k"] = round(
        results["plain_kmeans_true_k"]["nmi"] - results["discover_default_unknown_k"]["nmi"], 4)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
