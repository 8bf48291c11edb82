"""Save and load a model folder.

A model folder holds ``manifest.json`` (format version, taxonomy, encoder spec,
thresholds, parameters, metrics, library versions and the sha256 of every other file),
``heads.joblib`` (the fitted scikit-learn heads) and ``MODEL_CARD.md``. A stock encoder is
referred to by its spec, not copied; a fine-tuned one is saved in ``encoder/``.

joblib files are pickles: loading one can run code. We only unpickle a file after its
sha256 matched the manifest, and the manifest is only trusted as far as the folder is:
load model folders you made or got from someone you trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import joblib
import numpy as np

from .errors import ArtifactError, InvalidInputError
from .taxonomy import Taxonomy

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HEADS = "heads.joblib"
CARD = "MODEL_CARD.md"
ENGINES = "engines"  # a router's other engines, one model folder each
# Where a `pip install .` puts the shipped default model, and where it sits in a checkout.
PACKAGED_DEFAULT = Path(__file__).parent / "_default_model"
CHECKOUT_DEFAULT = Path(__file__).resolve().parent.parent / "models" / "default"

_LIBRARIES = ("feedback-nlp", "scikit-learn", "numpy", "joblib", "sentence-transformers", "torch", "transformers", "spacy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _params(model) -> dict:
    params = {}
    for key, value in model.get_params(deep=False).items():
        if key in ("encoder", "taxonomy"):
            continue
        params[key] = value.item() if isinstance(value, np.generic) else value
    return params


def save_model(model, path: str | Path, *, name: str | None = None, version: str | None = None,
               card: str | None = None, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write a fitted ThemeClassifier (or LanguageRouter) to ``path`` atomically (temporary folder, then rename).

    A router's main engine is the folder itself; each other engine is a complete model folder
    under ``engines/<name>/``, listed in the manifest's ``engines`` with its languages and
    covered by the top manifest's sha256 list.
    """
    from sklearn.utils.validation import check_is_fitted

    from .router import LanguageRouter

    engines = []
    if isinstance(model, LanguageRouter):
        engines = model.engines[1:]
        model = model.main
    check_is_fitted(model, "classes_")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if model.mode_ == "single":
            heads = {"mode": "single", "head": model.head_}
        else:
            heads = {
                "mode": "multi",
                "theme_heads": model.theme_heads_,
                "polarity_heads": model.polarity_heads_,
                "calibrators": getattr(model, "calibrators_", None),
                "lexical": getattr(model, "lexical_heads_", None),
            }
        joblib.dump(heads, tmp / HEADS, compress=3)
        for engine in engines:
            save_model(engine.model, tmp / ENGINES / engine.name, name=engine.name, version=version)
        for fname, content in (extra_files or {}).items():
            (tmp / fname).write_bytes(content)
        encoder_spec = _bundle_encoders(model.encoder_, tmp)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name or path.name,
            "version": version or now.strftime("%Y%m%d-%H%M%S"),
            "created": now.isoformat(timespec="seconds"),
            "mode": model.mode_,
            "taxonomy": model.taxonomy_.to_dict(),
            "classes": [str(c) for c in model.classes_],
            "encoder": encoder_spec,
            "thresholds": {str(c): round(float(t), 6) for c, t in zip(model.classes_, model.thresholds_)},
            "params": _params(model),
            "metrics": getattr(model, "metrics_", {}),
            "training": getattr(model, "training_", {}),
            "libraries": library_versions(),
        }
        if model.languages:
            manifest["languages"] = list(model.languages)
        if engines:
            manifest["engines"] = [
                {"name": e.name, "path": f"{ENGINES}/{e.name}", "languages": list(e.languages)} for e in engines
            ]
        (tmp / CARD).write_text(card if card is not None else render_card(manifest), encoding="utf-8")
        manifest["files"] = {
            f.relative_to(tmp).as_posix(): sha256_file(f)
            for f in sorted(tmp.rglob("*")) if f.is_file() and f != tmp / MANIFEST
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def bundle_folder(i: int) -> str:
    """Where the i-th bundled (fine-tuned) encoder is saved inside a model folder."""
    return "encoder" if i == 0 else f"encoder-{i + 1}"


def _bundle_encoders(encoder, folder: Path) -> dict:
    """Copy encoders that live in the model folder (fine-tuned ones) into ``folder``; the spec to save.

    Each bundled encoder goes to ``encoder/`` (``encoder-2/``... for more than one) and the
    saved spec names it by that relative path.
    """
    from .encoders import bundled_encoders

    spec = encoder.spec()
    moved = {}
    for i, part in enumerate(bundled_encoders(encoder)):
        rel = bundle_folder(i)
        shutil.copytree(part.model, folder / rel)
        moved[part.model] = rel

    def relocate(s: dict) -> dict:
        s = dict(s)
        if s.get("kind") == "concat":
            s["parts"] = [relocate(p) for p in s["parts"]]
        elif s.get("kind", "sentence-transformers") == "sentence-transformers" and s.get("path") in moved:
            s["path"] = moved[s["path"]]
        return s

    return relocate(spec)


def _has_bundled(spec: dict) -> bool:
    from .encoders import bundled_encoders, load_encoder

    return bool(bundled_encoders(load_encoder(spec)))  # building encoders loads no weights


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_manifest(path: str | Path) -> dict:
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
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: format_version {version!r} is not supported by this feedback-nlp "
            f"(reads {FORMAT_VERSION}); retrain the model or upgrade feedback-nlp"
        )
    return manifest


def verify_model(path: str | Path, *, runtime: str | None = None) -> dict:
    """Check the files against the manifest's sha256; return the manifest.

    ``runtime`` ("torch" or "onnx") checks only what loading for that runtime reads: the
    ONNX export is skipped for torch, a bundled (fine-tuned) torch encoder for onnx — it is
    checked when it is loaded. None checks every file.
    """
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest.get("files") or {}
    if HEADS not in files:
        raise ArtifactError(f"{path / MANIFEST}: lists no {HEADS}; the model folder is incomplete")
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
    tmp = path / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path / MANIFEST)
    return manifest


def record_metrics(path: str | Path, name: str, metrics: dict) -> dict:
    """Keep an evaluation in a model folder: ``manifest["metrics"][name]`` and the model card."""
    path = Path(path)
    manifest = read_manifest(path)
    manifest["metrics"] = {**(manifest.get("metrics") or {}), name: metrics}
    (path / CARD).write_text(render_card(manifest), encoding="utf-8")
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

    def resolve(spec: dict) -> dict:
        spec = dict(spec)
        if spec.get("kind") == "concat":
            spec["parts"] = [resolve(p) for p in spec["parts"]]
        elif "path" in spec and not Path(spec["path"]).is_absolute():
            spec["path"] = str(path / spec["path"])
        return spec

    return resolve(entry)


def default_model_path() -> Path:
    """The model used when none is named: $FEEDBACK_NLP_MODEL, a promoted model, or the shipped one."""
    env = os.environ.get("FEEDBACK_NLP_MODEL")
    if env:
        return Path(env)
    promoted = promoted_model_path()
    if promoted is not None:
        return promoted
    for candidate in (PACKAGED_DEFAULT, CHECKOUT_DEFAULT):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise ArtifactError(
        "no default model found: pass --model DIR or set FEEDBACK_NLP_MODEL "
        f"(looked in {PACKAGED_DEFAULT} and {CHECKOUT_DEFAULT})"
    )


def registry_home() -> Path:
    """Where promoted models live: $FEEDBACK_NLP_HOME or ~/.local/share/feedback-nlp."""
    env = os.environ.get("FEEDBACK_NLP_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "feedback-nlp"


def promoted_model_path() -> Path | None:
    pointer = registry_home() / "current.json"
    if not pointer.is_file():
        return None
    try:
        target = Path(json.loads(pointer.read_text(encoding="utf-8"))["path"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{pointer}: unreadable ({exc}); delete it to fall back to the shipped model") from None
    return target


def load_model(path: str | Path | None = None, *, encoder=None, runtime: str | None = None, threads: int | None = None):
    """Load a verified model folder (default: see :func:`default_model_path`).

    ``runtime`` picks the encoder: "torch" (the sentence-transformers encoder named in the
    manifest) or "onnx" (the folder's ONNX export, see ``feedback-nlp export``); None uses
    the folder's ``runtime`` entry, else torch. ``encoder`` overrides both. ``threads``:
    how many model calls each encoder part runs at once, one thread each (default one per core).

    A folder with ``engines`` loads as a :class:`~feedback_nlp.router.LanguageRouter`; its
    engines share encoder parts with the main one where the specs are equal (the multilingual
    encoder is loaded once).
    """
    from .router import Engine, LanguageRouter

    path = Path(path) if path is not None else default_model_path()
    if encoder is not None and runtime is not None:
        raise InvalidInputError("pass encoder or runtime to load_model, not both")
    chosen = None
    if encoder is None:
        chosen = runtime or read_manifest(path).get("runtime") or "torch"
    manifest = verify_model(path, runtime=chosen)
    main = _load_engine(path, manifest, encoder=encoder, runtime=runtime, threads=threads)
    if not manifest.get("engines"):
        return main
    engines = [Engine("main", main)]
    router = None

    def loader(entry: dict):
        def load():
            sub = path / entry["path"]
            sub_manifest = read_manifest(sub)  # its files were verified with the folder's
            model = _load_engine(sub, sub_manifest, encoder=None, runtime=None, threads=threads, share=main.encoder_)
            return router.check_engine(model, entry["name"])
        return load

    for entry in manifest["engines"]:  # loaded when a comment in one of their languages first comes
        engines.append(Engine(entry["name"], languages=entry["languages"], load=loader(entry)))
    router = LanguageRouter(engines)
    return router


def _load_engine(path: Path, manifest: dict, *, encoder, runtime, threads, share=None):
    """One verified model folder (no ``engines``) as a fitted ThemeClassifier."""
    from .classifier import ThemeClassifier
    from .encoders import load_encoder, set_threads, share_parts

    try:
        heads = joblib.load(path / HEADS)
    except Exception as exc:  # a verified but unreadable pickle: say which file
        raise ArtifactError(f"{path / HEADS}: cannot be read ({exc})") from None
    taxonomy = Taxonomy.from_dict(manifest["taxonomy"])
    params = {k: v for k, v in manifest.get("params", {}).items() if k in ThemeClassifier().get_params()}
    params.setdefault("whole_vector", "encode")  # models saved before the option encoded the whole comment
    model = ThemeClassifier(encoder=manifest["encoder"], taxonomy=taxonomy, **params)
    model.encoder_ = load_encoder(encoder if encoder is not None else runtime_encoder_spec(manifest, path, runtime))
    if share is not None:
        model.encoder_ = share_parts(model.encoder_, share)
    if threads is not None:
        if threads < 1:
            raise InvalidInputError(f"threads must be at least 1 (got {threads})")
        set_threads(model.encoder_, threads)
    model.runtime_ = "custom" if encoder is not None else (runtime or manifest.get("runtime") or "torch")
    model.mode_ = manifest["mode"]
    model.taxonomy_ = taxonomy
    model.classes_ = np.array(manifest["classes"])
    model.thresholds_ = np.array([manifest["thresholds"][c] for c in manifest["classes"]])
    if heads.get("mode") != model.mode_:
        raise ArtifactError(f"{path / HEADS}: holds {heads.get('mode')!r} heads but the manifest says {model.mode_!r}")
    if model.mode_ == "single":
        model.head_ = heads["head"]
        model.polarity_heads_ = {}
    else:
        model.theme_heads_ = heads["theme_heads"]
        model.polarity_heads_ = heads["polarity_heads"]
        model.calibrators_ = heads.get("calibrators")
        model.lexical_heads_ = heads.get("lexical")  # folders saved before lexical heads have none
    model.metrics_ = manifest.get("metrics", {})
    model.training_ = manifest.get("training", {})
    model.manifest_ = manifest
    model.path_ = path
    return model


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
        "- heads.joblib is a pickle: load model folders only from sources you trust; the manifest's sha256 is checked first.",
        "",
    ]
    return "\n".join(lines)


# --- registry: promote a model to be the default, roll back -----------------------------

POINTER = "current.json"
HISTORY = "history.json"


def _slug(value: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "-" for c in str(value)).strip(".-")
    return keep or "model"


def _write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable ({exc}); fix or delete it") from None


def current_promotion() -> dict | None:
    """The pointer of the promoted model (``current.json``), or None when none is promoted."""
    pointer = _read_json(registry_home() / POINTER, None)
    if pointer is not None and not isinstance(pointer, dict):
        raise ArtifactError(f"{registry_home() / POINTER}: not a JSON object; delete it to fall back to the shipped model")
    return pointer


def promotion_history() -> list[dict]:
    """Earlier pointers, oldest first; ``{"path": None}`` stands for "none promoted" (the shipped model)."""
    history = _read_json(registry_home() / HISTORY, [])
    if not isinstance(history, list):
        raise ArtifactError(f"{registry_home() / HISTORY}: not a JSON list; fix or delete it")
    return history


def promote_model(path: str | Path) -> dict:
    """Copy a verified model folder into the registry and make it the default model.

    The folder lands in ``registry_home()/models/<name>-<version>/`` and ``current.json``
    points at it; the pointer it replaces is pushed onto ``history.json`` so
    :func:`rollback_model` can restore it. Returns the new pointer.
    """
    source = Path(path)
    manifest = verify_model(source)
    home = registry_home()
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / f"{_slug(manifest.get('name', source.name))}-{_slug(manifest.get('version', 'unversioned'))}"
    if target.exists():
        try:
            same = verify_model(target).get("files") == manifest.get("files")
        except ArtifactError:
            same = False
        if not same:  # a different model under the same name and version: keep both
            n = 2
            while (target.with_name(f"{target.name}-{n}")).exists():
                n += 1
            target = target.with_name(f"{target.name}-{n}")
    if not target.exists():
        # The whole tree: a manifest may list files in subfolders (e.g. an ONNX export).
        tmp = models / f".{target.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".*"))
            os.chmod(tmp, 0o755)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    verify_model(target)
    previous = current_promotion()
    pointer = {
        "path": str(target.resolve()),
        "name": manifest.get("name"),
        "version": manifest.get("version"),
        "source": str(source.resolve()),
        "promoted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    history = promotion_history()
    history.append(previous if previous is not None else {"path": None})
    _write_json_atomic(home / HISTORY, history)
    _write_json_atomic(home / POINTER, pointer)
    return pointer


def rollback_model() -> dict | None:
    """Restore the pointer that the last promotion replaced.

    Returns the restored pointer, or None when that means "none promoted" (the shipped
    model is the default again).
    """
    home = registry_home()
    history = promotion_history()
    if not history:
        raise ArtifactError(f"nothing to roll back to: {home / HISTORY} has no earlier promotion")
    restored = history.pop()
    if restored.get("path") is None:
        (home / POINTER).unlink(missing_ok=True)
        restored = None
    else:
        verify_model(restored["path"])
        _write_json_atomic(home / POINTER, restored)
    _write_json_atomic(home / HISTORY, history)
    return restored
