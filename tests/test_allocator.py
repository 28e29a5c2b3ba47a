"""keep_freed_memory: freed tensors stay mapped in the process (glibc), so the next ones of that
size cost no page faults."""

from __future__ import annotations

import subprocess
import sys

import pytest

FREE_16_MB = """
import sys, torch
from rlmem.allocator import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    sys.exit(3)  # not glibc
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
t = torch.ones(16 << 20, dtype=torch.uint8)
held = resident()
del t
print((held - resident()) >> 20)
"""


def released_mb(mode: str) -> int:
    """MB of resident memory a fresh process gives back when it frees a 16 MB tensor."""
    out = subprocess.run([sys.executable, "-c", FREE_16_MB, mode], capture_output=True, text=True)
    if out.returncode == 3:
        pytest.skip("needs glibc malloc")
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs glibc malloc")
def test_freed_memory_stays_in_the_process():
    kept = released_mb("keep")
    assert released_mb("default") >= 15  # glibc maps a fresh 16 MB block and unmaps it when freed
    assert kept == 0
