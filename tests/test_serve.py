"""The HTTP server, through the ASGI client, against a tiny model with the fake encoder."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import logging
import threading
import time
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from feedback_nlp import InvalidInputError, ThemeClassifier, load_model
from serve import app as app_module
from serve.app import create_app
from serve.batcher import Batcher, QueueFull
from serve.schemas import tags_for
from serve.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RUDE = "Quick fix but he was rude."
SLOW_AND_BROKEN = "Slow and still broken."


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("FEEDBACK_NLP_"):
            monkeypatch.delenv(name)


@asynccontextmanager
async def serving(settings: Settings, *, ready: bool = True):
    """Run the app's lifespan and yield a client for it (after the model is ready)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            if ready:
                await wait_ready(client)
            yield client


async def wait_ready(client, timeout=120.0):  # the real encoder takes ~10 s to load
    deadline = time.monotonic() + timeout
    while (r := await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.02)


@pytest.fixture
def settings(model_dir):
    def make(**overrides):
        return Settings(model=model_dir, **overrides)

    return make


@pytest.fixture
def calls(monkeypatch):
    """Record every model call (its number of texts); optionally make calls slow."""
    record = {"sizes": [], "delay": 0.0, "error": None}
    original = ThemeClassifier.classify

    def classify(self, X, languages=None):
        X = list(X)
        record["sizes"].append(len(X))
        time.sleep(record["delay"])
        if record["error"] is not None:
            raise record["error"]
        return original(self, X) if languages is None else original(self, X, languages)

    monkeypatch.setattr(ThemeClassifier, "classify", classify)
    return record


def error_code(response):
    return response.json()["error"]["code"]


# --------------------------------------------------------------------------- classify

@pytest.mark.anyio
async def test_classify_one_text_follows_the_batch_contract(settings, model_dir):
    expected = load_model(model_dir).classify([RUDE])[0]
    async with serving(settings()) as client:
        r = await client.post("/v1/classify", json={"text": RUDE})
    assert r.status_code == 200
    body = r.json()
    assert body["model"]["name"] == "tiny" and body["model"]["version"]
    assert body["request_id"] == r.headers["x-request-id"]
    [result] = body["results"]
    assert result["id"] is None
    assert result["themes"] == expected["themes"] and result["scores"] == expected["scores"]
    assert set(result["tags"]) == {"feedback_speed_positive", "feedback_attitude_negative"}
    assert "truncated" not in result


@pytest.mark.anyio
async def test_classify_items_echoes_ids_in_order_with_tags(settings):
    items = [{"id": "INC0012345", "text": SLOW_AND_BROKEN}, {"text": "Thanks!"}, {"id": 42, "text": RUDE}]
    async with serving(settings()) as client:
        r = await client.post("/v1/classify", json={"items": items}, headers={"X-Request-ID": "trace-1"})
    assert r.status_code == 200
    body = r.json()
    assert body["request_id"] == "trace-1"
    assert [res["id"] for res in body["results"]] == ["INC0012345", None, 42]
    assert set(body["results"][0]["tags"]) == {"feedback_speed_negative", "feedback_not_solved"}
    assert body["results"][1]["tags"] == [] and body["results"][1]["themes"] == []
    for res in body["results"]:
        assert res["tags"] == tags_for(res)


@pytest.mark.anyio
async def test_long_comment_is_truncated_and_flagged(settings):
    async with serving(settings()) as client:
        r = await client.post("/v1/classify", json={"items": [{"id": "long", "text": "still broken. " * 1500}]})
    assert r.status_code == 200
    assert r.json()["results"][0]["truncated"] is True


@pytest.mark.anyio
async def test_model_endpoint_describes_the_model(settings):
    async with serving(settings()) as client:
        body = (await client.get("/v1/model")).json()
    assert body["name"] == "tiny"
    assert [t["id"] for t in body["taxonomy"]["themes"]] == ["speed", "attitude", "skills", "not_solved", "bounced_around"]
    assert set(body["thresholds"]) == {"speed", "attitude", "skills", "not_solved", "bounced_around"}
    assert body["encoder"] == {"kind": "hashing", "dim": 256}
    assert body["limits"]["max_items"] == 256


# --------------------------------------------------------------------------- probes and metrics

@pytest.mark.anyio
async def test_readyz_is_503_until_the_model_is_loaded(settings, monkeypatch):
    release = threading.Event()
    real_load = app_module.load_model

    def slow_load(path, **options):
        release.wait(10)
        return real_load(path, **options)

    monkeypatch.setattr(app_module, "load_model", slow_load)
    async with serving(settings(), ready=False) as client:
        assert (await client.get("/healthz")).status_code == 200
        r = await client.get("/readyz")
        assert r.status_code == 503 and error_code(r) == "not_ready"
        r = await client.post("/v1/classify", json={"text": "slow"})
        assert r.status_code == 503 and r.headers["retry-after"]
        release.set()
        await wait_ready(client)
        assert (await client.get("/readyz")).json()["model"]["name"] == "tiny"
        assert (await client.post("/v1/classify", json={"text": "slow"})).status_code == 200


@pytest.mark.anyio
async def test_a_model_that_cannot_load_is_reported_by_readyz(tmp_path):
    async with serving(Settings(model=tmp_path / "missing"), ready=False) as client:
        for _ in range(100):
            r = await client.get("/readyz")
            if "failed" in r.json()["error"]["message"]:
                break
            await asyncio.sleep(0.02)
        assert r.status_code == 503 and "not found" in r.json()["error"]["message"]
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.anyio
async def test_metrics(settings):
    async with serving(settings()) as client:
        await client.post("/v1/classify", json={"items": [{"text": SLOW_AND_BROKEN}, {"text": RUDE}]})
        await client.post("/v1/classify", json={"text": 5})
        r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'feedback_nlp_requests_total{method="POST",route="/v1/classify",status="200"} 1.0' in text
    assert 'feedback_nlp_requests_total{method="POST",route="/v1/classify",status="422"} 1.0' in text
    assert 'feedback_nlp_request_duration_seconds_count{route="/v1/classify"} 2.0' in text
    assert "feedback_nlp_batch_size_bucket" in text and "feedback_nlp_queue_depth 0.0" in text
    assert "feedback_nlp_comments_total 2.0" in text
    assert 'feedback_nlp_theme_comments_total{theme="not_solved"} 1.0' in text


# --------------------------------------------------------------------------- auth

@pytest.mark.anyio
async def test_api_keys_from_the_environment(settings, monkeypatch):
    monkeypatch.setenv("FEEDBACK_NLP_API_KEYS", "key-one, key-two")
    async with serving(settings()) as client:  # readyz stays open
        assert (await client.get("/healthz")).status_code == 200
        for headers in ({}, {"X-API-Key": "nope"}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic a2V5LW9uZQ=="}):
            r = await client.post("/v1/classify", json={"text": "hi"}, headers=headers)
            assert r.status_code == 401 and error_code(r) == "unauthorized", headers
        for path in ("/v1/model", "/metrics"):
            assert (await client.get(path)).status_code == 401
        assert (await client.post("/v1/classify", json={"text": "hi"}, headers={"X-API-Key": "key-two"})).status_code == 200
        assert (await client.post("/v1/classify", json={"text": "hi"}, headers={"Authorization": "Bearer key-one"})).status_code == 200
        assert (await client.get("/metrics", headers={"Authorization": "Bearer key-one"})).status_code == 200


def signed(secret: str, body: bytes, when: datetime) -> dict:
    timestamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


@pytest.mark.anyio
async def test_webhook_signature(settings):
    body = json.dumps({"items": [{"id": "1234", "text": RUDE}]}).encode()
    now = datetime.now(timezone.utc)
    async with serving(settings(webhook_secret="s3cret")) as client:
        r = await client.post("/v1/classify", content=body, headers=signed("s3cret", body, now))
        assert r.status_code == 200 and r.json()["results"][0]["id"] == "1234"
        r = await client.post("/v1/classify", content=body, headers=signed("wrong", body, now))
        assert r.status_code == 401 and "does not match" in r.json()["error"]["message"]
        tampered = body.replace(b"1234", b"9999")
        r = await client.post("/v1/classify", content=tampered, headers=signed("s3cret", body, now))
        assert r.status_code == 401
        r = await client.post("/v1/classify", content=body, headers=signed("s3cret", body, now - timedelta(minutes=10)))
        assert r.status_code == 401 and "timestamp" in r.json()["error"]["message"]
        r = await client.post("/v1/classify", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 401  # unsigned, and no API keys configured
        assert (await client.get("/readyz")).status_code == 200


# --------------------------------------------------------------------------- limits and validation

@pytest.mark.anyio
@pytest.mark.parametrize("streamed", [False, True])
async def test_body_over_2mb_is_413(settings, calls, streamed):
    body = json.dumps({"text": "x" * (2 * 1024 * 1024 + 10)}).encode()

    async def chunks():  # no Content-Length: the limit must hold while reading
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    content = chunks() if streamed else body
    async with serving(settings()) as client:
        n = len(calls["sizes"])
        r = await client.post("/v1/classify", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "too_large"
    assert len(calls["sizes"]) == n


@pytest.mark.anyio
async def test_more_than_256_items_is_rejected_clearly(settings):
    async with serving(settings()) as client:
        r = await client.post("/v1/classify", json={"items": [{"text": "ok"}] * 257})
        assert (await client.post("/v1/classify", json={"items": [{"text": "ok"}] * 256})).status_code == 200
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "items" in message and "256" in message


@pytest.mark.anyio
@pytest.mark.parametrize("payload, field", [
    ({"items": [{"id": "a", "text": 5}]}, "body.items.0.text"),
    ({"text": ["a list"]}, "body.text"),
    ({"items": [{"id": {"x": 1}, "text": "ok"}]}, "body.items.0.id"),
    ({"items": "not a list"}, "body.items"),
    ({"text": "a", "items": [{"text": "b"}]}, "not both"),
    ({}, "not both or neither"),
])
async def test_wrong_types_are_422_naming_the_field(settings, payload, field):
    async with serving(settings()) as client:
        r = await client.post("/v1/classify", json=payload)
    assert r.status_code == 422 and error_code(r) == "invalid_request"
    assert field in r.json()["error"]["message"]


@pytest.mark.anyio
async def test_library_errors_map_through_one_handler(settings, calls):
    async with serving(settings()) as client:
        calls["error"] = InvalidInputError("row 1: text must be a string")
        r = await client.post("/v1/classify", json={"text": "x"})
    assert r.status_code == 422 and r.json() == {"error": {"code": "invalid_input", "message": "row 1: text must be a string"}}


# --------------------------------------------------------------------------- idempotency, batching, back-pressure

@pytest.mark.anyio
async def test_idempotency_key_replays_without_reclassifying(settings, calls):
    async with serving(settings()) as client:
        n = len(calls["sizes"])
        payload = {"items": [{"id": "INC1", "text": RUDE}]}
        first = await client.post("/v1/classify", json=payload, headers={"Idempotency-Key": "abc"})
        again = await client.post("/v1/classify", json=payload, headers={"Idempotency-Key": "abc"})
        assert first.status_code == again.status_code == 200
        assert again.content == first.content  # same request_id too
        assert len(calls["sizes"]) == n + 1
        other = await client.post("/v1/classify", json=payload, headers={"Idempotency-Key": "def"})
        assert other.json()["request_id"] != first.json()["request_id"]
        assert len(calls["sizes"]) == n + 2
        # Duplicates delivered at the same time share one model call.
        calls["delay"] = 0.1
        both = await asyncio.gather(*[client.post("/v1/classify", json=payload, headers={"Idempotency-Key": "ghi"})
                                      for _ in range(2)])
        assert both[0].content == both[1].content and len(calls["sizes"]) == n + 3


@pytest.mark.anyio
async def test_concurrent_requests_share_model_calls(settings, calls):
    async with serving(settings(max_batch=64, max_wait_ms=20)) as client:
        n = len(calls["sizes"])
        calls["delay"] = 0.1
        texts = [f"comment number {i}, still broken" for i in range(24)]
        responses = await asyncio.gather(*[client.post("/v1/classify", json={"text": t}) for t in texts])
        metrics = (await client.get("/metrics")).text
    assert all(r.status_code == 200 for r in responses)
    sizes = calls["sizes"][n:]
    assert sum(sizes) == 24 and len(sizes) <= 6, sizes
    assert "feedback_nlp_batch_size_count" in metrics


@pytest.mark.anyio
async def test_full_queue_answers_429_with_retry_after(settings, calls):
    async with serving(settings(max_queue=1, max_wait_ms=0, max_batch=1)) as client:
        calls["delay"] = 0.2
        responses = await asyncio.gather(*[client.post("/v1/classify", json={"text": f"t{i}"}) for i in range(6)])
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 429 in statuses and max(statuses) < 500, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1 and error_code(refused) == "overloaded"


@pytest.mark.anyio
async def test_requests_beyond_the_concurrency_limit_get_429_never_5xx_and_probes_still_answer(settings, calls):
    async with serving(settings(limit_concurrency=2, max_wait_ms=0, max_batch=1)) as client:
        calls["delay"] = 0.3
        posts = [asyncio.ensure_future(client.post("/v1/classify", json={"text": f"t{i}"})) for i in range(5)]
        await asyncio.sleep(0.1)  # the first two are being answered
        probes = [await client.get(path) for path in ("/healthz", "/readyz", "/metrics")]
        responses = await asyncio.gather(*posts)
        after = await client.post("/v1/classify", json={"text": "later"})
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429], statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert error_code(refused) == "overloaded" and refused.headers["retry-after"] == "1"
    assert refused.headers["x-request-id"]
    assert [p.status_code for p in probes] == [200, 200, 200]
    assert after.status_code == 200  # the slots are given back


# --------------------------------------------------------------------------- logs

@pytest.mark.anyio
async def test_logs_are_structured_and_never_hold_comment_text(settings, caplog):
    secret = "zebra-sapphire-password"
    caplog.set_level(logging.DEBUG)
    async with serving(settings(api_keys="k")) as client:
        ok = {"X-API-Key": "k"}
        await client.post("/v1/classify", json={"items": [{"id": "INC9", "text": f"{secret} still broken"}]}, headers=ok)
        await client.post("/v1/classify", json={"items": [{"text": f"{secret} rude"}]})  # 401
        await client.post("/v1/classify", json={"items": [{"text": secret, "id": [secret]}]}, headers=ok)  # 422
        await client.post("/v1/classify", json={"text": secret * 100_000}, headers=ok)  # 413
        await client.post("/v1/classify", json={"text": secret}, headers={**ok, "Idempotency-Key": "x"})
    assert secret not in caplog.text
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.startswith("serve")]
    requests = [line for line in lines if line["event"] == "request" and line["path"] == "/v1/classify"]
    assert [line["status"] for line in requests] == [200, 401, 422, 413, 200]
    assert requests[0]["items"] == 1 and requests[0]["request_id"] and requests[0]["latency_ms"] >= 0


# --------------------------------------------------------------------------- fuzzing

def test_openapi_fuzzing_finds_no_server_errors(model_dir):
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error

    app = create_app(Settings(model=model_dir))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # also starts the app's lifespan
    readyz = schema["/readyz"]["GET"]
    deadline = time.monotonic() + 20
    while readyz.Case().call().status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    strategy = st.one_of(schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
                         schema.as_strategy(schemathesis.GenerationMode.NEGATIVE))

    @given(case=strategy)
    @hsettings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def no_server_errors(case):
        case.call_and_validate(checks=[not_a_server_error])

    no_server_errors()


# --------------------------------------------------------------------------- the real model

@pytest.mark.real_model
@pytest.mark.anyio
async def test_real_model_serves_the_full_path():
    if not (ROOT / "models" / "default" / "manifest.json").is_file():
        pytest.skip("models/default/manifest.json is absent: train and ship the default model first")
    async with serving(Settings()) as client:  # no model named: load_model() picks the default
        r = await client.post("/v1/classify", json={"items": [{"id": "INC1", "text": "Quick fix but the technician was rude"}]})
    assert r.status_code == 200
    result = r.json()["results"][0]
    assert {"feedback_speed_positive", "feedback_attitude_negative"} <= set(result["tags"]), result


@pytest.mark.anyio
async def test_model_threads_come_from_the_settings(settings, monkeypatch):
    seen = []
    real_load = app_module.load_model

    def load(path, **options):
        seen.append(options)
        return real_load(path, **options)

    monkeypatch.setattr(app_module, "load_model", load)
    monkeypatch.setenv("FEEDBACK_NLP_THREADS", "3")
    async with serving(settings()) as client:
        assert (await client.post("/v1/classify", json={"text": "quick fix"})).status_code == 200
    assert seen == [{"threads": 3}]
    monkeypatch.delenv("FEEDBACK_NLP_THREADS")
    assert Settings().threads == 2  # the default: measured best on 2 cores with the language engines (BENCHMARKS §4)


def test_malloc_thresholds_are_pinned_on_glibc_and_can_be_left_alone():
    import sys

    from serve.memory import pin_malloc_thresholds

    assert pin_malloc_thresholds(0) is False
    if sys.platform.startswith("linux"):
        import platform

        assert pin_malloc_thresholds(4096 * 1024) is (platform.libc_ver()[0] == "glibc")
    assert Settings().malloc_mmap_threshold_kb == 4096


def test_malloc_arenas_are_limited_through_mallopt_and_zero_leaves_glibc_alone(monkeypatch):
    import serve.memory as memory

    from types import SimpleNamespace

    calls = []
    libc = SimpleNamespace(mallopt=lambda option, value: calls.append((option, value)) or 1)
    monkeypatch.setattr(memory, "_libc", lambda: libc)
    assert memory.limit_arenas(2) is True
    assert calls == [(memory.M_ARENA_MAX, 2)]
    assert memory.limit_arenas(0) is False and len(calls) == 1  # 0: glibc's own default, nothing called
    monkeypatch.setattr(memory, "_libc", lambda: None)  # no glibc (musl, macOS)
    assert memory.limit_arenas(2) is False
    assert Settings().malloc_arenas == 2


def test_trimmer_trims_at_most_once_per_interval(monkeypatch):
    import serve.memory as memory

    from types import SimpleNamespace

    trims = []

    def malloc_trim(pad):
        trims.append(pad)
        return 1

    clock = iter([0.0, 0.5, 1.0, 2.5, 2.6]).__next__
    monkeypatch.setattr(memory.time, "monotonic", clock)
    monkeypatch.setattr(memory, "_libc", lambda: SimpleNamespace(malloc_trim=malloc_trim))
    trim = memory.trimmer(every_s=2.0)  # reads the clock: 0.0
    trim()
    assert trims == []  # 0.5 s after
    trim()
    assert trims == []  # 1.0
    trim()
    assert trims == [0]  # 2.5: trimmed once
    trim()
    assert trims == [0]  # 2.6: not again so soon
    assert memory.trimmer(every_s=0) is None
    assert Settings().malloc_trim_every_s == 2.0


@pytest.mark.anyio
async def test_batcher_housekeeping_runs_after_the_answers_went_out():
    from serve.batcher import Batcher

    released = threading.Event()
    seen = []

    def housekeeping():
        seen.append("housekeeping")
        released.wait(10)  # held until the caller has its answer: it must not be waiting for this

    batcher = Batcher(lambda texts: [t.upper() for t in texts], max_wait_ms=0, after_batch=housekeeping)
    batcher.start()
    try:
        assert await asyncio.wait_for(batcher.submit(["a", "b"]), 5) == ["A", "B"]
        released.set()
        assert await asyncio.wait_for(batcher.submit(["c"]), 5) == ["C"]
        assert seen == ["housekeeping"] * len(seen) and len(seen) >= 1
    finally:
        released.set()
        await batcher.stop()


@pytest.mark.anyio
async def test_batcher_releases_memory_once_per_quiet_spell():
    from serve.batcher import Batcher

    idle = []
    quiet = threading.Event()
    batcher = Batcher(lambda texts: [t.upper() for t in texts], max_wait_ms=0, idle_after_s=0.2,
                      when_idle=lambda: idle.append(time.monotonic()) or quiet.set())
    batcher.start()
    try:
        await asyncio.sleep(0.4)
        assert idle == []  # nothing was served yet: nothing to give back
        for _ in range(5):  # requests closer together than idle_after_s: no release in between
            assert await asyncio.wait_for(batcher.submit(["a"]), 5) == ["A"]
            await asyncio.sleep(0.05)
        assert idle == []
        assert await asyncio.to_thread(quiet.wait, 5)
        await asyncio.sleep(0.5)
        assert len(idle) == 1  # once per quiet spell, not every idle_after_s
        quiet.clear()
        assert await asyncio.wait_for(batcher.submit(["b"]), 5) == ["B"]
        assert await asyncio.to_thread(quiet.wait, 5)
        assert len(idle) == 2
    finally:
        await batcher.stop()


@pytest.mark.anyio
async def test_memory_loading_freed_goes_back_once_the_background_loading_is_done(settings, monkeypatch, model_dir):
    import serve.app as serve_app

    order = []

    class Routed:  # a model with language engines that load after ready, as the shipped one
        def __init__(self, model):
            self.model, self.manifest_ = model, model.manifest_

        def classify(self, texts, languages=None):
            return self.model.classify(texts)

        def load_engines(self):
            order.append("engines")

        def load_sentence_splitters(self):
            order.append("splitters")

    monkeypatch.setattr(serve_app, "load_model", lambda path, threads=None: Routed(load_model(model_dir)))
    monkeypatch.setattr(serve_app, "releaser", lambda: lambda: order.append("release"))
    app = create_app(settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            await wait_ready(client)
            await app.state.warming
    assert order == ["engines", "splitters", "release"]
    order.clear()
    app = create_app(settings(malloc_trim_idle_s=0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            await wait_ready(client)
            await app.state.warming
    assert order == ["engines", "splitters"]  # 0: never


def test_releaser_trims_every_call(monkeypatch):
    import serve.memory as memory

    from types import SimpleNamespace

    trims = []
    monkeypatch.setattr(memory, "_libc", lambda: SimpleNamespace(malloc_trim=lambda pad: trims.append(pad) or 1))
    release = memory.releaser()
    release()
    release()
    assert trims == [0, 0]
    monkeypatch.setattr(memory, "_libc", lambda: None)  # no glibc
    assert memory.releaser() is None
    assert Settings().malloc_trim_idle_s == 1.0


def test_serve_command_passes_settings_to_uvicorn(monkeypatch, model_dir):
    import uvicorn
    from typer.testing import CliRunner

    from feedback_nlp.cli import app as cli_app

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: seen.update(kwargs, target=target))
    monkeypatch.setenv("FEEDBACK_NLP_KEEP_ALIVE_S", "90")
    monkeypatch.setenv("FEEDBACK_NLP_MODEL", str(model_dir))  # the command sets it for its workers; restored after
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # likewise
    result = CliRunner().invoke(cli_app, ["serve", "--model", str(model_dir), "--port", "8765", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert seen["target"] == "serve.app:create_app" and seen["factory"] is True
    assert (seen["port"], seen["workers"], seen["timeout_keep_alive"]) == (8765, 2, 90)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # set before torch loads in the workers
    # the client's idle timeout (httpx: 5 s) must end before the server's, or a reused connection can break
    monkeypatch.delenv("FEEDBACK_NLP_KEEP_ALIVE_S")
    CliRunner().invoke(cli_app, ["serve", "--model", str(model_dir)])
    assert seen["timeout_keep_alive"] > 60


# --------------------------------------------------------------------------- integrator defects (issue 17)

@pytest.mark.anyio
async def test_a_replayed_signed_request_is_refused(settings):
    body = json.dumps({"items": [{"id": "1234", "text": RUDE}]}).encode()
    now = datetime.now(timezone.utc)
    async with serving(settings(webhook_secret="s3cret")) as client:
        headers = signed("s3cret", body, now)
        assert (await client.post("/v1/classify", content=body, headers=headers)).status_code == 200
        again = await client.post("/v1/classify", content=body, headers=headers)
        assert again.status_code == 409 and error_code(again) == "replayed"
        # Signed anew (another timestamp), the same body is accepted.
        fresh = signed("s3cret", body, now + timedelta(seconds=1))
        assert (await client.post("/v1/classify", content=body, headers=fresh)).status_code == 200


@pytest.mark.anyio
async def test_an_idempotent_replay_carries_the_first_request_id_in_header_and_body(settings):
    async with serving(settings()) as client:
        payload = {"text": RUDE}
        first = await client.post("/v1/classify", json=payload, headers={"Idempotency-Key": "k1"})
        again = await client.post("/v1/classify", json=payload, headers={"Idempotency-Key": "k1", "X-Request-ID": "retry-2"})
    assert first.headers["x-request-id"] == first.json()["request_id"]
    assert again.headers["x-request-id"] == again.json()["request_id"] == first.json()["request_id"]


def test_openapi_says_exactly_one_of_text_and_items(model_dir):
    import jsonschema

    from serve.app import create_app
    from serve.settings import Settings

    schema = create_app(Settings(model=model_dir)).openapi()
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/ClassifyRequest",
                                                 "components": schema["components"]})
    assert validator.is_valid({"text": "a"}) and validator.is_valid({"items": [{"text": "a"}]})
    assert not validator.is_valid({"text": "a", "items": [{"text": "b"}]})
    assert not validator.is_valid({})


def test_openapi_lists_a_security_scheme_only_where_credentials_are_required(model_dir):
    from serve.app import create_app
    from serve.settings import Settings

    open_api = create_app(Settings(model=model_dir)).openapi()
    assert "securitySchemes" not in open_api.get("components", {})
    assert all("security" not in op for path in open_api["paths"].values() for op in path.values())
    keyed = create_app(Settings(model=model_dir, api_keys=["k"])).openapi()
    assert {"APIKeyHeader", "HTTPBearer"} <= set(keyed["components"]["securitySchemes"])
    for path in ("/v1/classify", "/v1/model", "/metrics"):
        assert keyed["paths"][path][next(iter(keyed["paths"][path]))]["security"]
    assert "security" not in keyed["paths"]["/healthz"]["get"]


@pytest.mark.anyio
async def test_docs_render_from_local_assets_only(settings):
    import re

    async with serving(settings()) as client:
        page = (await client.get("/docs")).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert assets and all(a.startswith("/") for a in assets), assets  # nothing from another host
        for asset in assets:
            assert (await client.get(asset)).status_code == 200, asset
        assert "/openapi.json" in page and (await client.get("/redoc")).status_code == 200


@pytest.mark.anyio
async def test_unparseable_json_is_a_json_error_with_the_documented_status(settings):
    async with serving(settings()) as client:
        r = await client.post("/v1/classify", content=b'{"text": "unterminated', headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and error_code(r) == "invalid_request"
        r = await client.post("/v1/classify", content=b'\xff\xfe{"text": "a"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and error_code(r) == "invalid_request" and "UTF-8" in r.json()["error"]["message"]
    docs = (Path(__file__).resolve().parent.parent / "docs" / "serving.md").read_text(encoding="utf-8")
    assert "| 422 | `invalid_request` | not JSON" in docs


@pytest.mark.anyio
async def test_cors_is_off_by_default_and_follows_the_setting(settings):
    preflight = {"Origin": "https://acme.service-now.com", "Access-Control-Request-Method": "POST"}
    async with serving(settings()) as client:
        r = await client.options("/v1/classify", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    async with serving(settings(cors_origins="https://acme.service-now.com")) as client:
        r = await client.options("/v1/classify", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://acme.service-now.com"
        r = await client.post("/v1/classify", json={"text": "ok"}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_serve_exits_with_its_own_code_when_the_port_is_taken(model_dir):
    import socket

    from typer.testing import CliRunner

    from feedback_nlp.cli import app as cli_app
    from serve.cli import PORT_IN_USE

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli_app, ["serve", "--model", str(model_dir), "--port", str(port)])
    assert result.exit_code == PORT_IN_USE != 3
    assert f"127.0.0.1:{port}" in result.output and "--port" in result.output


@pytest.mark.anyio
async def test_a_small_request_behind_a_giant_takes_its_turn():
    calls = []

    def model(texts):
        calls.append(len(texts))
        time.sleep(0.001 * sum(len(t) for t in texts) / 1000)
        return [t[:3] for t in texts]

    batcher = Batcher(model, max_wait_ms=0, max_batch_chars=40_000, max_delay_s=1000)
    batcher.start()
    try:
        done = []
        giant = asyncio.ensure_future(batcher.submit(["x" * 20_000] * 100))
        giant.add_done_callback(lambda _: done.append("giant"))
        await asyncio.sleep(0)  # the giant is queued first
        small = await batcher.submit(["one comment"])
        done.append("small")
        assert small == ["one"]
        assert (await giant) == ["xxx"] * 100
        assert done == ["small", "giant"]
        # The giant was cut into pieces of at most 40,000 characters; the small request rode with the first or second.
        assert max(calls) <= 3 and len(calls) >= 50
    finally:
        await batcher.stop()


@pytest.mark.anyio
async def test_work_that_would_wait_too_long_is_refused_at_once_with_retry_after():
    release = threading.Event()

    def model(texts):
        release.wait(5)
        return texts

    batcher = Batcher(model, max_wait_ms=0, max_batch_chars=10_000, max_delay_s=2, chars_per_s=100_000)
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.submit(["x" * 10_000] * 100))  # 1 MB: always taken on an empty queue
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull) as refused:
            await batcher.submit(["y" * 10_000] * 100)  # another ~10 s of work
        assert refused.value.retry_after >= 5
        small = asyncio.ensure_future(batcher.submit(["ok"]))  # a turn after one piece: admitted
        release.set()
        assert await small == ["ok"] and len(await first) == 100
    finally:
        release.set()
        await batcher.stop()


@pytest.mark.anyio
async def test_a_comment_the_model_fails_on_never_fails_the_others():
    def model(texts):
        if "boom" in texts:
            raise RuntimeError("tokenizer broke")
        return [t.upper() for t in texts]

    batcher = Batcher(model, max_wait_ms=20, item_error=lambda exc: {"error": type(exc).__name__})
    batcher.start()
    try:
        mixed, other = await asyncio.gather(batcher.submit(["a", "boom", "b"]), batcher.submit(["c"]))
        assert mixed == ["A", {"error": "RuntimeError"}, "B"] and other == ["C"]
        with pytest.raises(RuntimeError):  # nothing to answer with: the request fails
            await batcher.submit(["boom"])
    finally:
        await batcher.stop()


@pytest.mark.anyio
async def test_http_answers_the_other_comments_when_one_fails(settings, monkeypatch):
    original = ThemeClassifier.classify

    def classify(self, X, languages=None):
        X = list(X)
        if any("explode" in x for x in X):
            raise TypeError("inside the tokenizer")
        return original(self, X) if languages is None else original(self, X, languages)

    monkeypatch.setattr(ThemeClassifier, "classify", classify)
    async with serving(settings(max_wait_ms=50)) as client:
        mixed, alone = await asyncio.gather(
            client.post("/v1/classify", json={"items": [{"id": 1, "text": RUDE}, {"id": 2, "text": "explode"}]}),
            client.post("/v1/classify", json={"text": RUDE}))
    assert mixed.status_code == 200 and alone.status_code == 200
    first, second = mixed.json()["results"]
    assert first["themes"] and "error" not in first or first.get("error") is None
    assert second["error"]["code"] == "model_error" and second["themes"] == []
    assert alone.json()["results"][0]["themes"]


@pytest.mark.anyio
async def test_a_trickled_body_is_cut_off_with_408(settings):
    async def trickle():
        yield b'{"text": "slow'
        await asyncio.sleep(1.0)
        yield b' client"}'

    async with serving(settings(body_timeout_s=0.3)) as client:
        r = await client.post("/v1/classify", content=trickle(), headers={"Content-Type": "application/json"})
        assert r.status_code == 408 and error_code(r) == "request_timeout"
        assert (await client.post("/v1/classify", json={"text": "on time"})).status_code == 200


def test_serve_command_caps_open_connections(monkeypatch, model_dir):
    import uvicorn
    from typer.testing import CliRunner

    from feedback_nlp.cli import app as cli_app

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("FEEDBACK_NLP_MODEL", str(model_dir))
    monkeypatch.setenv("FEEDBACK_NLP_MAX_CONNECTIONS", "64")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--model", str(model_dir), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen["limit_concurrency"] == 64


def test_any_json_string_over_http_is_answered_never_5xx(model_dir):
    """Surrogates (Cs), private use (Co), unassigned (Cn) and NUL: one answer per comment, in one request."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    anything = st.text(alphabet=st.characters(exclude_categories=()), max_size=80)

    async def post_all(batches):
        async with serving(Settings(model=model_dir)) as client:
            for texts in batches:
                body = json.dumps({"items": [{"id": i, "text": t} for i, t in enumerate(texts)]})  # ASCII-escaped
                r = await client.post("/v1/classify", content=body.encode(), headers={"Content-Type": "application/json"})
                assert r.status_code == 200, r.text
                assert [x["id"] for x in r.json()["results"]] == list(range(len(texts)))

    seen: list[list[str]] = []

    @given(st.lists(anything, min_size=1, max_size=5))
    @hsettings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def collect(texts):
        seen.append(texts)

    collect()
    asyncio.run(post_all(seen))


def test_every_setting_is_documented_in_the_serving_guide():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "serving.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`FEEDBACK_NLP_{name.upper()}`" not in docs]
    assert not missing, f"docs/serving.md does not list: {missing}"
