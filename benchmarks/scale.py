"""Lava at the paper's scale: export and ``loihi_sim`` cost of every zoo architecture on 32×32 images.

    nice -n 10 python benchmarks/scale.py --arch resnet20 --width 1      # one row (appends to the JSON)
    python benchmarks/scale.py --table                                   # print the table of every row so far

Per architecture and width: an untrained model (seeded Kaiming init, ReLU) whose θ are calibrated on random
32×32 images (99.9th percentile, so every layer spikes), saved as a checkpoint and exported with slipsnn's
default export (``export_checkpoint``, T = 4, proven for 8 steps); then for T = 1, 2, 4 one ``run_lava``
per T streams ``--samples`` random images and is compared bit for bit with the fast simulator
(``simulate_int``). Accuracy is meaningless here (untrained, random data); cost and exactness are not.

Columns: export seconds (convert + quantize + overflow proof + write), file size, Lava compile seconds
(build + compile + fork, mean over the three T), Lava seconds per sample when streaming (T × seconds per
Lava step; the pipeline fill of ``depth`` steps is paid once per run, not per sample), peak memory (the
largest sum of PSS over slipsnn and its Lava processes, sampled every 0.2 s), OS processes (Lava's actors,
one per leaf process and runtime service, + its shared-memory manager + Python's resource tracker +
slipsnn) and mismatches against ``fast`` (logits, spikes and synaptic events of every
sample, layer and step).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import describe_machine, machine_info  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scale.json"
ARCHS = ("vgg16", "resnet18", "resnet20", "resnet34")


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            if state == "Z":
                continue
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(int(ppid), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakSampler:
    """Samples the PSS sum and the process count of this process tree in a thread; keeps the maximum of each."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.every_s, self.peak_bytes, self.peak_processes = every_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _tree(os.getpid())
            total = sum(_pss_bytes(p) for p in pids)
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_processes = max(self.peak_processes, len(pids))
            self._stop.wait(self.every_s)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_checkpoint(arch: str, width: float, folder: Path, seed: int = 0) -> Path:
    """A seeded untrained ReLU model with θ calibrated on random 32×32 images, saved as a slipsnn checkpoint."""
    import torch

    from slipsnn.toolchain.ann.calibration import calibrate_thresholds
    from slipsnn.toolchain.ann.checkpoint import save_checkpoint
    from slipsnn.toolchain.ann.models import ModelConfig, build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(arch, 10, (3, 32, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), width=width)
    model = build_model(cfg, None).eval()
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    thetas = calibrate_thresholds(model, images, max_images=64, batch_size=16)
    return save_checkpoint(folder / f"{arch}_w{width:g}.pt", model, cfg, None, dataset="cifar10",
                           metrics={"note": "untrained, random init, θ calibrated on random images"}, thetas=thetas)


def measure(arch: str, width: float, samples: int, timesteps: Sequence[int]) -> dict[str, Any]:
    """One row: export, then for each T a streamed Lava run compared with ``simulate_int``."""
    import numpy as np
    import torch

    from slipsnn.toolchain.backends.lava import runtime as lava_runtime
    from slipsnn.toolchain.backends.lava.runtime import run_lava
    from slipsnn.toolchain.backends.result import compare
    from slipsnn.toolchain.backends.simulator import simulate_int
    from slipsnn.toolchain.pipeline import export_checkpoint

    row: dict[str, Any] = {"arch": arch, "width": width, "samples": samples}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_checkpoint(arch, width, Path(tmp))
        start = time.perf_counter()
        net, path = export_checkpoint(ckpt, Path(tmp) / "model.net", timesteps=max(timesteps))
        row["export_s"] = time.perf_counter() - start
        row["file_bytes"] = path.stat().st_size
    row["layers"], row["neurons"] = len(net.layers), sum(L.num_neurons for L in net.layers)
    pixels = torch.as_tensor(np.random.default_rng(2).integers(0, 256, (samples, 3, 32, 32)), dtype=torch.uint8)
    row["per_t"] = {}
    actors: list[int] = []
    run_steps = lava_runtime._run_steps

    def counting(proc: Any, num_steps: int, labels: dict) -> None:   # the Lava actors of this runtime
        actors.append(len(proc.runtime._messaging_infrastructure.actors))
        run_steps(proc, num_steps, labels)
    lava_runtime._run_steps = counting
    for t in timesteps:
        ref = simulate_int(net, pixels, t)
        with PeakSampler() as peak:
            got, timing = run_lava(net, pixels, t, chunk_samples=samples)
        mismatch = compare(got, ref)
        row["per_t"][str(t)] = {
            "compile_s": timing["compile_s"], "run_s": timing["run_s"], "steps": timing["steps"],
            "s_per_step": timing["run_s"] / timing["steps"], "s_per_sample": t * timing["run_s"] / timing["steps"],
            "peak_pss_bytes": peak.peak_bytes, "processes": peak.peak_processes, "lava_actors": actors[-1],
            "mismatches": mismatch.total,
            "spikes_per_layer": ref.spikes.sum(axis=(0, 2)).tolist(),
        }
        print(f"{arch} w{width:g} T={t}: compile {timing['compile_s']:.1f} s, {row['per_t'][str(t)]['s_per_step']:.2f} "
              f"s/step, peak {peak.peak_bytes / 2**30:.2f} GiB, {peak.peak_processes} processes, "
              f"{mismatch.total} mismatches", flush=True)
    return row


def _processes(entry: dict[str, Any]) -> str:
    """Lava's actors + its shared-memory manager + Python's resource tracker + slipsnn (older rows: sampled)."""
    return str(entry["lava_actors"] + 3) if "lava_actors" in entry else f"~{entry['processes']} (sampled)"


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"| arch | width | layers | export s | file MB | Lava compile s | Lava s/sample T=1 | T=2 | T=4 | "
            f"peak memory GiB | OS processes | mismatches vs fast |\n|{'---|' * 12}")
    lines = [head]
    for r in rows:
        p = r["per_t"]
        ts = sorted(p, key=int)
        lines.append(
            f"| {r['arch']} | {r['width']:g} | {r['layers']} | {r['export_s']:.1f} | {r['file_bytes'] / 1e6:.1f} | "
            f"{sum(p[t]['compile_s'] for t in ts) / len(ts):.1f} | "
            + " | ".join(f"{p[t]['s_per_sample']:.2f}" if t in p else "–" for t in ("1", "2", "4"))
            + f" | {max(p[t]['peak_pss_bytes'] for t in ts) / 2**30:.2f} | {_processes(p[ts[0]])} | "
            f"{sum(p[t]['mismatches'] for t in ts)} ({r['samples']} samples × T = {', '.join(ts)}) |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=ARCHS)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--table", action="store_true", help="print the table of the rows in --out and exit")
    args = ap.parse_args(argv)
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    if not args.table:
        if args.arch is None:
            ap.error("--arch is required unless --table")
        info = machine_info()
        row = measure(args.arch, args.width, args.samples, args.timesteps)
        row["machine"], row["load_after"] = info, list(os.getloadavg())
        doc["rows"] = [r for r in doc["rows"] if (r["arch"], r["width"]) != (args.arch, args.width)] + [row]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))
    if doc["rows"]:
        print(describe_machine(doc["rows"][-1]["machine"]))
    print(format_table(doc["rows"]))


if __name__ == "__main__":
    main()
