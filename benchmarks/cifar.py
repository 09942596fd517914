"""The paper's CIFAR runs: VGG-16 / ResNet-18 / ResNet-20, SlipReLU vs QCFS, SNN accuracy at T = 1 … 32.

    python benchmarks/cifar.py --data-root /data --device cuda                  # CIFAR-10, all 6 runs
    python benchmarks/cifar.py --data-root /data --device cuda --dataset cifar100 --archs resnet18
    python benchmarks/cifar.py --smoke                                          # tiny self-made data, CPU, < 1 min

Each (data set, arch, method) is one run in its own folder ``<out>/<dataset>/<arch>_<method>/``:

* ``model.pt``   the ANN of the best validation accuracy (a slipsnn checkpoint, written when training ends);
* ``resume.pt``  the library loop's resume file (``training.fit``): last-epoch weights + optimizer +
  scheduler + history + the selected epoch's weights (tensors and plain types only, loaded with
  ``weights_only=True``); deleted when training finishes;
* ``results.json`` ANN and SNN accuracies; a run whose ``results.json`` covers the requested T values
  is skipped, a run with a finished ``model.pt`` is only evaluated, and an interrupted run resumes
  from ``resume.pt`` at the next epoch. ``--stop-after N`` ends the call after N epochs of training
  (to fit a time-limited machine; run the same command again to continue).

Training is the paper's recipe (SPEC §2, ``TrainConfig.for_dataset``): SGD lr 0.1, momentum 0.9, weight
decay 5e-4, cosine over ``--epochs`` (300), batch 128, CIFAR-10 augmentation crop/flip/AutoAugment/Cutout
(CIFAR-100 without AutoAugment), θ₀ = 8, L = 16 (``--L``), the epoch chosen on a 10 % validation split
held out from train (not on test, unlike the paper's code). It runs on
``--device``; the SNN sweep uses the float simulator (``simulate_float``, CPU) after every T of one
run of max(T) steps, and with ``--int`` also the integer network (``fast`` backend, one export per T).
The table prints this run next to the published numbers (SPEC §7; literature.md §2).
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import describe_machine, machine_info  # noqa: E402  (sibling script)

ARCHS = ("vgg16", "resnet18", "resnet20")
METHODS = ("slip", "qcfs")
TIMESTEPS = (1, 2, 4, 8, 16, 32)
DEFAULT_OUT = Path("runs/cifar")
NAMES = {"vgg16": "VGG-16", "resnet18": "ResNet-18", "resnet20": "ResNet-20", "slip": "SlipReLU", "qcfs": "QCFS"}
# recipe keys that must match for a run to resume (device, workers and paths may change between calls)
RECIPE_KEYS = ("dataset", "arch", "activation", "a", "L", "delta1", "delta2", "a_learnable", "epochs", "lr",
               "batch_size", "momentum", "weight_decay", "seed", "width", "theta_init", "augment", "val_fraction",
               "split_seed", "train_subset")

# Published top-1 % (SPEC §7; literature.md §2.2, QCFS Table 1/2, Bu et al. ICLR 2022). SlipReLU's own
# tables could not be read: its two numbers here are quoted by other papers (secondary sources).
PUBLISHED: dict[tuple[str, str, str], dict[str, float]] = {
    ("cifar10", "qcfs", "vgg16"): {"ANN": 95.52, "2": 91.18, "4": 93.96, "8": 94.95, "16": 95.40, "32": 95.54},
    ("cifar10", "qcfs", "resnet18"): {"ANN": 96.04, "2": 75.44, "4": 90.43, "8": 94.82, "16": 95.92, "32": 96.08},
    ("cifar10", "qcfs", "resnet20"): {"ANN": 91.77, "2": 73.20, "4": 83.75, "8": 89.55, "16": 91.62, "32": 92.24},
    ("cifar10", "slip", "resnet18"): {"1": 93.11},
    ("cifar100", "qcfs", "vgg16"): {"ANN": 76.28, "2": 63.79, "4": 69.62, "8": 73.96, "16": 76.24, "32": 77.01},
    ("cifar100", "qcfs", "resnet20"): {"ANN": 69.94, "2": 19.96, "4": 34.14, "8": 55.37, "16": 67.33, "32": 69.82},
    ("cifar100", "qcfs", "resnet18"): {"ANN": 78.80, "2": 70.79, "4": 75.67, "8": 78.48, "16": 79.48, "32": 79.62},
    ("cifar100", "slip", "resnet18"): {"4": 74.89},
}


# ------------------------------------------------------------------------------------------------
# Smoke data: a tiny CIFAR-10 in the official pickle layout

def write_tiny_cifar10(root: Path, per_batch: int = 10, test: int = 20, seed: int = 0) -> Path:
    """Write ``root/cifar-10-batches-py/data_batch_1..5`` and ``test_batch`` in the official format.

    Each file is a pickled dict with ``b'data'`` (uint8 [N, 3072], row-major C, H, W), ``b'labels'``
    (list of int), ``b'batch_label'`` and ``b'filenames'``, pickled by Python 3 (protocol 4; the official
    files are Python 2 pickles, which the loader reads too). The images are class-coloured noise, so a
    few iterations learn something.

    Returns:
        ``root`` (what ``--data-root`` takes).
    """
    import numpy as np
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    colours = rng.integers(0, 256, size=(10, 3), dtype=np.int64)

    def batch(n: int, label: str) -> dict[bytes, Any]:
        labels = rng.integers(0, 10, size=n)
        noise = rng.integers(-40, 41, size=(n, 3, 32, 32))
        data = np.clip(colours[labels][:, :, None, None] + noise, 0, 255).astype(np.uint8).reshape(n, 3072)
        return {b"batch_label": label.encode(), b"labels": [int(v) for v in labels], b"data": data,
                b"filenames": [f"img_{label}_{i}.png".encode() for i in range(n)]}

    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch(per_batch, f"training batch {i} of 5"), 4))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(test, "testing batch 1 of 1"), 4))
    return root


# ------------------------------------------------------------------------------------------------
# Training with resume

def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _recipe(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg_dict.get(k) for k in RECIPE_KEYS}


def macs_per_image(model: Any, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass (Conv2d and Linear layers), counted with hooks.

    Each layer is counted by ``kernels.connectivity.synapse_macs``, the one MAC definition the reports
    use (in-bounds kernel taps only: a padded border tap multiplies no input and is not counted).
    """
    import torch
    from torch import nn
    from slipsnn.toolchain.ir.formats import SynapseKind
    from slipsnn.toolchain.ir.floating import FloatSynapse
    from slipsnn.toolchain.kernels.connectivity import synapse_macs
    total = [0]

    def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            syn = FloatSynapse(0, SynapseKind.CONV, m.weight.detach().numpy(), tuple(m.stride), tuple(m.padding),
                               tuple(m.dilation), m.groups)
            total[0] += synapse_macs(syn, tuple(inp[0].shape[1:]))
        else:
            total[0] += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((1, *input_shape)))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def train_resumable(cfg: Any, stop_after: int | None) -> bool:
    """Train ``cfg`` into ``cfg.out_dir/model.pt`` with the library loop, resuming from its ``resume.pt``.

    ``slipsnn.toolchain.ann.training.train`` with ``resume=True``: epoch e shuffles and augments with seeds
    derived from (seed, e), so a resumed run sees the same batches as an uninterrupted one; the epoch is
    selected on the held-out validation split. True when training has finished.
    """
    from slipsnn.toolchain.ann.training import RESUME_NAME, train

    resume_file = Path(cfg.out_dir) / RESUME_NAME
    if resume_file.is_file():
        import torch
        done = torch.load(resume_file, map_location="cpu", weights_only=True)["state"]["epoch"]
        _log(f"  resuming {Path(cfg.out_dir).name} at epoch {done + 1}/{cfg.epochs}")
    res = train(cfg, progress=False, resume=True, stop_after=stop_after)
    m = res.metrics
    if not m["finished"]:
        _log(f"  stopping after epoch {m['epochs']}/{cfg.epochs} (--stop-after); run again to continue")
        return False
    _log(f"  trained {m['epochs']} epochs in {m['seconds']:.0f} s; epoch {m['best_epoch']} selected "
         f"(validation {100 * m['val_accuracy']:.2f} %)" if m["val_accuracy"] is not None else "")
    return True


# ------------------------------------------------------------------------------------------------
# Evaluation

def evaluate_run(ckpt_path: Path, data_root: str | None, timesteps: Sequence[int], test_limit: int | None,
                 integer: bool) -> dict[str, Any]:
    """ANN, float-SNN (and integer-SNN) accuracy of a finished checkpoint on the test split (fractions)."""
    from slipsnn.toolchain.ann.checkpoint import load_checkpoint
    from slipsnn.toolchain.data.loaders import load_pixels
    from slipsnn.toolchain.pipeline import convert_checkpoint
    from slipsnn.toolchain.conversion.quantize import QuantConfig, quantize
    from slipsnn.toolchain.backends.simulator import simulate_float, simulate_int
    from slipsnn.toolchain.ann.training import evaluate_ann

    start = time.perf_counter()
    ckpt = load_checkpoint(ckpt_path)
    net = convert_checkpoint(ckpt)
    pixels, labels = load_pixels(ckpt.dataset, "test", data_root, test_limit)
    y = labels.numpy()
    acc = simulate_float(net, pixels, max(timesteps)).accuracy(y)
    out: dict[str, Any] = {"ann": evaluate_ann(ckpt.model, pixels / 255.0, labels), "samples": len(y),
                           "best_epoch": ckpt.metrics.get("best_epoch"), "epochs": ckpt.metrics.get("epochs"),
                           "train_seconds": ckpt.metrics.get("seconds"), "device": ckpt.metrics.get("device"),
                           "float_snn": {str(t): float(acc[t - 1]) for t in timesteps}}
    if integer:
        out["int_snn"] = {}
        for t in timesteps:
            q = quantize(net, QuantConfig(timesteps=t, max_timesteps=t))
            out["int_snn"][str(t)] = float(simulate_int(q, pixels, t).accuracy(y)[-1])
    out["eval_seconds"] = time.perf_counter() - start
    return out


def _covers(results: dict[str, Any], timesteps: Sequence[int], integer: bool) -> bool:
    have = set(results.get("float_snn", {}))
    return results.get("finished") is True and {str(t) for t in timesteps} <= have and (
        not integer or {str(t) for t in timesteps} <= set(results.get("int_snn", {})))


# ------------------------------------------------------------------------------------------------
# Table

def format_table(summary: dict[str, Any]) -> str:
    """Paper-style table: per (method, arch) a row for this run and one for the published numbers."""
    ts = [str(t) for t in summary["timesteps"]]
    lines = [f"{summary['dataset'].upper()} top-1 % — this run vs published (SPEC §7; '–' = not reported/not run)",
             f"machine: {describe_machine(summary['machine'])}", "",
             f"{'method':<10}{'arch':<11}{'source':<10}{'ANN':>8}" + "".join(f"{'T=' + t:>8}" for t in ts)]

    def cells(values: dict[str, float] | None, ann: float | None, scale: float) -> str:
        v = values or {}
        ann_txt = "–" if ann is None else f"{scale * ann:.2f}"
        return f"{ann_txt:>8}" + "".join(f"{scale * v[t]:>8.2f}" if t in v else f"{'–':>8}" for t in ts)

    for method in summary["methods"]:
        for arch in summary["archs"]:
            run = summary["runs"].get(f"{arch}_{method}", {})
            pub = PUBLISHED.get((summary["dataset"], method, arch))
            lines.append(f"{NAMES[method]:<10}{NAMES[arch]:<11}{'here':<10}"
                         + cells(run.get("float_snn"), run.get("ann"), 100.0))
            if run.get("int_snn"):
                lines.append(f"{'':<21}{'here int':<10}" + cells(run["int_snn"], None, 100.0))
            if pub:
                lines.append(f"{'':<21}{'published':<10}"
                             + cells({k: v for k, v in pub.items() if k != "ANN"}, pub.get("ANN"), 1.0))
    notes = summary.get("notes")
    return "\n".join(lines + ([""] + notes if notes else []))


# ------------------------------------------------------------------------------------------------

def _parse_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise SystemExit(f"--{what} {text!r}: allowed values are {', '.join(allowed)}")
    return items


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dataset", choices=("cifar10", "cifar100"), default="cifar10")
    ap.add_argument("--data-root", default=None, help="folder holding cifar-10-batches-py/ or cifar-100-python/")
    ap.add_argument("--archs", default=",".join(ARCHS), help="comma-separated: " + ", ".join(ARCHS))
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    ap.add_argument("--timesteps", default=",".join(map(str, TIMESTEPS)), help="comma-separated T values")
    ap.add_argument("--epochs", type=int, default=None, help="[default: the paper's 300; --smoke: 1]")
    ap.add_argument("--L", type=int, default=None, help="quantization steps [default: 16, the SlipReLU code's]")
    ap.add_argument("--width", type=float, default=None, help="channel multiplier [default 1; --smoke: 0.125]")
    ap.add_argument("--batch-size", type=int, default=None, help="[default 128]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto [default auto; --smoke: cpu]")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers [default: 8 on CUDA, 0 on CPU]")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's; --smoke: 1]")
    ap.add_argument("--train-subset", type=int, default=None, help="train on the first N images only")
    ap.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images only")
    ap.add_argument("--int", dest="integer", action="store_true", help="also run the integer network (fast)")
    ap.add_argument("--stop-after", type=int, default=None, help="train at most N epochs in this call")
    ap.add_argument("--out", type=Path, default=None, help=f"results folder [default {DEFAULT_OUT}; --smoke: temp]")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny self-made CIFAR-10 in a temp folder, resnet20 width 0.125, 1 epoch, CPU, T=1,2")
    return ap


def _smoke_defaults(args: argparse.Namespace, tmp: Path) -> None:
    """--smoke: a tiny self-made CIFAR-10 and the smallest settings, where the user did not choose."""
    if args.dataset != "cifar10":
        raise SystemExit("--smoke writes a tiny CIFAR-10; --dataset cifar100 is not supported with it")
    args.data_root = args.data_root or str(write_tiny_cifar10(tmp / "data"))
    args.archs = "resnet20" if args.archs == ",".join(ARCHS) else args.archs
    args.timesteps = "1,2" if args.timesteps == ",".join(map(str, TIMESTEPS)) else args.timesteps
    args.epochs, args.width = args.epochs or 1, args.width or 0.125
    args.device, args.batch_size = args.device or "cpu", args.batch_size or 16
    args.out = args.out or tmp / "runs"
    args.threads = args.threads or 1   # tiny tensors: one thread is fastest, and robust on a busy machine
    args.integer = True


def _parse_timesteps(text: str) -> list[int]:
    try:
        timesteps = sorted({int(t) for t in text.split(",")})
    except ValueError:
        raise SystemExit(f"--timesteps {text!r}: expected integers like 1,2,4") from None
    if not timesteps or timesteps[0] < 1:
        raise SystemExit("--timesteps must be integers ≥ 1")
    return timesteps


def _one_run(args: argparse.Namespace, arch: str, method: str, timesteps: list[int], out: Path) -> dict[str, Any]:
    """Train (or resume, or skip when finished) one arch × method and evaluate its SNN; its results.json."""
    from slipsnn.toolchain.ann.training import TrainConfig
    from slipsnn.toolchain.files import atomic_write_json
    name = f"{arch}_{method}"
    run_dir = out / args.dataset / name
    res_path = run_dir / "results.json"
    if res_path.is_file():
        done = json.loads(res_path.read_text())
        if _covers(done, timesteps, args.integer):
            _log(f"{name}: finished earlier, skipped ({res_path})")
            return done
    cfg = TrainConfig.for_dataset(args.dataset, arch=arch, activation=method, L=args.L, epochs=args.epochs,
                                  width=args.width, batch_size=args.batch_size, seed=args.seed,
                                  device=args.device or "auto", num_workers=args.workers,
                                  data_root=args.data_root, out_dir=str(run_dir),
                                  train_subset=args.train_subset, threads=args.threads)
    ckpt_path = run_dir / "model.pt"
    finished = False
    if ckpt_path.is_file() and not (run_dir / "resume.pt").is_file():
        from slipsnn.toolchain.ann.checkpoint import load_checkpoint
        prior = load_checkpoint(ckpt_path)
        finished = bool(prior.metrics.get("finished")) and _recipe(prior.train_config or {}) == _recipe(cfg.to_dict())
    if not finished:
        _log(f"{name}: training ({cfg.epochs} epochs, width {cfg.width}, L {cfg.act_params().L}, device {cfg.device})")
        if not train_resumable(cfg, args.stop_after):
            return {"finished": False}
    _log(f"{name}: evaluating the SNN at T = {', '.join(map(str, timesteps))}")
    result = {"dataset": args.dataset, "arch": arch, "method": method, "train_config": _recipe(cfg.to_dict()),
              **evaluate_run(ckpt_path, args.data_root, timesteps, args.test_limit, args.integer), "finished": True}
    atomic_write_json(res_path, result)
    return result


def _width1_macs(dataset: str, archs: Sequence[str]) -> dict[str, int]:
    """MACs per image of each architecture at width 1 (the paper's size), whatever width was trained."""
    from slipsnn.toolchain.ann.models import ModelConfig, build_model
    from slipsnn.toolchain.data.loaders import dataset_info
    from slipsnn.toolchain.ir.activation import preset_params
    info = dataset_info(dataset)
    return {arch: macs_per_image(build_model(ModelConfig(arch, info.num_classes, info.input_shape, info.mean,
                                                         info.std, 1.0), preset_params("slip")), info.input_shape)
            for arch in archs}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    import torch
    from slipsnn.toolchain.files import atomic_write_json

    threads_before = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp(prefix="slipsnn-cifar-smoke-")) if args.smoke else None
    try:
        if tmp is not None:
            _smoke_defaults(args, tmp)
        archs = _parse_list(args.archs, ARCHS, "archs")
        methods = _parse_list(args.methods, METHODS, "methods")
        timesteps = _parse_timesteps(args.timesteps)
        out = args.out or DEFAULT_OUT
        if args.threads:
            torch.set_num_threads(args.threads)
        cuda = str(args.device or "auto").startswith("cuda") or (args.device in (None, "auto")
                                                                 and torch.cuda.is_available())
        if cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        summary: dict[str, Any] = {"benchmark": "cifar", "dataset": args.dataset, "archs": archs, "methods": methods,
                                   "timesteps": timesteps, "smoke": bool(args.smoke), "machine": machine_info(),
                                   "published_source": "SPEC §7 / reference/literature.md §2.2 (QCFS Tables 1-2; "
                                                       "SlipReLU numbers are secondary quotes)",
                                   "runs": {}, "notes": []}
        if args.smoke:
            summary["notes"].append("SMOKE RUN: tiny synthetic data, width 0.125, 1 epoch — the numbers mean nothing")
        for arch in archs:
            for method in methods:
                summary["runs"][f"{arch}_{method}"] = _one_run(args, arch, method, timesteps, out)
        summary["macs_per_image_width1"] = _width1_macs(args.dataset, archs)
        summary["notes"].append("MACs per image (width 1): " + ", ".join(
            f"{NAMES[a]} {v / 1e6:.0f} M" for a, v in summary["macs_per_image_width1"].items()))
        print(format_table(summary))
        atomic_write_json(out / args.dataset / "summary.json", summary)
        temporary = tmp is not None and str(out).startswith(str(tmp))
        print(f"\nwrote {out / args.dataset / 'summary.json'}" + (" (temporary: removed on exit)" if temporary else ""))
        return summary
    finally:
        torch.set_num_threads(threads_before)   # main() may run inside a test session
        if tmp is not None:   # the smoke data (and the results, unless --out points elsewhere)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
