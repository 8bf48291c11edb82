"""The model folder's format: what is in it, how it is checked, how it is amended.

A model folder holds ``manifest.json`` (format version, taxonomy, encoder spec,
thresholds, parameters, metrics, library versions and the sha256 of every other file),
``heads.json`` + ``heads.npz`` (the fitted heads as JSON values and numpy arrays, see
``feedback_nlp.heads``) and ``MODEL_CARD.md``. A stock encoder is referred to by its spec,
not copied; a fine-tuned one is saved in ``encoder/``; a router's other engines are model
folders under ``engines/<name>/``. Nothing in a folder is a pickle: loading one runs no
code from it. Folders of an older ``format_version`` are brought up to date by
``feedback_nlp.upgrade`` (``feedback-nlp upgrade DIR``), the one place that knows old formats.

Saving and loading a whole model (classifier or router) is ``feedback_nlp.registry``.
"""

from __future__ import annotations

import json
import platform
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np

from .encoders import ST, bundled_encoders, map_spec, resolve_spec, spec_leaves
from .errors import ArtifactError, InvalidInputError
from .files import sha256_file, write_json_atomic, write_text_atomic
from .heads import pack, unpack

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
HEADS = "heads.json"
HEAD_ARRAYS = "heads.npz"
CARD = "MODEL_CARD.md"
ENGINES = "engines"  # a router's other engines, one model folder each

_LIBRARIES = ("feedback-nlp", "scikit-learn", "numpy", "sentence-transformers", "torch", "transformers", "onnxruntime", "spacy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write_heads(folder: Path, tree) -> None:
    """The fitted heads (``ThemeClassifier.fitted_state()``) as ``heads.json`` + ``heads.npz``."""
    meta, arrays = pack(tree)
    with open(folder / HEAD_ARRAYS, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    (folder / HEADS).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_heads(folder: Path):
    """The inverse of :func:`write_heads`; no pickle is ever read."""
    try:
        meta = json.loads((folder / HEADS).read_text(encoding="utf-8"))
        with np.load(folder / HEAD_ARRAYS, allow_pickle=False) as packed:
            arrays = {name: packed[name] for name in packed.files}
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # a verified but unreadable file: say which
        raise ArtifactError(f"{folder / HEADS} / {HEAD_ARRAYS}: cannot be read ({exc})") from None
    return unpack(meta, arrays, where=str(folder / HEADS))


def model_params(model) -> dict:
    """A fitted model's constructor parameters as JSON values (the encoder and taxonomy are stored apart)."""
    params = {}
    for key, value in model.get_params(deep=False).items():
        if key in ("encoder", "taxonomy"):
            continue
        params[key] = value.item() if isinstance(value, np.generic) else value
    return params


def model_manifest(model, *, name: str, version: str, created: str, encoder_spec: dict) -> dict:
    """The manifest of a fitted ThemeClassifier, less its ``files`` and ``engines``."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "created": created,
        "mode": model.mode_,
        "taxonomy": model.taxonomy_.to_dict(),
        "classes": [str(c) for c in model.classes_],
        "encoder": encoder_spec,
        "thresholds": {str(c): round(float(t), 6) for c, t in zip(model.classes_, model.thresholds_)},
        "params": model_params(model),
        "metrics": getattr(model, "metrics_", {}),
        "training": getattr(model, "training_", {}),
        "libraries": library_versions(),
    }
    if model.languages:
        manifest["languages"] = list(model.languages)
    return manifest


def write_manifest(folder: Path, manifest: dict, card: str | None = None) -> dict:
    """Write the model card and ``manifest.json`` with the sha256 of every other file in ``folder``."""
    (folder / CARD).write_text(card if card is not None else render_card(manifest), encoding="utf-8")
    manifest["files"] = {
        f.relative_to(folder).as_posix(): sha256_file(f)
        for f in sorted(folder.rglob("*")) if f.is_file() and f != folder / MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return manifest


def bundle_folder(i: int) -> str:
    """Where the i-th bundled (fine-tuned) encoder is saved inside a model folder."""
    return "encoder" if i == 0 else f"encoder-{i + 1}"


def bundle_encoders(encoder, folder: Path) -> dict:
    """Copy encoders that live in the model folder (fine-tuned ones) into ``folder``; the spec to save.

    Each bundled encoder goes to ``encoder/`` (``encoder-2/``... for more than one) and the
    saved spec names it by that relative path.
    """
    moved = {}
    for i, part in enumerate(bundled_encoders(encoder)):
        rel = bundle_folder(i)
        shutil.copytree(part.model, folder / rel)
        moved[part.model] = rel

    def relocate(part: dict) -> dict:
        if part.get("kind", ST) == ST and part.get("path") in moved:
            part["path"] = moved[part["path"]]
        return part

    return map_spec(encoder.spec(), relocate)


def _has_bundled(spec: dict) -> bool:
    return any(part.get("kind", ST) == ST and "path" in part for part in spec_leaves(spec))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_manifest(path: str | Path, *, any_version: bool = False) -> dict:
    """The folder's manifest; an older or newer ``format_version`` is an error that says what
    to do (``any_version``: read it anyway, for the upgrade)."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"model folder not found: {path}")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{manifest_path}: missing; this folder is not a feedback-nlp model")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    version = manifest.get("format_version")
    if any_version or version == FORMAT_VERSION:
        return manifest
    if isinstance(version, int) and version < FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: format_version {version} is an older model format (this feedback-nlp reads "
            f"{FORMAT_VERSION}); convert it once with: feedback-nlp upgrade {path}"
        )
    raise ArtifactError(
        f"{manifest_path}: format_version {version!r} is not supported by this feedback-nlp "
        f"(reads {FORMAT_VERSION}); retrain the model or upgrade feedback-nlp"
    )


def verify_model(path: str | Path, *, runtime: str | None = None) -> dict:
    """Check the files against the manifest's sha256; return the manifest.

    ``runtime`` ("torch" or "onnx") checks only what loading for that runtime reads: the
    ONNX export is skipped for torch, a bundled (fine-tuned) torch encoder for onnx — it is
    checked when it is loaded. None checks every file.
    """
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest.get("files") or {}
    for required in (HEADS, HEAD_ARRAYS):
        if required not in files:
            raise ArtifactError(f"{path / MANIFEST}: lists no {required}; the model folder is incomplete")
    skip: tuple[str, ...] = ()
    if runtime == "torch":
        skip = ("onnx/",)
    elif runtime == "onnx":
        skip = ("encoder/", "encoder-")
    for fname, expected in files.items():
        if fname.startswith(skip):
            continue
        fpath = path / fname
        if not fpath.is_file():
            raise ArtifactError(f"{fpath}: missing from the model folder (the manifest lists it)")
        if sha256_file(fpath) != expected:
            raise ArtifactError(
                f"{fpath}: sha256 does not match the manifest; the file was altered or truncated"
            )
    return manifest


def amend_model(path: str | Path, updates: dict, *, files: list[str] | tuple[str, ...] = ()) -> dict:
    """Add entries and files to a model folder's manifest, keeping the folder verifiable.

    ``updates`` are merged into the manifest (top-level keys replaced); ``files`` (paths
    relative to the folder, e.g. ``onnx/model.onnx``) are hashed into ``manifest["files"]``,
    replacing their old sha256 if listed. Every other listed file is verified first, so an
    altered folder is never re-blessed. The manifest is replaced atomically. Returns it.
    """
    path = Path(path)
    manifest = read_manifest(path)
    listed = dict(manifest.get("files") or {})
    root = path.resolve()
    new = {}
    for rel in files:
        fpath = (path / rel).resolve()
        if not fpath.is_relative_to(root) or fpath == root / MANIFEST:
            raise ArtifactError(f"{rel}: not a file inside the model folder {path}")
        if not fpath.is_file():
            raise ArtifactError(f"{path / rel}: missing; cannot add it to the manifest")
        new[Path(rel).as_posix()] = sha256_file(fpath)
    for fname, expected in listed.items():
        if fname in new:
            continue
        fpath = path / fname
        if not fpath.is_file() or sha256_file(fpath) != expected:
            raise ArtifactError(f"{fpath}: missing or altered since the manifest was written; not amending {path}")
    manifest.update(updates)
    manifest["files"] = {**listed, **new}
    write_json_atomic(path / MANIFEST, manifest, default=_json_default)
    return manifest


def record_metrics(path: str | Path, name: str, metrics: dict) -> dict:
    """Keep an evaluation in a model folder: ``manifest["metrics"][name]`` and the model card."""
    path = Path(path)
    manifest = read_manifest(path)
    manifest["metrics"] = {**(manifest.get("metrics") or {}), name: metrics}
    write_text_atomic(path / CARD, render_card(manifest))
    return amend_model(path, {"metrics": manifest["metrics"]}, files=[CARD])


RUNTIMES = ("torch", "onnx")


def runtime_encoder_spec(manifest: dict, path: str | Path, runtime: str | None = None) -> dict:
    """The encoder spec for ``runtime`` ("torch" or "onnx"; None: the folder's ``runtime``, else torch).

    "onnx" needs an export (``feedback-nlp export DIR --onnx``). Relative paths (the ONNX
    export, a fine-tuned encoder) are resolved against the model folder.
    """
    path = Path(path)
    chosen = runtime or manifest.get("runtime") or "torch"
    if chosen not in RUNTIMES:
        raise InvalidInputError(f"unknown runtime {chosen!r}; choose one of: {', '.join(RUNTIMES)}")
    entry = manifest["encoder"] if chosen == "torch" else manifest.get("onnx")
    if not entry:
        raise ArtifactError(f"{path}: has no ONNX export; make one with: feedback-nlp export {path} --onnx [--int8]")
    return resolve_spec(entry, path)


def render_card(manifest: dict) -> str:
    """A markdown model card from the manifest."""
    lines = [
        f"# Model card: {manifest['name']} ({manifest['version']})",
        "",
        f"Created {manifest['created']} with feedback-nlp {manifest['libraries'].get('feedback-nlp', '?')}.",
        "",
        "## What it does",
        "",
        f"Tags survey comments ({manifest['mode']}-label) with the themes below. Encoder: "
        f"`{json.dumps(manifest['encoder'])}` "
        + ("(fine-tuned, saved in this folder)" if _has_bundled(manifest["encoder"]) else "(referred to, not copied)")
        + "; plain scikit-learn heads on top"
        + (f", blended per sentence with TF-IDF word/character n-gram heads (weight {manifest['params']['lexical_weight']})"
           if manifest["params"].get("lexical_weight") else "")
        + "."
        + (f" Default runtime: `{manifest['runtime']}`." if manifest.get("runtime") else ""),
        "",
    ]
    if manifest.get("engines"):
        lines += ["## Languages", "",
                  f"Each comment's language is detected (or given) and the comment goes to the engine for it: "
                  f"this folder's encoder and heads for {', '.join(manifest.get('languages') or ['any language'])}; "
                  + "; ".join(f"`{e['path']}/` ({e['name']}) for {', '.join(e['languages'])}" for e in manifest["engines"])
                  + ". Other languages are answered `\"language_supported\": false`, unscored.", ""]
    lines += [
        "| theme | name | polarity | threshold |",
        "|---|---|---|---|",
    ]
    for theme in manifest["taxonomy"]["themes"]:
        pol = "predicted" if theme.get("polar") else (theme.get("fixed_polarity") or "-")
        lines.append(f"| `{theme['id']}` | {theme['name']} | {pol} | {manifest['thresholds'].get(theme['id'], 0):.3f} |")
    training = manifest.get("training") or {}
    if training:
        lines += ["", "## Training data", ""]
        for key, value in training.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}: {v}" for k, v in value.items())
            lines.append(f"- **{key}**: {value}")
    lines += ["", "## Parameters", ""] + [f"- `{k}` = `{v}`" for k, v in manifest["params"].items()]
    for split, metrics in (manifest.get("metrics") or {}).items():
        lines += ["", f"## Metrics: {split}", ""]
        per_theme = metrics.get("per_theme", {})
        if per_theme:
            lines += ["| theme | precision | recall | F1 | support |", "|---|---|---|---|---|"]
            for theme, m in per_theme.items():
                spread = f" ± {m['f1_std']:.3f}" if "f1_std" in m else ""
                lines.append(
                    f"| `{theme}` | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f}{spread} | {m['support']} |"
                )
        for key in ("macro_f1", "micro_f1", "accuracy", "polarity_accuracy", "n"):
            if key in metrics and metrics[key] is not None:
                value = metrics[key]
                lines.append(f"- **{key}**: {value:.4f}" if isinstance(value, float) else f"- **{key}**: {value}")
    lines += ["", "## Libraries", ""] + [f"- {k} {v}" for k, v in manifest["libraries"].items()]
    lines += [
        "",
        "## Limits",
        "",
        "- Trained on English comments; other languages are not evaluated.",
        "- Scores are model confidences, not calibrated probabilities unless stated above.",
        "- The heads are JSON and numpy arrays (heads.json, heads.npz): loading this folder runs no code from it. "
        "Every file's sha256 is checked against the manifest first.",
        "",
    ]
    return "\n".join(lines)


