"""The architecture, enforced: the import contracts of ``.importlinter`` (layers, torch-free parts, no
import of the root API package from inside), no private name imported across modules, and no absolute
machine path in the repository."""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

try:
    from tests.helpers import REPO_ROOT
except ModuleNotFoundError:  # run as a script: python tests/test_architecture.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.helpers import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]  # import name -> folder


def stage_package(dest: Path) -> Path:
    """Copy the sources into ``dest/agentwatt/...`` as an installed package would lay them out.

    The folders are mapped by ``package-dir`` (``agentwatt`` is ``api/``, ``agentwatt.sim`` is ``sim/``, …);
    an editable install finds them through an import hook that import-linter cannot follow, so the
    contracts are checked on this copy (the same files)."""
    for name, folder in PACKAGE_DIRS.items():
        target = dest.joinpath(*name.split("."))
        for src in (REPO_ROOT / folder).rglob("*.py"):
            rel = src.relative_to(REPO_ROOT / folder)
            # a sub-package of the folder that is itself mapped elsewhere does not occur; skip caches
            if "__pycache__" in rel.parts:
                continue
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    return dest


def lint_imports(stage: Path, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is not installed: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stage), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([exe, "--config", str(REPO_ROOT / ".importlinter"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_import_contracts_hold(tmp_path):
    stage = stage_package(tmp_path / "src")
    r = lint_imports(stage, tmp_path)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("violation,contract", [
    (("sim/kv.py", "from agentwatt import __version__"), "imports the root API package"),
    (("traces/stats.py", "import torch"), "may import torch or pynvml"),
    (("calibrate/fit.py", "from agentwatt.traces import schema"), "depends only on core"),
    (("paper/rows.py", "from agentwatt.plan import sweep"), "Layers"),
    (("core/errors.py", "import pandas"), "neither simpy nor pandas"),
])
def test_a_violating_import_breaks_its_contract(tmp_path, violation, contract):
    """The contracts bite: one added import of each forbidden kind breaks the contract that forbids it
    (others may break too: an import of the root package also reaches the API layer through it)."""
    stage = stage_package(tmp_path / "src")
    rel, line = violation
    folder, _, rest = rel.partition("/")
    name = next(n for n, f in PACKAGE_DIRS.items() if f == folder)
    path = stage.joinpath(*name.split("."), rest)
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    r = lint_imports(stage, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    broken = [ln for ln in r.stdout.splitlines() if ln.endswith(" BROKEN")]
    assert any(contract in ln for ln in broken), r.stdout


# ------------------------------------------------------------------------------ private names

def _modules() -> list[Path]:
    return sorted(p for folder in sorted(set(PACKAGE_DIRS.values()))
                  for p in (REPO_ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_package_sources_are_found():
    found = {p.relative_to(REPO_ROOT).parts[0] for p in _modules()}
    assert found == set(PACKAGE_DIRS.values()), found


def test_no_private_name_is_imported_from_another_module():
    """``from X import _name`` (or a private module ``X._mod``) reaches into another module's internals:
    make the name public where it is defined, or move the code that needs it there."""
    bad = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO_ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                module = "." * node.level + (node.module or "")
                names = [a.name for a in node.names if _is_private(a.name)]
                parts = [p for p in (node.module or "").split(".") if p]
                if names:
                    bad.append(f"{where}: from {module} import {', '.join(names)}")
                elif any(_is_private(p) for p in parts):
                    bad.append(f"{where}: from {module} import … (a private module)")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("agentwatt") and any(_is_private(p) for p in a.name.split(".")):
                        bad.append(f"{where}: import {a.name} (a private module)")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


# ------------------------------------------------------------------------------ machine paths

# Absolute paths of one machine: home folders, this workplace's checkout, and any absolute path into the
# shared data folder (find it as ../shared or through $AGENTWATT_SHARED instead).
MACHINE_PATH = re.compile(r"(?<![\w.~-])(?:/work/|/home/\w|/Users/\w|/root/|/(?:[\w.-]+/)*shared/(?:traces|docs)\b)")
# Tests write only under pytest's tmp_path.
TMP_PATH = re.compile(r"(?<![\w.~-])/tmp/")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".json", ".yaml", ".yml", ".csv", ".jsonl", ""}


def _repo_files() -> list[Path]:
    """The repository's files: git's tracked and untracked-but-not-ignored files, or a walk without git."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=REPO_ROOT, capture_output=True, check=True).stdout
        files = [REPO_ROOT / f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache", "build", "dist"}
        files = [p for p in REPO_ROOT.rglob("*") if not skip & set(p.relative_to(REPO_ROOT).parts)]
    return sorted(p for p in files if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name == ".importlinter"))


def test_no_absolute_machine_path_in_the_repository():
    this = Path(__file__).resolve()
    bad = []
    for path in _repo_files():
        if path.resolve() == this or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(REPO_ROOT)
        in_tests = rel.parts[0] == "tests" and path.suffix == ".py"
        for no, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line) or (in_tests and TMP_PATH.search(line)):
                bad.append(f"{rel}:{no}: {line.strip()[:120]}")
    assert not bad, "absolute machine paths (use ../shared, $AGENTWATT_SHARED or tmp_path):\n" + "\n".join(bad)


if __name__ == "__main__":  # python tests/test_architecture.py: the import-linter report on the sources
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        result = lint_imports(stage_package(Path(tmp) / "src"), Path(tmp))
    print(result.stdout + result.stderr)
    sys.exit(result.returncode)
