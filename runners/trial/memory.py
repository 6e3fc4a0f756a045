"""Keep freed memory in the process, so that training steps do not page-fault it back in.

glibc's malloc returns freed memory to the OS when the free space at the top of its heap
grows past a threshold, and serves large blocks with fresh `mmap`s whose size limit moves with
what was freed last. A training step that frees and allocates large maps can trip both, and
then page-faults the memory back in (zeroed by the kernel) at every step: SE-ResNet-50 at
batch 8 on a CPU took 6,000 to 94,000 minor faults per step in our runs (a plain ResNet-50 none
to 66,000, depending on the process's history), up to a fifth of the step's time
(benchmarks/page_faults.py prints faults and step times both ways).

`keep_freed_memory()` fixes the thresholds with glibc's `mallopt`: blocks up to the largest
size glibc allows on the heap (32 MiB), and freed memory is kept however much there is. The
process then holds its peak memory until it ends, which a training worker does anyway. On a C
library other than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
HEAP_BLOCK_MAX = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
KEEP_ALL = 2**31 - 1  # mallopt takes an int: about 2 GiB of free heap top before a trim


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory (once per process); False where there is no
    glibc `mallopt` or it refused a setting."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or getattr(libc, "gnu_get_libc_version", None) is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success, 0 on a value it does not take
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, KEEP_ALL)
    )
