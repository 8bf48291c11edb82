"""The challenge set: comments from writers the training data never saw, labelled blind twice.

    python -m training.challenge            # merges the labels into challenge/challenge.jsonl, prints agreement

Layout of ``training/challenge/``:
- ``parts/*.jsonl``       written from briefs the corpus writers never saw (other organisations,
                          channels and registers); each row carries its writer's labels (annotator A)
                          and the kind of hard case it was written for
- ``blind/texts.jsonl``   the same comments, shuffled, text only, with an id
- ``blind/labels_b.jsonl`` annotator B's labels, made from the text alone
- ``blind/adjudicated.jsonl`` for rows where A and B differ: a third annotator's labels, made
                          blind to both; the gold label of such a row is theirs
- ``challenge.jsonl``     the gold set models are selected on; never trained on

The challenge set is for choosing engines, data mixes and thresholds; it is never part of
training data (``training.build_corpus`` reads only ``data/parts``).
"""

from __future__ import annotations

import json
from pathlib import Path

from feedback_nlp.labels import normalize_label, short_polarity
from feedback_nlp.taxonomy import DEFAULT_TAXONOMY
from training.relabel_agreement import label_agreement

FOLDER = Path(__file__).parent / "challenge"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _short(themes) -> dict:
    return {t: short_polarity(p) for t, p in sorted(normalize_label(themes).items())}


def read_challenge(folder: Path = FOLDER) -> tuple[list[str], list[dict]]:
    """Texts and gold labels (normalised) of the challenge set."""
    rows = _rows(folder / "challenge.jsonl")
    return [r["text"] for r in rows], [normalize_label(r["themes"]) for r in rows]


def build(folder: Path = FOLDER) -> dict:
    """Merge writer labels (A), blind labels (B) and adjudication into ``challenge.jsonl``."""
    written = {}
    for part in sorted((folder / "parts").glob("*.jsonl")):
        for row in _rows(part):
            written[row["text"]] = {"themes": _short(row["themes"]), "kind": row.get("kind"), "part": part.stem}
    texts = {r["id"]: r["text"] for r in _rows(folder / "blind" / "texts.jsonl")}
    blind = {r["id"]: _short(r["themes"]) for r in _rows(folder / "blind" / "labels_b.jsonl")}
    adjudicated_path = folder / "blind" / "adjudicated.jsonl"
    adjudicated = {r["id"]: _short(r["themes"]) for r in _rows(adjudicated_path)} if adjudicated_path.exists() else {}
    missing = sorted(set(texts) - set(blind))
    if missing:
        raise SystemExit(f"annotator B has not labelled ids {missing[:10]}")
    gold, a_rows, b_rows, disputed = [], [], [], 0
    for i in sorted(texts):
        text = texts[i]
        a, b = written[text]["themes"], blind[i]
        a_rows.append(a)
        b_rows.append(b)
        label = a
        if a != b:
            disputed += 1
            label = adjudicated.get(i, a)
        gold.append({"text": text, "themes": label, "kind": written[text]["kind"], "part": written[text]["part"]})
    with open(folder / "challenge.jsonl", "w", encoding="utf-8") as fh:
        for row in gold:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = {t: sum(t in r["themes"] for r in gold) for t in DEFAULT_TAXONOMY.ids}
    return {
        "rows": len(gold),
        "no_theme": sum(not r["themes"] for r in gold),
        "counts": counts,
        "disputed": disputed,
        "adjudicated": sum(1 for i in adjudicated if i in texts),
        "agreement_a_b": label_agreement(a_rows, b_rows),
        "agreement_b_gold": label_agreement(b_rows, [r["themes"] for r in gold]),
    }


if __name__ == "__main__":
    print(json.dumps(build(), indent=2))
