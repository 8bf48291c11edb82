"""Whole models in and out of folders, and which one is the default.

:func:`save_model` writes a fitted ThemeClassifier or LanguageRouter as a model folder (the
format is ``feedback_nlp.artifacts``); :func:`load_model` reads one back, verified;
:func:`default_model_path` says which folder answers when none is named: an explicit
$FEEDBACK_NLP_MODEL, else the promoted one (:func:`promote_model`, :func:`rollback_model`),
else the shipped default.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .artifacts import (
    ENGINES, MANIFEST, bundle_encoders, model_manifest, read_heads, read_manifest, runtime_encoder_spec, verify_model,
    write_heads, write_manifest,
)
from .classifier import ThemeClassifier
from .encoders import load_encoder, set_threads, share_parts
from .errors import ArtifactError, InvalidInputError
from .files import atomic_folder, write_json_atomic
from .router import Engine, LanguageRouter
from .taxonomy import Taxonomy

# Where a `pip install .` puts the shipped default model, and where it sits in a checkout.
PACKAGED_DEFAULT = Path(__file__).parent / "_default_model"
CHECKOUT_DEFAULT = Path(__file__).resolve().parent.parent / "models" / "default"


def save_model(model, path: str | Path, *, name: str | None = None, version: str | None = None,
               card: str | None = None, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write a fitted ThemeClassifier (or LanguageRouter) to ``path`` atomically (temporary folder, then rename).

    A router's main engine is the folder itself; each other engine is a complete model folder
    under ``engines/<name>/``, listed in the manifest's ``engines`` with its languages and
    covered by the top manifest's sha256 list.
    """
    engines = []
    if isinstance(model, LanguageRouter):
        engines = model.engines[1:]
        model = model.main
    model._check_fitted()
    path = Path(path)
    now = datetime.now(timezone.utc)
    version = version or now.strftime("%Y%m%d-%H%M%S")
    with atomic_folder(path) as tmp:
        write_heads(tmp, model.fitted_state())
        for engine in engines:
            save_model(engine.model, tmp / ENGINES / engine.name, name=engine.name, version=version)
        for fname, content in (extra_files or {}).items():
            (tmp / fname).write_bytes(content)
        manifest = model_manifest(model, name=name or path.name, version=version,
                                  created=now.isoformat(timespec="seconds"), encoder_spec=bundle_encoders(model.encoder_, tmp))
        if engines:
            manifest["engines"] = [
                {"name": e.name, "path": f"{ENGINES}/{e.name}", "languages": list(e.languages)} for e in engines
            ]
        write_manifest(tmp, manifest, card)
    return path


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
    heads = read_heads(path)
    taxonomy = Taxonomy.from_dict(manifest["taxonomy"])
    params = {k: v for k, v in manifest.get("params", {}).items() if k in ThemeClassifier().get_params()}
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
        raise ArtifactError(f"{path}: holds {heads.get('mode')!r} heads but the manifest says {model.mode_!r}")
    model.set_fitted_state(heads)
    model.metrics_ = manifest.get("metrics", {})
    model.training_ = manifest.get("training", {})
    model.manifest_ = manifest
    model.path_ = path
    return model


# --- promote a model to be the default, roll back -------------------------------------

POINTER = "current.json"
HISTORY = "history.json"


def _slug(value: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "-" for c in str(value)).strip(".-")
    return keep or "model"


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
    if not target.exists():  # the whole tree: a manifest may list files in subfolders (an ONNX export, engines)
        with atomic_folder(target) as tmp:
            shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".*"), dirs_exist_ok=True)
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
    write_json_atomic(home / HISTORY, history)
    write_json_atomic(home / POINTER, pointer)
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
        write_json_atomic(home / POINTER, restored)
    write_json_atomic(home / HISTORY, history)
    return restored
