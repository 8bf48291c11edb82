"""Prometheus metrics, one registry per app (so tests and embedders can make many apps)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "feedback_nlp_requests", "HTTP requests answered.", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "feedback_nlp_request_duration_seconds", "Time to answer a request.", ["route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "feedback_nlp_batch_size", "Comments per model call.", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge(
            "feedback_nlp_queue_depth", "Comments waiting for the model.", registry=self.registry
        )
        self.comments = Counter("feedback_nlp_comments", "Comments classified.", registry=self.registry)
        self.themes = Counter(
            "feedback_nlp_theme_comments", "Comments tagged with each theme.", ["theme"], registry=self.registry
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_results(self, results: list[dict]) -> None:
        self.comments.inc(len(results))
        for result in results:
            for hit in result["themes"]:
                self.themes.labels(hit["theme"]).inc()

    def track_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
