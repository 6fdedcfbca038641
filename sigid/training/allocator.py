"""Keep freed memory in the process for reuse: glibc malloc's settings for a training loop.

By default glibc serves every block above a moving threshold (128 KiB to 32 MiB) with its own
``mmap`` and gives it back with ``munmap`` when it is freed, and returns the heap's free top to
the system past 128 KiB. A CPU training step allocates and frees the same large activation and
gradient buffers every step, so each step maps fresh pages and faults them in again, one page
fault per 4 KiB: on 2 cores about 40% of the step went to the kernel (RESULTS.md, "Freed
memory kept"). `keep_freed_memory` raises both thresholds to `THRESHOLD`, so that freed
buffers stay in malloc's heap and the next step reuses them, already mapped.

The cost is that memory freed by a step is not returned to the system until the process ends:
resident memory stays at the peak of a step instead of dropping between steps. The setting is
process-wide and cannot be scoped; it has no effect outside glibc (macOS, musl), where
`keep_freed_memory` returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
# Blocks up to this size come from the heap; the heap's free top is kept up to this size.
THRESHOLD = 1 << 30


def glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds to `THRESHOLD` for the rest of the process; whether
    they were set (False without glibc, or where glibc refused a value)."""
    libc = glibc()
    if libc is None:
        return False
    kept = libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD) == 1
    return libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD) == 1 and kept
