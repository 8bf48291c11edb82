"""Keep a long-running server's resident memory from creeping up (glibc only).

glibc serves a large allocation (the numpy buffers of one model call) with its own mmap and
returns it to the system when freed — but on each such free it raises its mmap threshold to
that size (up to 32 MB). After a few big batches, buffers of every size come from the heap
instead, and a heap fragmented by varying batch shapes is rarely given back: RSS grows for
a long time under steady load. Setting the threshold explicitly turns the adjustment off
(mallopt(3)), so large temporary buffers keep going back to the system.

Not too low: every mmapped buffer is fresh pages the kernel must fault in and zero. At
256 KB the encoders' per-call buffers all went that way and the model ran at half speed
(100 against 200 comments/s in calls of 24); at 4 MB it runs at full speed and RSS under
sustained load still grew only 1.5% (BENCHMARKS.md section 4).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def pin_malloc_thresholds(mmap_threshold: int = 4096 * 1024) -> bool:
    """Fix glibc's mmap threshold (and trim threshold at twice it); False where there is no glibc."""
    if not sys.platform.startswith("linux") or mmap_threshold <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * mmap_threshold))
