"""Where torch computes: the one ``--device`` resolution, and exact float arithmetic on every device.

``exact_float_math`` is what lets the integer simulator run in float32 on CPU and CUDA alike: inside it,
convolutions and matrix products only multiply and add (no TF32, no Winograd or FFT), so a sum of integers
that provably stays below 2²⁴ is computed exactly in any order (see ``backends.exactness``).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ..errors import SlipsnnError

DEVICES = ("auto", "cpu", "cuda")          # and cuda:N


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``auto`` (or None) → CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given.

    Raises:
        SlipsnnError: an unknown name, or a CUDA device torch does not see.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = "auto" if name is None else str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    index = name.partition(":")[2]
    if name not in DEVICES and not (name.startswith("cuda:") and index.isdigit()):
        raise SlipsnnError(f"unknown device {name!r}; allowed: {', '.join(DEVICES)}, cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SlipsnnError(f"device {name!r} requested but torch sees no CUDA GPU; use --device cpu or auto")
    if index and int(index) >= torch.cuda.device_count():
        raise SlipsnnError(f"device {name!r}: torch sees {torch.cuda.device_count()} GPU(s), "
                           f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return torch.device(name)


@contextlib.contextmanager
def exact_float_math() -> Iterator[None]:
    """Inside the block, float convolutions and matrix products use only IEEE multiply-adds.

    cuDNN is off (its Winograd and FFT algorithms, and TF32, round intermediate values): CUDA convolutions run
    ATen's im2col + cuBLAS GEMM, with TF32 off for matrix products. NNPACK (Winograd/FFT on CPU) is off; CPU
    float32 convolutions then run oneDNN's direct algorithm. Settings are restored on exit.
    """
    matmul = torch.backends.cuda.matmul
    saved_tf32 = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
            yield
    finally:
        matmul.allow_tf32 = saved_tf32


def free_memory_bytes(device: torch.device) -> int:
    """Memory this process can still allocate on ``device``: CUDA's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30   # unknown host: assume a small machine
