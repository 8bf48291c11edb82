"""The explorer page on 50,000 comments: file size, load and filter times in headless Chromium,
and the screenshots in docs/analysts.md.

    python benchmarks/explorer.py [--n 50000]

400 comments of the seed corpus's test split (English and seven other languages) are tagged
by the shipped model, given a team, a desk, a month, a 0-10 score and hours lost (seeded
random), and repeated to --n rows. Writes benchmarks/results/explorer.json and
docs/img/explorer*.png.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def tagged_rows(n: int) -> list[dict]:
    from feedback_nlp import load_model

    rng = random.Random(0)
    source = [json.loads(line) for line in open(ROOT / "training" / "data" / "test.jsonl", encoding="utf-8")]
    rng.shuffle(source)
    texts = [r["text"] for r in source[:400]]
    results = load_model().classify(texts)
    base = []
    for text, result in zip(texts, results):
        unhappy = any(t["polarity"] == "negative" for t in result["themes"])
        base.append({"text": text, **result})
    rows = []
    for i in range(n):
        row = dict(base[i % len(base)])
        unhappy = any(t["polarity"] == "negative" for t in row["themes"])
        row.update(team=rng.choice(["Finance", "Sales", "Plant", "HR", "Legal"]),
                   desk=rng.choice(["internal", "outsourced"]),
                   closed=f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}",
                   happiness=rng.randint(0, 6) if unhappy else rng.randint(6, 10),
                   hours_lost=round(rng.uniform(0.5, 6), 1) if unhappy else round(rng.uniform(0, 0.5), 1))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "explorer.json")
    ap.add_argument("--images", type=Path, default=ROOT / "docs" / "img")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from feedback_nlp.report import build_report

    tmp = Path(tempfile.mkdtemp(prefix="explorer-"))
    tagged = tmp / "survey.tagged.jsonl"
    tagged.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tagged_rows(args.n)), encoding="utf-8")
    t0 = time.perf_counter()
    page_file = tmp / "survey.explorer.html"
    build_report(tagged, page_file, by=["team", "desk"], time="closed", score="happiness", fmt="explorer",
                 lost_time="hours_lost")
    result = {"comments": args.n, "build_s": round(time.perf_counter() - t0, 2),
              "html_mb": round(page_file.stat().st_size / 1e6, 1)}
    args.images.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        t0 = time.perf_counter()
        page.goto(page_file.as_uri())
        page.wait_for_selector("#list > li")
        result["load_to_first_list_s"] = round(time.perf_counter() - t0, 2)
        timings = []
        for theme, polarity in (("speed", "negative"), ("not_solved", "negative"), ("attitude", "positive")):
            page.click("#reset")
            t0 = time.perf_counter()
            page.click(f"#bars g.bar[data-theme='{theme}'][data-polarity='{polarity}']")
            page.wait_for_function(f"document.querySelector('#active').textContent.includes('Filtered')")
            timings.append(time.perf_counter() - t0)
        result["click_bar_to_list_s"] = [round(t, 3) for t in timings]
        page.click("#reset")
        t0 = time.perf_counter()
        page.fill("#f-search", "vpn")
        page.wait_for_function("document.querySelector('#active').textContent.includes('vpn')")
        result["search_to_list_s"] = round(time.perf_counter() - t0 - 0.15, 3)  # less the 150 ms typing pause
        page.click("#reset")
        page.screenshot(path=str(args.images / "explorer.png"))
        page.click("#bars g.bar[data-theme='not_solved'][data-polarity='negative']")
        page.select_option("#f-seg-1", "outsourced")
        page.screenshot(path=str(args.images / "explorer-filtered.png"), full_page=False)
        browser.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
