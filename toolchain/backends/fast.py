"""The ``fast`` backend: slipsnn's vectorized integer simulator, timed like the Lava backends."""

from __future__ import annotations

import time

import torch

from ..ir.integer import IntNetwork
from .result import SimResult
from .simulator import simulate_int


def run_fast(net: IntNetwork, pixels: torch.Tensor, timesteps: int, progress: bool, device: str | None = None,
             batch_size: int | None = None) -> tuple[SimResult, dict]:
    """Simulate ``net`` exactly as Lava's fixed-point models compute it; timing in seconds (no compile step).

    ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``auto``; default CPU) and ``batch_size`` (default: from free
    memory) are ``simulate_int``'s.
    """
    start = time.perf_counter()
    sim = simulate_int(net, pixels, timesteps, progress=progress, device=device or "cpu", batch_size=batch_size)
    run_s = time.perf_counter() - start
    return sim, {"compile_s": 0.0, "run_s": run_s, "samples_per_s": len(pixels) / max(run_s, 1e-9)}
