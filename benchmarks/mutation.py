"""Mutation testing of the simulator's core: change one operator or constant at a time, run a
targeted test subset, and count the mutants the tests kill.

    python benchmarks/mutation.py                       # sim/kv.py, sim/batching.py, sim/books.py
    python benchmarks/mutation.py --time-box-s 600 --report mutants.txt
    python benchmarks/mutation.py --files sim/kv.py --tests tests/sim/test_kv_batching.py

Why not mutmut or cosmic-ray: both run the tests against a mutated copy found by import path,
and agentwatt's packages are mapped from top-level folders (``agentwatt.sim`` = ``sim/``) by an
editable install that neither tool follows, so they would test the unmutated code. This script
builds a copy of the package under a temporary ``agentwatt/`` folder put first on ``PYTHONPATH``
(an editable install's finder comes after it), writes each mutant there, and runs pytest in a
process forked from one that already imported numpy, pandas, SimPy and pytest (about 1 s per
mutant instead of 3).

Mutations (one per mutant, at one AST node): comparison ``<``↔``<=``, ``>``↔``>=``, ``==``↔``!=``,
``in``↔``not in``, ``is``↔``is not``; arithmetic ``+``↔``-``, ``*``↔``/``, ``//``→``*``, ``%``→``*``
(also in ``+=`` etc.); ``and``↔``or``; ``not x``→``x``; an integer constant n→n+1, ``True``↔``False``;
a call statement (``f(x)`` on its own line) removed. A mutant is *killed* when a test fails or the
run exceeds its time limit (a hang), *survived* when all pass. Docstrings and string constants are
not mutated. Equivalent mutants (same behaviour, e.g. a bound that is never reached) survive by
construction: read the survivors list before writing a test for each.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# each module with the tests that exercise it (a targeted subset: each mutant runs it once)
DEFAULT_TESTS = {
    "sim/kv.py": ("tests/sim/test_kv_batching.py", "tests/sim/test_kv_lazy_queue.py", "tests/sim/test_kv_mutants.py"),
    "sim/batching.py": ("tests/sim/test_kv_batching.py", "tests/sim/test_run_end_booking.py",
                        "tests/sim/test_batching_mutants.py"),
    "sim/books.py": ("tests/sim/test_replica_books.py", "tests/sim/test_run_end_booking.py"),
}
DEFAULT_FILES = tuple(DEFAULT_TESTS)
# agentwatt.<sub> -> folder, as [tool.setuptools] package-dir in pyproject.toml
PACKAGES = {"": "api", "core": "core", "traces": "traces", "sim": "sim", "calibrate": "calibrate",
            "plan": "plan", "paper": "paper", "validate": "validate", "cli": "cli"}

_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
        ast.Mod: ast.Mult}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            ids.add(id(body[0].value))
    return ids


def sites(tree: ast.AST) -> list[tuple[int, str]]:
    """(index, description) of every mutation the tree allows, in ``ast.walk`` order."""
    out = []
    skip = _docstrings(tree)
    for i, node in enumerate(ast.walk(tree)):
        for desc in _mutations(node, skip):
            out.append((i, desc))
    return out


def _mutations(node: ast.AST, skip: set[int]) -> list[str]:
    if isinstance(node, ast.Compare):
        return [f"compare {k} {type(op).__name__}->{_CMP[type(op)].__name__}"
                for k, op in enumerate(node.ops) if type(op) in _CMP]
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BIN:
        return [f"{type(node.op).__name__}->{_BIN[type(node.op)].__name__}"]
    if isinstance(node, ast.BoolOp):
        return ["and<->or"]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ["drop not"]
    if isinstance(node, ast.Constant) and id(node) not in skip:
        if isinstance(node.value, bool):
            return [f"{node.value}->{not node.value}"]
        if isinstance(node.value, int):
            return [f"{node.value}->{node.value + 1}"]
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return ["remove call statement"]
    return []


def mutate(tree: ast.AST, index: int, desc: str) -> ast.AST:
    """A copy of ``tree`` with mutation ``desc`` applied at node ``index`` (of ``ast.walk``)."""
    t = copy.deepcopy(tree)
    node = next(n for i, n in enumerate(ast.walk(t)) if i == index)
    if desc.startswith("compare "):
        k = int(desc.split()[1].rstrip(":"))
        node.ops[k] = _CMP[type(node.ops[k])]()
    elif isinstance(node, (ast.BinOp, ast.AugAssign)):
        node.op = _BIN[type(node.op)]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):
        node.op = ast.UAdd()   # +x on a bool/int is x: "not" removed without re-parenting the node
        node.operand = ast.Call(ast.Name("bool", ast.Load()), [node.operand], [])
    elif isinstance(node, ast.Constant):
        node.value = (not node.value) if isinstance(node.value, bool) else node.value + 1
    elif isinstance(node, ast.Expr):
        node.value = ast.Constant(None)
    return ast.fix_missing_locations(t)


def stage_package(dest: Path) -> Path:
    """Copy the package folders into ``dest/agentwatt`` (the layout an installed wheel has)."""
    pkg = dest / "agentwatt"
    shutil.copytree(ROOT / PACKAGES[""], pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for sub, folder in PACKAGES.items():
        if sub:
            shutil.copytree(ROOT / folder, pkg / sub, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def run_tests(tests: list[str], limit_s: float) -> str:
    """Run pytest on ``tests`` in a forked child; "passed", "failed" or "timeout"."""
    pid = os.fork()
    if pid == 0:   # child: import the (mutated) package fresh, run, exit with pytest's status
        try:
            signal.alarm(max(1, int(limit_s)))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest
            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests])
        except BaseException:   # noqa: BLE001 - any escape from the tests kills the mutant
            code = 3
        os._exit(int(code))
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "timeout" if os.WTERMSIG(status) == signal.SIGALRM else "failed"
    return "passed" if os.WEXITSTATUS(status) == 0 else "failed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="+", default=list(DEFAULT_FILES), help="source files to mutate (repo-relative)")
    ap.add_argument("--tests", nargs="+", default=None, help="test files to run against each mutant "
                    "(default: each module's own subset, DEFAULT_TESTS)")
    ap.add_argument("--sample", type=int, default=None, help="run this many mutants per file, drawn at random "
                    "(seed 0): an estimate of the kill rate within a time box")
    ap.add_argument("--rerun", type=Path, default=None, help="only the mutants listed in this earlier --report")
    ap.add_argument("--time-box-s", type=float, default=1500.0, help="stop starting mutants after this long")
    ap.add_argument("--report", type=Path, default=None, help="write the survivors here (one per line)")
    ap.add_argument("--lines", default=None, help="only mutate these lines, e.g. 120-180 (with one --files)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    import numpy, pandas, pyarrow, scipy, simpy, click, hypothesis, pytest  # noqa: F401,E401 - for every child
    only = None
    if args.rerun is not None:   # "file:line: desc: source" lines of an earlier report
        only = {tuple(x.split(": ", 2)[:2]) for x in args.rerun.read_text(encoding="utf-8").splitlines() if x}
    stage = Path(tempfile.mkdtemp(prefix="agentwatt-mutation-"))
    os.chdir(ROOT)
    survivors: list[str] = []
    try:
        pkg = stage_package(stage)
        sys.path.insert(0, str(stage))
        os.environ["PYTHONPATH"] = str(stage) + os.pathsep + os.environ.get("PYTHONPATH", "")
        lo, hi = (int(x) for x in args.lines.split("-")) if args.lines else (0, 10**9)
        stopped = False
        for rel in args.files:
            tests = [t for t in (args.tests or DEFAULT_TESTS.get(rel, ())) if (ROOT / t).exists()]
            t_base = time.perf_counter()
            if not tests or run_tests(tests, 600) != "passed":
                print(f"{rel}: the tests fail on the unmutated code (or there are none): fix them first", file=sys.stderr)
                return 1
            base_s = time.perf_counter() - t_base
            limit_s = 2 * base_s + 3
            print(f"{rel}: tests {' '.join(tests)}; unmutated run {base_s:.1f} s, past {limit_s:.0f} s a mutant hangs")
            src = (ROOT / rel).read_text(encoding="utf-8")
            tree = ast.parse(src)
            folder, *rest = Path(rel).parts
            sub = next(k for k, v in PACKAGES.items() if v == folder)
            target = pkg.joinpath(sub, *rest)
            nodes = list(ast.walk(tree))
            todo = [(i, d) for i, d in sites(tree) if lo <= getattr(nodes[i], "lineno", 0) <= hi
                    and (only is None or (f"{rel}:{getattr(nodes[i], 'lineno', 0)}", d) in only)]
            if args.sample is not None and args.sample < len(todo):
                import random
                todo = sorted(random.Random(0).sample(todo, args.sample))
            counts = {"killed": 0, "timeout": 0, "survived": 0}
            for i, desc in todo:
                if time.perf_counter() - t0 > args.time_box_s:
                    stopped = True
                    break
                target.write_text(ast.unparse(mutate(tree, i, desc)), encoding="utf-8")
                shutil.rmtree(target.parent / "__pycache__", ignore_errors=True)
                r = run_tests(tests, limit_s)
                key = {"passed": "survived", "failed": "killed", "timeout": "timeout"}[r]
                counts[key] += 1
                if key == "survived":
                    line = getattr(nodes[i], "lineno", 0)
                    survivors.append(f"{rel}:{line}: {desc}: {src.splitlines()[line - 1].strip()}")
            target.write_text(src, encoding="utf-8")
            n = sum(counts.values())
            dead = counts["killed"] + counts["timeout"]
            print(f"{rel}: {n} of {len(todo)} mutants run: {counts['killed']} killed, {counts['timeout']} hung "
                  f"(killed), {counts['survived']} survived: {100 * dead / max(n, 1):.1f} % killed")
            if stopped:
                print(f"time box of {args.time_box_s:.0f} s reached: later mutants not run")
                break
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(f"{len(survivors)} survivor(s); wall {time.perf_counter() - t0:.0f} s")
    for s in survivors:
        print("  " + s)
    if args.report is not None:
        args.report.write_text("".join(s + "\n" for s in survivors), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
