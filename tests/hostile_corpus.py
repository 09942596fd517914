"""A corpus of hostile inputs for slipsnn's CLI, and a runner that executes each in a bounded child process.

``build_corpus(folder)`` writes every case's files into ``folder`` and returns the cases; ``run_case`` runs one
command of the CLI in this process under a SIGALRM timeout and (for the full-disk case) a file-size limit, with
``torch.jit.load`` replaced by a function that leaves a marker file, so a TorchScript archive that reached it is
visible. Run it as a script (a child process that caps its own address space) to print a table:

    python tests/hostile_corpus.py /tmp/hostile
"""

from __future__ import annotations

import json
import os
import signal
import re
import resource
import shutil
import stat
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import torch

AS_LIMIT = 6 * 2 ** 30     # address space of the child: torch's import alone maps ~2 GiB
CASE_SECONDS = 60          # wall-clock seconds of one case (a hang is reported as one)
SECRET = b"TOP-SECRET-0123456789"
#: every case ``build_corpus`` writes, in order (the tests are parametrized over these names)
CASE_NAMES = (
    "torchscript", "bad_crc", "nan_weight", "bn_negative_var", "inf_bias", "sparse_weight", "complex_weight",
    "width_300", "nan_mean", "num_classes_huge", "num_classes_negative", "input_shape_bad", "L_inf", "delta1_nan",
    "dataset_list", "dataset_escape", "fifo_checkpoint", "export_onto_input", "export_onto_device",
    "export_under_file", "export_full_disk", "run_json_onto_input", "run_json_onto_device",
    "report_json_onto_input", "report_plots_onto_file", "analyze_json_onto_input", "external_storage",
    "external_storage_fifo", "external_link", "virtual_dataset", "virtual_missing_source", "fill_value_only",
    "gzip_bomb", "fifo_network", "false_horizon", "meta_escape", "truncated_network", "fifo_profile",
    "dev_zero_profile", "deep_toml", "overflow_value", "huge_integer", "huge_energy", "big_profile")



@dataclass
class Case:
    """One hostile input: the CLI arguments, what must come back and which files must stay as they were.

    Attributes:
        name: short id.
        args: arguments of ``slipsnn`` (first: the command).
        code: the exit status the docs promise (1: a refused file, 2: a usage error).
        message: a regular expression the last stderr line must match.
        keep: files whose bytes and type must be unchanged afterwards (inputs, device nodes).
        fsize: RLIMIT_FSIZE in bytes for the child (simulates a full disk), or None.
    """

    name: str
    args: list[str]
    code: int
    message: str
    keep: list[Path] = field(default_factory=list)
    fsize: int | None = None


@dataclass
class Outcome:
    code: int | None
    last_line: str
    seconds: float
    executed: bool
    secret_leaked: bool
    changed: list[str]


# ------------------------------------------------------------------------------------------ building blocks

def valid_files(folder: Path) -> tuple[Path, Path]:
    """A quarter-width digits checkpoint and its exported network (T = 2): test_cli's read-only inputs."""
    from test_cli import build_files
    files = build_files(folder)
    return files["pt"], files["net"]


def _payload(ckpt: Path) -> dict:
    return torch.load(ckpt, weights_only=True)


def _save(path: Path, payload: dict) -> Path:
    torch.save(payload, path)
    return path


def _edited_checkpoint(folder: Path, ckpt: Path, name: str, edit: Callable[[dict], None]) -> Path:
    payload = _payload(ckpt)
    edit(payload)
    return _save(folder / f"{name}.pt", payload)


def _first_weight(payload: dict, suffix: str = ".weight") -> str:
    return next(k for k in payload["state_dict"] if k.endswith(suffix))


def _torchscript(folder: Path) -> Path:
    class M(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1
    path = folder / "torchscript.pt"
    torch.jit.save(torch.jit.script(M()), str(path))
    return path


def _bad_crc(folder: Path, ckpt: Path) -> Path:
    """The checkpoint with one byte of a tensor's storage flipped (the zip's CRC no longer matches)."""
    data = bytearray(ckpt.read_bytes())
    with zipfile.ZipFile(ckpt) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > 16)
    header = info.header_offset
    name_len, extra_len = int.from_bytes(data[header + 26:header + 28], "little"), \
        int.from_bytes(data[header + 28:header + 30], "little")
    data[header + 30 + name_len + extra_len + 8] ^= 0x40
    path = folder / "bad_crc.pt"
    path.write_bytes(bytes(data))
    return path


def _edit_net(folder: Path, net: Path, name: str, edit: Callable[[h5py.File], None]) -> Path:
    path = folder / f"{name}.net"
    shutil.copyfile(net, path)
    with h5py.File(path, "r+") as h:
        edit(h)
    return path


def _replace(h: h5py.File, key: str, **kwargs: object) -> h5py.Dataset:
    del h[key]
    return h.create_dataset(key, **kwargs)


def _gzip_bomb(folder: Path) -> Path:
    """A network whose dense weight declares 16·2²⁴ int8 zeros (inside every documented limit), stored as
    gzip chunks: about 1 MB on disk."""
    import zlib
    from slipsnn.exporters.netx import write_netx
    from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse
    small = IntNetwork((1, 4, 4), (
        IntLayer("fc", (16,), (IntSynapse(-1, "dense", np.full((16, 16), 2, np.int32)),), "IF_SOFT", 100,
                 np.zeros(16, np.int32), 0, 0, 1.0),
        IntLayer("out", (10,), (IntSynapse(0, "dense", np.full((10, 16), 2, np.int32)),), "ACCUMULATE", 0,
                 np.zeros(10, np.int32), 0, 0, 1.0)), timesteps=1, max_timesteps=1, meta={"dataset": "digits"})
    path = write_netx(small, folder / "gzip_bomb.net")
    n = 2 ** 24
    with h5py.File(path, "r+") as h:
        for key, value in (("layer/0/shape", [1, 4096, 4096]), ("layer/1/shape", [n, 1, 1]),
                           ("slipsnn/input_shape", [1, 4096, 4096])):
            _replace(h, key, data=np.array(value))
        del h["layer/2/weight"]
        chunk = (16, 2 ** 18)
        ds = h["layer/2"].create_dataset("weight", shape=(16, n), dtype=np.int8, chunks=chunk, compression="gzip")
        blob = zlib.compress(bytes(16 * 2 ** 18), 9)
        for c in range(n // chunk[1]):
            ds.id.write_direct_chunk((0, c * chunk[1]), blob)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _device_copy(path: Path, of: str) -> Path:
    """A character device with the numbers of ``of`` (root), else a symbolic link to it."""
    st = os.stat(of)
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, st.st_rdev)
    except PermissionError:
        os.symlink(of, path)
    return path


def _profile(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def _profile_text(synop: str = "23.6", unit: str = "pJ") -> str:
    from importlib import resources
    base = resources.files("slipsnn.hardware_configs").joinpath("loihi2.toml").read_text()
    return re.sub(r"(\[energy\.synop\][^\[]*?value\s*=\s*)[^\n]+", lambda m: m.group(1) + synop, base, count=1) \
        if unit == "pJ" else base


# ------------------------------------------------------------------------------------------ the corpus

def build_corpus(folder: Path) -> list[Case]:
    """Write every hostile case's files into ``folder`` (which must exist) and return the cases."""
    folder = Path(folder)
    ckpt, net = valid_files(folder)
    secret = folder / "secret.bin"
    secret.write_bytes(SECRET * 64)
    cases: list[Case] = []

    def export(name: str, path: Path, message: str, code: int = 1) -> None:
        cases.append(Case(name, ["export", str(path), "-o", str(folder / f"out_{name}.net")], code, message,
                          keep=[path]))

    # --- checkpoints: code execution, corruption, non-finite and out-of-range values
    export("torchscript", _torchscript(folder), r"TorchScript")
    export("bad_crc", _bad_crc(folder, ckpt), r"CRC")
    sd = lambda f: (lambda p: f(p["state_dict"], p))   # noqa: E731

    def set_nan(s: dict, p: dict) -> None:
        s[_first_weight(p)][0].view(-1)[0] = float("nan")
    export("nan_weight", _edited_checkpoint(folder, ckpt, "nan_weight", sd(set_nan)), r"not finite|NaN")

    def neg_var(s: dict, p: dict) -> None:
        s[_first_weight(p, "running_var")][0] = -1.0
    export("bn_negative_var", _edited_checkpoint(folder, ckpt, "bn_negative_var", sd(neg_var)), r"running_var")

    def inf_bias(s: dict, p: dict) -> None:
        s[_first_weight(p, "fc.bias") if any(k.endswith("fc.bias") for k in s) else
          [k for k in s if k.endswith(".bias") and s[k].dtype.is_floating_point][-1]][0] = float("inf")
    export("inf_bias", _edited_checkpoint(folder, ckpt, "inf_bias", sd(inf_bias)), r"not finite|inf")

    def sparse(s: dict, p: dict) -> None:
        k = [k for k in s if k.endswith(".weight") and s[k].dim() == 2][-1]
        s[k] = s[k].to_sparse()
    export("sparse_weight", _edited_checkpoint(folder, ckpt, "sparse_weight", sd(sparse)), r"sparse|dense tensor")

    def complex_w(s: dict, p: dict) -> None:
        k = [k for k in s if k.endswith(".weight") and s[k].dim() == 2][-1]
        s[k] = s[k].to(torch.complex64)
    export("complex_weight", _edited_checkpoint(folder, ckpt, "complex_weight", sd(complex_w)), r"complex")

    def cfg(key: str, value: object) -> Callable[[dict], None]:
        return lambda p: p["model_config"].__setitem__(key, value)
    export("width_300", _edited_checkpoint(folder, ckpt, "width_300", cfg("width", 300.0)), r"width")
    export("nan_mean", _edited_checkpoint(folder, ckpt, "nan_mean", cfg("mean", [float("nan")])), r"mean")
    export("num_classes_huge", _edited_checkpoint(folder, ckpt, "num_classes_huge", cfg("num_classes", 10 ** 9)),
           r"num_classes")
    export("num_classes_negative", _edited_checkpoint(folder, ckpt, "num_classes_negative", cfg("num_classes", -1)),
           r"num_classes")
    export("input_shape_bad", _edited_checkpoint(folder, ckpt, "input_shape_bad", cfg("input_shape", [1, -8, 8])),
           r"input_shape")

    def act(key: str, value: object) -> Callable[[dict], None]:
        return lambda p: p["activation"].__setitem__(key, value)
    export("L_inf", _edited_checkpoint(folder, ckpt, "L_inf", act("L", float("inf"))), r"\bL\b")
    export("delta1_nan", _edited_checkpoint(folder, ckpt, "delta1_nan", act("delta1", float("nan"))), r"delta1")
    export("dataset_list", _edited_checkpoint(folder, ckpt, "dataset_list",
                                              lambda p: p.__setitem__("dataset", ["digits", "x"])), r"dataset")
    export("dataset_escape", _edited_checkpoint(folder, ckpt, "dataset_escape",
                                                lambda p: p.__setitem__("dataset", "digits\x1b]0;pwned\x07")),
           r"control character")
    export("fifo_checkpoint", _fifo(folder / "fifo.pt"), r"is not a file but")

    # --- output paths: never an input, never a device node, clear messages
    cases.append(Case("export_onto_input", ["export", str(ckpt), "-o", str(ckpt)], 2, r"input", keep=[ckpt]))
    null = _device_copy(folder / "null_copy", "/dev/null")
    cases.append(Case("export_onto_device", ["export", str(ckpt), "-o", str(null)], 2, r"is not a file but",
                      keep=[null]))
    (folder / "plain.txt").write_text("plain")
    cases.append(Case("export_under_file", ["export", str(ckpt), "-o", str(folder / "plain.txt" / "m.net")], 1,
                      r"plain\.txt.*not a folder"))
    cases.append(Case("export_full_disk", ["export", str(ckpt), "-o", str(folder / "full.net")], 1,
                      r"full\.net.*(File too large|No space)", fsize=4096))
    run = ["run", str(net), "--backend", "fast", "--limit", "3"]
    cases.append(Case("run_json_onto_input", [*run, "--json", str(net)], 2, r"input", keep=[net]))
    cases.append(Case("run_json_onto_device", [*run, "--json", str(null)], 2, r"is not a file but", keep=[null]))
    report = ["report", str(net), "--limit", "3", "--timesteps", "1"]
    cases.append(Case("report_json_onto_input", [*report, "--json", str(net)], 2, r"input", keep=[net]))
    cases.append(Case("report_plots_onto_file", [*report, "--plots", str(net)], 2, r"input|not a folder|is a file", keep=[net]))
    cases.append(Case("analyze_json_onto_input", ["analyze", str(ckpt), "--limit", "3", "--json", str(ckpt)], 2,
                      r"input", keep=[ckpt]))

    # --- netx files: data from outside the file, bombs, FIFOs, false claims
    def run_case(name: str, path: Path, message: str) -> None:
        cases.append(Case(name, ["run", str(path), "--backend", "fast", "--limit", "3"], 1, message, keep=[path]))

    def external_storage(h: h5py.File) -> None:
        w = h["layer/1/bias"]
        shape, dtype = w.shape, w.dtype
        _replace(h, "layer/1/bias", shape=shape, dtype=dtype, external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
    run_case("external_storage", _edit_net(folder, net, "external_storage", external_storage), r"external")

    fifo_ext = _fifo(folder / "ext.fifo")

    def external_fifo(h: h5py.File) -> None:
        w = h["layer/1/bias"]
        _replace(h, "layer/1/bias", shape=w.shape, dtype=w.dtype, external=[(str(fifo_ext), 0, h5py.h5f.UNLIMITED)])
    run_case("external_storage_fifo", _edit_net(folder, net, "external_fifo", external_fifo), r"external")

    other = folder / "other.h5"
    with h5py.File(other, "w") as h, h5py.File(net, "r") as src:
        h["bias"] = src["layer/1/bias"][()]

    def external_link(h: h5py.File) -> None:
        del h["layer/1/bias"]
        h["layer/1/bias"] = h5py.ExternalLink(str(other), "/bias")
    run_case("external_link", _edit_net(folder, net, "external_link", external_link), r"external link|link")

    def virtual(source: Path) -> Callable[[h5py.File], None]:
        def edit(h: h5py.File) -> None:
            w = h["layer/1/bias"]
            layout = h5py.VirtualLayout(shape=w.shape, dtype=w.dtype)
            layout[...] = h5py.VirtualSource(str(source), "bias", shape=w.shape)
            del h["layer/1/bias"]
            h["layer/1"].create_virtual_dataset("bias", layout, fillvalue=0)
        return edit
    run_case("virtual_dataset", _edit_net(folder, net, "virtual", virtual(other)), r"virtual")
    run_case("virtual_missing_source", _edit_net(folder, net, "virtual_missing", virtual(folder / "gone.h5")),
             r"virtual")

    def fill_only(h: h5py.File) -> None:
        w = h["layer/1/bias"]
        _replace(h, "layer/1/bias", shape=w.shape, dtype=w.dtype)   # never written: every read gives fill values
    run_case("fill_value_only", _edit_net(folder, net, "fill_only", fill_only), r"no stored data|fill value")
    run_case("gzip_bomb", _gzip_bomb(folder), r"compress")
    run_case("fifo_network", _fifo(folder / "fifo.net"), r"is not a file but")

    def false_horizon(h: h5py.File) -> None:
        h["slipsnn/max_timesteps"][()] = 4096
    run_case("false_horizon", _edit_net(folder, net, "false_horizon", false_horizon), r"max_timesteps")

    def meta_escape(h: h5py.File) -> None:
        text = h["slipsnn/meta_json"][0].decode().replace('"digits"', '"digits\\u001b[2J\\u001b]0;pwned\\u0007"', 1)
        del h["slipsnn/meta_json"]
        data = text.encode()
        h["slipsnn"].create_dataset("meta_json", (1,), f"S{len(data)}", [data])
    run_case("meta_escape", _edit_net(folder, net, "meta_escape", meta_escape), r"control character")
    truncated = folder / "truncated.net"
    truncated.write_bytes(net.read_bytes()[: net.stat().st_size * 2 // 3])
    run_case("truncated_network", truncated, r"truncated")

    # --- profiles
    def prof(name: str, path: str | Path, message: str) -> None:
        cases.append(Case(name, [*report, "--profile", str(path)], 1, message))
    prof("fifo_profile", _fifo(folder / "fifo.toml"), r"is not a file but")
    prof("dev_zero_profile", "/dev/zero", r"is not a file but")
    prof("deep_toml", _profile(folder, "deep", "a = " + "[" * 5000 + "]" * 5000 + "\n"), r"nest")
    prof("overflow_value", _profile(folder, "overflow", _profile_text("1" + "0" * 400)), r"synop")
    prof("huge_integer", _profile(folder, "huge_int", _profile_text("1" + "0" * 5000)), r"unreadable number")
    prof("huge_energy", _profile(folder, "huge", _profile_text("1e308").replace('unit = "pJ"', 'unit = "nJ"', 1)),
         r"synop|energy")
    prof("big_profile", _profile(folder, "big", "# " + "x" * (2 ** 21) + "\n"), r"larger than|too large")
    return cases


# ------------------------------------------------------------------------------------------ running

def snapshot(paths: list[Path]) -> dict[str, tuple]:
    """Type, device number and bytes of each path (without following links)."""
    out = {}
    for p in paths:
        st = os.lstat(p)
        body = p.read_bytes() if stat.S_ISREG(st.st_mode) else b""
        out[str(p)] = (stat.S_IFMT(st.st_mode), st.st_rdev, body)
    return out


class _Alarm(BaseException):
    pass


def run_case(case: Case, folder: Path, seconds: int = CASE_SECONDS) -> dict:
    """Run one case through the CLI in this process (the caller bounds its memory), with a SIGALRM timeout.

    Returns:
        {"code", "last_line", "seconds", "executed", "leaked", "changed"}.
    """
    from click.testing import CliRunner
    from slipsnn.toolchain import cli
    marker = folder / f"executed_{case.name}"
    before = snapshot(case.keep)
    old_fsize = resource.getrlimit(resource.RLIMIT_FSIZE)

    def on_alarm(*_: object) -> None:
        raise _Alarm()
    signal.signal(signal.SIGALRM, on_alarm)
    os.environ["SLIPSNN_HOSTILE_MARKER"] = str(marker)
    start = time.monotonic()
    try:
        if case.fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.fsize, old_fsize[1]))
        signal.alarm(seconds)
        res = CliRunner().invoke(cli.main, case.args)
        signal.alarm(0)
        code, err, out = res.exit_code, res.stderr, res.stdout
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            err += f"\nTRACEBACK {type(res.exception).__name__}: {res.exception}"
    except _Alarm:
        code, err, out = None, f"TIMEOUT after {seconds} s", ""
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_FSIZE, old_fsize)
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    after = snapshot(case.keep)
    leaked = SECRET.decode() in out + err or any(SECRET in p.read_bytes() for p in folder.glob("out_*")
                                                   if p.is_file())
    return dict(code=code, last_line=lines[-1] if lines else "", seconds=round(time.monotonic() - start, 2),
                executed=marker.exists(), leaked=leaked, changed=[p for p in before if before[p] != after[p]],
                output=out[-2000:])


def _guard_torchscript() -> None:
    """Replace torch's TorchScript loaders by a function that leaves a marker: reaching them is a failure."""
    def boom(*_: object, **__: object) -> None:
        Path(os.environ["SLIPSNN_HOSTILE_MARKER"]).write_text("torch.jit.load ran")
        raise SystemExit(99)
    torch.jit.load = boom
    torch._C.import_ir_module = boom
    torch._C.import_ir_module_from_buffer = boom


def run_corpus(folder: Path, names: list[str] | None = None) -> dict[str, dict]:
    """Build the corpus in ``folder`` and run its cases (all, or ``names``) in this process."""
    _guard_torchscript()
    cases = build_corpus(folder)
    return {c.name: {**run_case(c, folder), "expect_code": c.code, "expect": c.message}
            for c in cases if names is None or c.name in names}


def ok(result: dict) -> bool:
    """The case ended as documented: exit status, message, nothing executed, leaked or changed, one line."""
    return (result["code"] == result["expect_code"] and re.search(result["expect"], result["last_line"]) is not None
            and not result["executed"] and not result["changed"] and not result["leaked"]
            and "TRACEBACK" not in result["last_line"])


def main(folder: str, out: str | None = None) -> None:
    """Child process: cap the address space, run the corpus, print a table (and write JSON to ``out``)."""
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    results = run_corpus(root)
    for name, r in results.items():
        print(f"{'ok  ' if ok(r) else 'FAIL'} {name:26} exit {r['code']} ({r['expect_code']}) {r['seconds']:5.1f}s "
              f"{'EXECUTED ' if r['executed'] else ''}{'LEAK ' if r['leaked'] else ''}"
              f"{'CHANGED ' if r['changed'] else ''}| {r['last_line'][:240]!r}", flush=True)
    if out:
        Path(out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:3])
