"""Every use case behind the CLI: checkpoint → converted SNN → integer network → file → runs → reports.

Each function is what one command does, callable from Python. This is the only module that imports the file
exporters (``slipsnn.exporters``); the layers below it never touch files of the network.

    >>> net, path = export_checkpoint("runs/d/model.pt", "runs/d/model.net", timesteps=4)   # doctest: +SKIP
    >>> result = run_file("runs/d/model.net", backend="loihi_sim", limit=100)               # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

import numpy as np
from torch import nn

from . import __version__
from .analysis.conversion import DEFAULT_DELTA2, ConversionAnalysis, analyze_network
from .ann.checkpoint import Checkpoint, load_checkpoint
from .ann.models import ModelConfig
from .backends.ann_eval import ann_forward
from .backends.registry import run_network
from .backends.result import Mismatch, RunResult, compare
from .backends.simulator import simulate_float, simulate_int
from .convert.lower import lower
from .convert.quantize import QuantConfig, quantize
from .costs.report import Report, build_report, choose_profiles
from .data.loaders import load_pixels
from .errors import SlipsnnError
from .ir.floating import SpikingNetwork
from .ir.formats import check_timesteps
from .ir.integer import IntNetwork

if TYPE_CHECKING:
    from .ann.training import TrainConfig


def train_and_evaluate(cfg: "TrainConfig", progress: bool = True,
                       timesteps: Sequence[int] = (1, 2, 4, 8), *, resume: bool = False,
                       stop_after: int | None = None) -> dict:
    """Train, evaluate the converted float SNN on the test split, and write ``metrics.json``.

    Args:
        cfg: the training configuration; with ``cfg.out_dir`` the checkpoint and metrics are written there.
        progress: show the training progress bar.
        timesteps: the T at which the converted SNN is evaluated.
        resume, stop_after: as in ``training.train``; an unfinished call evaluates nothing and writes
            no ``metrics.json``. Under torchrun only rank 0 evaluates and writes.

    Returns:
        ``{"ann_accuracy": acc, "snn_accuracy": {"1": acc, …}, …}`` (fractions of 1, test split, without
        the per-epoch history); the checkpoint's metrics hold the same numbers.
    """
    from .ann.training import train
    from .files import atomic_write_json

    def evaluate_snn(model: nn.Module, model_cfg: ModelConfig, thetas: dict, x: torch.Tensor,
                     y: torch.Tensor) -> dict[int, float]:
        return snn_accuracies(model, model_cfg, thetas, x, y, timesteps)

    res = train(cfg, progress, evaluate_snn=evaluate_snn, resume=resume, stop_after=stop_after)
    metrics = {k: v for k, v in res.metrics.items() if k != "history"}
    if cfg.out_dir and res.is_main and metrics["finished"]:
        atomic_write_json(Path(cfg.out_dir) / "metrics.json", metrics)
    return metrics


def snn_accuracies(model: nn.Module, model_cfg: ModelConfig, thetas: dict[str, float] | None, images: torch.Tensor,
                   labels: torch.Tensor, timesteps: Sequence[int] = (1, 2, 4, 8),
                   batch_size: int = 256) -> dict[int, float]:
    """Accuracy (fraction) of the converted float SNN after each of ``timesteps`` steps, in one simulation.

    Args:
        model: the trained ANN (any device; it is lowered from a CPU copy).
        model_cfg: its architecture (for the input shape).
        thetas: θ of each ``nn.ReLU`` (plain-ReLU models); SlipReLU models need none.
        images: (N, C, H, W), float in [0, 1] with ``images·255`` integral, or uint8 pixels.
        labels: (N,) class labels.
        timesteps: the T values to report; one pass of ``max(timesteps)`` steps serves all.
        batch_size: samples per simulated batch.

    Example:
        >>> snn_accuracies(res.model, res.model_cfg, res.thetas, x, y)   # doctest: +SKIP
        {1: 0.91, 2: 0.95, 4: 0.97, 8: 0.97}
    """
    steps = sorted({int(t) for t in timesteps})
    if not steps or steps[0] < 1:
        raise SlipsnnError(f"timesteps {list(timesteps)} must be a non-empty list of integers ≥ 1")
    net = lower(model, model_cfg.input_shape, thetas)   # lower copies the model to the CPU
    pixels = images.to(torch.float32) if images.dtype == torch.uint8 else (images * 255).round()
    acc = simulate_float(net, pixels, steps[-1], batch_size=batch_size).accuracy(labels.cpu().numpy())
    return {t: float(acc[t - 1]) for t in steps}


def convert_checkpoint(ckpt: Checkpoint | str | Path) -> SpikingNetwork:
    """The float converted SNN of a checkpoint, with its provenance in ``meta``."""
    ckpt = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt)
    act = ckpt.act.to_dict() if ckpt.act is not None else None
    meta = {"dataset": ckpt.dataset, "num_classes": ckpt.model_cfg.num_classes, "arch": ckpt.model_cfg.arch,
            "model_config": ckpt.model_cfg.to_dict(), "activation": {"preset": ckpt.preset, "params": act},
            "thetas": ckpt.thetas, "metrics": {k: v for k, v in ckpt.metrics.items() if k != "history"},
            "checkpoint": str(ckpt.path), "slipsnn_version": __version__}
    return lower(ckpt.model, ckpt.model_cfg.input_shape, ckpt.thetas, meta)


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, *, timesteps: int = 4,
                      max_timesteps: int | None = None, neuron: str = "if_soft") -> tuple[IntNetwork, Path]:
    """Convert, quantize and write a checkpoint as a netx HDF5 file.

    Args:
        checkpoint: path of ``model.pt``.
        out: output path (default: ``model.net`` beside the checkpoint).
        timesteps: default T stored in the file.
        max_timesteps: horizon proven free of 24-bit overflow (default: max(``timesteps``, 8)).
        neuron: ``if_soft`` (slipsnn's soft-reset neuron) or ``cuba`` (stock netx, exact at T = 1).

    Returns:
        The integer network and the written path.
    """
    from slipsnn.exporters.netx import QUANT_LIMITS, write_netx
    if neuron not in QUANT_LIMITS:
        raise SlipsnnError(f"unknown neuron {neuron!r}; allowed: {', '.join(QUANT_LIMITS)}")
    cfg = QuantConfig(timesteps, max_timesteps, **QUANT_LIMITS[neuron])
    net = quantize(convert_checkpoint(checkpoint), cfg)
    path = Path(out) if out is not None else Path(checkpoint).with_name("model.net")
    return net, write_netx(net, path, neuron=neuron)


def load_network(path: str | Path) -> IntNetwork:
    """Read an exported network file (netx HDF5 with slipsnn's neuron)."""
    from slipsnn.exporters.netx import read_netx
    return read_netx(path)


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


def run_file(net_path: str | Path, *, backend: str = "loihi_sim", dataset: str | None = None,
             timesteps: int | None = None, limit: int | None = None, data_root: str | Path | None = None,
             progress: bool = False) -> RunResult:
    """Run an exported network on a data set's test split (default: the data set it was trained on)."""
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    return run_network(net, pixels, labels, timesteps, backend, progress)


@dataclass(frozen=True)
class Verification:
    """``loihi_sim`` against ``fast`` on the same samples."""

    lava: RunResult
    fast: RunResult
    mismatch: Mismatch


def verify_file(net_path: str | Path, *, dataset: str | None = None, timesteps: int | None = None,
                limit: int | None = None, data_root: str | Path | None = None,
                progress: bool = False) -> Verification:
    """Run ``loihi_sim`` and ``fast`` on the same samples and compare them element by element."""
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    lava = run_network(net, pixels, labels, timesteps, "loihi_sim", progress)
    fast = run_network(net, pixels, labels, timesteps, "fast", progress)
    return Verification(lava, fast, compare(lava.sim, fast.sim))


def accuracy_chain(checkpoint: str | Path, net_path: str | Path, timesteps: Sequence[int] = (1, 2, 4), *,
                   backend: str = "loihi_sim", limit: int | None = None,
                   data_root: str | Path | None = None) -> dict[str, dict[int, float] | float]:
    """Accuracy at every stage on the same test samples: ANN, float SNN, integer SNN (fast), and a backend.

    Returns:
        ``{"ann": acc, "float_snn": {T: acc}, "int_snn": {T: acc}, backend: {T: acc}}`` (fractions).
    """
    ckpt = load_checkpoint(checkpoint)
    snn = convert_checkpoint(ckpt)
    net = load_network(net_path)
    pixels, labels = load_pixels(ckpt.dataset, "test", data_root, limit)
    t_max, y = max(timesteps), labels.numpy()
    logits = ann_forward(snn, pixels)[-1]
    chain: dict[str, dict[int, float] | float] = {"ann": float((logits.argmax(1) == labels).double().mean())}
    for name, acc in (("float_snn", simulate_float(snn, pixels, t_max).accuracy(y)),
                      ("int_snn", simulate_int(net, pixels, t_max).accuracy(y)),
                      (backend, run_network(net, pixels, labels, t_max, backend).sim.accuracy(y))):
        chain[name] = {int(t): float(acc[t - 1]) for t in timesteps}
    return chain


def save_report(report: Report, json_path: str | Path | None = None, plots_dir: str | Path | None = None) -> list[Path]:
    """Write the JSON and/or the three plots atomically; returns the written paths."""
    from .files import atomic_write_json
    written: list[Path] = []
    if json_path is not None:
        written.append(atomic_write_json(json_path, report.to_json()))
    if plots_dir is not None:
        from .show.plots import plot_report
        written += plot_report(report, plots_dir)
    return written


def report(net_path: str | Path, dataset: str | None, timesteps: int | Sequence[int], backend: str = "fast",
           profile: str | Path | Sequence[str | Path] = "loihi2", json_path: str | Path | None = None,
           plots_dir: str | Path | None = None, data_root: str | Path | None = None, limit: int | None = None,
           ann_profile: str | Path = "gpu45nm", progress: bool = False) -> Report:
    """Load a network file and a test split, run once with T = max(timesteps), report and save.

    One run with T = max(timesteps) gives every t ≤ T: the dynamics are causal and restart at every sample.

    Args:
        net_path: exported network file (netx HDF5).
        dataset: data set name (``data.DATASETS``); its ``test`` split is used. None: the data set recorded
            in the network's metadata.
        timesteps: one t or several; the run uses the largest.
        backend: ``fast``, ``loihi_sim`` or ``loihi`` (``run.BACKENDS``).
        profile: the main neuromorphic profile (name or TOML path), or several, main first; every other
            built-in neuromorphic profile is reported beside them (``choose_profiles``).
        json_path, plots_dir: where to save the JSON and the plots (None: not saved).
        data_root: data folder (``data.load_pixels``).
        limit: use only the first ``limit`` test samples.
        ann_profile: profile of the ANN baseline.
        progress: show progress bars.

    Raises:
        SlipsnnError: bad timesteps, no data set, or any error of loading, running or costing.

    Example:
        >>> rep = report("runs/d/model.net", "digits", [1, 2, 4], limit=100)   # doctest: +SKIP
    """
    ts = [int(timesteps)] if isinstance(timesteps, (int, np.integer)) else [int(t) for t in timesteps]
    if not ts:
        raise SlipsnnError("timesteps: give at least one")
    for t in ts:
        check_timesteps(t)
    profiles, ann = choose_profiles(profile, ann_profile)
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    run = run_network(net, pixels, labels, max(ts), backend, progress=progress)
    rep = build_report(net, run, ts, profiles, ann)
    save_report(rep, json_path, plots_dir)
    return rep


def analyze_conversion(checkpoint_path: str | Path, timesteps: int,
                       delta2_values: Sequence[float] = DEFAULT_DELTA2, limit: int | None = None,
                       data_root: str | Path | None = None, dataset: str | None = None) -> ConversionAnalysis:
    """Layer-wise conversion error of a checkpoint on its data set's test split.

    Args:
        checkpoint_path: a slipsnn ``model.pt``.
        timesteps: T ≥ 1.
        delta2_values: initial membranes (units of θ) for the sweep, each in (−1, 1).
        limit: use the first ``limit`` test samples (default all; see ``analyze_network`` on memory).
        data_root: folder of the data set files (not needed for digits).
        dataset: evaluate on this data set's test split (default: the checkpoint's).

    Returns:
        The ``ConversionAnalysis``.

    Example:
        >>> res = analyze_conversion("runs/digits/model.pt", 4, delta2_values=[0.0, 0.5])   # doctest: +SKIP
        >>> [round(layer.mean, 3) for layer in res.trained.layers]                         # doctest: +SKIP
        [0.001, -0.004, 0.012]
    """
    ckpt = load_checkpoint(checkpoint_path)
    net = convert_checkpoint(ckpt)
    pixels, labels = load_pixels(dataset or ckpt.dataset, "test", data_root, limit)
    return analyze_network(net, pixels, labels, timesteps, delta2_values, source=str(checkpoint_path))
