"""Refuse a preallocated buffer that the machine cannot hold, before allocating it."""

from __future__ import annotations

from typing import Any

import torch

from rlmem.policy.tree import tree_map

#: A buffer may take at most this share of the memory available when it is allocated.
SHARE = 0.9


class BufferTooLargeError(ValueError):
    """A buffer would need more memory than is available; the message says what to lower."""


def tree_bytes(tree: Any) -> int:
    """Bytes held by the tensors of a nested dict/tuple."""
    sizes: list[int] = []
    tree_map(lambda v: sizes.append(v.numel() * v.element_size()), tree)
    return sum(sizes)


def available_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on ``device``: the CUDA device's free memory, or the host's
    ``MemAvailable`` (Linux); None where neither can be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(need: int, device: torch.device, what: str, advice: str) -> None:
    """Raise :class:`BufferTooLargeError` if ``need`` bytes exceed ``SHARE`` of what ``device`` has free."""
    free = available_bytes(device)
    if free is not None and need > SHARE * free:
        raise BufferTooLargeError(f"{what} needs {size(need)}, more than the {size(free)} of memory available; "
                                  f"{advice}")


def size(n: int) -> str:
    """Bytes as GiB, or MiB below one GiB."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
