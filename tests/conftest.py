"""Fixtures shared by the tests of every part (tests/<part>/ mirrors the package folders).

- ``shared_dir`` / ``shared_file``: the shared data folder (``../shared`` beside the repository, or
  ``$AGENTWATT_SHARED``); tests that need it skip with a reason when it is absent.
- ``write_file``: write text or bytes into the test's ``tmp_path``.
- ``run_cli`` (in-process, click's CliRunner on the ``agentwatt`` group) and ``cli_process`` (a real
  ``python -m agentwatt.cli`` process, for exit codes and stderr as a user sees them).

Plain helper functions (scenario text, error-line checks) are in tests/helpers.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The tests import ``tests.helpers`` and the fuzzing helpers as ``benchmarks.fuzzing`` (benchmarks/fuzzing/,
# which benchmarks/fuzz.py runs for longer): both need the repository root on sys.path. pytest's default
# import mode already puts it there (tests/ is a package); these lines say so explicitly.
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.helpers import SHARED_ENV, find_shared_dir  # noqa: E402


def _skip_or_fail_in_ci(reason: str) -> None:
    """Skip here; in CI (``CI=true``, where the shared folder is laid beside the clone) a missing
    shared file fails, so the tests that need it cannot drop out unseen."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the shared folder must be there)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = find_shared_dir()
    if path is None:
        _skip_or_fail_in_ci(f"shared data folder absent (set {SHARED_ENV} or put it at ../shared beside the repository)")
    return path


@pytest.fixture(scope="session")
def shared_file(shared_dir):
    """``shared_file("traces/x.csv")``: that file of the shared folder, or skip when it is absent."""
    def get(relative: str) -> Path:
        path = shared_dir / relative
        if not path.is_file():
            _skip_or_fail_in_ci(f"{relative} absent from the shared folder {shared_dir}")
        return path
    return get


@pytest.fixture
def write_file(tmp_path):
    """``write_file(content, name="s.toml")``: write str (UTF-8) or bytes to tmp_path/name, return the path."""
    def write(content: str | bytes, name: str = "s.toml") -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path
    return write


@pytest.fixture
def run_cli():
    """``run_cli(args, **invoke_kw)``: the ``agentwatt`` command group run in-process by click's CliRunner."""
    from click.testing import CliRunner

    from agentwatt.cli import main

    def run(args, **kw):
        return CliRunner().invoke(main, [str(a) for a in args], **kw)
    return run


@pytest.fixture
def cli_process():
    """``cli_process(*args, cwd=None)``: ``python -m agentwatt.cli ARGS`` as a child process (text output)."""
    def run(*args, cwd=None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "agentwatt.cli", *map(str, args)], capture_output=True,
                              text=True, cwd=cwd)
    return run


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread while the module runs: on a shared 2-core machine two threads stall whenever
    another process runs."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model(torch_one_thread):
    """The ``tiny`` preset with random weights (seed 0), one per test module."""
    from agentwatt.calibrate.models import build_model
    return build_model("tiny", seed=0)
