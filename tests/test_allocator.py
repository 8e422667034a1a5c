"""Memory freed by one call is there for the next without page faults (framecolor.allocator)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Page faults of allocating, filling and freeing a block as large as one of
# the network's buffers, the second time round (in a fresh process: the
# setting is the whole process's).
_SECOND_BLOCK_FAULTS = """
import resource, sys
import numpy as np
from framecolor import allocator
if sys.argv[1] == "reuse":
    assert allocator.reuse_freed_memory()
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(48 * 2**20, np.uint8)
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults()
print(faults())
"""


def _second_block_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _SECOND_BLOCK_FAULTS, mode], capture_output=True, text=True,
                          check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_freed_block_is_reused_without_faulting_its_pages_in_again():
    mapped_afresh, reused = _second_block_faults("system"), _second_block_faults("reuse")
    assert mapped_afresh >= 20  # 48 MiB: 12,288 pages, or 24 huge ones
    assert reused < mapped_afresh / 10
