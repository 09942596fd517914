"""The backends by name: ``fast`` (vectorized simulator), ``loihi_sim`` (Lava CPU, bit-accurate fixed point) and
``loihi`` (Lava on Loihi 2 through Intel's lava-loihi).

The registry names each backend's run function as ``"module:function"`` without importing it, so listing the
backends (the CLI's ``--backend`` choices) never imports Lava. Every backend returns the same ``SimResult``
(per-sample logits, spikes and synaptic events per layer and step), so ``fast`` and ``loihi_sim`` can be
compared bit for bit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable

from ..errors import SlipsnnError

if TYPE_CHECKING:   # the registry itself stays import-light: the CLI reads BACKENDS at start-up
    import numpy as np
    import torch

    from ..ir.integer import IntNetwork
    from .result import RunResult

#: A backend's run function: (network, pixels (N, C, H, W) 0..255, T, progress) → (result, timing in seconds).
Backend = Callable[..., Any]

BACKENDS: dict[str, str] = {
    "loihi_sim": "slipsnn.toolchain.backends.lava.runtime:run_loihi_sim",
    "loihi": "slipsnn.toolchain.backends.lava.runtime:run_loihi",
    "fast": "slipsnn.toolchain.backends.fast:run_fast",
}


#: Backends that take ``device`` and ``batch_size`` (the others run where they run: Lava on the CPU or the chip).
DEVICE_BACKENDS = ("fast",)


def get_backend(name: str) -> Backend:
    """The run function of backend ``name`` (imported on first use).

    Raises:
        SlipsnnError: unknown name.
    """
    if name not in BACKENDS:
        raise SlipsnnError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    module, function = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), function)


def run_network(net: "IntNetwork", pixels: "torch.Tensor", labels: "torch.Tensor | np.ndarray",
                timesteps: int | None = None, backend: str = "loihi_sim", progress: bool = False,
                device: str | None = None, batch_size: int | None = None) -> "RunResult":
    """Run ``net`` on ``pixels`` with one backend.

    Args:
        net: the integer network (``exporters.netx.read_netx`` or ``conversion.quantize.quantize``).
        pixels: (N, C, H, W) 8-bit pixel values 0..255.
        labels: (N,) class indices.
        timesteps: T (default: the network's own ``timesteps``).
        backend: one of ``BACKENDS``.
        progress: show progress bars.
        device: where ``fast`` computes (``cpu``, ``cuda``, ``cuda:N``, ``auto``; default CPU); the Lava
            backends accept only None, ``cpu`` or ``auto``.
        batch_size: samples per batch of ``fast`` (default: ``simulator.auto_batch_size``).

    Example:
        >>> res = run_network(net, pixels, labels, timesteps=4, backend="fast")   # doctest: +SKIP
        >>> res.accuracy                                                                # doctest: +SKIP
    """
    import numpy as np

    from .result import RunResult
    run = get_backend(backend)
    t = int(timesteps or net.timesteps)
    if backend in DEVICE_BACKENDS:
        sim, timing = run(net, pixels, t, progress, device=device, batch_size=batch_size)
    else:
        if device not in (None, "cpu", "auto"):
            raise SlipsnnError(f"device {device!r}: the {backend} backend runs Lava on its own hardware; "
                               f"--device applies to {', '.join(DEVICE_BACKENDS)}")
        sim, timing = run(net, pixels, t, progress)
    return RunResult(backend, t, sim, np.asarray(labels, dtype=np.int64), timing)
