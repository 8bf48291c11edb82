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

from feedback_nlp.labels import normalize_label, short_polarity
from feedback_nlp.languages import check_language
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
    # Natural parts first: an exact duplicate is kept once, under the first part that has it,
    # and real surveys repeat short comments ("thanks!") as often as these parts do.
    for part in sorted(folder.glob("*.jsonl"), key=lambda p: (not p.stem.startswith("nat_"), p.stem)):
        for number, line in enumerate(part.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            themes = normalize_label(row["themes"], where=f"{part.name}:{number}: ")
            unknown = set(themes) - set(DEFAULT_TAXONOMY.ids)
            if unknown:
                raise SystemExit(f"{part.name}:{number}: unknown theme(s) {unknown}")
            rows.append({"text": row["text"], "themes": themes, "source": part.stem,
                         "language": check_language(row.get("language", "en"), f"{part.name}:{number}: language")})
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

    by_split: dict[str, list[dict]] = {name: [] for name, _ in SPLITS}
    for i, row in enumerate(unique):
        # Translations (ml_tr_*) render train-split comments: they stay in train, so no dev or
        # test comment is a translation of a training one.
        split = "train" if row["source"].startswith("ml_tr_") else _split_of(unique[root[i]]["text"])
        by_split[split].append({"text": row["text"], "themes": {k: short_polarity(v) for k, v in row["themes"].items()},
                                "source": row["source"], "language": row["language"]})
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
        "natural": counts([r for r in unique if r["source"] in NATURAL]) | {"rows": sum(r["source"] in NATURAL for r in unique)},
    }
    (args.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(render_card(stats), encoding="utf-8")
    print(json.dumps(stats, indent=2))


BRIEFS = {
    "university": "students, faculty and staff at a university; walk-in, phone, chat; mostly short",
    "corporate_long": "office staff at a large company, internal and outsourced desk; long stories with one theme hidden among praise",
    "complaints": "frustrated and mixed users (councils, hospitals, logistics); not_solved, bounced_around and their look-alikes",
    "remote_uk": "remote and hybrid workers, British/Irish/Australian/Indian English; VPN, ERP, onboarding; negation",
    "people": "manner and competence of the people (hospitals, law firms, plants); the line between them and generic praise",
    "general": "the bulk of real surveys: generic thanks and off-topic remarks (equipment, policy, survey, portal)",
    "speed_mixed": "speed in all its forms and multi-theme comments (healthcare, bank, software firm, schools)",
    "classic": "the classic vocabulary of US/Canadian university and agency survey boxes",
    "unresolved": "varied wording for not_solved and bounced_around, with hard negatives (airline, retail, hospital, city)",
    "voices": "technical staff, non-native English speakers, older staff, store managers typing on phones",
    "subtle": "indirect not_solved/bounced_around/speed/attitude/skills, vivid problem stories that end fixed",
    "stories": "long stories (50-180 words): problem told in detail, one theme hidden in one sentence, or none",
    "polarity": "polarity traps: negation, litotes, contrast, comparatives, intensity; polarity words about other things",
    # v2: the "natural" parts keep real surveys' prevalence (~45% no theme, mostly praise,
    # not_solved 8-10%, bounced_around 5-6%); the "hard" parts hold the kinds real comments break models on.
    "nat_campus": "natural: students, faculty and staff typing into college survey boxes; short, lowercase, misspelt",
    "nat_frontline": "natural: nurses, plant and warehouse staff, shop managers thumb-typing on phones; terse, dictated run-ons",
    "nat_global": "natural: non-native English writers at multinational offices (India, Poland, Brazil, Nigeria, Japan ...)",
    "nat_office": "natural: office staff answering the ticket-closure e-mail survey; brisk, chatty, signatures, understatement",
    "nat_staff_survey": "natural: annual IT satisfaction survey; long multi-topic answers about apps, projects, vendors with one remark on support",
    "nat_field": "natural: sales reps, field engineers, consultants, small branch offices and home workers, replying from phones",
    "nat_public": "natural: council, tax office, courts, social workers, bus depot and water utility staff",
    "hard_praise_forms": "hard: aspect praise wrapped in thanks, bare adjective lists, negated complaints that are praise; generic twins",
    "hard_complaint_forms": "hard: terse misspelt complaint fragments, self-resolution, partial fixes, referrals; stories that end fixed",
    "hard_lookalikes": "hard: no-theme look-alikes (survey remarks, phone line and accent, equipment, policy, problem descriptions) and their themed twins",
    # Other languages (issue 18), each written natively; ml_tr_* render train-split English comments.
    "ml_de_office": "German: office staff in Germany, Austria, Switzerland; e-mail survey; Denglisch, Sie/du, signatures",
    "ml_de_frontline": "German: nurses, warehouse, shop, campus staff on phones; lowercase, no umlauts, dialect",
    "ml_de_survey": "German: hospitals, utilities, public offices, banks; annual IT survey, bureaucratic and blunt",
    "ml_fr_office": "French: office staff in France, Belgium, Switzerland, Quebec; e-mail survey; vous/tu, franglais",
    "ml_fr_frontline": "French: hospital, warehouse, retail, school staff on phones; SMS abbreviations, no accents",
    "ml_fr_survey": "French: hospitals, public bodies, a bank, an engineering firm, a university; annual IT survey",
    "ml_es_office": "Spanish: office staff in Spain, Mexico, Argentina, Colombia, Chile; e-mail survey; usted/tu/vos",
    "ml_es_frontline": "Spanish: hospital, warehouse, store, school staff on phones; chat abbreviations, no accents",
    "ml_es_survey": "Spanish: public hospitals, regional government, banks, mining, a university; annual IT survey",
    "ml_chat": "German, French, Spanish: one-click chat/phone rating pop-ups; very short, emoji, code-switching, sarcasm",
    "ml_it_pt": "Italian (Italy, Ticino) and Portuguese (Portugal, Brazil): offices, hospitals, shops, universities",
    "ml_nl_pl": "Dutch (Netherlands, Flanders) and Polish: municipalities, hospitals, shared-service centres, factories",
    "ml_tr_de": "German renderings of 700 train-split English comments, as a native employee would type them",
    "ml_tr_fr": "French renderings of 700 train-split English comments",
    "ml_tr_es": "Spanish renderings of 700 train-split English comments (Spain and Latin America)",
    "ml_tr_it_pt": "Italian and Portuguese renderings of 350 train-split English comments each",
    "ml_tr_nl_pl": "Dutch and Polish renderings of 350 train-split English comments each",
}
NATURAL = tuple(p for p in BRIEFS if p.startswith("nat_"))


def render_card(stats: dict) -> str:
    from training.relabel_agreement import FOLDER, FOLDER_V2, agreement

    agree = agreement(FOLDER)
    agree_v2 = agreement(FOLDER_V2) if (FOLDER_V2 / "labels.jsonl").exists() else None
    nat = stats["natural"]
    c = stats["counts"]
    lines = [
        "# Seed corpus — data card",
        "",
        "Labelled survey comments the default model is trained on. Every comment was written for this",
        "project, one by one, by writers working in parallel from different briefs (below), and",
        "labelled by the definitions in `docs/themes.md` (= `shared/THEMES.md`). No template filling,",
        "no text taken from elsewhere. Built by `python -m training.build_corpus` from `parts/`.",
        "",
        "| part | comments | brief |",
        "|---|---|---|",
    ]
    for part, n in sorted(stats["parts"].items()):
        lines.append(f"| `{part}` | {n} | {BRIEFS.get(part, '')} |")
    lines += [
        "",
        f"**{stats['rows_written']} comments** after removing {stats['exact_duplicates_removed']} exact duplicates "
        f"(case/spacing-insensitive; {stats['exact_duplicates_with_conflicting_labels']} of them with conflicting labels).",
        "",
        "## Labels",
        "",
        "| theme | comments | positive | negative |",
        "|---|---|---|---|",
    ]
    for theme in DEFAULT_TAXONOMY.ids:
        lines.append(f"| `{theme}` | {c.get(theme, 0)} | {c.get(theme + ':pos', '-')} | {c.get(theme + ':neg', c.get(theme, 0) if not DEFAULT_TAXONOMY[theme].polar else 0)} |")
    lines += [
        f"| (no theme) | {c.get('(no theme)', 0)} | | |",
        "",
        f"{stats['multi_theme']} comments carry more than one theme.",
        "",
        f"**The natural part** (`nat_*`, {nat['rows']} comments, {nat['rows'] / stats['rows_written'] * 100:.0f}% of the corpus) keeps the",
        "prevalence of real survey boxes: " + ", ".join(
            f"{name} {nat.get(key, 0) / nat['rows'] * 100:.1f}%" for name, key in
            (("no theme", "(no theme)"), ("speed", "speed"), ("attitude", "attitude"), ("skills", "skills"),
             ("not_solved", "not_solved"), ("bounced_around", "bounced_around"))) + ".",
        "The other parts hold the hard cases and give every theme enough examples.",
        "",
        "## Length (words)",
        "",
        "| 1-3 | 4-10 | 11-30 | 31+ | median | p95 | max |",
        "|---|---|---|---|---|---|---|",
        f"| {stats['words']['1-3 words']} | {stats['words']['4-10']} | {stats['words']['11-30']} | {stats['words']['31+']} "
        f"| {stats['words']['median']} | {stats['words']['p95']} | {stats['words']['max']} |",
        "",
        "## Near-duplicates",
        "",
        f"Pairs with cosine similarity > 0.95 (all-MiniLM-L6-v2): {stats['near_duplicate_pairs']}; comments that are a",
        f"near-duplicate of an earlier one: {stats['near_duplicate_rate'] * 100:.2f}%. Near-duplicates are kept in the same split.",
        "",
        "## Splits",
        "",
        "Fixed by a hash of each comment's text (of its near-duplicate cluster's first member), so adding",
        "comments never moves old ones: " + ", ".join(f"{k} {v}" for k, v in stats["splits"].items()) + ".",
        "The test split is only used for reported numbers; model choices use dev.",
        "",
        "| split | " + " | ".join(DEFAULT_TAXONOMY.ids) + " | no theme |",
        "|---|" + "---|" * (len(DEFAULT_TAXONOMY) + 1),
    ]
    for split, counts in stats["counts_by_split"].items():
        lines.append(f"| {split} | " + " | ".join(str(counts.get(t, 0)) for t in DEFAULT_TAXONOMY.ids) + f" | {counts.get('(no theme)', 0)} |")
    lines += [
        "",
        "## Blind re-label",
        "",
        f"{agree['n']} comments drawn at random were labelled again by a second annotator who saw only the text",
        f"(`relabel/`, `python -m training.relabel_agreement`): macro-F1 between the two {agree['macro_f1']:.3f}, rows identical",
        f"{agree['rows_identical'] * 100:.1f}%, polarity agreement {agree['polarity_agreement'] * 100:.1f}% (n={agree['polarity_n']}).",
        "",
        "| theme | F1 | Cohen's kappa |",
        "|---|---|---|",
    ]
    for theme in DEFAULT_TAXONOMY.ids:
        lines.append(f"| `{theme}` | {agree['per_theme_f1'][theme]:.3f} | {agree['cohen_kappa'][theme]:.3f} |")
    if agree_v2:
        lines += [
            "",
            f"v2: {agree_v2['n']} comments drawn at random from the new parts (130 from each of the first five written,",
            f"seed 21; `relabel_v2/`): macro-F1 {agree_v2['macro_f1']:.3f}, rows identical {agree_v2['rows_identical'] * 100:.1f}%,",
            f"polarity agreement {agree_v2['polarity_agreement'] * 100:.1f}% (n={agree_v2['polarity_n']}).",
            "",
            "| theme | F1 | Cohen's kappa |",
            "|---|---|---|",
        ]
        for theme in DEFAULT_TAXONOMY.ids:
            lines.append(f"| `{theme}` | {agree_v2['per_theme_f1'][theme]:.3f} | {agree_v2['cohen_kappa'][theme]:.3f} |")
    lines += [
        "",
        "## Known limits",
        "",
        "- Written by a small group of writers, not harvested from real surveys: the wording of real",
        "  respondents is wider. The default model is also checked leave-one-brief-out (BENCHMARKS.md).",
        "- All writers and annotators are language models working from briefs; their labels agree with each",
        "  other more closely than two human annotators do on real comments (0.93-0.95 macro-F1), so the",
        "  agreement figures above are an upper bound on label quality, not a measure of it.",
        "- The hard parts over-represent complaints so each theme has enough examples; the natural part does not.",
        "- The challenge set (`training/challenge/`, other writers and briefs) is never part of this corpus.",
        "- English only.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
