"""One CLI: the same flags for the same things in every command (cli/options.py)."""
import json

import pytest

from agentwatt.cli.main import main

SHORT = ["--set", "run.duration_s=15", "--set", "fleet.replicas=1"]


def test_simulate_and_project_take_set_out_and_seed(run_cli, tmp_path):
    r = run_cli(["simulate", *SHORT, "--seed", "2", "--no-plots", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["seed"] == 2 and s["replicas"] == 1
    r = run_cli(["project", "--queries-per-day", "1e6", *SHORT, "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert "paper_formula" in json.loads((tmp_path / "p" / "project.json").read_text())


@pytest.mark.parametrize("args, message", [
    (["simulate", "--set", "fleet.replicas=0"], "--set fleet.replicas=0: built-in default scenario: [fleet] replicas = 0"),
    (["simulate", "--set", "run.seed=3"], "--set run.seed=3: the seed has its own flag: expected --seed N"),
    (["simulate", "--set", "fleet.replicas"], "--set fleet.replicas: expected KEY=VALUE"),
    (["project", "--queries-per-day", "1", "--set", "a=1", "--set", "a=2"], "a given twice"),
])
def test_bad_set_is_one_line(run_cli, args, message):
    r = run_cli(args)
    assert r.exit_code == 2 and message in r.output


def test_same_flag_names_everywhere():
    def names(cmd):
        return {n for p in cmd.params for n in p.opts}
    cmds = main.commands
    for name in ("simulate", "sweep", "plan", "paper", "project"):
        assert "--out" in names(cmds[name]), name
    for name in ("simulate", "sweep", "plan"):
        assert "--no-plots" in names(cmds[name]), name
    for name in ("simulate", "sweep", "plan", "project"):
        assert "--set" in names(cmds[name]), name


def test_workload_list_names_agents_and_bundled_traces(run_cli):
    r = run_cli(["workload", "list"])
    assert r.exit_code == 0, r.output
    for name in ("react-hotpotqa", "chatbot-sharegpt", "azure-conv-head2000", "claude-code-sample", "vidur-csv"):
        assert name in r.output
