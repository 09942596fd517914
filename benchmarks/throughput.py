"""Throughput on one network and one set of samples: ANN, float SNN, integer ``fast``, Lava streaming, naive Lava.

    python benchmarks/throughput.py                      # trains a quick digits CNN (slip, 10 epochs)
    python benchmarks/throughput.py --checkpoint runs/digits/model.pt --samples 100 --naive-samples 10

Every backend runs the same lowered network (the integer ones the same ``quantize`` output, proven for
T) on the first ``--samples`` digits test images at T = 4, one sample set per run, and reports samples
per second over the measured call. Lava streaming (``loihi_sim``) compiles once and streams all samples;
naive Lava builds, compiles, runs and stops a fresh network per sample, so it gets fewer samples
(``--naive-samples``). Ratios are reported against the ANN (the floor) and streaming vs naive.
Wall times depend on the machine and on what else runs on it: the JSON records the CPU, the cores,
torch's threads, the load average before and after, and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "throughput.json"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, torch threads and versions, load average and the date (UTC), for benchmark records."""
    import torch
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpu": model, "logical_cpus": os.cpu_count(), "usable_cpus": usable,
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
    return info


def describe_machine(info: dict[str, Any]) -> str:
    """One line for a printed table."""
    load = info.get("load_average_1_5_15min")
    return (f"{info['cpu']}, {info['usable_cpus']} usable cores, torch {info['torch']} with "
            f"{info['torch_threads']} threads" + (f", GPU {info['gpu']}" if info.get("gpu") else "")
            + (f", load average {load[0]}" if load else "") + f", {info['date_utc']}")


def _quick_checkpoint(folder: Path, epochs: int) -> Path:
    from slipsnn.toolchain.pipeline import train_and_evaluate
    from slipsnn.toolchain.ann.training import TrainConfig
    cfg = TrainConfig.for_dataset("digits", activation="slip", epochs=epochs, device="cpu", out_dir=str(folder))
    train_and_evaluate(cfg, progress=False, timesteps=(4,))
    return folder / "model.pt"


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """The result of ``fn`` and the best wall time of ``repeats`` calls (seconds)."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def measure(checkpoint: Path, samples: int, naive_samples: int, timesteps: int, repeats: int,
            skip_lava: bool) -> dict[str, Any]:
    """Run every backend on the same samples; return the rows and what they were measured on."""
    import numpy as np
    import torch
    from slipsnn.toolchain.ann.checkpoint import load_checkpoint
    from slipsnn.toolchain.data.loaders import load_pixels
    from slipsnn.toolchain.pipeline import convert_checkpoint
    from slipsnn.toolchain.convert.quantize import QuantConfig, quantize
    from slipsnn.toolchain.backends.simulator import simulate_float, simulate_int

    ckpt = load_checkpoint(checkpoint)
    snn = convert_checkpoint(ckpt)
    net = quantize(snn, QuantConfig(timesteps=timesteps, max_timesteps=timesteps))
    pixels, labels = load_pixels(ckpt.dataset, "test", limit=samples)
    y = labels.numpy()
    images = pixels / 255.0
    rows: list[dict[str, Any]] = []

    def add(name: str, what: str, n: int, seconds: float, acc: float, **extra: Any) -> None:
        rows.append({"backend": name, "what": what, "samples": n, "seconds": seconds,
                     "samples_per_s": n / max(seconds, 1e-12), "accuracy": acc, **extra})

    model = ckpt.model.eval()
    with torch.no_grad():
        logits, sec = _timed(lambda: model(images), repeats)
    add("ann", "torch forward pass of the trained ANN (one batch)", len(y), sec,
        float((logits.argmax(1).numpy() == y).mean()))
    res, sec = _timed(lambda: simulate_float(snn, pixels, timesteps), repeats)
    add("float_snn", "float SNN, vectorized torch (simulate_float)", len(y), sec, float(res.accuracy(y)[-1]))
    res_fast, sec = _timed(lambda: simulate_int(net, pixels, timesteps), repeats)
    add("fast", "integer SNN, vectorized torch (backend fast, bit-exact with Lava)", len(y), sec,
        float(res_fast.accuracy(y)[-1]))
    if not skip_lava:
        from slipsnn.toolchain.backends.lava.runtime import run_lava, run_lava_naive
        res_lava, timing = run_lava(net, pixels, timesteps)
        add("loihi_sim", "Lava CPU fixed point, compiled once, samples streamed", len(y), timing["total_s"],
            float(res_lava.accuracy(y)[-1]), compile_s=timing["compile_s"], run_s=timing["run_s"],
            samples_per_s_excl_compile=len(y) / max(timing["run_s"], 1e-12),
            bit_exact_with_fast=bool(np.array_equal(res_lava.logits, res_fast.logits)))
        n_naive = min(naive_samples, len(y))
        res_naive, timing = run_lava_naive(net, pixels[:n_naive], timesteps)
        add("loihi_sim_naive", "Lava CPU fixed point, a fresh network compiled per sample", n_naive,
            timing["total_s"], float(res_naive.accuracy(y[:n_naive])[-1]), compile_s=timing["compile_s"],
            run_s=timing["run_s"], samples_per_s_excl_compile=n_naive / max(timing["run_s"], 1e-12),
            bit_exact_with_fast=bool(np.array_equal(res_naive.logits, res_fast.logits[:n_naive])))
    ann_rate = rows[0]["samples_per_s"]
    for row in rows:
        row["ratio_vs_ann"] = row["samples_per_s"] / ann_rate
    by = {r["backend"]: r for r in rows}
    ratios = {"ann_over_" + r["backend"]: ann_rate / r["samples_per_s"] for r in rows[1:]}
    if "loihi_sim" in by:
        ratios["streaming_over_naive"] = by["loihi_sim"]["samples_per_s"] / by["loihi_sim_naive"]["samples_per_s"]
    return {"checkpoint": str(checkpoint), "dataset": ckpt.dataset, "arch": ckpt.model_cfg.arch,
            "preset": ckpt.preset, "timesteps": timesteps, "repeats_best_of": repeats,
            "layers": [layer.name for layer in net.layers], "rows": rows, "ratios": ratios}


def format_table(result: dict[str, Any]) -> str:
    """The rows as a text table."""
    lines = [f"{result['arch']} on {result['dataset']} ({result['preset']}), T={result['timesteps']}",
             f"machine: {describe_machine(result['machine'])}", "",
             f"{'backend':<16}{'samples':>8}{'seconds':>10}{'samples/s':>12}{'vs ANN':>10}{'accuracy':>10}"]
    for r in result["rows"]:
        lines.append(f"{r['backend']:<16}{r['samples']:>8}{r['seconds']:>10.3f}{r['samples_per_s']:>12.1f}"
                     f"{r['ratio_vs_ann']:>10.2g}{100 * r['accuracy']:>9.1f}%")
        if "compile_s" in r:
            lines.append(f"{'':<16}  compile {r['compile_s']:.2f} s, run {r['run_s']:.2f} s "
                         f"({r['samples_per_s_excl_compile']:.1f} samples/s without compiling), "
                         f"bit-exact with fast: {r['bit_exact_with_fast']}")
    ratios = result["ratios"]
    lines.append("")
    lines.append("ANN is faster by: " + ", ".join(f"{k.split('_over_')[1]} {v:.3g}×"
                                                  for k, v in ratios.items() if k.startswith("ann_over_")))
    if "streaming_over_naive" in ratios:
        lines.append(f"Lava streaming vs naive (compile per sample): {ratios['streaming_over_naive']:.3g}× faster")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="model.pt (default: train a quick digits CNN)")
    ap.add_argument("--train-epochs", type=int, default=10, help="epochs of the quick CNN when no --checkpoint")
    ap.add_argument("--samples", type=int, default=100, help="samples for ANN, float SNN, fast and streaming Lava")
    ap.add_argument("--naive-samples", type=int, default=10, help="samples for naive Lava (one compile each)")
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3, help="best of N for the in-process backends (not Lava)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default); 1 is robust when other processes share the cores")
    ap.add_argument("--no-lava", action="store_true", help="skip both Lava rows")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (written atomically)")
    args = ap.parse_args(argv)
    import torch
    from slipsnn.toolchain.files import atomic_write_json

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    machine = machine_info()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or _quick_checkpoint(Path(tmp), args.train_epochs)
        result = measure(ckpt, args.samples, args.naive_samples, args.timesteps, args.repeats, args.no_lava)
    if args.checkpoint is None:
        result["checkpoint"] = f"quick digits CNN trained here (slip, {args.train_epochs} epochs, seed 0)"
    machine_after = machine_info()
    result = {"benchmark": "throughput", "machine": machine,
              "load_average_after": machine_after.get("load_average_1_5_15min"),
              "wall_s": time.perf_counter() - start, **result}
    print(format_table(result))
    atomic_write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
