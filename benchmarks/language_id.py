"""How often the language detector is right on survey comments, by language and by length.

Texts: the held-out multilingual sets (training/multilingual/heldout/, written in each language
by writers who wrote no training data) and the English test split of the seed corpus. A comment
counts as right when the detected language is its language; "fallback" is how often the
detector was unsure and answered the main language (en).

    python benchmarks/language_id.py --out benchmarks/results/language_id.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feedback_nlp.languages import ENCODER_LANGUAGES, LanguageDetector  # noqa: E402

BUCKETS = ((1, 3), (4, 10), (11, 30), (31, 10_000))


def bucket(text: str) -> str:
    n = len(text.split())
    for lo, hi in BUCKETS:
        if lo <= n <= hi:
            return f"{lo}-{hi}" if hi < 10_000 else f"{lo}+"
    return "0"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--min-confidence", type=float, default=None)
    args = ap.parse_args(argv)
    rows = []
    for f in sorted((ROOT / "training" / "multilingual" / "heldout").glob("*.jsonl")):
        rows += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows += [{"text": r["text"], "language": "en"} for r in map(json.loads, (ROOT / "training/data/test.jsonl").read_text().splitlines())
             if r.get("language", "en") == "en"]
    detector = LanguageDetector("en") if args.min_confidence is None else LanguageDetector("en", args.min_confidence)
    detector.detect(["warm up"])
    t = time.perf_counter()
    found = detector.detect([r["text"] for r in rows], ENCODER_LANGUAGES)  # as the default model asks
    rate = len(rows) / (time.perf_counter() - t)
    by_lang = defaultdict(lambda: [0, 0])
    by_len = defaultdict(lambda: [0, 0])
    for r, code in zip(rows, found):
        ok = code == r["language"]
        by_lang[r["language"]][0] += ok
        by_lang[r["language"]][1] += 1
        if r["language"] != "en":
            by_len[bucket(r["text"])][0] += ok
            by_len[bucket(r["text"])][1] += 1
    result = {
        "min_confidence": detector.min_confidence,
        "comments_per_s": round(rate),
        "accuracy_by_language": {k: {"accuracy": round(a / n, 4), "n": n} for k, (a, n) in sorted(by_lang.items())},
        "non_english_accuracy_by_words": {k: {"accuracy": round(a / n, 4), "n": n} for k, (a, n) in sorted(by_len.items())},
        "english_sent_elsewhere": round(1 - by_lang["en"][0] / by_lang["en"][1], 4),
        "any_marked_unsupported": sum(1 for c in found if c not in ENCODER_LANGUAGES),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
