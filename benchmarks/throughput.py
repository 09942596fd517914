"""Throughput of the ANN, the float SNN, the integer ``fast`` backend (CPU, and CUDA when present) and Lava
streaming, as ratios from one run, on the digits CNN, ResNet-20 and ResNet-18 at width 1, T = 1, 2, 4, 8.

    python benchmarks/throughput.py                          # digits (trained here, 10 epochs), ResNet-20, ResNet-18
    python benchmarks/throughput.py --nets digits resnet20 --timesteps 4 --reference
    python benchmarks/throughput.py --timesteps 8 --batch-sizes 1 2 4 8 16 32 64   # the fast backend by batch size

The unit is the ANN: a backend's cost is its wall time over the ANN's on the same samples, divided by T
("ANN forwards per step"; the targets of issue 11: integer fast ≤ 1.5, float SNN ≤ 1.2). Each network's
backends run interleaved, best of ``--repeats`` rounds, so a busy machine slows them alike. The digits CNN is
trained here (or ``--checkpoint``) and runs on the digits test images; the ResNets have random weights (their
BatchNorm statistics at the defaults), lowered and quantized like a trained one (``QuantConfig``, proven for
T ≤ 8), and run on random 8-bit images: the simulators' cost does not depend on the weights' values. Every
integer run is checked bit for bit against the CPU one (CUDA) and Lava (the Lava rows; ``loihi_sim`` is its
run phase, streaming one compiled network). ``--reference`` adds the step-by-step simulator this one replaced
(tests/reference_simulator.py; digits and ResNet-20). The JSON records the CPU, the cores, torch's threads,
the load average before and after, and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "throughput.json"
REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "reference_simulator.py"
NETS = ("digits", "resnet20", "resnet18")
DEFAULT_SAMPLES = {"digits": 450, "resnet20": 64, "resnet18": 8}


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
    from slipsnn.toolchain.ann.training import TrainConfig
    from slipsnn.toolchain.pipeline import train_and_evaluate
    cfg = TrainConfig.for_dataset("digits", activation="slip", epochs=epochs, device="cpu", out_dir=str(folder))
    train_and_evaluate(cfg, progress=False, timesteps=(4,))
    return folder / "model.pt"


def _sync() -> None:
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Call every function once per round for ``repeats`` rounds; the last result and best wall time of each."""
    best = {k: float("inf") for k in fns}
    out: dict[str, Any] = {}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            _sync()
            start = time.perf_counter()
            out[name] = fn()
            _sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return out, best


def network(name: str, checkpoint: Path | None, samples: int, seed: int = 0):
    """(torch model, lowered float SNN, integer network proven for T ≤ 8, pixels, labels or None, description)."""
    import torch
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    from slipsnn.toolchain.conversion.lower import lower
    from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
    from slipsnn.toolchain.ir.activation import preset_params
    if name == "digits":
        from slipsnn.toolchain.ann.checkpoint import load_checkpoint
        from slipsnn.toolchain.data.loaders import load_pixels
        from slipsnn.toolchain.pipeline import convert_checkpoint
        ckpt = load_checkpoint(checkpoint)
        snn = convert_checkpoint(ckpt)
        pixels, labels = load_pixels(ckpt.dataset, "test", limit=samples)
        model, what = ckpt.model.eval(), f"digits CNN ({ckpt.preset}), digits test images"
    else:
        torch.manual_seed(seed)
        cfg = ModelConfig(name, 10, (3, 32, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
        model = build_model(cfg, preset_params("slip")).eval()
        snn = lower(model, cfg.input_shape)
        pixels = torch.randint(0, 256, (samples, *cfg.input_shape), generator=torch.Generator().manual_seed(seed))
        pixels, labels, what = pixels.to(torch.float32), None, f"{name} width 1, random weights and 8-bit images"
    net = quantize(snn, QuantConfig(timesteps=4, max_timesteps=8))
    return model, snn, net, pixels, labels, what


def measure_net(name: str, checkpoint: Path | None, samples: int, timesteps: Sequence[int], repeats: int,
                lava: bool, reference: bool, naive: int = 0, batch_sizes: Sequence[int] = ()) -> dict[str, Any]:
    """Every backend on one network and one sample set, for each T; rows with seconds and ratios.

    ``batch_sizes`` adds ``fast_cpu b=N`` rows (the CPU run in batches of N samples) and, per T, the working set
    of one sample and the batch ``auto_batch_size`` picks."""
    import numpy as np
    import torch
    from slipsnn.toolchain.backends.exactness import prove_exactness
    from slipsnn.toolchain.backends.simulator import (_compile_int, auto_batch_size, batch_bytes_per_sample,
                                                        simulate_float, simulate_int)
    from slipsnn.toolchain.show.exactness import exactness_summary

    model, snn, net, pixels, labels, what = network(name, checkpoint, samples)
    images, n = pixels / 255.0, len(pixels)
    ref = _load_reference() if reference else None
    rows, checks = [], {}
    for t in timesteps:
        proofs = prove_exactness(net, t)

        def ann() -> Any:
            with torch.no_grad():
                return model(images)

        fns: dict[str, Callable[[], Any]] = {
            "ann": ann,
            "float_snn": lambda: simulate_float(snn, pixels, t),
            "fast_cpu": lambda: simulate_int(net, pixels, t, proofs=proofs),
        }
        if torch.cuda.is_available():
            fns["fast_cuda"] = lambda: simulate_int(net, pixels, t, device="cuda", proofs=proofs)
        if ref is not None:
            fns["reference"] = lambda: ref.simulate_int(net, pixels, t)
        for size in batch_sizes:
            fns[f"fast_cpu b={size}"] = lambda size=size: simulate_int(net, pixels, t, size, proofs=proofs)
        if batch_sizes:
            layers, cpu = _compile_int(net, proofs, torch.device("cpu")), torch.device("cpu")
            checks[f"T={t} fast_cpu MB per sample, automatic batch"] = [
                round(batch_bytes_per_sample(layers, t, net.input_shape) / 2 ** 20, 2),
                auto_batch_size(layers, t, net.input_shape, cpu)]
        out, best = _interleaved(fns, repeats)
        fast = out["fast_cpu"]
        for other in ("fast_cuda", "reference", *(f"fast_cpu b={size}" for size in batch_sizes)):
            if other in out:
                checks[f"T={t} {other} bit-exact with fast_cpu"] = _same(out[other], fast)
        if lava and t == max(timesteps):
            from slipsnn.toolchain.backends.lava.runtime import run_lava
            res_lava, timing = run_lava(net, pixels, t)
            best["loihi_sim"] = timing["run_s"]
            checks[f"T={t} loihi_sim bit-exact with fast_cpu"] = _same(res_lava, fast)
            checks[f"T={t} loihi_sim compile_s"] = round(timing["compile_s"], 2)
        if naive and t == max(timesteps):   # a fresh network built, compiled, run and stopped per sample
            from slipsnn.toolchain.backends.lava.runtime import run_lava_naive
            res_naive, timing = run_lava_naive(net, pixels[:naive], t)
            best["lava_naive"] = timing["total_s"] * n / naive      # scaled to the other rows' samples
            checks[f"T={t} lava_naive ({naive} samples) bit-exact with fast_cpu"] = all(
                np.array_equal(getattr(res_naive, k), getattr(fast, k)[:naive]) for k in ("logits", "spikes"))
        for backend, sec in best.items():
            per_step = sec / best["ann"] / (1 if backend == "ann" else t)    # the ANN does one forward for any T
            rows.append({"net": name, "timesteps": t, "backend": backend, "samples": n, "seconds": sec,
                         "samples_per_s": n / max(sec, 1e-12), "ann_forwards_per_step": per_step})
        if labels is not None:
            y = np.asarray(labels)
            checks[f"T={t} accuracy ann/float/int %"] = [
                round(100 * float((out["ann"].argmax(1).numpy() == y).mean()), 2),
                round(100 * float(out["float_snn"].accuracy(y)[-1]), 2), round(100 * float(fast.accuracy(y)[-1]), 2)]
    return {"net": name, "what": what, "samples": n, "layers": len(net.layers),
            "exactness": exactness_summary(prove_exactness(net, max(timesteps)), max(timesteps)),
            "rows": rows, "checks": checks}


def _same(a: Any, b: Any) -> bool:
    import numpy as np
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("logits", "spikes", "synops"))


def _load_reference() -> Any:
    spec = importlib.util.spec_from_file_location("reference_simulator", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # type: ignore[union-attr]
    return module


def format_table(result: dict[str, Any]) -> str:
    """Per network: one row per backend, one column per T, in ANN forwards per step (samples/s below)."""
    lines = [f"machine: {describe_machine(result['machine'])}", "",
             "cost in ANN forwards per time-step (wall time / ANN wall time / T); targets: fast ≤ 1.5, float ≤ 1.2"]
    for net in result["nets"]:
        ts = sorted({r["timesteps"] for r in net["rows"]})
        lines += ["", f"{net['net']}: {net['what']}, {net['samples']} samples, {net['layers']} layers",
                  f"  {net['exactness']}",
                  f"  {'backend':<12}" + "".join(f"{'T=' + str(t):>18}" for t in ts)]
        for backend in dict.fromkeys(r["backend"] for r in net["rows"]):
            cells = []
            for t in ts:
                r = next((r for r in net["rows"] if r["backend"] == backend and r["timesteps"] == t), None)
                cells.append(f"{r['ann_forwards_per_step']:>7.2f} ({r['samples_per_s']:>7.1f}/s)" if r else "")
            lines.append(f"  {backend:<12}" + "".join(f"{c:>18}" for c in cells))
        for k, v in net["checks"].items():
            lines.append(f"  {k}: {v}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    ap.add_argument("--checkpoint", type=Path, default=None, help="digits model.pt (default: train a quick CNN)")
    ap.add_argument("--train-epochs", type=int, default=10, help="epochs of the quick CNN when no --checkpoint")
    ap.add_argument("--samples", type=int, default=None,
                    help=f"samples per network (default: {DEFAULT_SAMPLES})")
    ap.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best time of each backend")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (0: torch's default); 1 is robust when other processes share the cores")
    ap.add_argument("--lava", action="store_true", help="add Lava streaming (loihi_sim, run phase) on digits at max T")
    ap.add_argument("--naive", type=int, default=0, metavar="N",
                    help="add naive Lava (compile per sample, N samples, scaled) on digits at max T")
    ap.add_argument("--reference", action="store_true",
                    help="add the step-by-step simulator this one replaced (not on ResNet-18: minutes per call)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[], metavar="N",
                    help="add the fast CPU run in batches of N samples (the automatic batch is the fast_cpu row)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (written atomically)")
    args = ap.parse_args(argv)
    if any(n < 1 for n in args.batch_sizes):
        ap.error(f"--batch-sizes {args.batch_sizes}: each must be ≥ 1")
    import torch
    from slipsnn.toolchain.files import atomic_write_json

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    machine = machine_info()
    start = time.perf_counter()
    nets = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if "digits" in args.nets and ckpt is None:
            ckpt = _quick_checkpoint(Path(tmp), args.train_epochs)
        for name in args.nets:
            nets.append(measure_net(name, ckpt, args.samples or DEFAULT_SAMPLES[name], args.timesteps, args.repeats,
                                    args.lava and name == "digits", args.reference and name != "resnet18",
                                    args.naive if name == "digits" else 0, args.batch_sizes))
            print(f"[{name} done after {time.perf_counter() - start:.0f} s]", flush=True)
    result = {"benchmark": "throughput", "machine": machine,
              "load_average_after": machine_info().get("load_average_1_5_15min"),
              "checkpoint": str(args.checkpoint) if args.checkpoint else
              f"quick digits CNN trained here (slip, {args.train_epochs} epochs, seed 0)",
              "wall_s": time.perf_counter() - start, "nets": nets}
    print(format_table(result))
    atomic_write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
