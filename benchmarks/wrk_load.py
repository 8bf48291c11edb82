"""Serving under load, measured with wrk (a C load generator that costs the server almost no CPU).

    sudo apt-get install wrk        # Debian's wrk 4.1
    python benchmarks/wrk_load.py [--model DIR] [--duration 20] [--clients 32]

One run, one server (`feedback-nlp serve`, default settings) on 127.0.0.1:
1. /readyz: seconds from starting the process to the first 200;
2. idle: one wrk connection, one comment per request, for --duration s: latency p50/p99;
3. load: --clients wrk connections, one comment per request: requests/s, latency, and the
   server's CPU per answered comment (user+system of its process, from /proc);
4. the batch path (classify_file, 512-row chunks) on the same comments in this process:
   comments/s and CPU per comment;
5. head of line: two 2 MB requests (100 x 20,000-character comments each) at once, then one
   comment 1 s later: its status and latency;
6. the server's RSS right after the load and after the 2 MB requests, and again 3 s later
   (once the server has been quiet for FEEDBACK_NLP_MALLOC_TRIM_IDLE_S it hands free heap pages back).
The wrk script posts the corpus's comments (shuffled once, seed 0) in turn, one per request.
Writes benchmarks/results/wrk_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from load import Server, cpu_seconds, measure_batch, read_comments  # noqa: E402

LUA = r"""
local bodies = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  i = math.random(#bodies)
end
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/classify", {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"errors\": %d, \"non2xx\": %d, \"p50_ms\": %.2f, \"p90_ms\": %.2f, \"p99_ms\": %.2f, \"duration_s\": %.3f}\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.duration / 1e6))
end
"""


def run_wrk(url: str, bodies: Path, script: Path, clients: int, duration: float) -> dict:
    out = subprocess.run(["wrk", "-t", "1", "-c", str(clients), "-d", f"{int(duration)}s", "--timeout", "30s",
                          "-s", str(script), f"{url}/v1/classify", "--", str(bodies)],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
    result["requests_per_s"] = round(result["requests"] / result["duration_s"], 1)
    return result


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def head_of_line(url: str) -> dict:
    giant = {"items": [{"text": ("word " * 4000)[:20_000]} for _ in range(100)]}
    answers: dict = {}

    def post(name, body, timeout=120):
        t0 = time.perf_counter()
        r = httpx.post(f"{url}/v1/classify", json=body, timeout=timeout)
        answers[name] = {"status": r.status_code, "seconds": round(time.perf_counter() - t0, 3),
                         "retry_after": r.headers.get("retry-after")}

    threads = [threading.Thread(target=post, args=(f"giant_{i}", giant)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    post("one_comment", {"text": "Fixed quickly, thanks."})
    for t in threads:
        t.join()
    return answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wrk_load.json")
    args = ap.parse_args()
    texts = read_comments(None)
    tmp = Path(tempfile.mkdtemp(prefix="wrk-"))
    bodies, script = tmp / "bodies.jsonl", tmp / "post.lua"
    bodies.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:5000]), encoding="utf-8")
    script.write_text(LUA)
    t0 = time.perf_counter()
    server = Server(args.model, {}, tmp / "server.log")
    try:
        server.wait_ready()
        ready_s = time.perf_counter() - t0
        time.sleep(8)  # the server loads spaCy's pipelines of the other languages in the background once ready
        idle = run_wrk(server.url, bodies, script, 1, args.duration)
        cpu0 = cpu_seconds(server.proc.pid)
        load = run_wrk(server.url, bodies, script, args.clients, args.duration)
        server_cpu = cpu_seconds(server.proc.pid) - cpu0
        load["server_cpu_ms_per_comment"] = round(server_cpu / max(1, load["requests"]) * 1000, 2)
        rss_after_load = rss_mb(server.proc.pid)
        time.sleep(3)  # let the load's last requests drain: the head-of-line test starts from an idle server
        rss_after_load_idle = rss_mb(server.proc.pid)  # after FEEDBACK_NLP_MALLOC_TRIM_IDLE_S (1 s) of quiet
        hol = head_of_line(server.url)
        rss_after_giants = rss_mb(server.proc.pid)
        time.sleep(3)
        rss_after_giants_idle = rss_mb(server.proc.pid)
    finally:
        server.stop()
    batch = measure_batch(args.model, texts[:5000], args.duration)
    result = {
        "readyz_s": round(ready_s, 2),
        "idle_1_client": idle,
        f"load_{args.clients}_clients": load,
        "batch_path": batch,
        "ratios": {
            "server_cpu_per_comment_over_batch": round(load["server_cpu_ms_per_comment"] / batch["cpu_ms_per_comment"], 3),
            "server_rate_over_batch_rate": round(load["requests_per_s"] / batch["comments_per_s"], 3),
        },
        "head_of_line_two_2mb_then_one": hol,
        "rss_mb": {"after_load": rss_after_load, "after_load_3s_idle": rss_after_load_idle,
                   "after_2mb_requests": rss_after_giants, "after_2mb_requests_3s_idle": rss_after_giants_idle},
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
