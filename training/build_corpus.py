"""Merge the hand-written parts of the seed corpus, deduplicate, split, and describe it.

    python -m training.build_corpus            # writes training/data/{train,dev,test}.jsonl + stats.json

Splits are assigned by a hash of the (normalised) text of each near-duplicate
cluster's first member, so the split is fixed, adding comments never moves old ones,
and near-duplicates never straddle train and test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from feedback_nlp.labels import normalize_label
from feedback_nlp.taxonomy import DEFAULT_TAXONOMY
from feedback_nlp.text import normalize

DATA = Path(__file__).parent / "data"
SPLITS = (("train", 0.70), ("dev", 0.15), ("test", 0.15))
NEAR_DUPLICATE = 0.95


def _key(text: str) -> str:
    return " ".join(normalize(text).lower().split())


def _split_of(text: str) -> str:
    bucket = int(hashlib.sha256(_key(text).encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    edge = 0.0
    for name, share in SPLITS:
        edge += share
        if bucket <= edge:
            return name
    return SPLITS[-1][0]


def load_parts(folder: Path) -> list[dict]:
    rows = []
    for part in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(part.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            themes = normalize_label(row["themes"], where=f"{part.name}:{number}: ")
            unknown = set(themes) - set(DEFAULT_TAXONOMY.ids)
            if unknown:
                raise SystemExit(f"{part.name}:{number}: unknown theme(s) {unknown}")
            rows.append({"text": row["text"], "themes": themes, "source": part.stem})
    return rows


def near_duplicate_clusters(texts: list[str], threshold: float = NEAR_DUPLICATE):
    """Union-find clusters of texts whose embeddings have cosine > threshold."""
    from feedback_nlp.encoders import SentenceTransformerEncoder

    vectors = SentenceTransformerEncoder().encode(texts, batch_size=128)
    parent = list(range(len(texts)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = 0
    for start in range(0, len(texts), 1024):
        sims = vectors[start : start + 1024] @ vectors.T
        for a, b in zip(*np.nonzero(sims > threshold)):
            a += start
            if a < b:
                pairs += 1
                parent[find(b)] = find(a)
    return [find(i) for i in range(len(texts))], pairs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=Path, default=DATA / "parts")
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args(argv)

    rows = load_parts(args.parts)
    seen: dict[str, int] = {}
    unique, exact_dupes, conflicts = [], 0, 0
    for row in rows:
        key = _key(row["text"])
        if not key:
            continue
        if key in seen:
            exact_dupes += 1
            conflicts += unique[seen[key]]["themes"] != row["themes"]
            continue
        seen[key] = len(unique)
        unique.append(row)
    texts = [r["text"] for r in unique]
    root, pairs = near_duplicate_clusters(texts)
    in_cluster = Counter(root)
    near_dupe_rows = sum(1 for i in range(len(texts)) if in_cluster[root[i]] > 1 and root[i] != i)

    short = {"positive": "pos", "negative": "neg", None: None}
    by_split: dict[str, list[dict]] = {name: [] for name, _ in SPLITS}
    for i, row in enumerate(unique):
        split = _split_of(unique[root[i]]["text"])
        by_split[split].append({"text": row["text"], "themes": {k: short[v] for k, v in row["themes"].items()}, "source": row["source"]})
    for name, items in by_split.items():
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")

    def counts(items):
        c = Counter()
        for item in items:
            if not item["themes"]:
                c["(no theme)"] += 1
            for theme, pol in item["themes"].items():
                c[theme] += 1
                if pol and DEFAULT_TAXONOMY[theme].polar:
                    c[f"{theme}:{pol}"] += 1
        return dict(sorted(c.items()))

    words = np.array([len(t.split()) for t in texts])
    stats = {
        "parts": dict(Counter(r["source"] for r in rows)),
        "rows_written": len(unique),
        "exact_duplicates_removed": exact_dupes,
        "exact_duplicates_with_conflicting_labels": conflicts,
        "near_duplicate_pairs": pairs,
        "near_duplicate_rows": near_dupe_rows,
        "near_duplicate_rate": round(near_dupe_rows / len(unique), 4),
        "splits": {name: len(items) for name, items in by_split.items()},
        "counts": counts([i for items in by_split.values() for i in items]),
        "counts_by_split": {name: counts(items) for name, items in by_split.items()},
        "words": {
            "min": int(words.min()), "p25": int(np.percentile(words, 25)), "median": int(np.median(words)),
            "p75": int(np.percentile(words, 75)), "p95": int(np.percentile(words, 95)), "max": int(words.max()),
            "1-3 words": int((words <= 3).sum()), "4-10": int(((words > 3) & (words <= 10)).sum()),
            "11-30": int(((words > 10) & (words <= 30)).sum()), "31+": int((words > 30).sum()),
        },
        "multi_theme": sum(1 for r in unique if len(r["themes"]) > 1),
    }
    (args.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
