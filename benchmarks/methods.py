"""Digits benchmark: SlipReLU against its special cases and the ReLU source ANN, over several seeds.

    python benchmarks/methods.py                       # 8 methods × 3 seeds × 30 epochs (8 min measured, 2 cores)
    python benchmarks/methods.py --quick               # 1 seed, 2 epochs, 2 methods (the smoke test)

Every method trains the same architecture (the digits CNN, width 1) with the same recipe — the digits
defaults of ``TrainConfig.for_dataset`` (L, θ₀, lr, batch; each run's config is stored in the JSON) —
and the same epoch budget (``--epochs``) from the same seeds, so seed s of every method starts from the
same weights.
For each run it measures, on the whole digits test split (450 images):

* ANN: top-1 accuracy of the trained ANN (the best-test-accuracy epoch, as in the paper's code);
* float SNN: the converted network in float (``simulate_float``), accuracy after T = 1, 2, 4, 8 steps of
  one simulation;
* integer SNN: for each T its own integer network, ``quantize(net, QuantConfig(timesteps=T,
  max_timesteps=T))`` — what ``slipsnn export --timesteps T`` deploys: the 24-bit overflow proof covers
  exactly T steps, so each T gets the largest scale (finest weights) that is safe for it — run bit-exactly
  with ``simulate_int`` (the ``fast`` backend) for T steps.

Cells are mean ± sample standard deviation (ddof = 1) over seeds, in percent. The paired comparison
(each SlipReLU variant minus QCFS, seed by seed) gives mean ± std of the differences and a two-sided
paired t-test at 95 %; with 3 seeds only large, consistent differences pass it.
The ReLU row is the source ANN: its thresholds come from data calibration (99.9th percentile of each
ReLU's output on 1024 training images) and its SNN starts at v(0) = θ/2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import describe_machine, machine_info  # noqa: E402  (sibling script)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "methods.json"
TIMESTEPS = (1, 2, 4, 8)
# The digits default of ``slipsnn train`` (TrainConfig). Measured on the 2-core build machine with one
# torch thread: 0.3-1 s per epoch depending on the load; the 24 runs of 30 epochs took 8 min (< 30 min).
DEFAULT_EPOCHS = 30
DEFAULT_SEEDS = 3
# The digits CNN's tensors are tiny: one torch thread loses little on an idle 2-core machine, and when
# other processes compete for the cores, two spinning OpenMP threads were measured 6x slower per epoch.
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class Method:
    """One row: an activation preset with optional overrides of a and δ₂."""

    key: str
    label: str
    activation: str
    a: float | None = None
    delta2: float | None = None


METHODS: tuple[Method, ...] = (
    Method("relu", "ReLU (calibrated θ)", "relu"),
    Method("clip", "clip (a=1)", "clip"),
    Method("qcfs", "QCFS (a=0, δ₂=0.5)", "qcfs"),
    Method("slip_a0.25", "slip a=0.25", "slip", a=0.25),
    Method("slip_a0.5", "slip a=0.5", "slip", a=0.5),
    Method("slip_a0.75", "slip a=0.75", "slip", a=0.75),
    Method("slip_a0.5_d0", "slip a=0.5, δ₂=0", "slip", a=0.5, delta2=0.0),
    Method("slip_a0.5_d-0.5", "slip a=0.5, δ₂=-0.5", "slip", a=0.5, delta2=-0.5),
)
QUICK_METHODS = ("qcfs", "slip_a0.5")
QUICK_LIMIT = 150       # test images in --quick: keeps the smoke test near 30 s
BASELINE = "qcfs"


def run_one(method: Method, seed: int, epochs: int, timesteps: Sequence[int],
            limit: int | None = None) -> dict[str, Any]:
    """Train one method with one seed and measure ANN, float-SNN and integer-SNN accuracy (fractions).

    ``limit`` evaluates on the first ``limit`` test images only (the ``--quick`` smoke run).
    """
    from slipsnn.toolchain.data.loaders import load_pixels
    from slipsnn.toolchain.convert.lower import lower
    from slipsnn.toolchain.convert.quantize import QuantConfig, quantize
    from slipsnn.toolchain.backends.simulator import simulate_float, simulate_int
    from slipsnn.toolchain.ann.training import TrainConfig, evaluate_ann, train

    cfg = TrainConfig.for_dataset("digits", activation=method.activation, a=method.a, delta2=method.delta2,
                                  epochs=epochs, seed=seed, device="cpu")
    start = time.perf_counter()
    res = train(cfg, progress=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    pixels, labels = load_pixels("digits", "test", limit=limit)
    y = labels.numpy()
    net = lower(res.model, res.model_cfg.input_shape, res.thetas)
    float_acc = simulate_float(net, pixels, max(timesteps)).accuracy(y)
    int_acc = {}
    for t in timesteps:
        q = quantize(net, QuantConfig(timesteps=t, max_timesteps=t))
        int_acc[str(t)] = float(simulate_int(q, pixels, t).accuracy(y)[-1])
    return {"seed": seed, "ann": evaluate_ann(res.model, pixels / 255, labels),
            "float_snn": {str(t): float(float_acc[t - 1]) for t in timesteps}, "int_snn": int_acc,
            "best_epoch": res.metrics["best_epoch"], "thetas": res.thetas,
            "train_config": {k: v for k, v in cfg.to_dict().items() if k not in ("out_dir", "data_root")},
            "train_s": round(train_s, 2), "eval_s": round(time.perf_counter() - start, 2)}


def torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value), plus n."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def summarize(runs: list[dict[str, Any]], timesteps: Sequence[int]) -> dict[str, Any]:
    return {"ann": mean_std([r["ann"] for r in runs]),
            **{kind: {str(t): mean_std([r[kind][str(t)] for r in runs]) for t in timesteps}
               for kind in ("float_snn", "int_snn")}}


def paired(a_runs: list[dict], b_runs: list[dict], kind: str, t: int) -> dict[str, Any]:
    """a − b seed by seed at T = t: mean ± std of the differences, the paired t statistic and its verdict."""
    b_by_seed = {r["seed"]: r for r in b_runs}
    diffs = [r[kind][str(t)] - b_by_seed[r["seed"]][kind][str(t)] for r in a_runs if r["seed"] in b_by_seed]
    out = mean_std(diffs) if diffs else {"mean": math.nan, "std": math.nan, "n": 0}
    n = out["n"]
    if n >= 2 and out["std"] > 0:
        from scipy import stats
        t_stat = out["mean"] / (out["std"] / math.sqrt(n))
        crit = float(stats.t.ppf(0.975, n - 1))
        out.update(t=t_stat, t_critical_95=crit, significant=bool(abs(t_stat) > crit))
    else:
        out.update(t=None, t_critical_95=None, significant=None)   # undecidable from < 2 seeds / no spread
    return out


def _cell(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:6.2f} ± {100 * s['std']:4.2f}"


def format_tables(result: dict[str, Any]) -> str:
    ts = result["timesteps"]
    width = max(len(m["label"]) for m in result["methods"]) + 2
    head = f"{'method':<{width}}{'ANN':>16}" + "".join(f"{'T=' + str(t):>16}" for t in ts)
    lines = [f"digits_cnn on digits, {result['epochs']} epochs, seeds {result['seeds']}, "
             f"{result['test_samples']} test images; "
             "top-1 % (mean ± std over seeds)", f"machine: {describe_machine(result['machine'])}"]
    for kind, title in (("float_snn", "float SNN"), ("int_snn", "integer SNN (one export per T, proven for T steps)")):
        lines += ["", title, head]
        for m in result["methods"]:
            s = m["summary"]
            lines.append(f"{m['label']:<{width}}{_cell(s['ann']):>16}" + "".join(f"{_cell(s[kind][str(t)]):>16}"
                                                                                 for t in ts))
    if result["comparisons"]:
        lines += ["", f"paired difference vs {BASELINE} (same seed), percentage points, mean ± std; "
                      "* = significant (paired t-test, 95 %)"]
        lines.append(f"{'method':<{width}}{'':>10}" + "".join(f"{'T=' + str(t):>18}" for t in ts))
        for key, comp in result["comparisons"].items():
            label = next(m["label"] for m in result["methods"] if m["key"] == key)
            for kind in ("float_snn", "int_snn"):
                cells = []
                for t in ts:
                    c = comp[kind][str(t)]
                    mark = "*" if c["significant"] else " "
                    cells.append(f"{100 * c['mean']:+7.2f} ± {100 * c['std']:4.2f}{mark}")
                lines.append(f"{label:<{width}}{kind.split('_')[0]:>10}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds 0..N-1 per method")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="the same budget for every method")
    ap.add_argument("--methods", default=None, help="comma-separated keys: " + ", ".join(m.key for m in METHODS))
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                    help="torch CPU threads (0: torch's default); 1 is robust on a shared machine")
    ap.add_argument("--limit", type=int, default=None, help="evaluate on the first N test images (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help=f"1 seed, 2 epochs, methods {', '.join(QUICK_METHODS)}, {QUICK_LIMIT} test images "
                         "(overrides the options above)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output, rewritten atomically after every run")
    args = ap.parse_args(argv)
    keys = [m.key for m in METHODS]
    chosen = QUICK_METHODS if args.quick else (args.methods.split(",") if args.methods else keys)
    unknown = [k for k in chosen if k not in keys]
    if unknown:
        ap.error(f"unknown methods {unknown}; allowed: {', '.join(keys)}")
    seeds, epochs, limit = (1, 2, QUICK_LIMIT) if args.quick else (args.seeds, args.epochs, args.limit)
    if seeds < 1 or epochs < 1 or (limit is not None and limit < 1):
        ap.error("--seeds, --epochs and --limit must be ≥ 1")
    methods = [m for m in METHODS if m.key in chosen]
    import torch
    threads_before = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, methods, seeds, epochs, limit)
    finally:
        torch.set_num_threads(threads_before)   # main() may run inside a test session


def _run(args: argparse.Namespace, methods: list[Method], seeds: int, epochs: int, limit: int | None) -> dict[str, Any]:
    from slipsnn.toolchain.files import atomic_write_json
    from slipsnn.toolchain.data.loaders import load_pixels

    result: dict[str, Any] = {
        "benchmark": "methods", "dataset": "digits", "arch": "digits_cnn", "epochs": epochs,
        "seeds": list(range(seeds)), "timesteps": list(TIMESTEPS), "quick": bool(args.quick),
        "test_samples": len(load_pixels("digits", "test", limit=limit)[1]),
        "integer_export": "one quantize() per T with QuantConfig(timesteps=T, max_timesteps=T), run for T steps",
        "std": "sample standard deviation over seeds (ddof=1); 0 for one seed",
        "threads": torch_threads(), "machine": machine_info(), "methods": [], "comparisons": {}, "finished": False}
    start = time.perf_counter()
    for method in methods:
        entry = {**asdict(method), "runs": []}
        result["methods"].append(entry)
        for seed in range(seeds):
            run = run_one(method, seed, epochs, TIMESTEPS, limit)
            entry["runs"].append(run)
            entry["summary"] = summarize(entry["runs"], TIMESTEPS)
            print(f"[{time.perf_counter() - start:7.1f} s] {method.label:<22} seed {seed}: ANN {100 * run['ann']:.2f} "
                  f"| float " + " ".join(f"{100 * v:.1f}" for v in run["float_snn"].values())
                  + " | int " + " ".join(f"{100 * v:.1f}" for v in run["int_snn"].values())
                  + f" | train {run['train_s']:.0f} s, eval {run['eval_s']:.0f} s", file=sys.stderr, flush=True)
            result["wall_s"] = time.perf_counter() - start
            atomic_write_json(args.out, result)
    base = next((m for m in result["methods"] if m["key"] == BASELINE), None)
    if base is not None:
        for m in result["methods"]:
            if m["activation"] == "slip":
                result["comparisons"][m["key"]] = {kind: {str(t): paired(m["runs"], base["runs"], kind, t)
                                                          for t in TIMESTEPS} for kind in ("float_snn", "int_snn")}
    result["wall_s"] = time.perf_counter() - start
    result["load_average_after"] = machine_info().get("load_average_1_5_15min")
    result["finished"] = True
    print(format_tables(result))
    atomic_write_json(args.out, result)
    print(f"\nwall time {result['wall_s']:.0f} s; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
