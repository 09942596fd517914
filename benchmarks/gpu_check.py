"""The CUDA check of the fast backend, one script for a session with the GPU machine: CUDA vs CPU bit-exactness
and samples/s of ResNet-18 (width 1) over 10,000 samples at T = 1, 2, 4, 8.

    python benchmarks/gpu_check.py                       # → $OUT/gpu_check.json (or --out), table on stdout
    python benchmarks/gpu_check.py --samples 2000 --cpu-samples 16     # shorter

Runs from a bare checkout (no ``pip install``): it maps ``slipsnn.toolchain`` onto this tree and needs only torch
and numpy (tqdm is replaced by a no-op bar when missing). What it does:

1. The test factories' integer networks (tests/factories.py: conv, grouped conv, dense with floor shifts,
   residual edges, wrapping accumulators, saturating membranes) and a random ResNet-20: ``simulate_int`` on CUDA
   equals the CPU run bit for bit (logits, spikes, synaptic events).
2. ResNet-18 at width 1 (random weights, lowered and quantized as a trained one, proven for T ≤ 8) on
   ``--samples`` random 8-bit CIFAR-sized images: for each T the CUDA run over all samples (samples/s, peak GPU
   memory, the batch size chosen from free memory), the ANN forward on CUDA (the same samples), and the CPU run
   of the first ``--cpu-samples`` samples compared bit for bit with the CUDA run's.
The host's peak resident memory is recorded too (the whole run must stay within 4 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent


def _importable_tree() -> None:
    """Make ``slipsnn.toolchain`` (and ``slipsnn.exporters``) import from this checkout without installing it."""
    try:
        import slipsnn.toolchain.backends.simulator  # noqa: F401
        return
    except ImportError:
        pass
    top = Path(tempfile.mkdtemp(prefix="slipsnn_tree_")) / "slipsnn"
    top.mkdir()
    for name in ("toolchain", "exporters", "hardware_configs"):
        if (ROOT / name).exists():
            (top / name).symlink_to(ROOT / name)
    sys.path.insert(0, str(top.parent))
    try:
        import tqdm.auto  # noqa: F401
    except ImportError:   # the simulator's progress bar only
        bar = types.ModuleType("tqdm.auto")
        bar.tqdm = lambda iterable=None, *a, **k: iterable   # type: ignore[attr-defined]
        sys.modules["tqdm"] = types.ModuleType("tqdm")
        sys.modules["tqdm.auto"] = bar


def _same(a: Any, b: Any) -> list[str]:
    """Names of the SimResult arrays that differ (empty: bit-identical)."""
    import numpy as np
    return [k for k in ("logits", "spikes", "synops") if not np.array_equal(getattr(a, k), getattr(b, k))]


def _resnet(arch: str, seed: int = 0):
    import torch
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    from slipsnn.toolchain.conversion.lower import lower
    from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
    from slipsnn.toolchain.ir.activation import preset_params
    torch.manual_seed(seed)
    cfg = ModelConfig(arch, 10, (3, 32, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    model = build_model(cfg, preset_params("slip")).eval()
    return model, quantize(lower(model, cfg.input_shape), QuantConfig(timesteps=4, max_timesteps=8))


def _pixels(n: int, shape: Sequence[int], seed: int):
    import torch
    return torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)


def small_networks() -> list[dict[str, Any]]:
    """CUDA vs CPU on the test factories' networks and a random ResNet-20, T = 1, 4, 8."""
    sys.path.insert(0, str(ROOT / "tests"))
    import factories
    from slipsnn.toolchain.backends.simulator import simulate_int
    nets = {f.__name__: f() for f in (factories.chain_net, factories.residual_net, factories.file_chain_net,
                                      factories.file_residual_net, factories.mixed_residual_net, factories.hand_net)}
    nets["resnet20"] = _resnet("resnet20")[1]
    rows = []
    for name, net in nets.items():
        for t in (1, 4, min(8, net.max_timesteps)):
            x = _pixels(24, net.input_shape, seed=t)
            differ = _same(simulate_int(net, x, t, device="cuda"), simulate_int(net, x, t, device="cpu"))
            rows.append({"net": name, "timesteps": t, "samples": 24, "bit_exact": not differ, "differ": differ})
    return rows


def resnet18(samples: int, cpu_samples: int, timesteps: Sequence[int]) -> list[dict[str, Any]]:
    import torch
    from slipsnn.toolchain.backends.exactness import prove_exactness
    from slipsnn.toolchain.backends.simulator import _compile_int, auto_batch_size, simulate_int
    model, net = _resnet("resnet18")
    pixels = _pixels(samples, net.input_shape, seed=1)
    model = model.cuda()
    rows = []
    for t in timesteps:
        proofs = prove_exactness(net, t)
        batch = auto_batch_size(_compile_int(net, proofs, torch.device("cuda")), t, net.input_shape,
                                torch.device("cuda"))
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = time.perf_counter()
        gpu = simulate_int(net, pixels, t, device="cuda", proofs=proofs)
        torch.cuda.synchronize()
        gpu_s = time.perf_counter() - start
        peak_gpu = torch.cuda.max_memory_allocated()
        with torch.no_grad():
            start = time.perf_counter()
            for i in range(0, samples, 1000):
                model(pixels[i:i + 1000].cuda().float() / 255.0)
            torch.cuda.synchronize()
            ann_s = time.perf_counter() - start
        start = time.perf_counter()
        cpu = simulate_int(net, pixels[:cpu_samples], t, device="cpu", proofs=proofs)
        cpu_s = time.perf_counter() - start
        part = type(gpu)(gpu.logits[:cpu_samples], gpu.spikes[:cpu_samples], gpu.synops[:cpu_samples],
                         gpu.layer_names)
        differ = _same(part, cpu)
        rows.append({"timesteps": t, "samples": samples, "cuda_s": gpu_s, "cuda_samples_per_s": samples / gpu_s,
                     "ann_cuda_samples_per_s": samples / ann_s, "ann_forwards_per_step": gpu_s / ann_s / t,
                     "batch_size": batch, "peak_gpu_bytes": peak_gpu, "cpu_samples": cpu_samples,
                     "cpu_samples_per_s": cpu_samples / cpu_s, "bit_exact_cuda_vs_cpu": not differ, "differ": differ,
                     "spikes_per_sample": float(gpu.spikes.sum() / samples),
                     "float32_layers": sum(p.float32 for p in proofs), "layers": len(proofs)})
        print(f"T={t}: CUDA {samples / gpu_s:.0f} samples/s ({gpu_s:.1f} s, batch {batch}, peak "
              f"{peak_gpu / 2**30:.2f} GiB), ANN {samples / ann_s:.0f}/s, CPU {cpu_samples / cpu_s:.1f}/s, "
              f"bit-exact: {not differ}", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--cpu-samples", type=int, default=64, help="samples also run on the CPU and compared")
    ap.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_check.json")
    args = ap.parse_args(argv)
    _importable_tree()
    import torch
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return {}
    start = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "gpu_check", "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    small = small_networks()
    result["small_networks"] = small
    print(f"small networks: {sum(r['bit_exact'] for r in small)} of {len(small)} CUDA runs bit-exact with CPU",
          flush=True)
    result["resnet18"] = resnet18(args.samples, args.cpu_samples, args.timesteps)
    result["host_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["wall_s"] = time.perf_counter() - start
    print(f"host peak RSS {result['host_peak_rss_bytes'] / 2**30:.2f} GiB, wall {result['wall_s']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
