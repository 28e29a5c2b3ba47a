"""Test-wide settings: one intra-op thread per test process.

The suite runs in parallel (``pytest -n 2``) on small machines; several processes each spinning
several OpenMP threads oversubscribe the cores and slow everything down by orders of magnitude.
Subprocesses started by tests inherit ``OMP_NUM_THREADS``.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402

torch.set_num_threads(1)
