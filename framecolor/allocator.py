"""Keep the memory XLA frees for its next call, not handed back to the system.

On a CPU backend every call of a jitted step allocates its buffers with
malloc and frees them on return. glibc serves a block over its mmap
threshold (at most 32 MiB) with a fresh mmap and returns it with munmap,
and gives a heap's free top back to the system past its trim threshold. So
each batch of the network mapped new pages and faulted every one of them
in, zeroed: about 1,500 page faults a frame at 640x360 with the shipped
model. In apply it likely costs more than the faults themselves: munmap
makes the kernel flush the TLBs of every core running one of the
process's threads (decoder, encoder, the pipeline's own), and mapping
changes wait on one lock with every page fault. Kept for reuse, the same
memory serves batch after batch: 110-210 faults a frame, and apply at
640x360 on a 2-core CPU wrote 11-12% more frames a second on 9-10% less
CPU a frame (two sets of six alternated runs, benchmarks/RESULTS.md).

The cost is that a process keeps its peak heap until it exits: apply at
720p peaked at about 130 MB more (1,235-1,255 MB against 1,096-1,124),
still flat whatever the video's length, and the command exits when done.
The apply and eval commands set it; train does not: its step on a CPU ran
no faster with it (38.9-41.8 images/s against 39.4-43.9, three alternated
rounds of benchmarks/train_throughput.py), and would hold its peak.
"""

from __future__ import annotations

import ctypes

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# A heap's free top is kept up to this much (mallopt takes a C int).
_KEPT_TOP = 2**31 - 1


def reuse_freed_memory() -> bool:
    """Have malloc serve every block from its heaps and keep what is freed
    there (mallopt). Returns whether it did: False where the C library is
    not glibc (macOS has no mallopt; musl's ignores it)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEPT_TOP))
