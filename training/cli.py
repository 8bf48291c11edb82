"""`feedback-nlp train` and `feedback-nlp evaluate` (registered through an entry point)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from feedback_nlp.cli import handle_errors


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def train(
        data: Path = typer.Argument(..., help="Labelled JSONL/CSV/Parquet (text + themes, or --label-column)."),
        output: Path = typer.Option(..., "-o", "--output", help="Model folder to write."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML experiment config."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key: key=value (repeatable)."),
        text_column: Optional[str] = typer.Option(None, help="Column holding the comment (default: text)."),
        label_column: Optional[str] = typer.Option(None, help="Single-label data: column with one class per row."),
        eval_data: Optional[Path] = typer.Option(None, "--eval", help="Held-out labelled data to report metrics on."),
        name: Optional[str] = typer.Option(None, help="Model name in the manifest (default: folder name)."),
        strict: bool = typer.Option(False, help="Fail when data validation finds errors."),
    ):
        """Train a model folder: validate data, fit heads, tune thresholds, evaluate, save."""
        from training.pipeline import load_config, train_model

        overrides = list(set_ or [])
        if text_column:
            overrides.append(f"text_column={text_column}")
        if label_column:
            overrides.append(f"label_column={label_column}")
        cfg = load_config(config, overrides)
        model, _ = train_model(data, output, cfg, eval_data=eval_data, name=name, strict=strict,
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
    ):
        """Per-theme precision/recall/F1, macro/micro F1 and polarity accuracy."""
        from feedback_nlp import evaluate as evaluate_model, load_model, read_labelled

        loaded = load_model(model)
        texts, labels = read_labelled(data, text_column, label_column)
        metrics = evaluate_model(loaded, texts, labels)
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
