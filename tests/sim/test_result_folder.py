"""A result folder is all one run or all the previous one, never a mix (issue #18): the files are
written into a staging folder that replaces the folder whole (core/io.py result_folder)."""
import os
from dataclasses import replace

import pytest

from agentwatt.sim.output import RESULT_FILES, write_results
from agentwatt.sim.run import run
from agentwatt.sim.scenario import load_scenario


@pytest.fixture(scope="module")
def results():
    return run(load_scenario(None, {"run.duration_s": 10, "run.drain_timeout_s": 20}))


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_no_plots_and_no_power_leave_nothing_of_the_previous_run(results, tmp_path):
    out = tmp_path / "r"
    write_results(results, out, plots=True)
    assert {"latency_ccdf.png", "power.png", "power.parquet"} <= set(_names(out))
    write_results(results, out, plots=False)          # the previous PNGs go with the previous run
    assert not [n for n in _names(out) if n.endswith(".png")]
    write_results(replace(results, power=None, power_levels=None), out, plots=False)
    assert "power.parquet" not in _names(out) and "power_levels.parquet" not in _names(out)   # none stale
    assert {"calls.parquet", "sessions.parquet", "summary.json"} <= set(_names(out))
    assert _names(tmp_path) == ["r"]                                               # no staging folder left


def test_a_failure_while_writing_keeps_the_previous_folder_whole(results, tmp_path, monkeypatch):
    out = tmp_path / "r"
    write_results(results, out, plots=False)
    before = {n: (out / n).read_bytes() for n in _names(out)}
    other = replace(results, summary={**results.summary, "seed": 99})
    from agentwatt.sim import output

    def killed(*a, **k):   # the run dies after the Parquet tables, before summary.json
        raise KeyboardInterrupt
    monkeypatch.setattr(output, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        write_results(other, out, plots=False)
    assert {n: (out / n).read_bytes() for n in _names(out)} == before
    assert _names(tmp_path) == ["r"]


def test_files_follow_the_umask(results, tmp_path):
    old = os.umask(0o027)
    try:
        write_results(results, tmp_path / "r", plots=False)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "r").iterdir()}
    assert set(modes.values()) == {0o640}, modes
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o750


def test_a_folder_with_other_files_is_not_replaced(results, tmp_path):
    from agentwatt.core.errors import InputError
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds files that are not results of a run \(notes.txt\)"):
        write_results(results, out)
    assert _names(out) == ["notes.txt"]
    assert "summary.json" in RESULT_FILES and "notes.txt" not in RESULT_FILES
