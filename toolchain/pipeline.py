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
from .backends.simulator import simulate_float
from .conversion.lower import lower
from .conversion.quantize import QuantConfig, quantize
from .costs.report import Report, build_report, choose_profiles
from .data.loaders import load_pixels
from .errors import SlipsnnError
from .ir.floating import SpikingNetwork
from .ir.formats import check_timesteps
from .ir.integer import IntNetwork

if TYPE_CHECKING:
    from slipsnn.exporters.stock_netx import StockNetwork

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
        return snn_accuracies(model, model_cfg, thetas, x, y, timesteps, device=cfg.device)

    res = train(cfg, progress, evaluate_snn=evaluate_snn, resume=resume, stop_after=stop_after)
    metrics = {k: v for k, v in res.metrics.items() if k != "history"}
    if cfg.out_dir and res.is_main and metrics["finished"]:
        atomic_write_json(Path(cfg.out_dir) / "metrics.json", metrics)
    return metrics


def snn_accuracies(model: nn.Module, model_cfg: ModelConfig, thetas: dict[str, float] | None, images: torch.Tensor,
                   labels: torch.Tensor, timesteps: Sequence[int] = (1, 2, 4, 8),
                   batch_size: int | None = None, device: str | None = "cpu") -> dict[int, float]:
    """Accuracy (fraction) of the converted float SNN after each of ``timesteps`` steps, in one simulation.

    Args:
        model: the trained ANN (any device; it is lowered from a CPU copy).
        model_cfg: its architecture (for the input shape).
        thetas: θ of each ``nn.ReLU`` (plain-ReLU models); SlipReLU models need none.
        images: (N, C, H, W), float in [0, 1] with ``images·255`` integral, or uint8 pixels.
        labels: (N,) class labels.
        timesteps: the T values to report; one pass of ``max(timesteps)`` steps serves all.
        batch_size: samples per simulated batch (default: from free memory).
        device: where the SNN is simulated (``cpu``, ``cuda``, ``cuda:N``, ``auto``).

    Example:
        >>> snn_accuracies(res.model, res.model_cfg, res.thetas, x, y)   # doctest: +SKIP
        {1: 0.91, 2: 0.95, 4: 0.97, 8: 0.97}
    """
    steps = sorted({int(t) for t in timesteps})
    if not steps or steps[0] < 1:
        raise SlipsnnError(f"timesteps {list(timesteps)} must be a non-empty list of integers ≥ 1")
    net = lower(model, model_cfg.input_shape, thetas)   # lower copies the model to the CPU
    pixels = images.to(torch.float32) if images.dtype == torch.uint8 else (images * 255).round()
    acc = simulate_float(net, pixels, steps[-1], batch_size=batch_size, device=device).accuracy(labels.cpu().numpy())
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


def load_converted(path: str | Path) -> SpikingNetwork:
    """The converted float network of a checkpoint (``model.pt``) or of a model file (``save_model``).

    A model file is read without the model's Python class and without unpickling anything
    (``slipsnn.exporters.floatnet``); a checkpoint is loaded weights-only and lowered.
    """
    from slipsnn.exporters.floatnet import is_float_network, read_float_network
    return read_float_network(path) if is_float_network(path) else convert_checkpoint(path)


def _dataset_of(snn: SpikingNetwork, path: str | Path) -> str:
    dataset = snn.meta.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise SlipsnnError(f"{path} does not record its data set; save it with save_model(..., dataset=NAME)")
    return dataset


def _user_meta(model: nn.Module, snn: SpikingNetwork, dataset: str | None, metrics: dict | None) -> dict:
    from .ir.activation import preset_name
    acts = [layer.act for layer in snn.layers if layer.spiking]
    uniform = all(a == acts[0] for a in acts)   # SlipParams compare by value
    act = acts[0] if uniform else None
    return {"dataset": dataset, "num_classes": int(snn.layers[-1].shape[0]), "arch": type(model).__name__,
            "activation": {"preset": preset_name(act) if uniform else "mixed",
                           "params": act.to_dict() if act is not None else None},
            "thetas": {layer.name: layer.theta for layer in snn.layers if layer.spiking},
            "metrics": dict(metrics or {}), "source": "user model", "slipsnn_version": __version__}


def lower_model(model: nn.Module, input_shape: tuple[int, int, int], *, dataset: str | None = None,
                thetas: dict[str, float] | None = None, images: torch.Tensor | None = None,
                metrics: dict | None = None) -> SpikingNetwork:
    """A user's trained model as the converted float network, with the provenance the commands read.

    Args:
        model: any model ``check_convertible`` accepts (``slipify``-ed and trained, or with plain ReLUs).
        input_shape: (C, H, W) of one image.
        dataset: the registry name the commands evaluate on (``digits``, ``mnist``, …), stored in ``meta``.
        thetas: θ of each plain ``nn.ReLU`` by module name; calibrated from ``images`` when missing.
        images: training images as the model sees them, (N, C, H, W) in [0, 1] (or uint8): for the θ of plain
            ReLUs and for the check that they are not normalized outside a model without ``Normalize``.
        metrics: e.g. ``{"ann_accuracy": 0.98}`` (shown by the report).
    """
    import warnings

    from .ann.calibration import calibrate_thresholds
    from .conversion.check import input_warning
    from .data.registry import dataset_info
    if dataset is not None:
        dataset_info(dataset)   # a registry name, or a DataError listing them
    if images is not None:
        if (why := input_warning(model, images)) is not None:
            warnings.warn(why, stacklevel=3)
        if thetas is None and any(isinstance(m, nn.ReLU) for m in model.modules()):
            thetas = calibrate_thresholds(model, images)
    snn = lower(model, input_shape, thetas)
    return SpikingNetwork(snn.input_shape, snn.layers, _user_meta(model, snn, dataset, metrics))


def save_model(model: nn.Module | SpikingNetwork, path: str | Path, input_shape: tuple[int, int, int] | None = None,
               *, dataset: str | None = None, thetas: dict[str, float] | None = None,
               images: torch.Tensor | None = None, metrics: dict | None = None) -> Path:
    """Write a user's model as a model file that ``slipsnn-export``, ``chain`` and ``analyze`` accept.

    The file holds the converted float network (arrays + JSON, docs/format.md "The model file"), so it is
    read back without the model's class and without unpickling. Arguments as ``lower_model``; a
    ``SpikingNetwork`` is written as it is.

    Example:
        >>> save_model(model, "runs/mine/model.snn.npz", (1, 28, 28), dataset="mnist")   # doctest: +SKIP
    """
    from slipsnn.exporters.floatnet import write_float_network
    if isinstance(model, SpikingNetwork):
        snn = model
    else:
        if input_shape is None:
            raise SlipsnnError("save_model needs input_shape=(C, H, W) to convert a torch model")
        snn = lower_model(model, input_shape, dataset=dataset, thetas=thetas, images=images, metrics=metrics)
    return write_float_network(snn, path)


def load_model(path: str | Path) -> SpikingNetwork:
    """Read a model file written by ``save_model`` (never runs code from the file)."""
    from slipsnn.exporters.floatnet import read_float_network
    return read_float_network(path)


def convert_model(model: nn.Module | SpikingNetwork, input_shape: tuple[int, int, int] | None = None,
                  timesteps: int = 4, *, max_timesteps: int | None = None, neuron: str = "if_soft",
                  dataset: str | None = None, thetas: dict[str, float] | None = None,
                  images: torch.Tensor | None = None) -> IntNetwork:
    """One call from a trained model to the deployable integer network.

    Lowers (``lower_model``), quantizes to Loihi integers and proves the 24-bit bound for ``max_timesteps``.

    Args:
        model: the trained model (or an already converted ``SpikingNetwork``).
        input_shape: (C, H, W) of one image (not needed for a ``SpikingNetwork``).
        timesteps: default T stored in the network.
        max_timesteps: horizon proven free of 24-bit overflow (default max(``timesteps``, 8)).
        neuron: ``if_soft`` (slipsnn's neuron) or ``cuba`` (stock netx, exact at T = 1).
        dataset, thetas, images: as ``lower_model``.

    Returns:
        The ``IntNetwork``; ``write_netx`` writes it, ``run`` runs it.

    Example:
        >>> net = convert_model(model, (1, 28, 28), timesteps=4, dataset="mnist")   # doctest: +SKIP
    """
    from slipsnn.exporters.netx import QUANT_LIMITS
    if neuron not in QUANT_LIMITS:
        raise SlipsnnError(f"unknown neuron {neuron!r}; allowed: {', '.join(QUANT_LIMITS)}")
    if isinstance(model, SpikingNetwork):
        snn = model
    else:
        if input_shape is None:
            raise SlipsnnError("convert needs input_shape=(C, H, W) to convert a torch model")
        snn = lower_model(model, input_shape, dataset=dataset, thetas=thetas, images=images)
    return quantize(snn, QuantConfig(timesteps, max_timesteps, **QUANT_LIMITS[neuron]))


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


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, *, timesteps: int = 4,
                      max_timesteps: int | None = None, neuron: str = "if_soft") -> tuple[IntNetwork, Path]:
    """Convert, quantize and write a checkpoint as a netx HDF5 file.

    Args:
        checkpoint: path of ``model.pt``, or of a model file (``save_model``, ``*.snn.npz``).
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
    net = quantize(load_converted(checkpoint), cfg)
    path = Path(out) if out is not None else Path(checkpoint).with_name("model.net")
    return net, write_netx(net, path, neuron=neuron)


def export_nir(source: str | Path, out: str | Path | None = None, *, variant: str = "exact", timesteps: int = 4,
               max_timesteps: int | None = None) -> tuple[IntNetwork, Path]:
    """Write a checkpoint or an existing slipsnn .net as a NIR graph (``exporters.nir``).

    Args:
        source: ``model.pt`` (quantized without a dense weight exponent, which NIR cannot floor) or a
            slipsnn ``.net`` (its integers as they are).
        out: output path (default: ``model.nir`` beside ``source``).
        variant: ``portable`` (IF only, exact at T = 1) or ``exact`` (slipsnn at every T).
        timesteps, max_timesteps: as in ``export_checkpoint`` (checkpoints only).

    Returns:
        The integer network and the written path.
    """
    from slipsnn.exporters.nir import write_nir
    source = Path(source)
    if source.suffix == ".net":
        net = load_network(source)
    else:
        net = quantize(convert_checkpoint(source), QuantConfig(timesteps, max_timesteps, dense_weight_exp=False))
    path = Path(out) if out is not None else source.with_name("model.nir")
    return net, write_nir(net, path, variant)


def load_network(path: str | Path) -> IntNetwork:
    """Read an exported network file (netx HDF5 with slipsnn's neuron), its overflow horizon proven again."""
    from slipsnn.exporters.netx import read_proven_netx
    return read_proven_netx(path)


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
             progress: bool = False, device: str | None = None, batch_size: int | None = None) -> RunResult:
    """Run an exported network on a data set's test split (default: the data set it was trained on).

    ``device`` and ``batch_size`` apply to the ``fast`` backend (``backends.registry.run_network``). A stock
    netx file (CUBA neurons: ``--neuron cuba`` or slayer's) runs through unmodified lava-dl netx
    (``run_stock_file``) on ``loihi_sim``."""
    if is_stock_file(net_path):
        return run_stock_file(net_path, backend=backend, dataset=dataset, timesteps=timesteps, limit=limit,
                              data_root=data_root).run
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    return run_network(net, pixels, labels, timesteps, backend, progress, device=device, batch_size=batch_size)


def is_stock_file(path: str | Path) -> bool:
    """True for a netx file whose neurons are all stock CUBA (``--neuron cuba``, slayer): stock netx runs it."""
    from slipsnn.exporters.stock_netx import is_stock_netx
    return is_stock_netx(path)


@dataclass(frozen=True)
class StockRun:
    """A stock netx file run through stock netx, and (for a slipsnn ``cuba`` export) its ``if_soft`` twin.

    Attributes:
        run: the stock netx run (backend ``loihi_sim``).
        twin: the file's integers (its checkpoint quantized as the cuba export was) with slipsnn's
            soft-reset neuron, in the fast simulator; None when the file names no readable checkpoint.
        agreement: share of samples whose class equals the twin's (None without a twin).
    """

    run: RunResult
    twin: RunResult | None
    agreement: float | None


BINARY_THRESHOLD = 128   # a pixel ≥ this is a spike for a stock file with binary input (slayer's default)


def _describe_stock(path: str | Path, dataset: str | None) -> tuple["StockNetwork", str]:
    """A stock file's description and its data set (given, or recorded by slipsnn); a file without an input
    group (slayer's) takes the data set's input shape."""
    from slipsnn.exporters.stock_netx import describe_stock_netx
    from .data.registry import DATASETS
    info = describe_stock_netx(path, DATASETS[dataset].input_shape if dataset in DATASETS else None)
    dataset = dataset or info.meta.get("dataset")
    if not dataset:
        raise SlipsnnError(f"{path} does not record its data set; name one (--dataset)")
    return info, dataset


def run_stock_file(net_path: str | Path, *, backend: str = "loihi_sim", dataset: str | None = None,
                   timesteps: int | None = None, limit: int | None = None,
                   data_root: str | Path | None = None) -> StockRun:
    """Run a stock netx file through stock lava-dl netx at T steps per sample (``backends.lava.stock_netx``).

    The ``if_soft`` twin is rebuilt from the checkpoint a slipsnn ``cuba`` file records (same T and
    horizon) and run in the fast simulator on the same samples; at T = 1 the two agree exactly, at T > 1
    the stock CUBA's reset to zero makes them differ and ``agreement`` says by how much.

    Raises:
        SlipsnnError: a backend other than ``loihi_sim``; no data set recorded or given.
    """
    from .backends.lava.stock_netx import run_stock_netx
    if backend != "loihi_sim":
        raise SlipsnnError(f"{net_path} is a stock netx file: it runs on backend 'loihi_sim' (stock lava-dl "
                           f"netx), not {backend!r}")
    info, dataset = _describe_stock(net_path, dataset)
    t = check_timesteps(timesteps or info.timesteps or 1)
    pixels, labels = load_pixels(dataset, "test", data_root, limit)
    x = pixels.numpy().astype(np.int64)
    if info.input_bits == 0:
        x = (x >= BINARY_THRESHOLD).astype(np.int64)   # binary input (slayer): a spike where the pixel is ≥ 128
    sim, timing = run_stock_netx(net_path, x, t, info.input_bits, info.layers[-1].scale,
                                 [layer.name for layer in info.layers], "v" if info.writer == "slipsnn" else "spikes",
                                 input_shape=info.input_shape)
    run = RunResult(backend, t, sim, labels.numpy().astype(np.int64), timing)
    ckpt = info.meta.get("checkpoint")
    if info.writer != "slipsnn" or not ckpt or not Path(ckpt).is_file():
        return StockRun(run, None, None)
    from slipsnn.exporters.netx import QUANT_LIMITS
    horizon = max(t, int(info.max_timesteps or 1))   # the horizon the file was quantized for: same integers
    twin_net = quantize(convert_checkpoint(ckpt), QuantConfig(1, horizon, **QUANT_LIMITS["cuba"]))
    twin = run_network(twin_net, pixels, labels, t, "fast")
    return StockRun(run, twin, float((twin.sim.predictions() == sim.predictions()).mean()))


@dataclass(frozen=True)
class Verification:
    """``loihi_sim`` against ``fast`` on the same samples."""

    lava: RunResult
    fast: RunResult
    mismatch: Mismatch


def verify_file(net_path: str | Path, *, dataset: str | None = None, timesteps: int | None = None,
                limit: int | None = None, data_root: str | Path | None = None,
                progress: bool = False, device: str | None = None, batch_size: int | None = None) -> Verification:
    """Run ``loihi_sim`` and ``fast`` (on ``device``) on the same samples and compare them element by element."""
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    lava = run_network(net, pixels, labels, timesteps, "loihi_sim", progress)
    fast = run_network(net, pixels, labels, timesteps, "fast", progress, device=device, batch_size=batch_size)
    return Verification(lava, fast, compare(lava.sim, fast.sim))


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
    pixels, labels = load_pixels(_dataset_of(snn, checkpoint), "test", data_root, limit)
    t_max, y = max(timesteps), labels.numpy()
    logits = ann_forward(snn, pixels)[-1]
    chain: dict[str, dict[int, float] | float] = {"ann": float((logits.argmax(1) == labels).double().mean())}
    int_acc = run_network(net, pixels, labels, t_max, "fast", device=device, batch_size=batch_size).sim.accuracy(y)
    backend_acc = int_acc if backend == "fast" else run_network(net, pixels, labels, t_max, backend).sim.accuracy(y)
    for name, acc in (("float_snn", simulate_float(snn, pixels, t_max, batch_size, device=device).accuracy(y)),
                      ("int_snn", int_acc), (backend, backend_acc)):
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
           ann_profile: str | Path = "gpu45nm", progress: bool = False, device: str | None = None,
           batch_size: int | None = None) -> Report:
    """Load a network file and a test split, run once with T = max(timesteps), report and save.

    One run with T = max(timesteps) gives every t ≤ T: the dynamics are causal and restart at every sample.

    Args:
        net_path: exported network file (netx HDF5).
        dataset: data set name (``data.DATASETS``); its ``test`` split is used. None: the data set recorded
            in the network's metadata.
        timesteps: one t or several; the run uses the largest.
        backend: ``fast``, ``loihi_sim`` or ``loihi`` (``run.BACKENDS``).
        profile: the main neuromorphic profile (name or TOML path), or several, main first; only these
            are reported (``choose_profiles``).
        json_path, plots_dir: where to save the JSON and the plots (None: not saved).
        data_root: data folder (``data.load_pixels``).
        limit: use only the first ``limit`` test samples.
        ann_profile: profile of the ANN baseline (an edge-GPU baseline is reported beside it).
        progress: show progress bars.
        device, batch_size: where and in what batches ``fast`` runs (``backends.registry.run_network``).

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
    run = run_network(net, pixels, labels, max(ts), backend, progress=progress, device=device, batch_size=batch_size)
    rep = build_report(net, run, ts, profiles, ann)
    save_report(rep, json_path, plots_dir)
    return rep


@dataclass(frozen=True)
class StockReport:
    """Activity, energy and latency of a stock netx file (one slipsnn did not write), run through stock netx.

    Attributes:
        path: the file.
        writer: ``slipsnn`` or ``other`` (slayer, …).
        run: the stock netx run at T = max(timesteps).
        steps: per t: (accuracy, per-layer counts, {profile: energy}, {profile: timing}).
    """

    path: Path
    writer: str
    run: RunResult
    steps: tuple[tuple[int, float, tuple, dict, dict], ...]

    def to_json(self) -> dict:
        """The ``--json`` document: per t, accuracy, per-layer counts, energy (pJ) and latency (µs) per profile."""
        return {"file": str(self.path), "writer": self.writer, "backend": self.run.backend,
                "samples": int(len(self.run.labels)),
                "steps": [{"timesteps": t, "accuracy": acc,
                           "layers": [dict(name=c.name, neurons=c.neurons, spikes=c.spikes, firing_rate=c.firing_rate,
                                           synops=c.synops) for c in counts],
                           "energy_pj": {name: e.total_pj for name, e in energy.items()},
                           "latency_us": {name: tm.latency_us for name, tm in timing.items()}}
                          for t, acc, counts, energy, timing in self.steps]}


def report_stock_file(net_path: str | Path, dataset: str | None, timesteps: int | Sequence[int],
                      profile: str | Path | Sequence[str | Path] = "loihi2", data_root: str | Path | None = None,
                      limit: int | None = None, binary_threshold: int = BINARY_THRESHOLD) -> StockReport:
    """Report a stock netx file (CUBA neurons, float weights; slayer's or slipsnn's cuba) from a stock netx run.

    Counts per sample come from the run (spikes of every block, synaptic events = source events × the
    exact fan-out of the file's weights), energy from ``costs.energy.snn_energy``, latency from
    ``costs.mapping.chip_timing`` (one chip). A file slipsnn did not write takes binary input: a spike
    wherever the pixel is ≥ ``binary_threshold``, every step; its class is the output block's spike count.

    Raises:
        SlipsnnError: no data set given or recorded; bad timesteps; the file is not a stock netx file.
    """
    from .backends.lava.stock_netx import run_stock_netx
    from .costs.counts import LayerCounts
    from .costs.energy import snn_energy
    from .costs.mapping import chip_timing
    from .kernels.connectivity import synapse_fanout, synapse_macs
    ts = [int(timesteps)] if isinstance(timesteps, (int, np.integer)) else [int(t) for t in timesteps]
    for t in ts:
        check_timesteps(t)
    path = Path(net_path)
    info, dataset = _describe_stock(path, dataset)
    profiles, _ = choose_profiles(profile)
    pixels, labels = load_pixels(dataset, "test", data_root, limit)
    x = pixels.numpy().astype(np.int64)
    if info.input_bits == 0:
        x = (x >= binary_threshold).astype(np.int64)
    shapes = [info.input_shape] + [layer.shape for layer in info.layers]
    fanouts = [synapse_fanout(layer.synapse, shapes[i]) for i, layer in enumerate(info.layers)]
    macs = [synapse_macs(layer.synapse, shapes[i]) for i, layer in enumerate(info.layers)]
    sim, timing = run_stock_netx(path, x, max(ts), info.input_bits, info.layers[-1].scale,
                                 [layer.name for layer in info.layers], "v" if info.writer == "slipsnn" else "spikes",
                                 fanouts, info.input_shape)
    run = RunResult("loihi_sim", max(ts), sim, labels.numpy().astype(np.int64), timing)
    steps = []
    for t in ts:
        counts = tuple(LayerCounts(layer.name, int(np.prod(layer.shape)), t, float(sim.spikes[:, i, :t].sum(1).mean()),
                                   float(sim.synops[:, i, :t].sum(1).mean()), macs[i])
                       for i, layer in enumerate(info.layers))
        chip = {p.name: chip_timing(p, t, len(info.layers)) for p in profiles}
        energy = {p.name: snn_energy(counts, p, chip[p.name].latency_us, 1) for p in profiles}
        steps.append((t, float(sim.accuracy(labels)[t - 1]), counts, energy, chip))
    return StockReport(path, info.writer, run, tuple(steps))


def analyze_conversion(checkpoint_path: str | Path, timesteps: int,
                       delta2_values: Sequence[float] = DEFAULT_DELTA2, limit: int | None = None,
                       data_root: str | Path | None = None, dataset: str | None = None, device: str | None = None,
                       batch_size: int | None = None) -> ConversionAnalysis:
    """Layer-wise conversion error of a checkpoint on its data set's test split.

    Args:
        checkpoint_path: a slipsnn ``model.pt`` or a model file (``save_model``).
        timesteps: T ≥ 1.
        delta2_values: initial membranes (units of θ) for the sweep, each in (−1, 1).
        limit: use the first ``limit`` test samples (default all; see ``analyze_network`` on memory).
        data_root: folder of the data set files (not needed for digits).
        dataset: evaluate on this data set's test split (default: the checkpoint's).
        device, batch_size: where and in what batches the float SNN is simulated (``simulate_float``).

    Returns:
        The ``ConversionAnalysis``.

    Example:
        >>> res = analyze_conversion("runs/digits/model.pt", 4, delta2_values=[0.0, 0.5])   # doctest: +SKIP
        >>> [round(layer.mean, 3) for layer in res.trained.layers]                         # doctest: +SKIP
        [0.001, -0.004, 0.012]
    """
    net = load_converted(checkpoint_path)
    pixels, labels = load_pixels(dataset or _dataset_of(net, checkpoint_path), "test", data_root, limit)
    return analyze_network(net, pixels, labels, timesteps, delta2_values, source=str(checkpoint_path), device=device,
                           batch_size=batch_size)
