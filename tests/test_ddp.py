"""Data-parallel training under torchrun: 2 gloo processes on the CPU against 1 process, same global batch.

With the same global batch, the two processes see exactly the single process's batches (``DistributedSampler``
over the same permutation), and DDP averages their gradients; only BatchNorm's batch statistics differ
(each process normalises its half of the batch), so the accuracies agree closely but not bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ARGS = ["--dataset", "digits", "--epochs", "4", "--width", "0.25", "--batch-size", "64", "--quiet"]


def _leftovers(marker: str) -> list[str]:
    """Command lines of live processes that mention ``marker`` (our unique output folder)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd and int(pid) != os.getpid():
            found.append(f"{pid}: {cmd}")
    return found


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path: Path) -> None:
    train = BIN / "slipsnn-train"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([str(train), *ARGS, "--out", str(tmp_path / "one")], capture_output=True, text=True,
                         env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(train), *ARGS, "--out", str(tmp_path / "ddp")], capture_output=True, text=True,
                         env=env, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count("ANN accuracy") == 1, "rank 0 alone reports"
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())
    b = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert a["train_size"] == b["train_size"] == 1212 and a["selected_by"] == b["selected_by"] == "validation"
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["metrics.json", "model.pt"]
    assert a["test_accuracy"] > 0.85 and abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.03, (a, b)
    assert abs(a["snn_accuracy"]["4"] - b["snn_accuracy"]["4"]) <= 0.04, (a["snn_accuracy"], b["snn_accuracy"])
    assert _leftovers(str(tmp_path)) == [], "no process left behind"
