"""How the fast runtime spends a CPU: model calls cut to waste little padding, run side by
side on single-threaded sessions, and everything a first answer needs loaded at once.

The speed tricks of the project live here and nowhere else; encoders and the classifier
call them and stay plain. Nothing here changes process-wide settings: each model session
is given its own thread count (see :class:`CallPool`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from .languages import identifier
from .text import sentencizer

T = TypeVar("T")
R = TypeVar("R")


def length_batches(lengths: Sequence[int] | np.ndarray, max_rows: int, call_cost: int) -> list[np.ndarray]:
    """Row indices cut into model calls, longest first, that waste the least work on padding.

    A call costs about ``rows x width`` tokens (every row is padded to the longest) plus a
    fixed ``call_cost`` in token-equivalents. Rows sorted by length are split where that
    sum is smallest (dynamic programming over the split points, at most ``max_rows`` per
    call). Two dozen survey sentences of mixed length in one call pay ~2.6x their real
    tokens in padding; split this way, ~1.1x (BENCHMARKS.md section 4).
    """
    n = len(lengths)
    order = np.argsort(-np.asarray(lengths), kind="stable")
    widths = np.asarray(lengths, dtype=np.int64)[order]
    max_rows = max(1, int(max_rows))
    best = np.zeros(n + 1, dtype=np.int64)  # best[j]: cheapest way to run the first j rows
    cut = np.zeros(n + 1, dtype=np.int64)  # where the last call of that way starts
    for j in range(1, n + 1):
        starts = np.arange(max(0, j - max_rows), j)
        costs = best[starts] + call_cost + (j - starts) * widths[starts]
        k = int(np.argmin(costs))
        best[j], cut[j] = costs[k], starts[k]
    calls, j = [], n
    while j > 0:
        calls.append(order[cut[j] : j])
        j = int(cut[j])
    return calls[::-1]


def spread_calls(calls: Sequence[np.ndarray], workers: int) -> list[np.ndarray]:
    """``calls`` with the largest cut in two (alternate rows) until each of ``workers`` has one.

    A small batch — one comment on an idle server — is often a single call; halving it
    costs one more call's fixed cost but lets a second core take half the rows. Alternate
    rows keep each half sorted longest first, so each still pads to its first row.
    """
    calls = list(calls)
    while len(calls) < workers:
        i = max(range(len(calls)), key=lambda k: len(calls[k]), default=None)
        if i is None or len(calls[i]) < 2:
            break
        rows = calls.pop(i)
        calls += [rows[0::2], rows[1::2]]
    return calls


class CallPool:
    """Runs independent model calls on up to ``workers`` threads, each call single-threaded.

    On this kind of machine two single-threaded onnxruntime calls side by side finish ~1.7x
    sooner than the same calls one after the other on two intra-op threads (BENCHMARKS.md
    section 4): survey sentences make small matrices, and splitting one small product
    across threads costs more in hand-offs than it gains. The threads start on first use.
    """

    def __init__(self, workers: int, name: str):
        self.workers = max(1, int(workers))
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def map(self, fn: Callable[[T], R], calls: Sequence[T]) -> list[R]:
        """``fn`` of each call, in order; the first error is raised here."""
        if self.workers == 1 or len(calls) < 2:
            return [fn(call) for call in calls]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self._name)
        return [future.result() for future in [self._executor.submit(fn, call) for call in calls]]

    def __getstate__(self):
        return {"workers": self.workers, "name": self._name}  # threads and locks are made again where it lands

    def __setstate__(self, state):
        self.__init__(state["workers"], state["name"])


_warm: weakref.WeakSet = weakref.WeakSet()
_warm_lock = threading.Lock()


def warm_up(encoder, language: str = "en") -> None:
    """Load the sentence splitter, the language identifier and ``encoder``'s weights, overlapped.

    Together they are most of the time to a first answer. Much of the encoder and identifier
    loading runs outside the GIL (zlib/LZMA inflating the USE weights and the identifier's
    model, onnxruntime building its session, sentencepiece), so it proceeds in threads while
    spaCy imports. Done once per encoder object; later calls return at once.
    """
    try:
        if encoder in _warm:
            return
    except TypeError:  # an encoder that cannot be weakly referenced: its loading is idempotent anyway
        pass
    with _warm_lock:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="feedback-nlp-load") as pool:
            languages = pool.submit(identifier)
            loading = pool.submit(getattr(encoder, "load", lambda: None))
            sentencizer(language)
            loading.result()
            languages.result()
        try:
            _warm.add(encoder)
        except TypeError:
            pass
