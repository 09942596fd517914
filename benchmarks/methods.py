"""SlipReLU against QCFS, clip and the calibrated ReLU ANN, over seeds, on Fashion-MNIST (or digits).

    nice -n 19 python benchmarks/methods.py                  # 7 methods × 3 seeds, Fashion-MNIST reduced setting
    nice -n 19 python benchmarks/methods.py --stop-after 2   # a slice: at most 2 epochs of training, then exit
    python benchmarks/methods.py --dataset digits --epochs 30 --width 1 --train-subset 0 --test-limit 0
    python benchmarks/methods.py --quick                     # the smoke test: digits, 1 seed, 2 epochs, 2 methods

Every method trains the same architecture (``digits_cnn``, the 28×28 default: three 3×3 convs, two 2×2
average pools) with the same recipe (``TrainConfig.for_dataset``: SGD, cosine, L = 4, θ₀ = 1; each run's
config is stored) through the library loop (``training.train``), from the same seeds, so seed s of every
method starts from the same weights and sees the same batches. Model selection is on the 10 % validation
split held out from the training images; the test images are scored once, for the selected epoch.

Each (method, seed) is one run in ``<out>/<dataset>/<method>_s<seed>/``: ``resume.pt`` while training
(rewritten every epoch), ``model.pt`` when trained, ``results.json`` when evaluated. A run whose
``results.json`` holds the same setting is skipped, so the benchmark runs in slices across sessions
(``--stop-after N`` caps the epochs trained per call). Per run it measures on the test images:

* ANN: top-1 accuracy of the selected ANN;
* float SNN: the converted network in float (``simulate_float``) after T = 1, 2, 4, 8 steps of one run;
* integer SNN: for each T its own integer network, ``quantize(net, QuantConfig(timesteps=T,
  max_timesteps=T))`` — what ``slipsnn export --timesteps T`` deploys — run bit-exactly (``simulate_int``).

Cells are mean ± sample standard deviation (ddof = 1) over the seeds done, in percent. The paired
comparison (each SlipReLU variant minus QCFS, seed by seed) gives the mean ± std of the differences, a
two-sided paired t-test and the Wilcoxon signed-rank p-value. With 3 seeds the t-test has 2 degrees of
freedom (critical |t| = 4.30: only a difference larger than ~2.5 × its own seed-to-seed std passes) and the
exact Wilcoxon test can never reach p < 0.05 (its smallest two-sided p is 0.25), so "not significant" there
means "not shown", not "no difference".
The ReLU row is the source ANN: θ per ReLU from data (99.9th percentile on 1024 training images).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import describe_machine, machine_info  # noqa: E402  (sibling script)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "methods"
TIMESTEPS = (1, 2, 4, 8)
DEFAULT_SEEDS = 3
# Per data set: epochs, width, training images (0 = all 60000 / 1347) and test images (0 = all). On the 2-core
# machine at rest (load ≤ 1.2, 2026-12-02), width 0.5 trains 10,800 Fashion-MNIST images per epoch in ~6 s of one
# thread and scores 2,000 test images (ANN, float SNN, integer SNN at 4 T) in ~9 s, so the whole set — 54,000
# train + 6,000 validation, 10,000 test — fits the 6-minute budget at 5 epochs (~3 min a run). Width 1 costs
# ~2.5× that; under load (~9) a run was measured 6–10× slower. Wall times per run are in each results.json.
SETTINGS: dict[str, dict[str, Any]] = {
    "fashion-mnist": dict(epochs=5, width=0.5, train_subset=0, test_limit=0),
    "digits": dict(epochs=30, width=1.0, train_subset=0, test_limit=0),
}
# Small CNNs on a shared 2-core machine: one torch thread is fastest (two spinning OpenMP threads were
# measured 6–16× slower under load) and it is what the library pins (results depend on the thread count).
DEFAULT_THREADS = 1


@dataclass(frozen=True)
class Method:
    """One row: an activation preset with optional overrides of a, δ₂ and a learnable a."""

    key: str
    label: str
    activation: str
    a: float | None = None
    delta2: float | None = None
    a_learnable: bool | None = None


METHODS: tuple[Method, ...] = (
    Method("relu", "ReLU (calibrated θ)", "relu"),
    Method("clip", "clip (a=1)", "clip"),
    Method("qcfs", "QCFS (a=0, δ₂=0.5)", "qcfs"),
    Method("slip_a0.25", "slip a=0.25", "slip", a=0.25),
    Method("slip_a0.5", "slip a=0.5", "slip", a=0.5),
    Method("slip_a0.75", "slip a=0.75", "slip", a=0.75),
    Method("slip_learn", "slip a learnable", "slip", a=0.5, a_learnable=True),
    Method("slip_a0.5_d0", "slip a=0.5, δ₂=0", "slip", a=0.5, delta2=0.0),
    Method("slip_a0.5_d-0.5", "slip a=0.5, δ₂=-0.5", "slip", a=0.5, delta2=-0.5),
)
DEFAULT_METHODS = ("qcfs", "slip_a0.5", "slip_a0.25", "slip_a0.75", "slip_learn", "clip", "relu")
QUICK_METHODS = ("qcfs", "slip_a0.5")
QUICK_LIMIT = 150       # test images in --quick: keeps the smoke test near 30 s
BASELINE = "qcfs"


def _trained(path: Path, recipe: dict[str, Any]) -> Any:
    """The ``TrainResult`` of a finished ``model.pt`` trained with ``recipe``, or None."""
    if not path.is_file():
        return None
    from slipsnn.toolchain.ann.checkpoint import load_checkpoint
    from slipsnn.toolchain.ann.training import TrainResult
    ckpt = load_checkpoint(path)
    saved = {k: v for k, v in (ckpt.train_config or {}).items() if k in recipe}
    if not ckpt.metrics.get("finished") or saved != recipe:
        return None
    return TrainResult(model=ckpt.model, model_cfg=ckpt.model_cfg, act=ckpt.act, preset=ckpt.preset,
                       metrics=ckpt.metrics, thetas=ckpt.thetas, checkpoint=path)


def run_one(method: Method, seed: int, setting: dict[str, Any], run_dir: Path, timesteps: Sequence[int],
            stop_after: int | None = None) -> dict[str, Any] | None:
    """Train (or resume) one method with one seed and measure ANN, float- and integer-SNN accuracy.

    Returns the results (fractions), also written to ``run_dir/results.json``; None when ``stop_after``
    ended the training first (run again to continue). A finished, matching ``results.json`` is returned as is.
    """
    from slipsnn.toolchain.ann.training import TrainConfig, train
    from slipsnn.toolchain.backends.simulator import simulate_float, simulate_int
    from slipsnn.toolchain.conversion.lower import lower
    from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
    from slipsnn.toolchain.data.loaders import load_pixels
    from slipsnn.toolchain.files import atomic_write_json

    cfg = TrainConfig.for_dataset(setting["dataset"], activation=method.activation, a=method.a,
                                  delta2=method.delta2, a_learnable=method.a_learnable, epochs=setting["epochs"],
                                  width=setting["width"], train_subset=setting["train_subset"] or None, seed=seed,
                                  device="cpu", threads=setting["threads"], out_dir=str(run_dir))
    recipe = {k: v for k, v in cfg.to_dict().items() if k not in ("out_dir", "data_root")}
    key = {"train_config": recipe, "test_limit": setting["test_limit"], "timesteps": list(timesteps)}
    res_path = run_dir / "results.json"
    if res_path.is_file():
        done = json.loads(res_path.read_text())
        if {k: done.get(k) for k in key} == key:
            return done
    start = time.perf_counter()
    res = _trained(run_dir / "model.pt", recipe)   # trained in an earlier call, killed while evaluating
    if res is None:
        res = train(cfg, progress=False, resume=True, stop_after=stop_after)
        if not res.metrics["finished"]:
            return None
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    pixels, labels = load_pixels(setting["dataset"], "test", limit=setting["test_limit"] or None)
    y = labels.numpy()
    net = lower(res.model, res.model_cfg.input_shape, res.thetas)
    float_acc = simulate_float(net, pixels, max(timesteps)).accuracy(y)
    int_acc = {}
    for t in timesteps:
        q = quantize(net, QuantConfig(timesteps=t, max_timesteps=t))
        int_acc[str(t)] = float(simulate_int(q, pixels, t).accuracy(y)[-1])
    from slipsnn.toolchain.ann.training import evaluate_ann
    result = {**key, "method": method.key, "seed": seed, "finished": True, "test_samples": len(y),
              "ann": evaluate_ann(res.model, pixels / 255, labels),
              "float_snn": {str(t): float(float_acc[t - 1]) for t in timesteps}, "int_snn": int_acc,
              "best_epoch": res.metrics["best_epoch"], "val_accuracy": res.metrics["val_accuracy"],
              "selected_by": res.metrics["selected_by"], "thetas": res.thetas,
              "a": {n: float(m.a) for n, m in res.model.named_modules() if type(m).__name__ == "SlipReLU"},
              "train_s_total": round(res.metrics["seconds"], 2), "train_s_this_call": round(train_s, 2),
              "eval_s": round(time.perf_counter() - start, 2), "machine": machine_info()}
    atomic_write_json(res_path, result)
    return result


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
    """a − b seed by seed at T = t: mean ± std of the differences, paired t-test and Wilcoxon signed-rank.

    ``significant`` is the t-test's verdict at 95 % (two-sided); ``wilcoxon_p`` the exact two-sided
    p-value (≥ 0.25 with 3 seeds, so it can only confirm a pattern that more seeds would test).
    """
    b_by_seed = {r["seed"]: r for r in b_runs}
    diffs = [r[kind][str(t)] - b_by_seed[r["seed"]][kind][str(t)] for r in a_runs if r["seed"] in b_by_seed]
    out = mean_std(diffs) if diffs else {"mean": math.nan, "std": math.nan, "n": 0}
    n = out["n"]
    out.update(t=None, t_critical_95=None, p_t=None, significant=None, wilcoxon_p=None)
    if n >= 2 and out["std"] > 0:
        from scipy import stats
        t_stat = out["mean"] / (out["std"] / math.sqrt(n))
        crit = float(stats.t.ppf(0.975, n - 1))
        out.update(t=t_stat, t_critical_95=crit, p_t=float(2 * stats.t.sf(abs(t_stat), n - 1)),
                   significant=bool(abs(t_stat) > crit))
    if n >= 2 and any(d != 0 for d in diffs):
        from scipy import stats
        out["wilcoxon_p"] = float(stats.wilcoxon(diffs, zero_method="zsplit", method="exact").pvalue)
    return out


def _comparison_rows(result: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(method label, ``float_snn``/``int_snn``, the paired comparison at each T) for every compared method."""
    labels = {m["key"]: m["label"] for m in result["methods"]}
    return [(labels[key], kind, [comp[kind][str(t)] for t in result["timesteps"]])
            for key, comp in result["comparisons"].items() for kind in ("float_snn", "int_snn")]


def _cell(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:6.2f} ± {100 * s['std']:4.2f}"


def format_tables(result: dict[str, Any]) -> str:
    ts = result["timesteps"]
    st = result["setting"]
    width = max(len(m["label"]) for m in result["methods"]) + 2
    head = f"{'method':<{width}}{'n':>3}{'ANN':>16}" + "".join(f"{'T=' + str(t):>16}" for t in ts)
    lines = [f"digits_cnn (width {st['width']}) on {st['dataset']}, {st['epochs']} epochs, "
             f"{st['train_subset'] or 'all'} training images (10 % validation), {st['test_limit'] or 'all'} test "
             "images; top-1 % (mean ± std over the seeds done, n)",
             f"runs done: {result['runs_done']} of {result['runs_planned']}; "
             f"machine: {describe_machine(result['machine'])}"]
    for kind, title in (("float_snn", "float SNN"), ("int_snn", "integer SNN (one export per T, proven for T steps)")):
        lines += ["", title, head]
        for m in result["methods"]:
            s = m.get("summary")
            if s is None:
                lines.append(f"{m['label']:<{width}}{0:>3}  (no run done yet)")
                continue
            lines.append(f"{m['label']:<{width}}{s['ann']['n']:>3}{_cell(s['ann']):>16}"
                         + "".join(f"{_cell(s[kind][str(t)]):>16}" for t in ts))
    if result["comparisons"]:
        lines += ["", f"paired difference vs {BASELINE} (same seed), percentage points, mean ± std (n seeds); "
                      "* = paired t-test p < 0.05; [p] = paired t-test p"]
        lines.append(f"{'method':<{width}}{'':>6}" + "".join(f"{'T=' + str(t):>24}" for t in ts))
        for label, kind, per_t in _comparison_rows(result):
            cells = []
            for c in per_t:
                mark = "*" if c["significant"] else " "
                p = "  –  " if c["p_t"] is None else f"{c['p_t']:.3f}"
                cells.append(f"{100 * c['mean']:+6.2f} ± {100 * c['std']:4.2f}{mark}[{p}]")
            lines.append(f"{label:<{width}}{kind.split('_')[0]:>6}" + "".join(f"{c:>24}" for c in cells))
    return "\n".join(lines)


def _pct(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}".replace("-", "−")


def format_markdown(result: dict[str, Any]) -> str:
    """The tables of ``format_tables`` as Markdown (for docs/benchmarks.md), with wall time per run and, in the
    paired table, the t-test and Wilcoxon p-values; ``**`` marks a difference the t-test finds at 95 %."""
    ts = result["timesteps"]
    head = "| method | seeds | ANN | " + " | ".join(f"T={t}" for t in ts) + " |"
    rule = "|---|---|---|" + "---|" * len(ts)
    out = []
    for kind, title in (("float_snn", "Float SNN"), ("int_snn", "Integer SNN (one export per T, proven for T steps)")):
        out += [f"**{title}, top-1 % (mean ± std over seeds).**", "", head, rule]
        for m in result["methods"]:
            s = m.get("summary")
            cells = [_pct(s["ann"]), *(_pct(s[kind][str(t)]) for t in ts)] if s else ["–"] * (len(ts) + 1)
            out.append(f"| {m['label']} | {s['ann']['n'] if s else 0} | " + " | ".join(cells) + " |")
        out.append("")
    if result["comparisons"]:
        out += [f"**Paired difference vs {BASELINE} (same seed), percentage points: mean ± std [paired t-test p; "
                "Wilcoxon p].**", "", "| variant | sim | n | " + " | ".join(f"T={t}" for t in ts) + " |",
                "|---|---|---|" + "---|" * len(ts)]
        for label, kind, per_t in _comparison_rows(result):
            cells = []
            for c in per_t:
                p_t = "–" if c["p_t"] is None else f"{c['p_t']:.3f}"
                p_w = "–" if c["wilcoxon_p"] is None else f"{c['wilcoxon_p']:.2f}"
                cell = f"{100 * c['mean']:+.2f} ± {100 * c['std']:.2f} [{p_t}; {p_w}]".replace("-", "−")
                cells.append(f"**{cell}**" if c["significant"] else cell)
            out.append(f"| {label} | {kind.split('_')[0]} | {per_t[0]['n']} | " + " | ".join(cells) + " |")
        out.append("")
    walls = [m["wall_s_per_run"] for m in result["methods"] if "wall_s_per_run" in m]
    if walls:
        out.append("Wall time per run (train + evaluate), s: " + ", ".join(
            f"{m['label']} {m['wall_s_per_run']['mean']:.0f}" for m in result["methods"] if "wall_s_per_run" in m)
            + ".")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dataset", choices=tuple(SETTINGS), default="fashion-mnist")
    ap.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds 0..N-1 per method")
    ap.add_argument("--epochs", type=int, default=None, help="the same budget for every method [per data set]")
    ap.add_argument("--width", type=float, default=None, help="channel multiplier [per data set]")
    ap.add_argument("--train-subset", type=int, default=None, help="first N training images, 0 = all [per data set]")
    ap.add_argument("--test-limit", type=int, default=None, help="first N test images, 0 = all [per data set]")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help="comma-separated keys: " + ", ".join(m.key for m in METHODS))
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch CPU threads (recorded per run)")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="train at most N epochs in this call, then print what is done and exit (a slice)")
    ap.add_argument("--summary-only", action="store_true", help="train nothing; tabulate the runs done")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown (docs/benchmarks.md)")
    ap.add_argument("--quick", action="store_true",
                    help=f"digits, 1 seed, 2 epochs, width 0.5, methods {', '.join(QUICK_METHODS)}, {QUICK_LIMIT} "
                         "test images, in --out (overrides the options above)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (one sub-folder per run)")
    args = ap.parse_args(argv)
    keys = [m.key for m in METHODS]
    if args.quick:
        args.dataset, args.methods, args.seeds = "digits", ",".join(QUICK_METHODS), 1
    chosen = [k.strip() for k in args.methods.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in keys]
    if unknown:
        ap.error(f"unknown methods {unknown}; allowed: {', '.join(keys)}")
    setting = {**SETTINGS[args.dataset], "dataset": args.dataset, "threads": args.threads}
    for name in ("epochs", "width", "train_subset", "test_limit"):
        if getattr(args, name) is not None:
            setting[name] = getattr(args, name)
    if args.quick:
        setting.update(epochs=2, width=0.5, train_subset=0, test_limit=QUICK_LIMIT)
    if args.seeds < 1 or setting["epochs"] < 1 or setting["test_limit"] < 0 or setting["train_subset"] < 0:
        ap.error("--seeds and --epochs must be ≥ 1, --train-subset and --test-limit ≥ 0")
    methods = [next(m for m in METHODS if m.key == key) for key in dict.fromkeys(chosen)]   # in the given order
    import torch
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)   # the SNN evaluation too (training pins it in fit)
    try:
        return _run(args, methods, setting)
    finally:
        torch.set_num_threads(threads_before)   # main() may run inside a test session


def _run(args: argparse.Namespace, methods: list[Method], setting: dict[str, Any]) -> dict[str, Any]:
    from slipsnn.toolchain.files import atomic_write_json

    folder = args.out / setting["dataset"]
    result: dict[str, Any] = {
        "benchmark": "methods", "setting": setting, "arch": "digits_cnn", "seeds": list(range(args.seeds)),
        "timesteps": list(TIMESTEPS), "quick": bool(args.quick),
        "integer_export": "one quantize() per T with QuantConfig(timesteps=T, max_timesteps=T), run for T steps",
        "std": "sample standard deviation over seeds (ddof=1); 0 for one seed",
        "selection": "epoch of the best validation accuracy (10 % of the training images); test scored once",
        "machine": machine_info(), "methods": [], "comparisons": {}, "runs_planned": len(methods) * args.seeds}
    start, stopped = time.perf_counter(), False
    for seed in range(args.seeds):           # seed-major: every method gets seed 0 before any gets seed 1
        for method in methods:
            if stopped or args.summary_only:
                break
            run = run_one(method, seed, setting, folder / f"{method.key}_s{seed}", TIMESTEPS, args.stop_after)
            if run is None:
                stopped = True   # --stop-after reached inside this run; its resume.pt holds the progress
                print(f"{method.key} seed {seed}: stopped after --stop-after epochs; run again to continue",
                      file=sys.stderr, flush=True)
                break
            print(f"[{time.perf_counter() - start:7.1f} s] {method.label:<22} seed {seed}: ANN {100 * run['ann']:.2f} "
                  "| float " + " ".join(f"{100 * v:.1f}" for v in run["float_snn"].values())
                  + " | int " + " ".join(f"{100 * v:.1f}" for v in run["int_snn"].values())
                  + f" | train {run['train_s_total']:.0f} s, eval {run['eval_s']:.0f} s", file=sys.stderr, flush=True)
    for method in methods:
        entry: dict[str, Any] = {**asdict(method), "runs": []}
        for seed in range(args.seeds):
            path = folder / f"{method.key}_s{seed}" / "results.json"
            if path.is_file():
                entry["runs"].append(json.loads(path.read_text()))
        if entry["runs"]:
            entry["summary"] = summarize(entry["runs"], TIMESTEPS)
            entry["wall_s_per_run"] = mean_std([r["train_s_total"] + r["eval_s"] for r in entry["runs"]])
        result["methods"].append(entry)
    result["runs_done"] = sum(len(m["runs"]) for m in result["methods"])
    base = next((m for m in result["methods"] if m["key"] == BASELINE and m["runs"]), None)
    if base is not None:
        for m in result["methods"]:
            if m["activation"] == "slip" and m["runs"]:
                result["comparisons"][m["key"]] = {kind: {str(t): paired(m["runs"], base["runs"], kind, t)
                                                          for t in TIMESTEPS} for kind in ("float_snn", "int_snn")}
    result["wall_s_this_call"] = time.perf_counter() - start
    result["finished"] = result["runs_done"] == result["runs_planned"]
    print(format_markdown(result) if args.markdown else format_tables(result))
    atomic_write_json(folder / "summary.json", result)
    print(f"\nthis call {result['wall_s_this_call']:.0f} s; wrote {folder / 'summary.json'}")
    return result


if __name__ == "__main__":
    main()
