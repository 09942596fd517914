"""Hostile netx files: a seeded fuzzer over ~300 mutants of a valid file, and a round-trip property test.

Every mutant must either load as a network that simulates and writes back identically, or be refused
with one ``FormatError`` line that names the file; never another exception, a hang or a memory blow-up.
The mutants run in a child process (``python tests/test_fuzz_netx.py WORKDIR``) under an address-space
limit, so a crash or a runaway allocation in HDF5 cannot take pytest down with it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slipsnn.exporters.netx import read_netx, write_netx
from slipsnn.toolchain.errors import FormatError, SlipsnnError
from slipsnn.toolchain.ir.formats import (BIAS_EXP_MAX, BIAS_MAX, BIAS_MIN, MAX_TIMESTEPS, STATE_MAX,
                                          THRESHOLD_MAX, WEIGHT_EXP_MAX, WEIGHT_EXP_MIN)
from slipsnn.toolchain.ir.integer import IntLayer, IntNetwork, IntSynapse
from factories import mixed_residual_net

SEED = 20240607
CASE_SECONDS = 2.0               # CPU time of a read (+ simulate + write-back) of one mutant
HANG_SECONDS = 20.0              # wall-clock time after which a case is interrupted as hung
AS_HEADROOM_BYTES = 256 * 2 ** 20  # the child's address space may grow this much beyond its warmed-up size
RSS_GROWTH_BYTES = 64 * 2 ** 20    # a case that raises the child's peak resident memory by more fails


# ------------------------------------------------------------------------------------------ the valid file


def assert_same(a: object, b: object, where: str = "net") -> None:
    """Field-by-field equality of IR objects (dataclasses), arrays bit-exact with their dtype."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        assert (a == b).all(), f"{where}: {np.argwhere(a != b)[:5]=}"
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):   # meta: JSON text, so that NaN compares equal to NaN
        assert json.dumps(a) == json.dumps(b), f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


# ------------------------------------------------------------------------------------------ mutants

class Mutant(NamedTuple):
    """One hostile variant of the base file: ``raw`` edits the bytes, ``edit`` the open HDF5 file."""

    desc: str
    raw: Callable[[bytes], bytes] | None = None
    edit: Callable[[h5py.File], None] | None = None


def _put(key: str, **dataset: object) -> Callable[[h5py.File], None]:
    def edit(h: h5py.File) -> None:
        if key in h:
            del h[key]
        h.create_dataset(key, **dataset)
    return edit


def _chain(*edits: Callable[[h5py.File], None]) -> Callable[[h5py.File], None]:
    def edit(h: h5py.File) -> None:
        for e in edits:
            e(h)
    return edit


def _delete(key: str) -> Callable[[h5py.File], None]:
    return lambda h: h.__delitem__(key)


def _copy(src: str, dst: str) -> Callable[[h5py.File], None]:
    def edit(h: h5py.File) -> None:
        if dst in h:
            del h[dst]
        h.copy(h[src], dst)
    return edit


def _link(key: str, link: object) -> Callable[[h5py.File], None]:
    def edit(h: h5py.File) -> None:
        if key in h:
            del h[key]
        h[key] = link
    return edit


def _elsewhere(key: str, how: str) -> Callable[[h5py.File], None]:
    """Replace ``key`` by a dataset of the same shape whose data is not stored in the file."""
    def edit(h: h5py.File) -> None:
        shape, dtype = h[key].shape, h[key].dtype
        parent, name = key.rsplit("/", 1)
        del h[key]
        if how == "virtual":
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource("missing.h5", "/w", shape=shape)
            h[parent].create_virtual_dataset(name, layout, fillvalue=2)
        elif how.startswith("external"):
            target = "/dev/zero" if how == "external" else "missing.bin"
            h.create_dataset(key, shape=shape, dtype=dtype, external=[(target, 0, h5py.h5f.UNLIMITED)])
        else:
            h.create_dataset(key, shape=shape, dtype=dtype)
    return edit


def _flip(offsets: list[int], xors: list[int]) -> Callable[[bytes], bytes]:
    def raw(data: bytes) -> bytes:
        out = bytearray(data)
        for o, x in zip(offsets, xors):
            out[o] ^= x
        return bytes(out)
    return raw


def _ragged() -> np.ndarray:
    out = np.empty(2, object)
    out[0], out[1] = np.arange(3, dtype=np.int32), np.arange(1, dtype=np.int32)
    return out


def _wrong_dtypes(value: np.ndarray) -> list[tuple[str, dict]]:
    """Replacements of a dataset by the wrong kind of data: floats, strings, NaN/inf, bools, odd shapes."""
    v = np.asarray(value)
    numeric = v.dtype.kind in "iu"
    return [
        ("float64 copy", dict(data=v.astype(np.float64) if numeric else np.float64(1.5))),
        ("NaN", dict(data=np.full(v.shape, np.nan))),
        ("+inf", dict(data=np.full(v.shape, np.inf))),
        ("-inf", dict(data=np.float32(-np.inf))),
        ("fixed string", dict(data=np.array(b"12"))),
        ("vlen string", dict(data=["conv"], dtype=h5py.string_dtype())),
        ("bool", dict(data=np.ones(v.shape, bool))),
        ("complex", dict(data=np.complex64(1 + 2j))),
        ("empty", dict(data=np.zeros((0,), np.int32))),
        ("extra dimension", dict(data=v[None, None] if numeric else np.zeros((1, 1, 1), np.int32))),
        ("big-endian", dict(data=v.astype(">i4") if numeric else np.array(1, ">i8"))),
        ("uint64 max", dict(data=np.full(v.shape or (), 2 ** 64 - 1, np.uint64))),
        ("int64 min", dict(data=np.full(v.shape or (), -2 ** 63, np.int64))),
        ("compound", dict(data=np.zeros(2, dtype=[("a", "i4"), ("b", "f4")]))),
        ("vlen ints", dict(data=_ragged(), dtype=h5py.vlen_dtype(np.int32))),
    ]


def _huge_and_out_of_range() -> list[Mutant]:
    """Hand-picked hostile values: huge declared shapes, every Loihi field out of range, bad sources and types."""
    def chunked(shape: tuple[int, ...]) -> dict:
        return dict(shape=shape, dtype=np.int32, chunks=tuple(min(s, 64) for s in shape))

    cases: list[tuple[str, Callable[[h5py.File], None]]] = [
        # declared sizes (chunked: nothing stored, so a tiny file declares gigabytes)
        ("fc3 weight declared (2**13, 2**14)", _put("layer/5/weight", **chunked((2 ** 13, 2 ** 14)))),
        ("fc3 weight declared (2**20, 2**20)", _put("layer/5/weight", **chunked((2 ** 20, 2 ** 20)))),
        ("conv1 weight declared (4096, 4096, 3, 3)", _put("layer/2/weight", **chunked((4096, 4096, 3, 3)))),
        ("residual weight declared (2**12, 2**12, 1, 1)", _put("layer/3/residual/1/weight",
                                                               **chunked((2 ** 12, 2 ** 12, 1, 1)))),
        ("conv0 bias declared (2**13, 2**13)", _put("layer/1/bias", **chunked((2 ** 13, 2 ** 13)))),
        ("name declared 1 GB fixed string", _put("layer/1/name", shape=(1,), dtype="S1000000000", chunks=(1,))),
        ("meta_json declared 256 MB fixed string", _put("slipsnn/meta_json", shape=(1,), dtype="S268435456",
                                                        chunks=(1,))),
        ("type declared 64 MB fixed string", _put("layer/2/type", shape=(1,), dtype="S67108864", chunks=(1,))),
        ("100 kB layer type string", _put("layer/2/type", data=["x" * 100_000], dtype=h5py.string_dtype())),
        ("input shape [2**31, 6, 6]", _put("layer/0/shape", data=[2 ** 31, 6, 6])),
        ("input shape [65536]*3", _put("layer/0/shape", data=[65536] * 3)),
        ("conv0 shape [4, 2**40, 6]", _put("layer/1/shape", data=[4, 2 ** 40, 6])),
        ("conv0 shape [0, 6, 6]", _put("layer/1/shape", data=[0, 6, 6])),
        ("conv0 shape [-4, 6, 6]", _put("layer/1/shape", data=[-4, 6, 6])),
        ("conv0 shape [4, 6]", _put("layer/1/shape", data=[4, 6])),
        ("conv0 shape [4, 6, 6, 1]", _put("layer/1/shape", data=[4, 6, 6, 1])),
        ("flatten shape [2**62, 1, 1]", _put("layer/4/shape", data=[2 ** 62, 1, 1])),
        ("layer count 5000 (empty groups)", lambda h: [h.create_group(f"layer/{g}") for g in range(7, 5007)]),
        ("zero-size conv kernel (4, 2, 0, 3)", _put("layer/1/weight", data=np.zeros((4, 2, 0, 3), np.int32))),
        ("zero-size conv kernel + padding that fits", _chain(
            _put("layer/1/weight", data=np.zeros((4, 2, 0, 1), np.int32)), _put("layer/1/padding", data=[0, 0]))),
        # Loihi ranges
        ("threshold 2**17", _put("layer/1/neuron/vThMant", data=THRESHOLD_MAX + 1)),
        ("threshold -1", _put("layer/1/neuron/vThMant", data=-1)),
        ("threshold 0 on a spiking layer", _put("layer/2/neuron/vThMant", data=0)),
        ("threshold uint64 max", _put("layer/2/neuron/vThMant", data=np.uint64(2 ** 64 - 1))),
        ("odd weight", lambda h: h["layer/1/weight"].__setitem__((0, 0, 0, 0), 3)),
        ("weight 300", lambda h: h["layer/5/weight"].__setitem__((0, 0), 300)),
        ("weight -258", lambda h: h["layer/5/weight"].__setitem__((0, 0), -258)),
        ("weight 2**40 (int64)", _put("layer/6/weight", data=np.full((3, 10), 2 ** 40, np.int64))),
        ("bias 2**12", lambda h: h["layer/1/bias"].__setitem__((0, 0, 0), BIAS_MAX + 1)),
        ("bias -2**12-1", lambda h: h["layer/2/bias"].__setitem__(0, BIAS_MIN - 1)),
        ("bias wrong length", _put("layer/2/bias", data=np.zeros(5, np.int32))),
        ("bias per-neuron transposed", _put("layer/1/bias", data=np.zeros((6, 6, 4), np.int32))),
        ("biasExp 8", _put("layer/1/neuron/biasExp", data=BIAS_EXP_MAX + 1)),
        ("biasExp -1", _put("layer/1/neuron/biasExp", data=-1)),
        ("vInit 2**23", _put("layer/1/neuron/vInit", data=STATE_MAX + 1)),
        ("vInit -2**40", _put("layer/1/neuron/vInit", data=-2 ** 40)),
        ("wgtExp 9", _put("layer/5/wgtExp", data=WEIGHT_EXP_MAX + 1)),
        ("wgtExp -9", _put("layer/5/wgtExp", data=WEIGHT_EXP_MIN - 1)),
        ("stride 0", _put("layer/2/stride", data=[0, 2])),
        ("stride 65", _put("layer/2/stride", data=[65, 65])),
        ("stride of 3 values", _put("layer/2/stride", data=[2, 2, 2])),
        ("padding -1", _put("layer/1/padding", data=[-1, 1])),
        ("padding 2**31", _put("layer/1/padding", data=[2 ** 31, 1])),
        ("dilation 0", _put("layer/1/dilation", data=[0, 1])),
        ("dilation 2 (shape mismatch)", _put("layer/1/dilation", data=[2, 2])),
        ("groups 0", _put("layer/1/groups", data=0)),
        ("groups 3", _put("layer/2/groups", data=3)),
        ("groups 2**40", _put("layer/2/groups", data=2 ** 40)),
        ("scale 0", _put("layer/1/scale", data=0.0)),
        ("scale -1", _put("layer/1/scale", data=-1.0)),
        ("scale NaN", _put("layer/1/scale", data=np.nan)),
        ("scale inf", _put("layer/6/scale", data=np.inf)),
        ("scale 1e-300 (valid, tiny)", _put("layer/6/scale", data=1e-300)),
        ("timesteps 0", _put("slipsnn/timesteps", data=0)),
        ("timesteps > max_timesteps", _put("slipsnn/timesteps", data=17)),
        ("max_timesteps -1", _put("slipsnn/max_timesteps", data=-1)),
        ("format_version 0", _put("slipsnn/format_version", data=0)),
        ("input_bits 16", _put("slipsnn/input_bits", data=16)),
        ("num_classes 4", _put("slipsnn/num_classes", data=4)),
        ("input_shape meta mismatch", _put("slipsnn/input_shape", data=[2, 6, 7])),
        # residual edges
        ("residual source forwards (3)", _put("layer/3/residual/1/source", data=3)),
        ("residual source = own layer (2)", _put("layer/3/residual/1/source", data=2)),
        ("residual source = previous layer (1)", _put("layer/3/residual/1/source", data=1)),
        ("residual source -2", _put("layer/3/residual/1/source", data=-2)),
        ("residual source nowhere (100)", _put("layer/3/residual/1/source", data=100)),
        ("residual source 2**62", _put("layer/3/residual/1/source", data=2 ** 62)),
        ("residual source float", _put("layer/3/residual/1/source", data=0.0)),
        ("residual numbered 2, 3 (no 1)", lambda h: h.move("layer/3/residual/1", "layer/3/residual/3")),
        ("residual numbered 0", lambda h: h.move("layer/3/residual/1", "layer/3/residual/0")),
        ("residual is a dataset", _put("layer/3/residual", data=1)),
        ("dense residual source forwards (5)", _put("layer/6/residual/1/source", data=5)),
        ("residual type pool", _put("layer/3/residual/1/type", data=[b"pool"])),
        # layer and neuron types
        ("layer type 'pool'", _put("layer/2/type", data=[b"pool"])),
        ("layer type ''", _put("layer/2/type", data=[b""])),
        ("layer type 'CONV'", _put("layer/2/type", data=[b"CONV"])),
        ("layer type invalid UTF-8", _put("layer/2/type", data=[b"\xff\xfe"])),
        ("layer type 'input' twice", _put("layer/2/type", data=[b"input"])),
        ("input type 'conv'", _put("layer/0/type", data=[b"conv"])),
        ("input with a neuron group", lambda h: h.create_group("layer/0/neuron")),
        ("neuron type 'LIF'", _put("layer/1/neuron/type", data=[b"LIF"])),
        ("neuron type 'CUBA'", _put("layer/1/neuron/type", data=[b"CUBA"])),
        ("output neuron IF_SOFT", _put("layer/6/neuron/type", data=[b"IF_SOFT"])),
        ("hidden neuron ACCUMULATE", _put("layer/2/neuron/type", data=[b"ACCUMULATE"])),
        ("slipsnn/neuron 'cuba'", _put("slipsnn/neuron", data=[b"cuba"])),
        ("conv group typed flatten", _put("layer/3/type", data=[b"flatten"])),
        ("two flattens", _chain(_copy("layer/4", "layer/7"), _put("layer/5/type", data=[b"flatten"]))),
        # meta_json
        ("meta_json not JSON", _put("slipsnn/meta_json", data=[b"{not json"])),
        ("meta_json deeply nested", _put("slipsnn/meta_json", data=[b"[" * 100_000 + b"]" * 100_000])),
        ("meta_json a number", _put("slipsnn/meta_json", data=[b"5"])),
        ("meta_json a list", _put("slipsnn/meta_json", data=[b"[1, 2]"])),
        ("meta_json null", _put("slipsnn/meta_json", data=[b"null"])),
        ("meta_json with NaN (valid)", _put("slipsnn/meta_json", data=[b'{"x": NaN}'])),
        ("meta_json dataset 5 (valid)", _put("slipsnn/meta_json", data=[b'{"dataset": 5}'])),
        # links
        ("soft-link loop", _link("layer/2/weight", h5py.SoftLink("/layer/2/weight"))),
        ("dangling soft link", _link("layer/2/weight", h5py.SoftLink("/nowhere"))),
        ("soft link to the wrong dataset", _link("layer/2/weight", h5py.SoftLink("/layer/1/weight"))),
        ("external link to /dev/zero", _link("layer/2/weight", h5py.ExternalLink("/dev/zero", "/x"))),
        ("external link to a missing file", _link("layer/2", h5py.ExternalLink("missing.h5", "/layer/2"))),
        # data from outside the file, or never written (issue 13)
        ("weight in external storage on /dev/zero", _elsewhere("layer/2/weight", "external")),
        ("bias in external storage on a missing file", _elsewhere("layer/1/bias", "external-missing")),
        ("weight a virtual dataset of a missing file", _elsewhere("layer/2/weight", "virtual")),
        ("weight never written (fill values)", _elsewhere("layer/2/weight", "unwritten")),
        ("meta_json with an escape sequence", _put("slipsnn/meta_json", data=[b'{"arch": "\\u001b[2J"}'])),
        ("group hard-linked into itself", lambda h: h["layer/1"].__setitem__("self", h["layer/1"])),
        ("layer group hard-linked twice", lambda h: h.__setitem__("layer/7", h["layer/6"])),
    ]
    return [Mutant(desc, edit=edit) for desc, edit in cases]


def _data_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of the file holding dataset values (the rest is HDF5 metadata)."""
    ranges = []
    with h5py.File(path, "r") as h:
        def visit(name: str, obj: object) -> None:
            offset = obj.id.get_offset() if isinstance(obj, h5py.Dataset) else None
            if offset is not None:
                ranges.append((offset, offset + obj.id.get_storage_size()))
        h.visititems(visit)
    return ranges


def mutants(base: Path, seed: int = SEED) -> list[Mutant]:
    """About 300 hostile variants of ``base``, the same for the same seed."""
    rng = np.random.default_rng(seed)
    size, data = base.stat().st_size, _data_ranges(base)
    is_meta = np.ones(size, bool)
    for a, b in data:
        is_meta[a:b] = False
    meta_offsets = np.flatnonzero(is_meta)
    with h5py.File(base, "r") as h:
        datasets, groups = [], []
        h.visititems(lambda n, o: (datasets if isinstance(o, h5py.Dataset) else groups).append(n))
        values = {n: h[n][()] for n in datasets}
    out: list[Mutant] = []
    for i in range(80):   # flipped bytes: half anywhere, half in HDF5 metadata (object headers, B-trees, heaps)
        pool = np.arange(size) if i % 2 == 0 else meta_offsets
        offsets = sorted(rng.choice(pool, int(rng.integers(1, 17)), replace=False).tolist())
        xors = rng.integers(1, 256, len(offsets)).tolist()
        out.append(Mutant(f"flip {len(offsets)} bytes at {offsets[:4]}{'…' if len(offsets) > 4 else ''}"
                          f" ({'metadata' if i % 2 else 'anywhere'})", raw=_flip(offsets, xors)))
    for n in [0, 1, 8, 512, size - 1] + sorted(rng.integers(1, size, 25).tolist()):
        out.append(Mutant(f"truncated to {n} of {size} bytes", raw=lambda b, n=n: b[:n]))
    for name in rng.choice(datasets, 40, replace=False):
        out.append(Mutant(f"removed dataset {name}", edit=_delete(name)))
    for name in groups:
        out.append(Mutant(f"removed group {name}", edit=_delete(name)))
    layer_groups = [g for g in groups if g.count("/") == 1 and g.startswith("layer/")]
    for g in layer_groups:
        out.append(Mutant(f"duplicated {g} as layer/7", edit=_copy(g, "layer/7")))
    for _ in range(12):
        a, b = rng.choice(layer_groups, 2, replace=False)
        out.append(Mutant(f"{b} replaced by a copy of {a}", edit=_copy(a, b)))
    for _ in range(12):
        a, b = rng.choice(datasets, 2, replace=False)
        out.append(Mutant(f"{b} replaced by a copy of {a}", edit=_copy(a, b)))
    for name in rng.choice(datasets, 45, replace=False):
        options = _wrong_dtypes(values[name])
        label, dataset = options[int(rng.integers(len(options)))]
        out.append(Mutant(f"{name} replaced by {label}", edit=_put(name, **dataset)))
    return out + _huge_and_out_of_range()


# ------------------------------------------------------------------------------------------ the child

class _Timeout(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout(f"still running after {HANG_SECONDS} s")


def _make(base: Path, m: Mutant, path: Path) -> None:
    if m.raw is not None:
        path.write_bytes(m.raw(base.read_bytes()))
    else:
        shutil.copyfile(base, path)
        with h5py.File(path, "r+") as h:
            m.edit(h)


def _check_loaded(net: IntNetwork, path: Path, rng: np.random.Generator) -> str:
    """A loaded mutant must keep the IR's contract, simulate (or refuse with a SlipsnnError) and write back
    identically."""
    import torch
    assert isinstance(net, IntNetwork) and isinstance(net.meta, dict), f"loaded meta {net.meta!r}"
    from slipsnn.toolchain.backends.simulator import simulate_int
    pixels = torch.as_tensor(rng.integers(0, 256, (2, *net.input_shape)), dtype=torch.float64)
    try:
        simulate_int(net, pixels, min(net.timesteps, 4))
    except SlipsnnError as e:
        return f"loaded; simulate refused: {e}"
    again = path.with_suffix(".again.net")
    assert_same(net, read_netx(write_netx(net, again)))
    again.unlink()
    return "loaded"


def _run_case(base: Path, m: Mutant, path: Path, rng: np.random.Generator) -> tuple[bool, str]:
    """(passed, what happened) for one mutant."""
    try:
        _make(base, m, path)
    except Exception as e:   # h5py cannot write this edit: not a case
        return True, f"skipped: the edit fails ({type(e).__name__}: {e})"
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    start = time.process_time()
    try:
        outcome = _check_loaded(read_netx(path), path, rng)
    except FormatError as e:
        msg = str(e)
        if str(path) not in msg:
            return False, f"FormatError does not name the file: {msg[:300]}"
        if "\n" in msg or len(msg) > 600:
            return False, f"FormatError is not one short line ({len(msg)} chars): {msg[:300]!r}"
        outcome = f"refused: {msg[len(str(path)) + 2:][:160]}"
    except BaseException as e:   # noqa: BLE001 - every other exception is the failure we look for
        if isinstance(e, KeyboardInterrupt):
            raise
        return False, f"raw {type(e).__name__}: {str(e)[:300]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.process_time() - start
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    if seconds > CASE_SECONDS:
        return False, f"took {seconds:.2f} s of CPU (limit {CASE_SECONDS} s); {outcome}"
    if grew > RSS_GROWTH_BYTES:
        return False, f"peak resident memory grew by {grew / 2 ** 20:.0f} MiB; {outcome}"
    return True, outcome


def child(workdir: Path) -> None:
    """Run every mutant; write ``results.json`` (one entry per case) and ``current.txt`` (the case running).

    The address space is capped at its warmed-up size plus ``AS_HEADROOM_BYTES``, so an allocation that a
    hostile file provokes raises ``MemoryError`` (a failure) instead of exhausting the machine.
    """
    import torch
    torch.set_num_threads(1)
    base = write_netx(mixed_residual_net(), workdir / "base.net")
    cases = mutants(base)
    _check_loaded(read_netx(base), base, np.random.default_rng(0))   # warm up: imports, torch kernels
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (vm + AS_HEADROOM_BYTES, hard))
    signal.signal(signal.SIGALRM, _on_alarm)
    rng = np.random.default_rng(SEED)
    results = []
    for i, m in enumerate(cases):
        (workdir / "current.txt").write_text(f"case {i}: {m.desc}")
        start = time.perf_counter()
        passed, what = _run_case(base, m, workdir / f"m{i}.net", rng)
        results.append({"case": i, "desc": m.desc, "passed": passed, "what": what,
                        "seconds": round(time.perf_counter() - start, 4)})
        (workdir / f"m{i}.net").unlink(missing_ok=True)
    (workdir / "results.json").write_text(json.dumps(results, indent=1))


# ------------------------------------------------------------------------------------------ the tests

@pytest.mark.slow
def test_fuzzed_files_load_or_raise_one_format_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    current = (tmp_path / "current.txt").read_text() if (tmp_path / "current.txt").exists() else "before the first case"
    assert proc.returncode == 0 and (tmp_path / "results.json").exists(), \
        f"fuzz child died (rc {proc.returncode}) during {current}:\n{proc.stderr[-3000:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    failed = [f"case {r['case']} [{r['desc']}]: {r['what']}" for r in results if not r["passed"]]
    assert not failed, f"{len(failed)} of {len(results)} mutants misbehaved:\n" + "\n".join(failed)
    outcomes = [r["what"].split(":")[0].split(";")[0] for r in results]
    assert len(results) >= 300 and outcomes.count("refused") >= 200 and outcomes.count("loaded") >= 5, \
        {k: outcomes.count(k) for k in set(outcomes)}


def test_mutants_are_the_same_for_the_same_seed(tmp_path: Path) -> None:
    base = write_netx(mixed_residual_net(), tmp_path / "base.net")
    a, b = mutants(base), mutants(base)
    assert [m.desc for m in a] == [m.desc for m in b]
    assert [m.desc for m in mutants(base, SEED + 1)] != [m.desc for m in a]


# ------------------------------------------------------------------------------------------ property test

@st.composite
def int_networks(draw: st.DrawFn) -> IntNetwork:
    """Small valid IntNetworks: conv (3×3 or 1×1, stride 1 or 2) and dense layers, optional residual edges,
    per-channel or per-neuron bias, every Loihi field anywhere in its range."""
    even = st.integers(-128, 127).map(lambda x: 2 * x)
    arrays = lambda shape, elements: draw(st.lists(elements, min_size=int(np.prod(shape)),  # noqa: E731
                                                   max_size=int(np.prod(shape))).map(
        lambda v: np.array(v, np.int64).reshape(shape)))
    meta_text = lambda n: st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=n)  # noqa: E731
    name_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp", "Zs")), max_size=12)
    shapes = [(draw(st.integers(1, 3)), draw(st.integers(2, 5)), draw(st.integers(2, 5)))]   # index 0: input
    layers: list[IntLayer] = []
    n_hidden = draw(st.integers(0, 3))
    for i in range(n_hidden + 1):
        src_shape, last = shapes[-1], i == n_hidden
        conv = not last and len(src_shape) == 3 and draw(st.booleans())
        if conv:
            k, stride = draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 2]))
            pad, c_out = k // 2, draw(st.integers(1, 3))
            syn = IntSynapse(i - 1, "conv", arrays((c_out, src_shape[0], k, k), even), stride=(stride, stride),
                             padding=(pad, pad))
        else:
            syn = IntSynapse(i - 1, "dense", arrays((draw(st.integers(1, 6)), int(np.prod(src_shape))), even),
                             weight_exp=draw(st.integers(WEIGHT_EXP_MIN, WEIGHT_EXP_MAX)))
        shape = syn.output_shape(src_shape)
        synapses = [syn]
        for src in draw(st.lists(st.integers(-1, i - 2), max_size=2, unique=True)) if i >= 1 else []:
            s_shape = shapes[src + 1]
            if len(shape) == 1:
                synapses.append(IntSynapse(src, "dense", arrays((shape[0], int(np.prod(s_shape))), even),
                                           weight_exp=draw(st.integers(WEIGHT_EXP_MIN, WEIGHT_EXP_MAX))))
            elif len(s_shape) == 3 and s_shape[1:] == shape[1:]:
                synapses.append(IntSynapse(src, "conv", arrays((shape[0], s_shape[0], 1, 1), even)))
        bias_shape = draw(st.sampled_from([(shape[0],), shape]))
        layers.append(IntLayer(
            name=draw(name_text), shape=shape, synapses=tuple(synapses),
            neuron="ACCUMULATE" if last else "IF_SOFT",
            threshold=draw(st.integers(0 if last else 1, THRESHOLD_MAX)),
            bias=arrays(bias_shape, st.integers(BIAS_MIN, BIAS_MAX)), bias_exp=draw(st.integers(0, BIAS_EXP_MAX)),
            v_init=draw(st.integers(-STATE_MAX, STATE_MAX)),
            scale=draw(st.floats(1e-30, 1e30, allow_nan=False, allow_infinity=False))))
        shapes.append(shape)
    max_t = draw(st.integers(1, MAX_TIMESTEPS))
    json_values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 62, 2 ** 62)
                               | st.floats(allow_nan=False) | meta_text(8),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(meta_text(5), inner,
                                                                                          max_size=3), max_leaves=8)
    return IntNetwork(shapes[0], tuple(layers), timesteps=draw(st.integers(1, max_t)), max_timesteps=max_t,
                      meta=draw(st.dictionaries(meta_text(8), json_values, max_size=4)))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(net=int_networks())
def test_round_trip_property(net: IntNetwork, tmp_path: Path) -> None:
    path = write_netx(net, tmp_path / "p.net")
    assert_same(net, read_netx(path))


if __name__ == "__main__":   # the fuzz child: python tests/test_fuzz_netx.py WORKDIR
    child(Path(sys.argv[1]))
