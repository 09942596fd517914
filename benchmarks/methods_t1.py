"""Why a method converts badly at T = 1: per finished ``methods.py`` run, how skewed the classes the T = 1 integer
SNN predicts are, and the float SNN's layer-wise conversion error at T = 1 (``slipsnn analyze``).

    python benchmarks/methods_t1.py                      # every run of benchmarks/results/methods/fashion-mnist
    python benchmarks/methods_t1.py --limit 2000         # fewer test images for the conversion error

Per run (a ``<method>_s<seed>/model.pt`` of ``methods.py``, which must have run first):

* the integer SNN exported for T = 1 (``QuantConfig(1, 1)``, as ``methods.py`` scores it) on the test images:
  accuracy, and the largest and smallest share of the test images predicted as one class (a flat 10 % each
  when the classes are balanced and predicted without bias);
* ``analysis.conversion.analyze_network`` at T = 1 on the first ``--limit`` test images: per spiking layer the
  mean and the standard deviation of e = ANN activation/θ − spikes/T (units of θ).

Writes ``<results>/<dataset>/t1_diagnosis.json`` and prints one row per run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import DEFAULT_OUT, METHODS  # noqa: E402  (sibling script)
from throughput import machine_info  # noqa: E402


def diagnose(run_dir: Path, pixels: Any, labels: Any, limit: int) -> dict[str, Any]:
    """The T = 1 prediction skew of the integer SNN and the float SNN's per-layer error, of one run on the test
    split ``pixels`` (N, C, H, W, 0..255) and ``labels`` (N,)."""
    from slipsnn.toolchain.analysis.conversion import analyze_network
    from slipsnn.toolchain.backends.registry import run_network
    from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
    from slipsnn.toolchain.pipeline import load_converted

    snn = load_converted(run_dir / "model.pt")
    run = run_network(quantize(snn, QuantConfig(1, 1)), pixels, labels, 1, "fast", device="cpu")
    shares = np.bincount(run.sim.predictions(), minlength=int(labels.max()) + 1) / len(labels)
    part = analyze_network(snn, pixels[:limit], labels[:limit], 1, (0.5,), source=str(run_dir), device="cpu")
    return {"run": run_dir.name, "int_accuracy_t1": run.accuracy, "class_share_max": float(shares.max()),
            "class_share_min": float(shares.min()), "class_shares": shares.tolist(),
            "float_accuracy_t1_on_limit": part.trained.snn_accuracy,
            "layers": [{"name": e.name, "mean": e.mean, "std": e.std, "mean_abs": e.mean_abs}
                       for e in part.trained.layers]}


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--limit", type=int, default=2000, help="test images for the conversion error")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="methods.py's results folder")
    args = ap.parse_args(argv)
    if args.limit < 1:
        ap.error(f"--limit {args.limit}: must be ≥ 1 (test images for the conversion error)")
    import torch
    torch.set_num_threads(1)
    from slipsnn.toolchain.data.loaders import load_pixels
    from slipsnn.toolchain.files import atomic_write_json
    folder = args.out / args.dataset
    order = {m.key: k for k, m in enumerate(METHODS)}
    runs = sorted((d for d in folder.glob("*_s*") if (d / "model.pt").is_file()),
                  key=lambda d: (order.get(d.name.rsplit("_s", 1)[0], 99), d.name))
    if not runs:
        ap.error(f"no finished run in {folder}: run benchmarks/methods.py first")
    pixels, labels = load_pixels(args.dataset, "test")   # once, for every run
    rows = []
    print(f"{'run':<18}{'int T=1 %':>10}{'class share max/min %':>23}   per layer: mean ± std of e (units of θ)")
    for d in runs:
        r = diagnose(d, pixels, labels, args.limit)
        rows.append(r)
        layers = "  ".join(f"{e['mean']:+.3f}±{e['std']:.3f}" for e in r["layers"])
        print(f"{r['run']:<18}{100 * r['int_accuracy_t1']:>10.2f}{100 * r['class_share_max']:>14.1f} / "
              f"{100 * r['class_share_min']:<6.1f}   {layers}", flush=True)
    atomic_write_json(folder / "t1_diagnosis.json", {"benchmark": "methods_t1", "machine": machine_info(),
                                                      "limit": args.limit, "runs": rows})
    print(f"wrote {folder / 't1_diagnosis.json'}")
    return rows


if __name__ == "__main__":
    main()
