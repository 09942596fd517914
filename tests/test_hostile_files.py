"""Hostile inputs end in one documented sentence: the corpus of ``tests/hostile_corpus.py`` through the CLI.

All cases run in ONE child process (importing torch per case costs ~20 s on a loaded machine) whose address
space is capped at ``hostile_corpus.AS_LIMIT``, each case under a SIGALRM timeout, with torch's TorchScript
loaders replaced by a function that leaves a marker file. Every case must exit with its documented status,
print a last line matching its message, run nothing from the file, leak nothing of a planted secret file and
leave its inputs and device nodes byte-for-byte and type-for-type as they were.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import hostile_corpus
from hostile_corpus import CASE_NAMES, ok

CORPUS = Path(hostile_corpus.__file__)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("hostile")
    out = folder / "results.json"
    proc = subprocess.run([sys.executable, str(CORPUS), str(folder / "corpus"), str(out)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"the corpus child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())


def test_the_corpus_has_every_listed_case(results: dict[str, dict]) -> None:
    assert tuple(results) == CASE_NAMES


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_case(name: str, results: dict[str, dict]) -> None:
    r = results[name]
    assert ok(r), (f"{name}: exit {r['code']} (documented: {r['expect_code']}), last line {r['last_line']!r} "
                   f"(must match {r['expect']!r}); executed={r['executed']} leaked={r['leaked']} "
                   f"changed={r['changed']}; {r['seconds']} s")
    assert r["last_line"].startswith("Error: ") and len(r["last_line"]) < 400, r["last_line"]
    assert r["seconds"] < 30, f"{name} took {r['seconds']} s"
