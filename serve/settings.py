"""Server settings: environment variables with the prefix ``FEEDBACK_NLP_``.

Built inside :func:`serve.app.create_app`, never at import time, so every app (and every
test) reads the environment as it is when the app is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MAX_ITEMS = 256  # per request: part of the API contract, not a tuning knob


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_NLP_", extra="ignore")

    # Where and how `feedback-nlp serve` listens (the app itself does not use these).
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    keep_alive_s: int = Field(
        65, ge=1, description="Idle keep-alive connections are closed after this long. Longer than the usual "
        "client idle timeouts (httpx 5 s, most HTTP clients and proxies up to 60 s), so a client never "
        "reuses a connection the server is closing at that moment (a read error on its request)."
    )

    model: Path | None = Field(None, description="Model folder; default: the promoted or shipped model.")

    # Auth. With neither set the API is open (it listens on loopback by default).
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated keys accepted in X-API-Key or Authorization: Bearer."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret for HMAC-SHA256 request signatures (the Zendesk webhook scheme)."
    )
    signature_header: str = "X-Zendesk-Webhook-Signature"
    signature_timestamp_header: str = "X-Zendesk-Webhook-Signature-Timestamp"
    signature_max_age_s: int = Field(300, ge=1, description="Signed requests older (or newer) than this are refused.")

    # Micro-batching and back-pressure.
    max_batch: int = Field(64, ge=1, description="Most comments per model call.")
    max_wait_ms: float = Field(5.0, ge=0, description="Longest a comment waits for others to share its model call.")
    max_queue: int = Field(1024, ge=1, description="Comments waiting for the model beyond which requests get 429.")
    model_calls: int = Field(
        1, ge=1, le=8, description="Model calls that may run at once, each on its own thread (2 measured slower on "
        "2 cores: BENCHMARKS.md §4): while one is in "
        "the encoder's native code, the next batch's Python work (splitting, language, heads) proceeds."
    )
    max_batch_chars: int = Field(
        32_000, ge=1000, description="Most characters per model call: a bigger request is split into pieces that "
        "take turns with the other requests, so a small one never waits behind it for long."
    )
    max_delay_s: float = Field(
        5.0, gt=0, description="A request whose expected wait (from the work queued and the model's measured speed) "
        "is longer than this gets 429 at once, with Retry-After, instead of waiting."
    )

    threads: int = Field(
        2, ge=1, description="Model calls each encoder part runs at once, one thread each (the parts of the default "
        "pair run side by side). With the language engines, 2 served 13% more comments/s under load on 2 cores "
        "than 1 (BENCHMARKS.md section 4, wrk)."
    )

    malloc_mmap_threshold_kb: int = Field(
        4096, ge=0, description="glibc: allocations from this size go to mmap and back to the system when freed "
        "(keeps RSS flat under sustained load, see serve/memory.py); 0 leaves glibc's adaptive default."
    )
    malloc_trim_every_s: float = Field(
        2.0, ge=0, description="glibc: at most this often, after a batch, free heap pages go back to the "
        "system (malloc_trim; keeps RSS flat, see serve/memory.py); 0 never."
    )
    malloc_trim_idle_s: float = Field(
        1.0, ge=0, description="glibc: once no request has arrived for this long, every free heap page goes "
        "back to the system (malloc_trim), so a server between bursts holds only what it uses; also once, when "
        "the background loading after ready is done; 0 never."
    )

    malloc_arenas: int = Field(
        2, ge=0, description="glibc: most malloc arenas the server's threads share (lower memory, see "
        "serve/memory.py); 0 leaves glibc's default (8 per core)."
    )

    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins whose browser pages may call the API "
        "(e.g. https://acme.service-now.com); empty (the default): no cross-origin access."
    )

    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    body_timeout_s: float = Field(10.0, gt=0, description="A request body must arrive within this long (else 408).")
    limit_concurrency: int = Field(
        256, ge=1, description="Most requests answered at once per worker; one more gets 429 (overloaded, "
        "Retry-After) at once, before its body is read. Probes (/healthz, /readyz, /metrics) are never refused."
    )
    max_connections: int = Field(
        1024, ge=1, description="Most open connections per worker (uvicorn's limit): a backstop against clients "
        "that open connections and stall; beyond it uvicorn answers 503 at once. Keep it well above "
        "limit_concurrency plus your callers' idle keep-alive connections, so overload is answered 429."
    )
    idempotency_ttl_s: int = Field(600, ge=0)
    idempotency_max_entries: int = Field(10_000, ge=0)

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value):
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return None if value == "" else value
