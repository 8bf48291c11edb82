"""`feedback-nlp train`, `evaluate`, `compare`, `promote`, `suggest`, `import-labels` and `audit`.

Registered through an entry point; each command decodes its arguments, calls one
library function and reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from feedback_nlp.cli_errors import handle_errors


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def train(
        data: Optional[List[Path]] = typer.Argument(None, help="Labelled JSONL/CSV/Parquet files (text + themes, or --label-column); several are concatenated."),
        output: Path = typer.Option(..., "-o", "--output", help="Model folder to write."),
        base: Optional[Path] = typer.Option(None, "--base", help="Retrain this model folder on its own data plus --add."),
        add: Optional[Path] = typer.Option(None, "--add", help="New labelled feedback to add to --base's data."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML experiment config."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key: key=value (repeatable)."),
        text_column: Optional[str] = typer.Option(None, help="Column holding the comment (default: text)."),
        label_column: Optional[str] = typer.Option(None, help="Single-label data: column with one class per row."),
        eval_data: Optional[Path] = typer.Option(None, "--eval", help="Held-out labelled data to report metrics on."),
        name: Optional[str] = typer.Option(None, help="Model name in the manifest (default: folder name)."),
        strict: bool = typer.Option(False, help="Fail when data validation finds errors."),
        finetune: bool = typer.Option(False, "--finetune", help="Fine-tune the encoder contrastively first (SetFit-style; slow on CPU). Same as --set finetune=true."),
    ):
        """Train a model folder: validate data, fit heads, tune thresholds, evaluate, save."""
        from training.pipeline import load_config, train_model

        overrides = list(set_ or [])
        if finetune:
            overrides.append("finetune=true")
        if text_column:
            overrides.append(f"text_column={text_column}")
        if label_column:
            overrides.append(f"label_column={label_column}")
        if base is not None:
            from training.pipeline import read_base

            # The base model's config first; the config file and --set override it.
            base_config = {k: v for k, v in read_base(base)[2].items() if k not in ("text_column", "label_column")}
            if data and add is not None:
                raise typer.BadParameter("give new data either as DATA or as --add, not both")
            data = [add] if add is not None else data
        else:
            base_config = None
            if not data:
                raise typer.BadParameter("DATA is required (or --base DIR --add NEW)")
        cfg = load_config(config, overrides, base=base_config)
        model, _ = train_model(data, output, cfg, eval_data=eval_data, base=base, name=name, strict=strict,
                               log=lambda m: typer.echo(m, err=True))
        for split, metrics in model.metrics_.items():
            parts = [f"{k} {metrics[k]:.3f}" for k in ("macro_f1", "micro_f1", "accuracy", "polarity_accuracy") if metrics.get(k) is not None]
            typer.echo(f"{split}: " + ", ".join(parts), err=True)
        typer.echo(f"model written to {output}", err=True)

    @app.command()
    @handle_errors
    def evaluate(
        data: Path = typer.Argument(..., help="Labelled data to evaluate on."),
        model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder (default: the promoted or shipped model)."),
        text_column: str = typer.Option("text"),
        label_column: Optional[str] = typer.Option(None, help="Single-label data: column with one class per row."),
        as_json: bool = typer.Option(False, "--json", help="Print metrics as JSON."),
        report: Optional[Path] = typer.Option(None, "--report", help="Also write a self-contained HTML report (curves, errors) here."),
        record: Optional[str] = typer.Option(None, "--record", help="Keep the metrics in the model folder under this name (manifest and model card)."),
    ):
        """Per-theme precision/recall/F1, macro/micro F1 and polarity accuracy."""
        from feedback_nlp import evaluate as evaluate_model, load_model, read_labelled

        loaded = load_model(model)
        texts, labels = read_labelled(data, text_column, label_column)
        results = loaded.classify(texts)
        metrics = evaluate_model(loaded, texts, labels, results=results)
        if report is not None:
            from training.report import write_report

            write_report(loaded, texts, labels, report, results=results, metrics=metrics, data_name=str(data))
            typer.echo(f"report written to {report}", err=True)
        if record:
            from feedback_nlp.artifacts import record_metrics

            record_metrics(loaded.path_, record, {**metrics, "data": str(data)})
            typer.echo(f"metrics recorded in {loaded.path_} as {record!r}", err=True)
        if as_json:
            typer.echo(json.dumps(metrics, indent=2))
            return
        typer.echo(f"{'theme':<18}{'precision':>10}{'recall':>8}{'F1':>8}{'support':>9}{'polarity':>10}")
        for theme, m in metrics["per_theme"].items():
            pol = m.get("polarity_accuracy")
            typer.echo(f"{theme:<18}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}{m['support']:>9}{'' if pol is None else f'{pol:.3f}':>10}")
        for key in ("macro_f1", "micro_f1", "accuracy", "polarity_accuracy"):
            if metrics.get(key) is not None:
                typer.echo(f"{key:<18}{metrics[key]:.4f}")

    @app.command()
    @handle_errors
    def compare(
        champion: Path = typer.Option(..., "--champion", help="Model folder in production (or the baseline)."),
        challenger: Path = typer.Option(..., "--challenger", help="Candidate model folder."),
        data: Path = typer.Option(..., "--data", help="Labelled evaluation data both models are scored on."),
        text_column: str = typer.Option("text"),
        label_column: Optional[str] = typer.Option(None, help="Single-label data: column with one class per row."),
        n_boot: int = typer.Option(1000, "--n-boot", min=1, help="Bootstrap resamples."),
        seed: int = typer.Option(0, help="Seed of the resampling."),
        confidence: float = typer.Option(0.95, min=0.5, max=0.999, help="Confidence level of the intervals."),
        as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    ):
        """Paired bootstrap of macro-F1 and per-theme F1; exit 0 only if the challenger is better beyond the interval."""
        from feedback_nlp import load_model, read_labelled
        from training.compare import compare_models

        texts, labels = read_labelled(data, text_column, label_column)
        result = compare_models(load_model(champion), load_model(challenger), texts, labels,
                                n_boot=n_boot, seed=seed, confidence=confidence)
        typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.render())
        raise typer.Exit(0 if result.better else 1)

    @app.command()
    @handle_errors
    def promote(
        model: Optional[Path] = typer.Argument(None, help="Model folder to make the default (verified, then copied into the registry)."),
        rollback: bool = typer.Option(False, "--rollback", help="Restore the model that was the default before the last promotion."),
        show: bool = typer.Option(False, "--list", help="Show the promoted model and the history."),
    ):
        """Make a model the default for classify and serve (or roll back to the previous one)."""
        from feedback_nlp.registry import current_promotion, promote_model, promotion_history, registry_home, rollback_model

        if sum([model is not None, rollback, show]) != 1:
            typer.echo("error: give a model folder, --rollback or --list", err=True)
            raise typer.Exit(2)
        if show:
            current = current_promotion()
            typer.echo(f"registry {registry_home()}")
            typer.echo(f"current  {_pointer_text(current)}")
            for i, entry in enumerate(reversed(promotion_history()), 1):
                typer.echo(f"  -{i}     {_pointer_text(entry if entry.get('path') else None)}")
            return
        if rollback:
            restored = rollback_model()
            typer.echo(f"rolled back; default model now: {_pointer_text(restored)}", err=True)
            return
        pointer = promote_model(model)
        typer.echo(f"promoted {_pointer_text(pointer)}", err=True)

    @app.command()
    @handle_errors
    def suggest(
        unlabelled: Path = typer.Argument(..., help="Unlabelled comments (CSV, JSONL, Parquet, ...)."),
        model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder (default: the promoted or shipped model)."),
        n: int = typer.Option(50, "-n", min=1, help="How many comments to suggest."),
        output: Path = typer.Option(..., "-o", "--output", help="File to write the suggestions to."),
        fmt: str = typer.Option("jsonl", "--format", help="jsonl, label-studio or argilla."),
        text_column: str = typer.Option("text", help="Column holding the comment."),
        pool_factor: int = typer.Option(10, min=1, help="Diversify among the n x this most uncertain comments."),
    ):
        """Active learning: the most uncertain comments, diversified, with the model's suggestions pre-filled."""
        from feedback_nlp import load_model
        from training.suggest import FORMATS, suggest_file, write_suggestions

        if fmt not in FORMATS:
            typer.echo(f"error: --format must be one of {', '.join(FORMATS)}", err=True)
            raise typer.Exit(2)
        loaded = load_model(model)
        chosen = suggest_file(loaded, unlabelled, n, text_column=text_column, pool_factor=pool_factor)
        written = write_suggestions(chosen, loaded, output, fmt)
        typer.echo(f"{len(chosen)} comments to label -> {', '.join(map(str, written))}", err=True)

    @app.command("import-labels")
    @handle_errors
    def import_labels_(
        file: Path = typer.Argument(..., help="Annotated export (Label Studio JSON / JSON-MIN, or Argilla records)."),
        fmt: str = typer.Option(..., "--format", help="label-studio or argilla."),
        output: Path = typer.Option(..., "-o", "--output", help="Training JSONL to write ({text, themes})."),
    ):
        """Convert annotated Label Studio or Argilla exports into training JSONL."""
        from feedback_nlp import write_labelled
        from training.suggest import import_labels

        texts, labels, skipped = import_labels(file, fmt)
        write_labelled(output, texts, labels)
        typer.echo(f"{len(texts)} labelled comments -> {output}" + (f"; {skipped} without annotation skipped" if skipped else ""), err=True)

    @app.command()
    @handle_errors
    def audit(
        data: Path = typer.Argument(..., help="Labelled data to audit."),
        config: Optional[Path] = typer.Option(None, "--model-config", "--config", "-c", help="TOML experiment config (as for train)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key: key=value (repeatable)."),
        n: int = typer.Option(50, "-n", min=1, help="Show the n most likely label issues."),
        folds: Optional[int] = typer.Option(None, min=2, help="Cross-validation folds (default: the config's cv)."),
        as_json: bool = typer.Option(False, "--json", help="Print the issues as JSON."),
    ):
        """Likely mislabelled rows (cleanlab on cross-validated scores), ranked, with the suggested fix."""
        from training.audit import audit_file
        from training.pipeline import load_config

        report = audit_file(data, load_config(config, list(set_ or [])), folds=folds, top=n)
        typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())


def _pointer_text(pointer: dict | None) -> str:
    if not pointer:
        return "none promoted (the shipped model, or $FEEDBACK_NLP_MODEL)"
    name = " ".join(str(pointer[k]) for k in ("name", "version") if pointer.get(k))
    return f"{name} ({pointer['path']})"
