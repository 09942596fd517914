"""The layers of slipsnn: every module imports only from layers below it (or from its own package).

The ranks are docs/design.md's table. An import is *upward* when its target ranks higher than its source and
*sideways* when both rank the same but live in different packages; both fail, naming file:line. Imports inside
functions and ``TYPE_CHECKING`` blocks count too. ``slipsnn.exporters`` is imported by ``pipeline/`` alone.
"""

from __future__ import annotations

import ast
from pathlib import Path


try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

#: (home, rank): a home is a package folder or a single module; lower ranks may be imported by higher ones.
HOMES: dict[str, int] = {
    "toolchain/errors.py": 0, "toolchain/files.py": 0, "toolchain/tables.py": 0, "toolchain/__init__.py": 0,
    "toolchain/ir": 1,
    "toolchain/kernels": 2,
    "toolchain/data": 3,
    "toolchain/ann": 4,
    "toolchain/conversion": 5,
    "toolchain/backends": 6,
    "exporters": 7,
    "toolchain/costs": 8, "toolchain/analysis": 8,
    "toolchain/show": 9,
    "toolchain/pipeline": 10,
    "toolchain/cli.py": 11,
}
FOUNDATION = 0   # the foundation modules form one home: they may import each other
PACKAGE_DIRS = {"slipsnn.toolchain": "toolchain", "slipsnn.exporters": "exporters",
                "slipsnn.hardware_configs": "hardware_configs"}


def home_of(path: str) -> str:
    """The home of a repo-relative module path (the longest matching key of ``HOMES``)."""
    for key in sorted(HOMES, key=len, reverse=True):
        if path == key or path.startswith(key.rstrip("/") + "/"):
            return key
    raise AssertionError(f"{path}: not in any layer of tests/test_layers.py HOMES; add it to a layer "
                         "(and to docs/design.md)")


def module_path(module: str, root: Path = ROOT) -> str | None:
    """Repo-relative file (or package folder) of a dotted slipsnn module; None for third-party modules."""
    for prefix, folder in PACKAGE_DIRS.items():
        if module == prefix or module.startswith(prefix + "."):
            rest = module[len(prefix):].lstrip(".").replace(".", "/")
            base = f"{folder}/{rest}" if rest else folder
            if (root / f"{base}.py").is_file():
                return f"{base}.py"
            if (root / base / "__init__.py").is_file():
                return f"{base}/__init__.py"
            raise AssertionError(f"import of {module}: no such module under {folder}/")
    return None


def dotted(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    top = {v: k for k, v in PACKAGE_DIRS.items()}[rel.parts[0]]
    parts = [p for p in rel.parts[1:] if p != "__init__"]
    return ".".join([top, *parts])


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every (line, absolute module) a file imports, at any depth, with relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = dotted(path, root) if path.name == "__init__.py" else dotted(path, root).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import name`` may name a sub-module: check it as one when it is
            for a in node.names:
                sub = f"{mod}.{a.name}"
                try:
                    found.append((node.lineno, sub if module_path(sub, root) else mod))
                except AssertionError:
                    found.append((node.lineno, mod))
    return found


def layer_violations(root: Path = ROOT) -> list[str]:
    """Every upward, sideways or exporter import under ``root`` as 'file:line imports … : why'."""
    problems = []
    for path in sorted([*root.glob("toolchain/**/*.py"), *root.glob("exporters/**/*.py")]):
        src = str(path.relative_to(root))
        src_home = home_of(src)
        for line, module in imports(path, root):
            target = module_path(module, root)
            if target is None:
                continue
            dst_home = home_of(target)
            if dst_home == src_home:
                continue
            s, d = HOMES[src_home], HOMES[dst_home]
            where = f"{src}:{line} imports {module} ({dst_home}, layer {d})"
            if dst_home == "exporters" and src_home != "toolchain/pipeline":
                problems.append(f"{where}: only toolchain/pipeline/ may import the exporters")
            elif d > s:
                problems.append(f"{where}: upward from layer {s}")
            elif d == s and s != FOUNDATION:
                problems.append(f"{where}: sideways within layer {s}")
    return problems


def test_no_module_imports_upward_or_sideways() -> None:
    problems = layer_violations()
    assert not problems, "\n".join(problems)


def test_every_module_has_a_layer() -> None:
    for path in [*ROOT.glob("toolchain/**/*.py"), *ROOT.glob("exporters/**/*.py")]:
        home_of(str(path.relative_to(ROOT)))


def test_the_checker_catches_upward_sideways_and_exporter_imports(tmp_path: Path) -> None:
    """The rule itself: a planted upward, sideways and exporter import are each reported with file:line."""
    fake = tmp_path / "toolchain"
    for sub in ("ir", "kernels", "costs", "analysis"):
        (fake / sub).mkdir(parents=True)
        (fake / sub / "__init__.py").write_text("")
    (tmp_path / "exporters").mkdir()
    (tmp_path / "exporters" / "__init__.py").write_text("")
    (tmp_path / "exporters" / "netx.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "ir" / "a.py").write_text("def f():\n    from ..kernels import b\n")
    (fake / "kernels" / "b.py").write_text("")
    (fake / "costs" / "c.py").write_text("from slipsnn.toolchain.analysis import d\n")
    (fake / "analysis" / "d.py").write_text("import slipsnn.exporters.netx\n")
    found = layer_violations(tmp_path)
    assert any(p.startswith("toolchain/ir/a.py:2") and "upward" in p for p in found), found
    assert any(p.startswith("toolchain/costs/c.py:1") and "sideways" in p for p in found), found
    assert any(p.startswith("toolchain/analysis/d.py:1") and "only toolchain/pipeline/" in p for p in found), found


def test_pyproject_lists_every_package() -> None:
    """Wheels are built from pyproject's explicit package list: it must name every folder with an __init__.py."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {dotted(p) for top in ("toolchain", "exporters", "hardware_configs") for p in (ROOT / top).glob("**/__init__.py")}
    assert listed == folders, f"missing from pyproject: {sorted(folders - listed)}; extra: {sorted(listed - folders)}"
