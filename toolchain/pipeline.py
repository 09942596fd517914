"""Library entry points behind the CLI: checkpoint → converted SNN → integer network → file → runs.

Each function is what one command does, callable from Python:

    >>> net, path = export_checkpoint("runs/d/model.pt", "runs/d/model.net", timesteps=4)   # doctest: +SKIP
    >>> result = run_file("runs/d/model.net", backend="loihi_sim", limit=100)               # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch

from . import __version__
from .ann.checkpoint import Checkpoint, load_checkpoint
from .data.loaders import load_pixels
from .errors import SlipsnnError
from .ir.integer import IntNetwork
from .convert.lower import lower
from .convert.quantize import QuantConfig, quantize
from .backends.result import Mismatch, RunResult, compare
from .backends.registry import run_network
from .backends.simulator import simulate_float, simulate_int
from .ir.floating import SpikingNetwork
from .backends.ann_eval import ann_forward

if TYPE_CHECKING:
    from .ann.training import TrainConfig


def train_and_evaluate(cfg: "TrainConfig", progress: bool = True,
                       timesteps: Sequence[int] = (1, 2, 4, 8)) -> dict:
    """Train, evaluate the converted float SNN on the test split, and write ``metrics.json``.

    Args:
        cfg: the training configuration; with ``cfg.out_dir`` the checkpoint and metrics are written there.
        progress: show the training progress bar.
        timesteps: the T at which the converted SNN is evaluated.

    Returns:
        ``{"ann_accuracy": acc, "snn_accuracy": {"1": acc, …}, …}`` (fractions of 1, test split, without
        the per-epoch history); the checkpoint's metrics hold the same numbers.
    """
    from .files import atomic_write_json
    from .ann.training import train
    metrics = {k: v for k, v in train(cfg, progress, snn_timesteps=timesteps).metrics.items() if k != "history"}
    if cfg.out_dir:
        atomic_write_json(Path(cfg.out_dir) / "metrics.json", metrics)
    return metrics


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
    from slipsnn.exporters.netx import write_netx
    cfg = (QuantConfig.for_stock_netx if neuron == "cuba" else QuantConfig)(timesteps, max_timesteps)
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


def format_chain(chain: dict[str, dict[int, float] | float]) -> str:
    """The accuracy chain as a table (percent)."""
    stages = [k for k in chain if k != "ann"]
    ts = sorted(next(iter(chain[s] for s in stages)))  # type: ignore[arg-type]
    rows = [f"{'stage':<12}" + "".join(f"{'T=' + str(t):>9}" for t in ts),
            f"{'ANN':<12}" + f"{100 * float(chain['ann']):>9.2f}" * len(ts)]
    for s in stages:
        rows.append(f"{s:<12}" + "".join(f"{100 * chain[s][t]:>9.2f}" for t in ts))  # type: ignore[index]
    return "\n".join(rows)


def mismatch_summary(m: Mismatch) -> str:
    """One line per kind of disagreement, or the all-clear."""
    if m.total == 0:
        return "0 mismatches: predictions, per-layer spike counts, synaptic events and outputs are bit-identical"
    parts = [f"{len(m.predictions)} predictions (samples {m.predictions[:5]})",
             f"{len(m.spikes)} spike counts (sample, layer, step) {m.spikes[:3]}",
             f"{len(m.synops)} synaptic-event counts", f"{len(m.logits)} output traces"]
    return "MISMATCH: " + "; ".join(parts)

