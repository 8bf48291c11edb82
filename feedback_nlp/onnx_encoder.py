"""The fast path: the model folder's encoder exported to ONNX, run by onnxruntime.

Inference needs only ``onnxruntime`` and ``tokenizers`` (every install has them): no
torch, no sentence-transformers, so a process starts in well under a second of encoder
loading and stays small. ``feedback_nlp.export`` (which does need torch) writes the export
into the model folder and lists it in the manifest, so the folder stays verifiable:

    feedback-nlp export models/default --onnx --int8
    feedback-nlp classify comments.csv --runtime onnx

An export folder holds ``model.onnx`` and/or ``model.int8.onnx`` (input ids, attention
mask[, token type ids] -> L2-normalised sentence embedding, mean pooling inside the
graph), ``tokenizer.json`` and ``encoder.json`` (dimension, maximum length, source).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .runtime import CallPool, length_batches, spread_calls
from .errors import EncoderError

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "encoder.json"

_INSTALL_HINT = "pip install 'feedback-nlp[onnx]' (onnxruntime and tokenizers)"


class OnnxEncoder:
    """An exported encoder run by onnxruntime; ``encode`` returns L2-normalised float32 [n, d].

    Texts are tokenised once (in parallel, in Rust), sorted by length and cut into
    batches padded only to the longest text of each batch; rows come back in input order.
    """

    CALL_COST_TOKENS = 16  # one onnxruntime call's fixed cost in tokens' worth of work (measured 8-16)

    def __init__(self, folder: str | Path, *, quantized: bool = False, threads: int | None = None):
        self.folder = Path(folder)
        self.quantized = bool(quantized)
        self.threads = threads  # model calls run at once, one thread each (None: one per core)
        config_path = self.folder / CONFIG_FILE
        for required in (config_path, self.folder / TOKENIZER_FILE, self.model_path):
            if not required.is_file():
                raise EncoderError(
                    f"{required}: missing; {self.folder} is not a complete ONNX export "
                    f"(make one with: feedback-nlp export MODEL_DIR --onnx{' --int8' if self.quantized else ''})"
                )
        try:
            self.config = json.loads(config_path.read_text(encoding="utf-8"))
            self.dim = int(self.config["dim"])
            self.max_length = int(self.config["max_length"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise EncoderError(f"{config_path}: unreadable ({exc})") from None
        self._session = None
        self._tokenizer = None
        self._inputs: list[str] = []

    @property
    def model_path(self) -> Path:
        return self.folder / (INT8_FILE if self.quantized else FP32_FILE)

    def __deepcopy__(self, memo):
        return self  # a loaded session is read-only; clone() shares it

    def __getstate__(self):
        # A session cannot be pickled: where the encoder lands (a Ray actor) it loads its own.
        return {"folder": self.folder, "quantized": self.quantized, "threads": self.threads}

    def __setstate__(self, state):
        self.__init__(state["folder"], quantized=state["quantized"], threads=state["threads"])

    def spec(self) -> dict:
        return {"kind": "onnx", "path": str(self.folder), "quantized": self.quantized}

    def load(self):
        """Start the onnxruntime session and the tokenizer now (else on the first encode)."""
        if self._session is None:
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EncoderError(f"the ONNX runtime needs packages that are not installed ({exc}): {_INSTALL_HINT}") from None
            try:
                tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
                tokenizer.enable_truncation(self.max_length)
                tokenizer.no_padding()  # padding is per batch, after sorting by length
                options = ort.SessionOptions()
                # One thread per call; parallelism comes from running calls side by side (CallPool).
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Batches vary in shape; the arena would keep the largest ever seen and fragment,
                # so a long-running server grows. Plain allocations are returned after each call.
                options.enable_cpu_mem_arena = False
                session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime and tokenizers raise their own kinds; name the file
                raise EncoderError(f"cannot load the ONNX encoder {self.model_path}: {exc}") from exc
            self._inputs = [i.name for i in session.get_inputs()]
            unknown = set(self._inputs) - {"input_ids", "attention_mask", "token_type_ids"}
            if unknown:
                raise EncoderError(f"{self.model_path}: unexpected inputs {sorted(unknown)}")
            self._pad_id = int(self.config.get("pad_id", 0))
            self._pool = CallPool(self.threads or os.cpu_count() or 1, "feedback-nlp-onnx")
            self._tokenizer, self._session = tokenizer, session
        return self._session

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        session = self.load()
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        out = np.empty((n, self.dim), dtype=np.float32)
        want_types = "token_type_ids" in self._inputs

        def run(rows: np.ndarray) -> None:
            width = int(lengths[rows[0]])  # longest first: the call pads to its first row
            ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64) if want_types else None
            for k, r in enumerate(rows):
                e = encodings[r]
                m = len(e.ids)
                ids[k, :m] = e.ids
                mask[k, :m] = 1
                if want_types:
                    types[k, :m] = e.type_ids
            feed = {"input_ids": ids, "attention_mask": mask}
            if want_types:
                feed["token_type_ids"] = types
            result = session.run(None, {name: feed[name] for name in self._inputs})[0]
            if result.ndim == 3:  # token embeddings (a plain transformer export): mean-pool by hand
                weights = mask[:, :, None].astype(np.float32)
                result = (result * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = result  # calls write disjoint rows

        calls = length_batches(lengths, batch_size, self.CALL_COST_TOKENS)
        self._pool.map(run, spread_calls(calls, self._pool.workers))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)
