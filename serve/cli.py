"""`feedback-nlp serve` (registered through an entry point): run the HTTP app with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
import uvicorn  # an ImportError here marks the command unavailable (the `serve` extra is missing)

from feedback_nlp.cli_errors import handle_errors

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(message)s"}, "default": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "json": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
        "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "serve": {"handlers": ["json"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
    },
}


PORT_IN_USE = 5  # its own exit code: 3 is a bad model folder, 2 a bad setting


def _check_port_free(host: str, port: int) -> None:
    """Exit with PORT_IN_USE and a clear message when ``host:port`` cannot be bound."""
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            typer.echo(f"error: cannot listen on {host}:{port} ({exc.strerror or exc}); another process uses the port? "
                       "choose another with --port or FEEDBACK_NLP_PORT", err=True)
            raise typer.Exit(PORT_IN_USE) from None


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def serve(
        host: Optional[str] = typer.Option(None, help="Address to listen on (env FEEDBACK_NLP_HOST; default 127.0.0.1)."),
        port: Optional[int] = typer.Option(None, help="Port (env FEEDBACK_NLP_PORT; default 8000)."),
        model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder (env FEEDBACK_NLP_MODEL; default: the promoted or shipped model)."),
        workers: Optional[int] = typer.Option(None, min=1, help="Worker processes, each with its own model (env FEEDBACK_NLP_WORKERS; default 1)."),
    ):
        """Serve POST /v1/classify and friends over HTTP (settings: FEEDBACK_NLP_* variables, see docs/serving.md)."""
        from pydantic import ValidationError

        from feedback_nlp import default_model_path, verify_model

        from .settings import Settings

        given = {"host": host, "port": port, "model": model, "workers": workers}
        try:
            settings = Settings(**{k: v for k, v in given.items() if v is not None})
        except ValidationError as exc:
            typer.echo(f"error: invalid setting (check the FEEDBACK_NLP_* variables): {exc}", err=True)
            raise typer.Exit(2) from None
        # Fail here, with a clear message, rather than in every worker after startup.
        path = (settings.model or default_model_path()).resolve()
        verify_model(path)
        _check_port_free(settings.host, settings.port)
        # Workers are separate processes that build their settings from the environment.
        os.environ["FEEDBACK_NLP_MODEL"] = str(path)
        # torch's OpenMP threads sleep when idle instead of spinning: the server shares its cores with
        # the event loop and its callers (torch is imported later, when the model loads). BENCHMARKS.md §4.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        uvicorn.run(
            "serve.app:create_app", factory=True, host=settings.host, port=settings.port, workers=settings.workers,
            timeout_keep_alive=settings.keep_alive_s, limit_concurrency=settings.max_connections,
            log_config=LOG_CONFIG, access_log=False,  # the app logs each request itself, without bodies
        )
