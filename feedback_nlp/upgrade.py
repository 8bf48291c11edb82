"""Bring a model folder of an older format up to date: the one place that knows old formats.

Format 1 (feedback-nlp before December 2026) kept the heads in ``heads.joblib``, a pickle
that named private classes of this package, and left some settings to defaults that have
since changed. :func:`upgrade_model` rewrites such a folder as format 2 (heads as JSON +
arrays) with those defaults written out, verifies it and replaces it atomically:

    feedback-nlp upgrade path/to/model

Reading the old pickle is the only unpickling left in the package, and it is restricted:
only numpy arrays and the five head classes format 1 used can come out of it; anything
else in the file is refused. The folder's sha256 is checked against its manifest first.
"""

from __future__ import annotations

import io
import shutil
import zlib
from pathlib import Path

import numpy as np

from .artifacts import (
    CARD, ENGINES, FORMAT_VERSION, MANIFEST, library_versions, read_manifest, render_card, write_heads, write_manifest,
)
from .encoders import map_spec
from .errors import ArtifactError
from .files import atomic_folder, sha256_file
from .heads import ConstantHead, LinearHead, SoftmaxHead
from .lexical import LexicalHeads, NgramVocabulary

LEGACY_HEADS = "heads.joblib"

# Defaults that changed since format 1; folders of that format relied on the old ones.
FORMAT_1_DEFAULTS = {
    "whole_vector": "encode",  # format 1 models encoded each comment whole as well as its sentences
    "use_tokenizer": "pure",  # ...and tokenised for USE with the package's pure-Python port
}


class _Legacy:
    """Receives a format-1 head's pickled attributes."""

    def __setstate__(self, state):
        self.__dict__.update(state)


class _LegacyConstant(_Legacy):
    def convert(self):
        return ConstantHead(self.value)


class _LegacyLinear(_Legacy):
    def convert(self):
        return LinearHead(self.coef, self.intercept)


class _LegacySoftmax(_Legacy):
    def convert(self):
        return SoftmaxHead(self.coef, self.intercept, self.classes_)


class _LegacyVocabulary(_Legacy):
    def convert(self):
        return NgramVocabulary(self.words, self.chars, self.idf)


class _LegacyLexical(_Legacy):
    def convert(self):
        return LexicalHeads(self.vocabulary.convert(), self.coef, self.intercept)


_LEGACY_CLASSES = {
    ("feedback_nlp.classifier", "_Constant"): _LegacyConstant,
    ("feedback_nlp.classifier", "_LinearHead"): _LegacyLinear,
    ("feedback_nlp.classifier", "_SoftmaxHead"): _LegacySoftmax,
    ("feedback_nlp.lexical", "NgramVocabulary"): _LegacyVocabulary,
    ("feedback_nlp.lexical", "LexicalHeads"): _LegacyLexical,
}


def _read_legacy_heads(path: Path):
    """Format 1's ``heads.joblib`` (a zlib-compressed joblib pickle), with every class checked."""
    from joblib.numpy_pickle import NumpyUnpickler

    class Unpickler(NumpyUnpickler):
        def find_class(self, module, name):
            if (module, name) in _LEGACY_CLASSES:
                return _LEGACY_CLASSES[(module, name)]
            if module.split(".")[0] in ("numpy", "joblib") or (module, name) in (
                ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "float"), ("builtins", "int"),
            ):
                return super().find_class(module, name)
            raise ArtifactError(f"{path}: holds a {module}.{name}, which no format-1 model folder held; not reading it")

    raw = path.read_bytes()
    if raw[:1] == b"x":  # joblib's zlib compression (compress=3): a plain zlib stream
        raw = zlib.decompress(raw)
    handle = io.BytesIO(raw)
    try:
        return Unpickler(str(path), handle, ensure_native_byte_order=True).load()
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{path}: cannot be read as a format-1 heads file ({exc})") from None


def _convert(node):
    if isinstance(node, _Legacy):
        return node.convert()
    if isinstance(node, dict):
        return {k: _convert(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_convert(v) for v in node]
    if isinstance(node, np.ndarray) or node is None or isinstance(node, (str, int, float, bool)):
        return node
    return node


def _upgrade_spec(spec: dict) -> dict:
    def part(p: dict) -> dict:
        if p.get("kind") == "use":
            p.setdefault("tokenizer", FORMAT_1_DEFAULTS["use_tokenizer"])
        if isinstance(p.get("source"), dict):
            p["source"] = _upgrade_spec(p["source"])
        return p

    return map_spec(spec, part)


def _upgrade_into(source: Path, target: Path, manifest: dict) -> None:
    """Write format 2 of the verified format-1 folder ``source`` into the empty folder ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    listed = manifest.get("files") or {}
    for rel in listed:
        if rel in (LEGACY_HEADS, CARD) or rel.startswith(f"{ENGINES}/"):
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target / rel)
    heads = _convert(_read_legacy_heads(source / LEGACY_HEADS))
    if not isinstance(heads, dict) or heads.get("mode") != manifest.get("mode"):
        raise ArtifactError(f"{source / LEGACY_HEADS}: does not hold the {manifest.get('mode')!r} heads the manifest names")
    if heads["mode"] == "multi":
        heads = {"mode": "multi", "theme_heads": heads["theme_heads"], "polarity_heads": heads["polarity_heads"],
                 "calibrators": heads.get("calibrators"), "lexical": heads.get("lexical")}
    write_heads(target, heads)
    for entry in manifest.get("engines") or []:
        sub = source / entry["path"]
        _upgrade_into(sub, target / entry["path"], read_manifest(sub, any_version=True))
    manifest = dict(manifest)
    manifest.pop("files", None)
    manifest["format_version"] = FORMAT_VERSION
    manifest["params"] = {**manifest.get("params", {})}
    manifest["params"].setdefault("whole_vector", FORMAT_1_DEFAULTS["whole_vector"])
    manifest["encoder"] = _upgrade_spec(manifest["encoder"])
    if manifest.get("onnx"):
        manifest["onnx"] = _upgrade_spec(manifest["onnx"])
    manifest["upgraded"] = {"from_format_version": 1, "libraries": library_versions()}  # "libraries" stays the training's
    write_manifest(target, manifest, render_card(manifest))


def upgrade_model(path: str | Path, output: str | Path | None = None) -> Path:
    """Rewrite the model folder ``path`` (format 1) as format 2, in place or into ``output``.

    The old folder's files are checked against its manifest first; the new folder is
    written beside the target and swapped in whole. A folder already in format 2 is left
    as it is. Returns the folder written (or ``path`` when nothing was to do).
    """
    path = Path(path)
    manifest = read_manifest(path, any_version=True)
    version = manifest.get("format_version")
    if version == FORMAT_VERSION:
        if output is not None and Path(output) != path:
            raise ArtifactError(f"{path}: already format {FORMAT_VERSION}; nothing to upgrade")
        return path
    if version != 1:
        raise ArtifactError(f"{path / MANIFEST}: format_version {version!r} cannot be upgraded by this feedback-nlp")
    for rel, expected in (manifest.get("files") or {}).items():
        file = path / rel
        if not file.is_file() or sha256_file(file) != expected:
            raise ArtifactError(f"{file}: missing or altered since the manifest was written; not upgrading {path}")
    target = Path(output) if output is not None else path
    with atomic_folder(target) as tmp:
        _upgrade_into(path, tmp, manifest)
    return target
