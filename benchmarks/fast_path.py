"""The ONNX fast path against the torch path, in one run.

    python benchmarks/fast_path.py [--n 20000] [--model DIR] [--batch-size 64]

On N comments (the seed corpus, training/data/*.jsonl, cycled to N: real surveys repeat
short texts, and classify encodes each distinct text once) it measures
  raw torch encoder     the torch encoder (MiniLM + USE) on all N whole texts (calls cut by
                        token length, the same mechanism as classify's)
  classify torch        model.classify of the N texts through the torch encoder
  classify onnx fp32    the same through onnxruntime (fp32 export)
  classify onnx int8    the same through the int8 export
  start to first answer a fresh process: import, load the model with runtime="onnx",
                        classify one comment (also through the CLI); with its RSS
  macro-F1              on training/data/test.jsonl, torch vs onnx fp32 and int8
The model folder is copied to a temporary folder and exported there (fp32 and int8), so
the folder given is never changed. Writes benchmarks/results/fast_path.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "default"
TARGETS = {"onnx_int8_over_raw_torch": 3.0, "start_to_first_answer_s": 2.0, "rss_mb": 300, "macro_f1_drop": 0.01}


def _quantized(spec: dict, quantized: bool) -> dict:
    if spec.get("kind") == "concat":
        return {**spec, "parts": [_quantized(p, quantized) for p in spec["parts"]]}
    return {**spec, "quantized": quantized} if spec.get("kind") == "onnx" else spec


def corpus(n: int) -> list[str]:
    texts = []
    for path in sorted((ROOT / "training" / "data").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in open(path, encoding="utf-8") if line.strip()]
    return [texts[i % len(texts)] for i in range(n)]


def rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def first_answer(cmd: list[str], stdin: str | None = None) -> dict:
    """Wall seconds from process start to its exit (it answers one comment), and its peak RSS."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    out, err = proc.communicate(stdin.encode() if stdin else None)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{err.decode()[-2000:]}")
    return {"seconds": seconds, "stdout": out.decode(), "stderr": err.decode()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: models/default)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    source = args.model or DEFAULT_MODEL
    if not (source / "manifest.json").is_file():
        raise SystemExit(
            f"no model at {source}: train the default model first (see training/) or pass --model DIR "
            "(a folder written by `feedback-nlp train`, using the sentence-transformers encoder)"
        )

    from feedback_nlp import evaluate, load_model
    from feedback_nlp.export import export_onnx
    from feedback_nlp.onnx_encoder import OnnxEncoder

    load1 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="fast-path-"))
    try:
        model_dir = tmp / "model"
        shutil.copytree(source, model_dir)
        t0 = time.perf_counter()
        fp32_report = export_onnx(model_dir)
        int8_report = export_onnx(model_dir, int8=True)
        export_s = time.perf_counter() - t0

        texts = corpus(args.n)
        torch_model = load_model(model_dir, runtime="torch")
        from feedback_nlp.artifacts import read_manifest, runtime_encoder_spec

        # The folder's fast-path spec (the latest export, int8) with the fp32 graph swapped in;
        # for a concatenated encoder only its transformer part is ONNX.
        fp32_model = load_model(model_dir, encoder=_quantized(runtime_encoder_spec(read_manifest(model_dir), model_dir, "onnx"), False))
        int8_model = load_model(model_dir, runtime="onnx")
        parts = getattr(int8_model.encoder_, "parts", [int8_model.encoder_])
        assert any(isinstance(p, OnnxEncoder) and p.quantized for p in parts)
        for m in (torch_model, fp32_model, int8_model):
            m.batch_size = args.batch_size
            m.classify(texts[:64])  # load and warm up

        bs = args.batch_size
        rates = {
            "raw_torch_encoder": rate(lambda: torch_model.encoder_.encode(texts, batch_size=bs), args.n),
            "classify_torch": rate(lambda: torch_model.classify(texts), args.n),
            "classify_onnx_fp32": rate(lambda: fp32_model.classify(texts), args.n),
            "classify_onnx_int8": rate(lambda: int8_model.classify(texts), args.n),
            "raw_onnx_int8_encoder": rate(lambda: int8_model.encoder_.encode(texts, batch_size=bs), args.n),
        }

        test = [json.loads(line) for line in open(ROOT / "training" / "data" / "test.jsonl", encoding="utf-8")]
        test_texts, test_labels = [r["text"] for r in test], [r["themes"] for r in test]
        f1 = {name: evaluate(m, test_texts, test_labels)["macro_f1"]
              for name, m in (("torch", torch_model), ("onnx_fp32", fp32_model), ("onnx_int8", int8_model))}

        probe = "Quick fix but the technician was rude."
        # Peak RSS from VmHWM: getrusage's ru_maxrss survives exec on Linux, so a child
        # started from this (large) process would report this process's peak.
        hwm = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
        api_code = (
            "import sys; from feedback_nlp import load_model; "
            f"r = load_model({str(model_dir)!r}, runtime='onnx').classify([{probe!r}]); "
            f"print(len(r[0]['themes']), {hwm}, int('torch' in sys.modules))"
        )
        # the CLI reading one JSONL comment from stdin; its own peak RSS printed to stderr at exit
        cli_code = (
            "import atexit, sys; sys.argv = ['feedback-nlp'] + sys.argv[1:]; "
            f"atexit.register(lambda: print('RSS', {hwm}, file=sys.stderr)); "
            "from feedback_nlp.cli import app; app()"
        )
        api = first_answer([sys.executable, "-c", api_code])
        _, api_rss_kb, api_torch = map(int, api["stdout"].split())
        cli = first_answer([sys.executable, "-c", cli_code, "classify", "-", "--model", str(model_dir), "--runtime", "onnx",
                            "--no-progress"], stdin=json.dumps({"text": probe}) + "\n")
        cli_rss_kb = int(cli["stderr"].rsplit("RSS ", 1)[1].split()[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    raw = rates["raw_torch_encoder"]
    result = {
        "n": args.n,
        "unique_texts": len(set(texts)),
        "batch_size": bs,
        "comments_per_s": {k: round(v, 1) for k, v in rates.items()},
        "over_raw_torch": {k: round(v / raw, 3) for k, v in rates.items()},
        "start_to_first_answer_s": {"python_api": round(api["seconds"], 2), "cli": round(cli["seconds"], 2)},
        "first_answer_rss_mb": {"python_api": round(api_rss_kb / 1024), "cli": round(cli_rss_kb / 1024)},
        "torch_imported_by_onnx_process": bool(api_torch),
        "macro_f1_test": {k: round(v, 4) for k, v in f1.items()},
        "macro_f1_int8_minus_torch": round(f1["onnx_int8"] - f1["torch"], 4),
        "export": {"seconds_fp32_and_int8": round(export_s, 1), "fp32": fp32_report["agreement"],
                   "int8": int8_report["agreement"], "int8_size_mb": int8_report["size_mb"],
                   "fp32_size_mb": fp32_report["size_mb"]},
        "targets": TARGETS,
        "model": str(source),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_start": round(load1, 2),
        "command": "python benchmarks/fast_path.py " + " ".join(sys.argv[1:]),
    }

    print(f"{args.n} comments ({result['unique_texts']} distinct), batch {bs}, {result['machine']}, load {load1:.1f}")
    print(f"{'':<26}{'comments/s':>12}{'x raw torch':>13}")
    for key, value in rates.items():
        print(f"{key.replace('_', ' '):<26}{value:>12.1f}{value / raw:>13.2f}")
    print(f"start to first answer     {api['seconds']:.2f} s (Python API), {cli['seconds']:.2f} s (CLI); "
          f"RSS {api_rss_kb / 1024:.0f} / {cli_rss_kb / 1024:.0f} MB; torch imported: {bool(api_torch)}")
    print("macro-F1 (test split)     " + ", ".join(f"{k} {v:.4f}" for k, v in f1.items())
          + f"; int8 - torch {result['macro_f1_int8_minus_torch']:+.4f}")
    a = int8_report["agreement"]
    print(f"export                    {export_s:.0f} s; int8 {int8_report['size_mb']} MB, cosine to torch "
          f"min {a['int8_cosine_min']:.3f} mean {a['int8_cosine_mean']:.3f}")
    out = ROOT / "benchmarks" / "results" / "fast_path.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
