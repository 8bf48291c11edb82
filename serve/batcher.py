"""Dynamic micro-batching: concurrent requests share one model call.

Requests wait in a bounded queue (counted in comments). One worker task takes the oldest
requests, waiting at most ``max_wait_ms`` after the oldest arrived for more to join, up
to ``max_batch`` comments, and runs the model on one worker thread so the event loop
keeps answering. A busy model lets the queue fill by itself, so under load batches grow
without extra waiting. When the queue is full new requests are refused at once
(:class:`QueueFull`) rather than piling up behind a backlog.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


class QueueFull(Exception):
    """The queue holds ``max_queue`` comments already; try again shortly."""


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(
        self,
        fn: Callable[[list[str]], list],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        on_batch: Callable[[int], None] | None = None,
        after_batch: Callable[[], None] | None = None,
    ):
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._after_batch = after_batch  # housekeeping in the model's thread, once the answers are out
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # comments waiting, not yet handed to the model
        self._arrival = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback-nlp-model")
        self._worker: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        return self._queued

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="feedback-nlp-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        for job in self._jobs:
            job.future.cancel()
        self._jobs.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: Sequence[str]) -> list:
        """The model's answers for ``texts``, in order; raises :class:`QueueFull`."""
        # An empty queue always takes a request, so a request larger than max_queue still runs.
        if self._queued and self._queued + len(texts) > self.max_queue:
            raise QueueFull(f"{self._queued} comments are waiting for the model")
        job = _Job(list(texts), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._queued += len(job.texts)
        self._arrival.set()
        return await job.future

    async def _run(self) -> None:
        while True:
            while not self._jobs:
                self._arrival.clear()
                await self._arrival.wait()
            deadline = self._jobs[0].arrived + self.max_wait
            while self._queued < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), left)
                except TimeoutError:
                    break
            batch = self._take()
            if not batch:  # every caller in it went away
                continue
            texts = [text for job in batch for text in job.texts]
            if self._on_batch is not None:
                self._on_batch(len(texts))
            try:
                results = await asyncio.get_running_loop().run_in_executor(self._executor, self._fn, texts)
            except Exception as exc:
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in batch:
                if not job.future.done():  # a caller that went away has cancelled its future
                    job.future.set_result(results[start : start + len(job.texts)])
                start += len(job.texts)
            if self._after_batch is not None:
                # Queued on the model's one thread, not awaited: callers already have their answers;
                # the next batch waits for it only if it is ready before the housekeeping is done.
                self._executor.submit(self._after_batch)

    def _take(self) -> list[_Job]:
        """The oldest jobs that fit in one batch (always at least one)."""
        batch, size = [], 0
        while self._jobs and (not batch or size + len(self._jobs[0].texts) <= self.max_batch):
            job = self._jobs.popleft()
            self._queued -= len(job.texts)
            if job.future.done():
                continue
            batch.append(job)
            size += len(job.texts)
        return batch
