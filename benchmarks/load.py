"""Load-test `feedback-nlp serve` on loopback and compare it with the batch path, in one run.

    python benchmarks/load.py [--clients 32] [--duration 60] [--model DIR] [--url http://127.0.0.1:8000]

On the same comments (the seed corpus: training/data/{train,dev,test}.jsonl, or --comments FILE):
  batch    the batch CLI's engine (classify_file, 512-row chunks) after the model is loaded, for
           about T seconds: comments/s
  server   `feedback-nlp serve` started here as a subprocess with default micro-batching:
           idle latency (one client, one comment at a time), then N concurrent clients for T seconds
  naive    the same server with FEEDBACK_NLP_MAX_BATCH=1 (each request encoded on its own)
Each client posts one comment per request. Prints throughput, p50/p95/p99 latency and errors,
and writes benchmarks/results/load-<time>.json. With --url only that server is measured.
Loopback only: the client and the server share this machine's cores, as they do in the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def read_comments(path: Path | None) -> list[str]:
    paths = [path] if path else [ROOT / "training" / "data" / f"{s}.jsonl" for s in ("train", "dev", "test")]
    texts = []
    for p in paths:
        if p.suffix == ".csv":
            import csv

            with open(p, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            column = "text" if "text" in rows[0] else "comment"
            texts += [row[column] for row in rows]
        else:
            texts += [json.loads(line)["text"] for line in open(p, encoding="utf-8") if line.strip()]
    texts = [t for t in texts if t.strip()]
    # One fixed shuffle: the files are grouped by writing brief, so a short run in file order
    # (the idle one sends a few hundred comments) would see only one brief's lengths.
    random.Random(0).shuffle(texts)
    return texts


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def measure_batch(model_dir: str | None, texts: list[str], seconds: float) -> dict:
    """comments/s of the batch CLI's code path (classify_file, 512-row chunks), model already loaded.

    Runs whole 512-comment files until ``seconds`` have passed (at least one)."""
    from feedback_nlp import classify_file, load_model

    model = load_model(model_dir)
    model.classify(texts[:64])  # warm up
    done, elapsed, cpu = 0, 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        while elapsed < seconds:
            chunk = [texts[(done + i) % len(texts)] for i in range(512)]
            src.write_text("".join(json.dumps({"text": t}) + "\n" for t in chunk), encoding="utf-8")
            t0, c0 = time.perf_counter(), time.process_time()
            classify_file(model, src, out, chunk_size=512)
            elapsed += time.perf_counter() - t0
            cpu += time.process_time() - c0
            done += len(chunk)
    return {"comments": done, "seconds": round(elapsed, 2), "comments_per_s": round(done / elapsed, 1),
            "cpu_ms_per_comment": round(cpu / done * 1000, 2)}


async def post_comments(url: str, texts: list[str], clients: int, duration: float, warmup: float = 0.0):
    """N clients, each posting one comment at a time, for ``duration`` s after ``warmup`` s.

    Returns the answers given after the warm-up — ``(status code, or the transport error's
    name; seconds; whether a Retry-After header came)`` each — and the seconds measured."""
    answers: list[tuple[int | str, float, bool]] = []
    counter = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration

        async def one_client():
            nonlocal counter
            while (now := time.perf_counter()) < stop_at:
                text = texts[counter % len(texts)]
                counter += 1
                try:
                    r = await client.post("/v1/classify", json={"text": text})
                    answer = (r.status_code, time.perf_counter() - now, "retry-after" in r.headers)
                except httpx.HTTPError as exc:
                    answer = (type(exc).__name__, time.perf_counter() - now, False)
                if now >= measure_from:
                    answers.append(answer)

        await asyncio.gather(*[one_client() for _ in range(clients)])
    return answers, time.perf_counter() - measure_from


async def drive(url: str, texts: list[str], clients: int, duration: float, warmup: float = 1.0) -> dict:
    """Throughput and latency of the 200s; every other answer counted as an error by its status."""
    answers, elapsed = await post_comments(url, texts, clients, duration, warmup)
    ms = [seconds * 1000 for status, seconds, _ in answers if status == 200]
    errors: dict[str, int] = {}
    for status, _, _ in answers:
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
    return {
        "clients": clients, "seconds": round(elapsed, 2), "ok": len(ms), "errors": errors,
        "comments_per_s": round(len(ms) / elapsed, 1),
        "p50_ms": _r(percentile(ms, 50)), "p95_ms": _r(percentile(ms, 95)), "p99_ms": _r(percentile(ms, 99)),
    }


def _r(x):
    return None if x is None else round(x, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`feedback-nlp serve` in a subprocess on a free loopback port, until ready."""

    def __init__(self, model_dir: str | None, env: dict[str, str], log: Path):
        self.port = free_port()
        cmd = [sys.executable, "-m", "feedback_nlp", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if model_dir:
            cmd += ["--model", model_dir]
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"the server was not ready after {timeout} s; see {self.log.name}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn's workers), so far."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for p in [pid] + [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]:
        try:
            fields = open(f"/proc/{p}/stat", encoding="ascii").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_server(label: str, model_dir, env, texts, args, log_dir: Path) -> dict:
    server = Server(model_dir, env, log_dir / f"{label}.log")
    try:
        server.wait_ready()
        result = {"env": env}
        if label == "server":
            result["idle"] = asyncio.run(drive(server.url, texts, 1, min(20.0, args.duration)))
        # Where the 2 cores go: CPU per answered request in the server and in this load generator.
        server_cpu, client_cpu = cpu_seconds(server.proc.pid), time.process_time()
        result["load"] = load = asyncio.run(drive(server.url, texts, args.clients, args.duration))
        server_cpu, client_cpu = cpu_seconds(server.proc.pid) - server_cpu, time.process_time() - client_cpu
        requests = max(1, load["ok"] + sum(load["errors"].values()))
        load["cpu_ms_per_request"] = {"server": round(server_cpu / requests * 1000, 2),
                                      "load_generator": round(client_cpu / requests * 1000, 2)}
        return result
    finally:
        server.stop()


def show(label: str, r: dict) -> None:
    cpu = r.get("cpu_ms_per_request")
    print(f"{label:<22} {r['comments_per_s']:>8.1f} comments/s  p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  "
          f"p99 {r['p99_ms']} ms  ok {r['ok']}  errors {sum(r['errors'].values())} {r['errors'] or ''}"
          + (f"  CPU/request: server {cpu['server']} ms, load generator {cpu['load_generator']} ms" if cpu else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds of load per server.")
    parser.add_argument("--model", default=None, help="Model folder (default: the promoted or shipped model).")
    parser.add_argument("--comments", type=Path, default=None, help="JSONL (text) or CSV (text/comment) file.")
    parser.add_argument("--url", default=None, help="Measure this running server only (loopback).")
    parser.add_argument("--no-naive", action="store_true", help="Skip the max_batch=1 comparison.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = read_comments(args.comments)
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "unique_comments": len(set(texts)),
    }
    if args.url:
        assert httpx.URL(args.url).host in ("127.0.0.1", "localhost", "::1"), "loopback only"
        report["server"] = {"load": asyncio.run(drive(args.url, texts, args.clients, args.duration))}
        show("server", report["server"]["load"])
    else:
        report["batch"] = measure_batch(args.model, texts, args.duration)
        print(f"{'batch (classify_file)':<22} {report['batch']['comments_per_s']:>8.1f} comments/s "
              f"({report['batch']['comments']} comments in {report['batch']['seconds']} s; "
              f"CPU {report['batch']['cpu_ms_per_comment']} ms per comment)")
        logs = Path(tempfile.mkdtemp(prefix="feedback-nlp-load-"))  # server logs, kept for a look afterwards
        report["server"] = run_server("server", args.model, {}, texts, args, logs)
        show("server idle, 1 client", report["server"]["idle"])
        show(f"server, {args.clients} clients", report["server"]["load"])
        if not args.no_naive:
            naive_env = {"FEEDBACK_NLP_MAX_BATCH": "1", "FEEDBACK_NLP_MAX_WAIT_MS": "0"}
            report["naive"] = run_server("naive", args.model, naive_env, texts, args, logs)
            show(f"naive, {args.clients} clients", report["naive"]["load"])
        served = report["server"]["load"]["comments_per_s"]
        report["ratios"] = {"server_vs_batch": round(served / report["batch"]["comments_per_s"], 2)}
        if "naive" in report and report["naive"]["load"]["comments_per_s"]:
            report["ratios"]["server_vs_naive"] = round(served / report["naive"]["load"]["comments_per_s"], 2)
        print("ratios:", report["ratios"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"load-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
