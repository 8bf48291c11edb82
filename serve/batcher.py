"""Dynamic micro-batching: concurrent requests share one model call, and none waits behind a giant.

Requests wait in a queue. One worker task builds each model call from the queued requests,
oldest first, waiting at most ``max_wait_ms`` after the oldest arrived for more to join, up
to ``max_batch`` comments and ``max_batch_chars`` characters. A request bigger than that is
split: it contributes one piece to a call and goes to the back of the queue, so a small
request that arrives behind a 2 MB one is answered after at most one piece of it. The model
runs on one worker thread so the event loop keeps answering.

Admission is by work, not by count: the batcher keeps a running estimate of the model's
speed (characters per second) and refuses a request at once (:class:`QueueFull`, with an
honest ``retry_after``) when its expected wait would pass ``max_delay_s``, or when
``max_queue`` comments already wait. An empty queue always takes a request.

A model call that fails never fails the requests beside it: the batch is retried request by
request, and a request's comments one by one; a comment that fails alone gets ``item_error``'s
answer while the others are answered (a request whose every comment fails gets the error).

Housekeeping runs in the model's thread, never in a caller's way: ``after_batch`` once a
batch's answers are out, ``when_idle`` once no request has arrived for ``idle_after_s``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


class QueueFull(Exception):
    """The expected wait is too long or the queue is full; try again after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Job:
    texts: list
    sizes: list[int]
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)
    results: list = field(default_factory=list)
    failed: list = field(default_factory=list)  # exceptions of the comments that failed alone
    next: int = 0  # the first comment not yet handed to the model
    pending: int = 0  # comments handed to the model and not yet answered

    @property
    def left(self) -> int:
        return len(self.texts) - self.next


class Batcher:
    def __init__(
        self,
        fn: Callable[[list], list],
        *,
        max_batch: int = 64,
        max_batch_chars: int = 32_000,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        max_delay_s: float = 5.0,
        size: Callable[[object], int] = lambda item: len(item) if isinstance(item, str) else len(item[0]),
        item_error: Callable[[Exception], object] | None = None,
        on_batch: Callable[[int], None] | None = None,
        after_batch: Callable[[], None] | None = None,
        when_idle: Callable[[], None] | None = None,
        idle_after_s: float = 1.0,
        chars_per_s: float = 50_000.0,
        calls: int = 1,
    ):
        self._fn = fn
        self.max_batch = max_batch
        self.max_batch_chars = max_batch_chars
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.max_delay_s = max_delay_s
        self._size = size
        self._item_error = item_error
        self._on_batch = on_batch
        self._after_batch = after_batch  # housekeeping in the model's thread, once the answers are out
        # Housekeeping in the model's thread once nothing has arrived for ``idle_after_s``: once per quiet spell.
        self._when_idle, self.idle_after_s, self._idle_done = when_idle, idle_after_s, True
        self.chars_per_s = chars_per_s  # running estimate of the model's speed (starts cautious)
        self._jobs: deque[_Job] = deque()
        self._queued = 0  # comments waiting, not yet handed to the model
        self._queued_chars = 0
        self._arrival = asyncio.Event()
        # ``calls`` model calls may run at once (each on its own thread): while one is in the
        # encoder's native code (no GIL), the next batch's Python work proceeds.
        self.calls = calls
        self._slots = asyncio.Semaphore(calls)
        self._tasks: set[asyncio.Task] = set()
        self._executor = ThreadPoolExecutor(max_workers=calls, thread_name_prefix="feedback-nlp-model")
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
        for task in list(self._tasks):
            task.cancel()
        for job in self._jobs:
            job.future.cancel()
        self._jobs.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def expected_wait(self, chars: int) -> float:
        """Seconds until a new request of ``chars`` characters would be answered, roughly: one
        piece of each request ahead of it (they take turns), then its own pieces interleaved."""
        ahead = sum(min(self.max_batch_chars, sum(j.sizes[j.next:])) for j in self._jobs)
        others = max(1, len(self._jobs)) if chars > self.max_batch_chars else 0
        return (ahead + chars + others * self.max_batch_chars * max(0, math.ceil(chars / self.max_batch_chars) - 1)) / self.chars_per_s

    async def submit(self, texts: Sequence) -> list:
        """The model's answers for ``texts``, in order; raises :class:`QueueFull`."""
        sizes = [max(1, self._size(t)) for t in texts]
        if self._jobs:
            if self._queued + len(texts) > self.max_queue:
                raise QueueFull(f"{self._queued} comments are waiting for the model",
                                self._retry_after(self._queued_chars))
            wait = self.expected_wait(sum(sizes))
            if wait > self.max_delay_s:
                raise QueueFull(f"this request would wait about {wait:.0f} s (the limit is {self.max_delay_s:g} s)",
                                self._retry_after(self._queued_chars))
        job = _Job(list(texts), sizes, asyncio.get_running_loop().create_future())
        job.results = [None] * len(texts)
        self._jobs.append(job)
        self._queued += len(texts)
        self._queued_chars += sum(sizes)
        self._arrival.set()
        return await job.future

    def _retry_after(self, chars: int) -> int:
        return max(1, math.ceil(chars / self.chars_per_s))

    async def _run(self) -> None:
        while True:
            while not self._jobs:
                self._arrival.clear()
                if self._idle_done:
                    await self._arrival.wait()
                    continue
                try:
                    await asyncio.wait_for(self._arrival.wait(), self.idle_after_s)
                except TimeoutError:
                    self._idle_done = True
                    self._executor.submit(self._when_idle)
            deadline = self._jobs[0].arrived + self.max_wait
            while (self._queued < self.max_batch and self._queued_chars < self.max_batch_chars
                   and (left := deadline - time.monotonic()) > 0):
                self._arrival.clear()
                try:
                    await asyncio.wait_for(self._arrival.wait(), left)
                except TimeoutError:
                    break
            await self._slots.acquire()  # at most `calls` model calls at once
            pieces = self._take()
            if not pieces:  # every caller in it went away
                self._slots.release()
                continue
            self._idle_done = self._when_idle is None
            task = asyncio.get_running_loop().create_task(self._serve(pieces))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, pieces: list[tuple[_Job, int, int]]) -> None:
        """One model call for ``pieces``, its answers delivered (isolating a failure)."""
        try:
            items = [(job, i) for job, lo, hi in pieces for i in range(lo, hi)]
            if self._on_batch is not None:
                self._on_batch(len(items))
            t0 = time.perf_counter()
            answers = await self._call([job.texts[i] for job, i in items])
            seconds = time.perf_counter() - t0
            if answers is not None:
                chars = sum(job.sizes[i] for job, i in items)
                if seconds > 0.01:  # too short a call says nothing about speed
                    # Calls side by side share the cores: the speed per call is divided among them.
                    self.chars_per_s = 0.7 * self.chars_per_s + 0.3 * (chars / seconds) * self.calls
                for (job, i), answer in zip(items, answers):
                    self._answer(job, i, answer)
            else:
                for job, lo, hi in pieces:
                    await self._isolate(job, lo, hi)
            if self._after_batch is not None:
                # Queued on the model's threads, not awaited: callers already have their answers.
                self._executor.submit(self._after_batch)
        finally:
            self._slots.release()

    async def _call(self, texts: list) -> list | None:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._fn, texts)
        except Exception:
            return None

    async def _isolate(self, job: _Job, lo: int, hi: int) -> None:
        """A failed call: this request's piece alone, then its comments one by one."""
        if hi - lo > 1:
            answers = await self._call(job.texts[lo:hi])
            if answers is not None:
                for i, answer in zip(range(lo, hi), answers):
                    self._answer(job, i, answer)
                return
        for i in range(lo, hi):
            try:
                [answer] = await asyncio.get_running_loop().run_in_executor(self._executor, self._fn, [job.texts[i]])
            except Exception as exc:
                job.failed.append(exc)
                answer = self._item_error(exc) if self._item_error is not None else None
            self._answer(job, i, answer)

    def _answer(self, job: _Job, i: int, answer) -> None:
        job.results[i] = answer
        job.pending -= 1
        if job.pending or job.left or job.future.done():
            return
        if job.failed and (self._item_error is None or len(job.failed) == len(job.texts)):
            job.future.set_exception(job.failed[0])  # nothing to answer with: the request fails
        else:
            job.future.set_result(job.results)

    def _take(self) -> list[tuple[_Job, int, int]]:
        """Pieces (job, first, end) for one model call: requests oldest first, each giving as
        many comments as fit; one that does not fit whole goes to the back of the queue."""
        pieces: list[tuple[_Job, int, int]] = []
        count = chars = 0
        unfinished: list[_Job] = []
        while self._jobs and count < self.max_batch and chars < self.max_batch_chars:
            job = self._jobs[0]
            if job.future.done():  # its caller went away
                self._jobs.popleft()
                self._queued -= job.left
                self._queued_chars -= sum(job.sizes[job.next:])
                continue
            lo = hi = job.next
            # The first comment of a call always goes in, however long; then whatever fits.
            while hi < len(job.texts) and count < self.max_batch and (
                    not pieces and hi == lo or chars + job.sizes[hi] <= self.max_batch_chars):
                chars += job.sizes[hi]
                count += 1
                hi += 1
            if hi == lo:  # nothing of it fits this call: it stays first in line
                break
            self._jobs.popleft()
            pieces.append((job, lo, hi))
            job.next, job.pending = hi, job.pending + (hi - lo)
            self._queued -= hi - lo
            self._queued_chars -= sum(job.sizes[lo:hi])
            if job.left:
                unfinished.append(job)
        # A request with comments left takes its next turn behind those that were waiting.
        self._jobs.extend(unfinished)
        return pieces
