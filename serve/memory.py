"""Keep a long-running server's resident memory from creeping up (glibc only).

glibc serves a large allocation (the numpy buffers of one model call) with its own mmap and
returns it to the system when freed — but on each such free it raises its mmap threshold to
that size (up to 32 MB). After a few big batches, buffers of every size come from the heap
instead, and a heap fragmented by varying batch shapes is rarely given back: RSS grows for
a long time under steady load. Setting the threshold explicitly turns the adjustment off
(mallopt(3)), so large temporary buffers keep going back to the system.

Not too low: every mmapped buffer is fresh pages the kernel must fault in and zero. At
256 KB the encoders' per-call buffers all went that way and the model ran at half speed
(100 against 200 comments/s in calls of 24); at 4 MB it runs at full speed. Buffers under
4 MB then come from the heap, and torch's leave holes there: :func:`trimmer` hands the free
pages back every few seconds (BENCHMARKS.md section 4 has the soak figures for each setting).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import time
from collections.abc import Callable

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _mallopt():
    """glibc's mallopt(3), typed; None where there is none (musl, macOS)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
    return mallopt


def pin_malloc_thresholds(mmap_threshold: int = 4096 * 1024) -> bool:
    """Fix glibc's mmap threshold (and trim threshold at twice it); False where there is no glibc."""
    mallopt = _mallopt() if mmap_threshold > 0 else None
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * mmap_threshold))


def limit_arenas(arenas: int) -> bool:
    """At most ``arenas`` glibc malloc arenas from now on; False where there is no glibc or ``arenas`` is 0.

    glibc gives threads that allocate at once their own arena (up to 8 per core), and each
    keeps its own free holes. The server runs a dozen threads (the event loop, the model's,
    the encoders' and the engines' call pools): at 2 arenas its memory after a load and after
    2 MB requests was 15-40 MB lower (BENCHMARKS.md section 4), as free pages are reused
    across threads instead of held per arena.
    """
    mallopt = _mallopt() if arenas > 0 else None
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, arenas))


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim(3), typed; None where there is none."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim.argtypes = (ctypes.c_size_t,)
        trim.restype = ctypes.c_int
    return trim


def trimmer(every_s: float) -> Callable[[], None] | None:
    """A call that, at most once every ``every_s`` seconds, hands freed heap pages back.

    Buffers under the mmap threshold come from the heap; calls of varying shapes leave free
    holes in it that glibc keeps resident. malloc_trim(0) gives the free pages back to the
    system (madvise), wherever they lie in the heap (2-7 ms on the torch server's heap). The
    batcher runs it in the model's own thread after a batch's answers have gone out, so it
    never races a call of that thread and no caller waits for it. None where it would never
    trim: ``every_s <= 0`` or no glibc.
    """
    trim = _malloc_trim() if every_s > 0 else None
    if trim is None:
        return None
    last = time.monotonic()

    def maybe_trim() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            trim(0)

    return maybe_trim


def releaser() -> Callable[[], None] | None:
    """A call that hands every free heap page back now: for the batcher to run once the server
    has gone quiet. Under load the periodic :func:`trimmer` keeps up with the holes a burst
    leaves, but the pages freed by a burst's last batches would stay resident until the next
    request (40 MB after 5,000 comments in calls of 32, BENCHMARKS.md section 4). None without glibc."""
    trim = _malloc_trim()
    if trim is None:
        return None

    def release() -> None:
        trim(0)

    return release
