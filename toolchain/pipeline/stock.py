"""Stock netx files (CUBA neurons: slipsnn's ``--neuron cuba`` or slayer's): run and report them through
unmodified lava-dl netx, and compare a slipsnn cuba file with its ``if_soft`` twin."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..backends.registry import run_network
from ..backends.result import RunResult, SimResult
from ..conversion.quantize import quantize
from ..costs.report import choose_profiles
from ..data.loaders import load_pixels
from ..data.registry import DATASETS
from ..errors import SlipsnnError
from ..ir.formats import check_timestep_list, check_timesteps
from .models import convert_checkpoint, quant_config

if TYPE_CHECKING:
    from slipsnn.exporters.stock_netx import StockNetwork

    from ..costs.mapping import CoreMap


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
    info = describe_stock_netx(path, DATASETS[dataset].input_shape if dataset in DATASETS else None)
    dataset = dataset or info.meta.get("dataset")
    if not dataset:
        raise SlipsnnError(f"{path} does not record its data set; name one (--dataset)")
    return info, dataset


def _stock_input(info: "StockNetwork", dataset: str, data_root: str | Path | None, limit: int | None,
                 binary_threshold: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The test split as a stock file takes it: (pixels, labels, int64 input), the input binary — a spike where
    the pixel is ≥ ``binary_threshold`` — for a file with binary input (slayer's default)."""
    pixels, labels = load_pixels(dataset, "test", data_root, limit)
    x = pixels.numpy().astype(np.int64)
    if info.input_bits == 0:
        x = (x >= binary_threshold).astype(np.int64)
    return pixels, labels, x


def _run_stock(path: str | Path, info: "StockNetwork", x: np.ndarray, timesteps: int,
               fanouts: list[np.ndarray] | None = None) -> tuple[SimResult, dict[str, float]]:
    """``run_stock_netx`` with what the file's description says: input bits, output scale, names, read-out."""
    from ..backends.lava.stock_netx import run_stock_netx
    return run_stock_netx(path, x, timesteps, info.input_bits, info.layers[-1].scale,
                          [layer.name for layer in info.layers], "v" if info.writer == "slipsnn" else "spikes",
                          fanouts, info.input_shape)


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
    if backend != "loihi_sim":
        raise SlipsnnError(f"{net_path} is a stock netx file: it runs on backend 'loihi_sim' (stock lava-dl "
                           f"netx), not {backend!r}")
    info, dataset = _describe_stock(net_path, dataset)
    t = check_timesteps(timesteps or info.timesteps or 1)
    pixels, labels, x = _stock_input(info, dataset, data_root, limit, BINARY_THRESHOLD)
    sim, timing = _run_stock(net_path, info, x, t)
    run = RunResult(backend, t, sim, labels.numpy().astype(np.int64), timing)
    ckpt = info.meta.get("checkpoint")
    if info.writer != "slipsnn" or not ckpt or not Path(ckpt).is_file():
        return StockRun(run, None, None)
    horizon = max(t, int(info.max_timesteps or 1))   # the horizon the file was quantized for: same integers
    twin_net = quantize(convert_checkpoint(ckpt), quant_config(1, horizon, "cuba"))
    twin = run_network(twin_net, pixels, labels, t, "fast")
    return StockRun(run, twin, float((twin.sim.predictions() == sim.predictions()).mean()))


@dataclass(frozen=True)
class StockReport:
    """Activity, energy and latency of a stock netx file (one slipsnn did not write), run through stock netx.

    Attributes:
        path: the file.
        writer: ``slipsnn`` or ``other`` (slayer, …).
        run: the stock netx run at T = max(timesteps).
        steps: per t: (accuracy, per-layer counts, {profile: energy}, {profile: timing}).
        cores: per profile, the file's layers partitioned over cores and chips (``costs.mapping.map_cores``).
    """

    path: Path
    writer: str
    run: RunResult
    steps: tuple[tuple[int, float, tuple, dict, dict], ...]
    cores: dict[str, "CoreMap"] = field(default_factory=dict)

    def to_json(self) -> dict:
        """The ``--json`` document: per t, accuracy, per-layer counts, energy (pJ) and latency (µs) per profile;
        per profile the cores of each layer and the chips."""
        return {"file": str(self.path), "writer": self.writer, "backend": self.run.backend,
                "samples": int(len(self.run.labels)),
                "cores": {name: {"total": m.total_cores, "chips": m.chips,
                                 "per_layer": {part.name: part.cores for part in m.layers}}
                          for name, m in self.cores.items()},
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
    exact fan-out of the file's weights), the partition over cores and chips from the file's layer shapes
    (``costs.mapping.map_cores``, as for slipsnn's own networks), latency from the most loaded core
    (``step_estimate``, ``chip_timing``) and energy, static power over the chips in use, from
    ``costs.energy.snn_energy``. A file slipsnn did not write takes binary input: a spike
    wherever the pixel is ≥ ``binary_threshold``, every step; its class is the output block's spike count.

    Raises:
        SlipsnnError: no data set given or recorded; bad timesteps; the file is not a stock netx file.
    """
    from ..costs.counts import LayerCounts
    from ..costs.energy import snn_energy
    from ..costs.mapping import LayerSpec, chip_timing, map_cores, step_estimate, synapse_spec
    from ..kernels.connectivity import synapse_fanout, synapse_macs
    ts = check_timestep_list(timesteps)
    path = Path(net_path)
    info, dataset = _describe_stock(path, dataset)
    profiles, _ = choose_profiles(profile)
    pixels, labels, x = _stock_input(info, dataset, data_root, limit, binary_threshold)
    shapes = [info.input_shape] + [layer.shape for layer in info.layers]
    fanouts = [synapse_fanout(layer.synapse, shapes[i]) for i, layer in enumerate(info.layers)]
    macs = [synapse_macs(layer.synapse, shapes[i]) for i, layer in enumerate(info.layers)]
    specs = [LayerSpec(layer.name, tuple(layer.shape), (synapse_spec(layer.synapse, shapes[i], fanouts[i]),))
             for i, layer in enumerate(info.layers)]
    cores = {p.name: map_cores(specs, p) for p in profiles}
    sim, timing = _run_stock(path, info, x, max(ts), fanouts)
    run = RunResult("loihi_sim", max(ts), sim, labels.numpy().astype(np.int64), timing)
    steps = []
    for t in ts:
        counts = tuple(LayerCounts(layer.name, int(np.prod(layer.shape)), t, float(sim.spikes[:, i, :t].sum(1).mean()),
                                   float(sim.synops[:, i, :t].sum(1).mean()), macs[i])
                       for i, layer in enumerate(info.layers))
        chip = {p.name: chip_timing(p, t, len(info.layers), step_estimate(cores[p.name], counts, p)) for p in profiles}
        energy = {p.name: snn_energy(counts, p, chip[p.name].latency_us, cores[p.name].chips) for p in profiles}
        steps.append((t, float(sim.accuracy(labels)[t - 1]), counts, energy, chip))
    return StockReport(path, info.writer, run, tuple(steps), cores)
