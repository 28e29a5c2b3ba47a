"""A sum tree over priorities, vectorized: updates and sampling touch one tree level at a time for
the whole batch (``log2(capacity)`` tensor operations), never one Python step per item."""

from __future__ import annotations

import torch


class SumTree:
    """Priorities of ``capacity`` items, with prefix-sum sampling.

    The tree is a flat tensor of ``2 * size`` nodes (``size`` the next power of two): node 1 is the
    root, node ``i`` has children ``2i`` and ``2i + 1``, leaves are ``size .. size + capacity - 1``.
    Sums are kept in float64, so that many small updates do not drift.
    """

    def __init__(self, capacity: int, device: torch.device | str = "cpu"):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.size = 1 << max(0, (self.capacity - 1).bit_length())
        self.depth = self.size.bit_length() - 1
        self.tree = torch.zeros(2 * self.size, dtype=torch.float64, device=device)

    @property
    def total(self) -> torch.Tensor:
        """The sum of all priorities (a 0-d tensor)."""
        return self.tree[1]

    def priorities(self, index: torch.Tensor) -> torch.Tensor:
        """Priorities ``[n]`` of items ``index`` ``[n]``."""
        return self.tree[index + self.size]

    def update(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        """Set the priorities of items ``index`` ``[n]`` (long) to ``priority`` ``[n]`` (>= 0). Where
        an index repeats, the last value wins."""
        node = index.to(self.tree.device).long() + self.size
        self.tree[node] = priority.to(self.tree)
        for _ in range(self.depth):
            node = torch.unique(node // 2)
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]

    def find(self, mass: torch.Tensor) -> torch.Tensor:
        """The items ``[n]`` whose prefix-sum intervals hold ``mass`` ``[n]`` (values in ``[0, total)``)."""
        node = torch.ones(mass.shape, dtype=torch.long, device=self.tree.device)
        mass = mass.to(self.tree).clone()
        for _ in range(self.depth):
            left = self.tree[2 * node]
            right = mass >= left
            mass = torch.where(right, mass - left, mass)
            node = 2 * node + right.long()
        # rounding can walk past the last item with mass; such draws fall back to the last nonzero leaf
        return (node - self.size).clamp_(max=self.capacity - 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` items drawn with probability proportional to their priorities (stratified: one draw
        from each of ``n`` equal slices of the total mass, as in prioritized replay)."""
        total = float(self.total)
        if not total > 0:
            raise ValueError("cannot sample from a sum tree whose priorities are all zero")
        u = torch.rand(n, generator=generator, dtype=torch.float64).to(self.tree.device)
        mass = (torch.arange(n, dtype=torch.float64, device=self.tree.device) + u) * (total / n)
        items = self.find(mass.clamp_(max=total * (1 - 1e-12)))
        zero = self.priorities(items) <= 0  # only possible through rounding at a boundary
        if bool(zero.any()):
            items = torch.where(zero, self.find(torch.zeros_like(mass)), items)
        return items
