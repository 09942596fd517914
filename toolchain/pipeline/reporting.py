"""Reports on a network: activity, energy and latency on chip profiles, and the layer-wise conversion error."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..analysis.conversion import DEFAULT_DELTA2, ConversionAnalysis, analyze_network
from ..backends.registry import run_network
from ..costs.report import Report, build_report, choose_profiles
from ..data.loaders import load_pixels
from ..ir.formats import check_timestep_list
from .models import dataset_of, load_converted
from .running import network_and_test_data


def save_report(report: Report, json_path: str | Path | None = None, plots_dir: str | Path | None = None) -> list[Path]:
    """Write the JSON and/or the three plots atomically; returns the written paths."""
    from ..files import atomic_write_json
    written: list[Path] = []
    if json_path is not None:
        written.append(atomic_write_json(json_path, report.to_json()))
    if plots_dir is not None:
        from ..show.plots import plot_report
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
    ts = check_timestep_list(timesteps)
    profiles, ann = choose_profiles(profile, ann_profile)
    net, pixels, labels = network_and_test_data(net_path, dataset, data_root, limit)
    run = run_network(net, pixels, labels, max(ts), backend, progress=progress, device=device, batch_size=batch_size)
    rep = build_report(net, run, ts, profiles, ann)
    save_report(rep, json_path, plots_dir)
    return rep


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
    pixels, labels = load_pixels(dataset or dataset_of(net, checkpoint_path), "test", data_root, limit)
    return analyze_network(net, pixels, labels, timesteps, delta2_values, source=str(checkpoint_path), device=device,
                           batch_size=batch_size)
