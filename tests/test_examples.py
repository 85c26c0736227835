"""Every teaching example runs with ``--fast`` and writes its plots (examples/README.md)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_there_are_at_least_seven_examples_each_in_the_readme():
    assert len(SCRIPTS) >= 7
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for p in SCRIPTS:
        assert f"`{p.name}`" in readme, p.name


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs_fast_and_writes_plots(path: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    problems = _check_figures(monkeypatch)
    mod = _load(path)
    assert "Covers:" in mod.__doc__ and "Scenario:" in mod.__doc__
    out = tmp_path / path.stem
    mod.main([str(out), "--fast"])
    pngs = list(out.glob("*.png"))
    assert pngs, f"{path.name} wrote no PNG into {out}"
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    # issue 17: no overlapping labels, no annotation across a frame, no bar outside the visible range
    assert problems == {}, problems


def _check_figures(monkeypatch) -> dict:
    """Run ``sim.plots.figure_problems`` on every figure an example saves; returns {file: problems}."""
    import _common
    from agentwatt.plan import plots as plan_plots
    from agentwatt.sim import plots
    found: dict = {}

    def wrap(save):
        def checked(fig, path, *a, **kw):
            p = plots.figure_problems(fig)
            if p:
                found[Path(path).name] = p
            return save(fig, path, *a, **kw)
        return checked
    monkeypatch.setattr(_common, "save", wrap(_common.save))
    monkeypatch.setattr(plots, "save_figure", wrap(plots.save_figure))
    monkeypatch.setattr(plan_plots, "save_figure", wrap(plan_plots.save_figure))
    return found


def test_timeline_records_the_run_that_run_simulates():
    """record_timeline runs the scenario as sim/run.py does: the same calls, and its power bins
    integrate to the run's GPU energy plus idle power for the time after the last session."""
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import scenario_from_dict
    from agentwatt.sim.timeline import record_timeline
    sc = scenario_from_dict({"name": "t", "run": {"duration_s": 1e9, "drain_timeout_s": 1e9},
                             "workload": [{"agent": "react-hotpotqa", "arrival": "closed", "concurrency": 2,
                                           "sessions": 4}]})
    ref = run(sc)
    until = ref.summary["sim_time_s"] + 5.0
    tl = record_timeline(sc, until_s=until, sample_s=0.05)
    cols = ["session_id", "node_id", "submit_s", "first_token_s", "finish_s", "prompt_tokens", "cached_tokens"]
    a = ref.calls[cols].sort_values(["session_id", "node_id"]).reset_index(drop=True)
    b = tl.calls[cols].sort_values(["session_id", "node_id"]).reset_index(drop=True)
    assert a[cols[:2]].equals(b[cols[:2]])
    assert ((a[cols[2:]] - b[cols[2:]]).abs().to_numpy() < 1e-6).all()
    energy = float((tl.power["gpu_power_w"] * tl.power["width_s"]).sum())
    expected = ref.summary["gpu_energy_j"] + tl.idle_w * (until - ref.summary["sim_time_s"])
    assert energy == pytest.approx(expected, rel=1e-6)
    assert (tl.samples["decode"] + tl.samples["prefill"]).max() >= 1
    assert tl.samples["kv_used_share"].between(0, 1).all()
