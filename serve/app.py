"""The HTTP app: a thin shell over :func:`feedback_nlp.load_model` and ``model.classify``.

``create_app`` builds the settings, the metrics and the routes; the lifespan loads the
model in the background (``/healthz`` answers at once, ``/readyz`` once the model is
loaded and warmed up) and starts the micro-batcher. Routes decode, submit the texts to
the batcher and encode the answer; all model logic stays in the library.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from feedback_nlp import ArtifactError, EncoderError, FeedbackNLPError, InvalidInputError, __version__, load_model

from .batcher import Batcher, QueueFull
from .memory import limit_arenas, pin_malloc_thresholds, releaser, trimmer
from .metrics import Metrics
from .schemas import ClassifyRequest, ClassifyResponse, ErrorResponse, classify_pairs, encode_results
from .settings import MAX_ITEMS, Settings

log = logging.getLogger("serve")
WARMUP_TEXT = "The technician fixed it quickly."
STATIC = Path(__file__).parent / "static"
# The page and its files come from this server only; the browser refuses anything else.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'", "X-Content-Type-Options": "nosniff"}


def _log(level: int, **fields: Any) -> None:
    """One JSON object per line. Never pass comment text here."""
    log.log(level, json.dumps(fields, default=str))


# --------------------------------------------------------------------------- errors

class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


# Library errors are translated here and nowhere else.
_LIBRARY_ERRORS = {InvalidInputError: (422, "invalid_input"), ArtifactError: (503, "model_unavailable"),
                   EncoderError: (503, "encoder_unavailable"), FeedbackNLPError: (500, "library_error")}


def _library_error(request: Request, exc: FeedbackNLPError) -> JSONResponse:
    status, code = next(_LIBRARY_ERRORS[cls] for cls in type(exc).__mro__ if cls in _LIBRARY_ERRORS)
    return error_response(status, code, str(exc))


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Field paths and reasons only: echoing the input would put comment text in answers and logs.
    problems = ["{}: {}".format(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
    more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
    return error_response(422, "invalid_request", "; ".join(problems[:10]) + more)


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI could not parse the body (e.g. bytes that are not UTF-8): like any bad body
        return error_response(422, "invalid_request", "body: not valid JSON (send UTF-8 encoded JSON)")
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


EXCEPTION_HANDLERS: dict[Any, Callable] = {
    ApiError: lambda request, exc: error_response(exc.status, exc.code, exc.message, exc.headers),
    QueueFull: lambda request, exc: error_response(
        429, "overloaded", f"the server is busy ({exc}); retry after the Retry-After seconds",
        {"Retry-After": str(exc.retry_after)}),
    FeedbackNLPError: _library_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
}
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorResponse, "description": text} for status, text in (
        (401, "Missing or wrong API key or signature"), (408, "Body not received in time"), (409, "Signed request already accepted (a replay)"),
        (413, "Body too large"), (422, "Invalid request"),
        (429, "Queue full; see Retry-After"), (503, "Model not loaded yet; see Retry-After"))
}


# --------------------------------------------------------------------------- ASGI middleware

class BodyLimit:
    """Answer 413 to bodies over ``limit`` bytes, declared or streamed, before anything parses
    them, and 408 to a body that has not fully arrived ``timeout_s`` after the request began (a
    client trickling its body would otherwise hold a connection and a task for as long as it likes)."""

    def __init__(self, app, limit: int, timeout_s: float = 10.0):
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = error_response(413, "too_large", f"request body is over {self.limit:,} bytes; "
                                   f"send fewer comments per request (at most {MAX_ITEMS})")
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await too_large(scope, receive, send)
        chunks, size = [], 0
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                slow = error_response(408, "request_timeout", f"the request body did not arrive within "
                                      f"{self.timeout_s:g} s; send it at once", {"Connection": "close"})
                return await slow(scope, receive, send)
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await too_large(scope, receive, send)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class InFlight:
    """Answer 429 ``overloaded`` (JSON, with Retry-After) to a request that arrives while
    ``limit`` requests are already being answered, before anything reads its body. Probes are
    never refused: an overloaded server is alive and ready, and a liveness probe that failed
    under load would get it restarted. (uvicorn's own cap, ``max_connections``, sits above this
    one as a backstop against stalled connections; it can only answer 503.)"""

    PROBES = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app, limit: int):
        self.app, self.limit, self.count = app, limit, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.PROBES:
            return await self.app(scope, receive, send)
        if self.count >= self.limit:
            busy = error_response(429, "overloaded", f"the server is answering {self.limit} requests already; "
                                  "retry after the Retry-After seconds", {"Retry-After": "1"})
            return await busy(scope, receive, send)
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class Observe:
    """Request id, one structured log line and metrics per request; a JSON 500 for bugs."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status, started, t0 = 500, False, time.perf_counter()

        async def send_with_id(message):
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                # A replayed answer (Idempotency-Key) carries its first request's id, in the body and here.
                answered = state.get("request_id", request_id)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", answered.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # a bug: answer in our format, log where (not the message: it may quote input)
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
            _log(logging.ERROR, event="unhandled_error", request_id=request_id, error=type(exc).__name__, at=where)
            if not started:
                await error_response(500, "internal", f"internal error; quote request id {request_id}")(
                    scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(route, scope["method"], status, seconds)
            _log(logging.INFO, event="request", request_id=request_id, method=scope["method"], path=scope["path"],
                 status=status, latency_ms=round(seconds * 1000, 2), items=state.get("items"))


# --------------------------------------------------------------------------- auth

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of FEEDBACK_NLP_API_KEYS.")
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <one of FEEDBACK_NLP_API_KEYS>.")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": 'Bearer realm="feedback-nlp"'})


def _timestamp(value: str) -> float | None:
    """Zendesk sends ISO 8601 (2024-05-01T12:00:00Z); Unix seconds are accepted too."""
    try:
        if re.fullmatch(r"\d{1,12}", value):
            return float(value)
        when = datetime.fromisoformat(value)
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    except ValueError:
        return None


class SeenSignatures:
    """Signatures accepted within the freshness window: the same signed request sent again
    (a replay, or a sender's blind retry) is refused instead of being processed twice."""

    def __init__(self, window_s: float, max_entries: int = 100_000):
        self.window_s, self.max_entries = window_s, max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, signature: str) -> bool:
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        if signature in self._seen:
            return False
        # Twice the window: a timestamp may be up to window_s in the future as well as in the past.
        self._seen[signature] = now + 2 * self.window_s
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return True


def verify_signature(settings: Settings, signature: str, timestamp: str | None, body: bytes,
                     seen: SeenSignatures | None = None) -> None:
    """base64(HMAC-SHA256(secret, timestamp + body)) must match, the timestamp be fresh, and
    the signature not have been accepted before (409 ``replayed``)."""
    when = _timestamp(timestamp or "")
    if when is None:
        raise _unauthorized(f"signed requests need a valid {settings.signature_timestamp_header} header")
    if abs(time.time() - when) > settings.signature_max_age_s:
        raise _unauthorized(f"signature timestamp is more than {settings.signature_max_age_s} s from now; "
                            "check the sender's clock or resend")
    secret = settings.webhook_secret.get_secret_value().encode()
    expected = base64.b64encode(hmac.new(secret, timestamp.encode() + body, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.encode()):
        raise _unauthorized(f"{settings.signature_header} does not match the body")
    if seen is not None and not seen.first_time(signature):
        raise ApiError(409, "replayed", "this signed request was already accepted; sign a new one (a new timestamp) "
                       "to send it again")


async def authenticate(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    """One valid credential: a key, or a signature when a webhook secret is configured. (Routes
    depend on this only when keys or a secret are configured: see ``create_app``.)"""
    settings: Settings = request.app.state.settings
    signature = request.headers.get(settings.signature_header)
    if settings.webhook_secret is not None and signature is not None:
        timestamp = request.headers.get(settings.signature_timestamp_header)
        return verify_signature(settings, signature, timestamp, await request.body(), request.app.state.seen_signatures)
    presented = (api_key or (bearer.credentials if bearer else "")).encode()
    # Compare with every key so the time taken does not tell which one nearly matched.
    matches = [hmac.compare_digest(presented, key.encode()) for key in settings.api_keys]
    if not presented or not any(matches):
        raise _unauthorized("send a valid key in X-API-Key or Authorization: Bearer"
                            + (", or sign the request" if settings.webhook_secret is not None else ""))


# --------------------------------------------------------------------------- idempotency

class Replies:
    """Answers kept for ``Idempotency-Key`` retries: the same key and body within ``ttl_s``
    get the same bytes; a duplicate arriving while the first is in flight waits for it."""

    def __init__(self, ttl_s: float, max_entries: int):
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._entries: OrderedDict[tuple, tuple[float, asyncio.Future]] = OrderedDict()

    async def get_or_run(self, key: tuple, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        now = time.monotonic()
        while self._entries and next(iter(self._entries.values()))[0] <= now:
            self._entries.popitem(last=False)
        if key in self._entries:
            future = self._entries[key][1]
        else:
            # A task, so a caller that gives up does not stop the work its retry will want.
            future = asyncio.ensure_future(compute())
            future.add_done_callback(lambda f: self._forget_failure(key, f))
            self._entries[key] = (now + self.ttl_s, future)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return await asyncio.shield(future)

    def _forget_failure(self, key: tuple, future: asyncio.Future) -> None:
        if (future.cancelled() or future.exception() is not None) and self._entries.get(key, (0, None))[1] is future:
            del self._entries[key]


# --------------------------------------------------------------------------- the app

@dataclass
class Service:
    """What exists once the model is loaded."""

    model: Any
    batcher: Batcher
    replies: Replies

    @property
    def manifest(self) -> dict:
        return getattr(self.model, "manifest_", {})

    @property
    def ref(self) -> dict:
        return {"name": str(self.manifest.get("name", "unnamed")), "version": str(self.manifest.get("version", "unknown"))}


def _service(request: Request) -> Service:
    service = request.app.state.service
    if service is None:
        error = request.app.state.load_error
        raise ApiError(503, "not_ready", f"the model failed to load: {error}" if error else "the model is still loading",
                       {"Retry-After": "5"})
    return service


async def _load(app: FastAPI, settings: Settings) -> None:
    t0 = time.perf_counter()
    pin_malloc_thresholds(settings.malloc_mmap_threshold_kb * 1024)
    limit_arenas(settings.malloc_arenas)
    try:
        model = await asyncio.to_thread(load_model, settings.model, threads=settings.threads)
        await asyncio.to_thread(model.classify, [WARMUP_TEXT])
    except Exception as exc:
        app.state.load_error = str(exc)
        _log(logging.ERROR, event="model_load_failed", error=type(exc).__name__, message=str(exc))
        return
    metrics: Metrics = app.state.metrics
    release = releaser() if settings.malloc_trim_idle_s > 0 else None  # hands free heap pages back
    batcher = Batcher(classify_pairs(model), max_batch=settings.max_batch, max_batch_chars=settings.max_batch_chars,
                      max_wait_ms=settings.max_wait_ms, max_queue=settings.max_queue, max_delay_s=settings.max_delay_s,
                      item_error=item_error, calls=settings.model_calls, on_batch=metrics.batch_size.observe,
                      after_batch=trimmer(settings.malloc_trim_every_s),
                      when_idle=release, idle_after_s=settings.malloc_trim_idle_s)
    batcher.start()
    metrics.track_queue(lambda: batcher.queued)
    app.state.service = Service(model, batcher, Replies(settings.idempotency_ttl_s, settings.idempotency_max_entries))
    if hasattr(model, "load_engines"):
        # The other languages' engines and spaCy pipelines load after ready, in the background: English
        # is answered at once, and a comment in another language waits at most for its engine to finish.
        def warm() -> None:
            model.load_engines()
            model.load_sentence_splitters()
            if release is not None:  # what loading freed (parsed weights, whole tables cut to a subset) goes back
                release()

        app.state.warming = asyncio.get_running_loop().run_in_executor(None, warm)
    _log(logging.INFO, event="model_ready", **app.state.service.ref, seconds=round(time.perf_counter() - t0, 2))


def item_error(exc: Exception) -> dict:
    """The answer for one comment the model failed on while the others of its request were answered."""
    _log(logging.ERROR, event="comment_failed", error=type(exc).__name__)
    return {"themes": [], "scores": {}, "language": None, "language_supported": None,
            "error": {"code": "model_error", "message": f"this comment could not be classified ({type(exc).__name__}); "
                      "the others in the request were"}}


@asynccontextmanager
async def lifespan(app: FastAPI):
    loading = asyncio.create_task(_load(app, app.state.settings))
    try:
        yield
    finally:
        loading.cancel()
        if app.state.service is not None:
            await app.state.service.batcher.stop()
        app.state.service, app.state.load_error = None, None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings if settings is not None else Settings()
    metrics = Metrics()
    # FastAPIOffline: /docs and /redoc load their scripts from this server (assets ship in the
    # fastapi-offline package), never from a CDN.
    app = FastAPIOffline(
        title="feedback-nlp", version=__version__, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS,
        description="Tag IT service-desk survey comments with themes, polarity and evidence.",
    )
    app.state.settings, app.state.metrics = settings, metrics
    app.state.service, app.state.load_error = None, None
    app.state.seen_signatures = SeenSignatures(settings.signature_max_age_s)
    if settings.cors_origins:  # off by default: browsers elsewhere may not call the API
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(InFlight, limit=settings.limit_concurrency)
    app.add_middleware(Observe, metrics=metrics)
    # With no keys and no webhook secret the API is open: no credential is checked, and the
    # routes skip the dependency altogether (a quarter of the app's work per request) and do
    # not list a security scheme in the OpenAPI schema that nothing would enforce.
    authenticated = [Depends(authenticate)] if settings.api_keys or settings.webhook_secret is not None else []

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The web page: paste comments or upload a CSV, see themes and evidence, download the tagged CSV."""
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["probes"])
    async def healthz() -> dict:
        """The process is alive (it may still be loading the model)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], responses={503: ERROR_RESPONSES[503]})
    async def readyz(request: Request) -> dict:
        """200 once the model is loaded and warmed up, 503 before."""
        return {"status": "ready", "model": _service(request).ref}

    @app.get("/metrics", tags=["probes"], dependencies=authenticated, response_class=Response,
             responses={200: {"content": {metrics.content_type: {}}}, 401: ERROR_RESPONSES[401]})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/model", dependencies=authenticated, responses={k: ERROR_RESPONSES[k] for k in (401, 503)})
    async def model_info(request: Request) -> dict:
        """Taxonomy, thresholds, encoder and evaluation metrics of the loaded model."""
        service = _service(request)
        keys = ("name", "version", "created", "format_version", "mode", "encoder", "languages", "engines", "taxonomy",
                "thresholds", "metrics", "training")
        limits = {"max_items": MAX_ITEMS, "max_chars": service.model.max_chars, "max_body_bytes": settings.max_body_bytes}
        return {**{k: service.manifest.get(k) for k in keys}, "limits": limits}

    @app.post("/v1/classify", response_model=ClassifyResponse, dependencies=authenticated, responses=ERROR_RESPONSES)
    async def classify(
        body: ClassifyRequest,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=255, description=(
            "A retry with the same key and body within the idempotency window gets the first answer again."))] = None,
    ) -> Response:
        """Tag one comment (`text`) or up to 256 (`items`, ids echoed back)."""
        service = _service(request)
        items = body.to_items()
        request.state.items = len(items)

        async def answer() -> bytes:
            results = await service.batcher.submit([(item.text, item.language) for item in items])
            metrics.observe_results(results)
            return json.dumps({"model": service.ref, "request_id": request.state.request_id,
                               "results": encode_results(items, results)}).encode()

        if idempotency_key is None:
            content = await answer()
        else:
            key = (idempotency_key, hashlib.sha256(await request.body()).digest())
            content = await service.replies.get_or_run(key, answer)
            request.state.request_id = json.loads(content)["request_id"]  # the first answer's id
        return Response(content, media_type="application/json")

    return app
