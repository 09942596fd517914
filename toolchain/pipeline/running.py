"""Running network files and networks: one backend, Lava against fast, and the accuracy of every stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..backends.ann_eval import ann_forward
from ..backends.exactness import LayerProof, prove_exactness
from ..backends.registry import run_network
from ..backends.result import Mismatch, RunResult, compare
from ..backends.simulator import simulate_float
from ..data.loaders import load_pixels
from ..errors import SlipsnnError
from ..ir.integer import IntNetwork
from .models import dataset_of, load_converted
from .network_files import is_stock_file, load_network
from .stock import StockRun, run_stock_file


def run(net: IntNetwork | str | Path, images: torch.Tensor, labels: torch.Tensor | np.ndarray,
        timesteps: int | None = None, backend: str = "fast") -> RunResult:
    """Run an integer network (or a netx file) on images: accuracy, spikes, timing.

    Args:
        net: an ``IntNetwork`` (``convert``) or the path of a netx file.
        images: (N, C, H, W) uint8 pixels, or floats in [0, 1] (as the model saw them; rounded to 8 bits).
        labels: (N,) class indices.
        timesteps: T (default: the network's).
        backend: ``fast`` (slipsnn's simulator), ``loihi_sim`` (Lava), ``loihi``.

    Example:
        >>> run(net, x_test, y_test, timesteps=4).accuracy   # doctest: +SKIP
    """
    net = net if isinstance(net, IntNetwork) else load_network(net)
    pixels = images.to(torch.float32) if images.dtype == torch.uint8 else (images.to(torch.float32) * 255).round()
    if float(pixels.min()) < 0 or float(pixels.max()) > 255:
        raise SlipsnnError(f"images must be uint8 or floats in [0, 1]; got values in [{float(images.min()):.3g}, "
                           f"{float(images.max()):.3g}] (normalize inside the model, not in the data)")
    return run_network(net, pixels, labels, timesteps, backend)


def network_and_test_data(net_path: str | Path, dataset: str | None = None, data_root: str | Path | None = None,
                          limit: int | None = None) -> tuple[IntNetwork, torch.Tensor, torch.Tensor]:
    """An exported network and the test split it is evaluated on (by default the data set it records).

    Returns:
        (network, pixels float32 (N, C, H, W) holding 0..255, labels int64 (N,)).
    """
    net = load_network(net_path)
    dataset = dataset or net.meta.get("dataset")
    if not dataset:
        raise SlipsnnError(f"{net_path} does not record its data set; name one (--dataset)")
    pixels, labels = load_pixels(dataset, "test", data_root, limit)
    return net, pixels, labels


@dataclass(frozen=True)
class FileRun:
    """A run of an exported file, with what its kind of file adds.

    Attributes:
        run: the backend's run.
        stock: for a stock netx file (CUBA neurons), the stock run with its ``if_soft`` twin; else None.
        proofs: per layer, what the fast backend proves exact in float32 (when asked for; slipsnn files only).
    """

    run: RunResult
    stock: StockRun | None = None
    proofs: tuple[LayerProof, ...] | None = None

    def to_json(self) -> dict:
        """The ``--json`` document: the run's, and a stock file's agreement with its ``if_soft`` twin."""
        doc = self.run.to_json()
        if self.stock is not None:
            doc["if_soft_agreement"] = self.stock.agreement
        return doc


def run_exported(net_path: str | Path, *, backend: str = "loihi_sim", dataset: str | None = None,
                 timesteps: int | None = None, limit: int | None = None, data_root: str | Path | None = None,
                 progress: bool = False, device: str | None = None, batch_size: int | None = None,
                 prove: bool = False) -> FileRun:
    """Run an exported network file on a data set's test split (default: the data set it was trained on).

    The file is read once. A slipsnn file runs on ``backend`` (``device`` and ``batch_size`` apply to
    ``fast``: ``backends.registry.run_network``); with ``prove`` its float32 proofs for the run's T come
    back too. A stock netx file (``--neuron cuba``, slayer's) runs through unmodified lava-dl netx on
    ``loihi_sim`` (``run_stock_file``).
    """
    if is_stock_file(net_path):
        stock = run_stock_file(net_path, backend=backend, dataset=dataset, timesteps=timesteps, limit=limit,
                               data_root=data_root)
        return FileRun(stock.run, stock)
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    proofs = tuple(prove_exactness(net, timesteps or net.timesteps)) if prove else None
    run = run_network(net, pixels, labels, timesteps, backend, progress, device=device, batch_size=batch_size)
    return FileRun(run, None, proofs)


def run_file(net_path: str | Path, *, backend: str = "loihi_sim", dataset: str | None = None,
             timesteps: int | None = None, limit: int | None = None, data_root: str | Path | None = None,
             progress: bool = False, device: str | None = None, batch_size: int | None = None) -> RunResult:
    """The run of ``run_exported`` alone: accuracy, spikes and timing of an exported file on its test split."""
    return run_exported(net_path, backend=backend, dataset=dataset, timesteps=timesteps, limit=limit,
                        data_root=data_root, progress=progress, device=device, batch_size=batch_size).run


@dataclass(frozen=True)
class Verification:
    """``loihi_sim`` against ``fast`` on the same samples (and the fast backend's float32 proofs, when asked)."""

    lava: RunResult
    fast: RunResult
    mismatch: Mismatch
    proofs: tuple[LayerProof, ...] | None = None


def verify_file(net_path: str | Path, *, dataset: str | None = None, timesteps: int | None = None,
                limit: int | None = None, data_root: str | Path | None = None,
                progress: bool = False, device: str | None = None, batch_size: int | None = None,
                prove: bool = False) -> Verification:
    """Run ``loihi_sim`` and ``fast`` (on ``device``) on the same samples and compare them element by element."""
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    proofs = tuple(prove_exactness(net, timesteps or net.timesteps)) if prove else None
    lava = run_network(net, pixels, labels, timesteps, "loihi_sim", progress)
    fast = run_network(net, pixels, labels, timesteps, "fast", progress, device=device, batch_size=batch_size)
    return Verification(lava, fast, compare(lava.sim, fast.sim), proofs)


def accuracy_chain(checkpoint: str | Path, net_path: str | Path, timesteps: Sequence[int] = (1, 2, 4), *,
                   backend: str = "loihi_sim", limit: int | None = None,
                   data_root: str | Path | None = None, device: str | None = None,
                   batch_size: int | None = None) -> dict[str, dict[int, float] | float]:
    """Accuracy at every stage on the same test samples: ANN, float SNN, integer SNN (fast), and a backend.

    Each stage runs once, for T = max(timesteps); with ``backend="fast"`` the backend row is the integer SNN's
    run. ``device`` and ``batch_size`` apply to the simulators (``simulate_float``, ``fast``).

    Returns:
        ``{"ann": acc, "float_snn": {T: acc}, "int_snn": {T: acc}, backend: {T: acc}}`` (fractions).
    """
    snn = load_converted(checkpoint)
    net = load_network(net_path)
    pixels, labels = load_pixels(dataset_of(snn, checkpoint), "test", data_root, limit)
    t_max, y = max(timesteps), labels.numpy()
    logits = ann_forward(snn, pixels)[-1]
    chain: dict[str, dict[int, float] | float] = {"ann": float((logits.argmax(1) == labels).double().mean())}
    int_acc = run_network(net, pixels, labels, t_max, "fast", device=device, batch_size=batch_size).sim.accuracy(y)
    backend_acc = int_acc if backend == "fast" else run_network(net, pixels, labels, t_max, backend).sim.accuracy(y)
    for name, acc in (("float_snn", simulate_float(snn, pixels, t_max, batch_size, device=device).accuracy(y)),
                      ("int_snn", int_acc), (backend, backend_acc)):
        chain[name] = {int(t): float(acc[t - 1]) for t in timesteps}
    return chain
