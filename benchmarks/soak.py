"""Soak `feedback-nlp serve` on loopback: sustained load with memory watched, then overload.

    python benchmarks/soak.py [--duration 60] [--clients 32] [--overload-clients 256]
                              [--overload-duration 15] [--max-queue 64] [--model DIR] [--unique-ids]

The server runs here as a subprocess (`python -m feedback_nlp serve`, default settings except
FEEDBACK_NLP_MAX_QUEUE). Each client posts one comment per request and sends the next as soon as
it has an answer. Phases:
  sustained  --clients clients for --duration s after a short warm-up: every answer must be 200
             (no 429 either: 32 clients never have more than 32 comments queued, below --max-queue).
             The server's resident memory (RSS) is sampled every second for the whole run; growth
             is the median of the last five samples of this phase against the first five.
  overload   --overload-clients clients, far beyond capacity, for --overload-duration s: every
             answer must be 200 or 429 with a Retry-After header; no 5xx, no dropped connections.
             Clients retry at once (no back-off): the worst case for the server.
  recovery   one client, 20 requests right after: all 200.
Prints a table, writes benchmarks/results/soak-<time>.json, and exits 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import RESULTS, ROOT, Server, _r, percentile, post_comments, read_comments  # noqa: E402

RSS_GROWTH_LIMIT = 0.10


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` (Linux /proc; psutil elsewhere), None once it has exited."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except FileNotFoundError:
        return None
    except OSError:
        import psutil

        return psutil.Process(pid).memory_info().rss


class Sampler:
    """RSS of the server every ``interval`` s, each sample tagged with the phase it fell in."""

    def __init__(self, pid: int, interval: float = 1.0):
        self.pid, self.interval = pid, interval
        self.phase = "start"
        self.samples: list[dict] = []
        self._start = time.perf_counter()

    async def run(self) -> None:
        while True:
            rss = rss_bytes(self.pid)
            if rss is not None:
                self.samples.append({"t": round(time.perf_counter() - self._start, 1), "phase": self.phase, "rss_mb": round(rss / 2**20, 1)})
            await asyncio.sleep(self.interval)

    def of(self, phase: str) -> list[float]:
        return [s["rss_mb"] for s in self.samples if s["phase"] == phase]


async def load_phase(url: str, texts: list[str], clients: int, duration: float, warmup: float = 0.0) -> dict:
    """``clients`` clients posting one comment at a time; answers counted by status after ``warmup``."""
    answers, elapsed = await post_comments(url, texts, clients, duration, warmup)
    statuses = Counter(status for status, _, _ in answers if isinstance(status, int))
    transport = Counter(status for status, _, _ in answers if isinstance(status, str))
    latencies = [seconds * 1000 for status, seconds, _ in answers if status == 200]
    missing_retry_after = sum(1 for status, _, has in answers if status == 429 and not has)
    return {
        "clients": clients, "seconds": round(elapsed, 1), "ok": statuses[200],
        "ok_per_s": round(statuses[200] / elapsed, 1) if elapsed > 0 else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "too_many_requests": statuses[429], "missing_retry_after": missing_retry_after,
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
        "other_statuses": sum(v for k, v in statuses.items() if k not in (200, 429) and k < 500),
        "transport_errors": dict(transport),
        "p50_ms": _r(percentile(latencies, 50)), "p95_ms": _r(percentile(latencies, 95)), "p99_ms": _r(percentile(latencies, 99)),
    }


async def soak(server: Server, texts: list[str], args) -> dict:
    sampler = Sampler(server.proc.pid)
    task = asyncio.create_task(sampler.run())
    try:
        sampler.phase = "warmup"
        await load_phase(server.url, texts, args.clients, args.warmup)
        sampler.phase = "sustained"
        sustained = await load_phase(server.url, texts, args.clients, args.duration)
        sampler.phase = "overload"
        overload = await load_phase(server.url, texts, args.overload_clients, args.overload_duration)
        sampler.phase = "recovery"
        await asyncio.sleep(1.0)  # let the queue drain
        recovery = await recover(server.url, texts)
    finally:
        task.cancel()
    rss = sampler.of("sustained")
    head, tail = rss[:5], rss[-5:]
    memory = {
        "start_mb": statistics.median(head) if head else None,
        "end_mb": statistics.median(tail) if tail else None,
        "max_mb": max((s["rss_mb"] for s in sampler.samples), default=None),
        "samples": len(rss),
    }
    memory["growth"] = round(memory["end_mb"] / memory["start_mb"] - 1, 4) if head else None
    return {"sustained": sustained, "overload": overload, "recovery": recovery, "memory": memory, "rss_samples": sampler.samples}


async def recover(url: str, texts: list[str], n: int = 20) -> dict:
    statuses: Counter = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i in range(n):
            statuses[(await client.post("/v1/classify", json={"text": texts[i % len(texts)]})).status_code] += 1
    return {"requests": n, "ok": statuses[200], "statuses": {str(k): v for k, v in statuses.items()}}


def checks(report: dict, args) -> dict[str, bool]:
    s, o, m = report["sustained"], report["overload"], report["memory"]
    return {
        f"sustained: 0 errors at {args.clients} clients": s["ok"] > 0 and sum(s["statuses"].values()) == s["ok"] and not s["transport_errors"],
        f"sustained: RSS growth < {RSS_GROWTH_LIMIT:.0%}": m["growth"] is not None and m["growth"] < RSS_GROWTH_LIMIT,
        "overload: refused with 429 + Retry-After": o["too_many_requests"] > 0 and o["missing_retry_after"] == 0,
        "overload: no 5xx, no other status, no dropped connection": o["server_errors"] == 0 and o["other_statuses"] == 0 and not o["transport_errors"],
        "recovery: all 200": report["recovery"]["ok"] == report["recovery"]["requests"],
    }


def show(report: dict, results: dict[str, bool]) -> None:
    print(f"{'phase':<10} {'clients':>7} {'s':>5} {'200':>7} {'200/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'429':>6} {'5xx':>4} {'other':>5}  transport errors")
    for name in ("sustained", "overload"):
        r = report[name]
        print(f"{name:<10} {r['clients']:>7} {r['seconds']:>5} {r['ok']:>7} {r['ok_per_s']:>7} {str(r['p50_ms']):>7} "
              f"{str(r['p95_ms']):>7} {str(r['p99_ms']):>7} {r['too_many_requests']:>6} {r['server_errors']:>4} "
              f"{r['other_statuses']:>5}  {r['transport_errors'] or 0}")
    rec = report["recovery"]
    print(f"{'recovery':<10} {1:>7} {'':>5} {rec['ok']:>7} / {rec['requests']} requests")
    m = report["memory"]
    growth = f"{m['growth']:+.1%}" if m["growth"] is not None else "n/a"
    print(f"server RSS (sustained): {m['start_mb']} MB -> {m['end_mb']} MB ({growth}), max over the run {m['max_mb']} MB, "
          f"{m['samples']} samples")
    for name, ok in results.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


class WithTicketNumbers(Sequence):
    """The comments in turn, the i-th with " (INC<i>)" added: no two requests share the number."""

    def __init__(self, texts: list[str]):
        self.texts = texts

    def __len__(self) -> int:
        return 10**12  # the clients' counter never wraps

    def __getitem__(self, i: int) -> str:
        return f"{self.texts[i % len(self.texts)]} (INC{i:07d})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds of sustained load.")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds of load before the sustained phase is measured.")
    parser.add_argument("--overload-clients", type=int, default=256)
    parser.add_argument("--overload-duration", type=float, default=15.0)
    parser.add_argument("--max-queue", type=int, default=64, help="FEEDBACK_NLP_MAX_QUEUE for the server (comments).")
    parser.add_argument("--model", default=None, help="Model folder (default: the promoted or shipped model).")
    parser.add_argument("--comments", type=Path, default=None, help="JSONL (text) or CSV (text/comment) file.")
    parser.add_argument("--unique-ids", action="store_true", help=(
        "Every request's comment ends with a ticket number never sent before, as real ones do: a cache "
        "that keeps every new word (spaCy's vocabulary did) shows as growth; cycling the corpus hides it."))
    args = parser.parse_args()
    if args.max_queue <= args.clients or args.max_queue >= args.overload_clients:
        parser.error("--max-queue must lie between --clients and --overload-clients, or a phase tests nothing")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = read_comments(args.comments)
    if args.unique_ids:
        texts = WithTicketNumbers(texts)
    log = Path(tempfile.mkdtemp(prefix="feedback-nlp-soak-")) / "server.log"
    server = Server(args.model, {"FEEDBACK_NLP_MAX_QUEUE": str(args.max_queue)}, log)
    try:
        server.wait_ready()
        report = asyncio.run(soak(server, texts, args))
    finally:
        server.stop()
    results = checks(report, args)
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "server_log": str(log),
        "checks": results,
        **report,
    }
    show(report, results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"soak-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {out.relative_to(ROOT)}")
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
