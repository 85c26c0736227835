"""Inputs that used to crash, hang or run out of memory (issue #18): each is now one ``error:``
line with exit status 2, given before any simulation runs."""
import json
import os
from dataclasses import replace

import pytest

from agentwatt.core.errors import InputError
from tests.helpers import CHATBOT_BASE, one_error_line

def last_error_line(result) -> str:
    """The ``error:`` line that ends a run refused at time 0 (after the ``scenario:`` line)."""
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and all(not ln.startswith("error") for ln in lines[:-1])
    return lines[-1]


SMALL = CHATBOT_BASE.format(replicas=1, rate=0.5) + "[run]\nduration_s = 5\ndrain_timeout_s = 5\n"


def test_kv_capacity_below_one_block(run_cli, write_file):
    p = write_file(SMALL + "[engine]\nkv_capacity_tokens = 15\n")
    assert one_error_line(run_cli(["simulate", p, "--out", p.parent / "o"])) == (
        f"error: {p}: [engine] kv_capacity_tokens = 15: expected at least one block (block_size_tokens = 16)")


@pytest.mark.parametrize("sets, what", [
    (["engine.kv_capacity_tokens=1000000000000"], "62500000000 blocks"),
    (["fleet.replicas=1000000", "engine.kv_capacity_tokens=1000000"], "1000000 replica(s) × 62500 blocks"),
    (["run.duration_s=1e9"], "power bins (1e+09 s / 1 s)"),
])
def test_runs_larger_than_host_memory_are_refused_before_time_0(run_cli, write_file, sets, what):
    p = write_file(SMALL)
    args = ["simulate", p, "--out", p.parent / "o"]
    for s in sets:
        args += ["--set", s]
    line = last_error_line(run_cli(args))
    assert "GiB of host memory" in line and what in line and "expected fewer [fleet] replicas" in line


def test_profile_with_a_million_gib_is_refused(run_cli, write_file):
    from agentwatt.core.profile import load_profile
    d = load_profile("llama-3.1-8b_a100-40gb").to_dict()
    d["hardware"]["mem_gib_per_device"] = 1e6
    prof = write_file(json.dumps(d), "big.json")
    p = write_file(f'profile = "{prof.name}"\n' + SMALL)
    assert "GiB of host memory" in last_error_line(run_cli(["simulate", p, "--out", p.parent / "o"]))


def test_budget_counts_what_a_run_allocates():
    from agentwatt.sim import budget
    from agentwatt.sim.scenario import load_scenario
    sc = load_scenario(None, {"fleet.replicas": 4, "run.duration_s": 100})
    from agentwatt.sim.metrics import REPLICA_CHANNELS
    ch = len(REPLICA_CHANNELS)
    need = budget.run_bytes(4, 1000, True, 100.0, 1.0, 8, 1)
    # 4 replicas × 1000 blocks × 24 B + the shared id list + 4 × 102 bins × channels × 16 B + fleet columns
    assert need == (4 * 24 + 36) * 1000 + 4 * 102 * ch * 16 + 102 * (32 + 1) * 8
    assert budget.run_bytes(4, 1000, False, 100.0, 1.0, 8, 1) == need - (4 * 24 + 36) * 1000
    budget.check_fits(sc, 1000, 8, 1, available=need)            # exactly enough: runs
    with pytest.raises(InputError, match="are available"):
        budget.check_fits(sc, 1000, 8, 1, available=need - 1)
    # closed-loop users end when their sessions do: [run] duration_s is only a bound (plan/project.py sets 1e9)
    from agentwatt.sim.scenario import scenario_from_dict
    closed = scenario_from_dict({"run": {"duration_s": 1e9}, "workload": [
        {"agent": "chatbot-sharegpt", "arrival": "closed", "sessions": 3}]})
    budget.check_fits(closed, 1000, 8, 1, available=(24 + 36) * 1000 + 2 * (ch * 16 + 33 * 8))
    with pytest.raises(InputError, match=r"power bins \(1e\+09 s"):
        budget.check_fits(replace(closed, workload=sc.workload), 1000, 8, 1, available=10**11)


def test_seed_beyond_64_bits_and_infinite_queries(cli_process, tmp_path):
    r = cli_process("simulate", "--seed", str(2**70), "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "0<=x<=9223372036854775807" in r.stderr
    r = cli_process("project", "--queries-per-day", "inf")
    assert r.returncode == 2 and r.stderr.strip() == ("error: agentwatt project: Invalid value for "
                                                      "'--queries-per-day': inf: expected a finite number")


def test_device_fifo_and_folder_as_scenario_or_profile(run_cli, tmp_path, write_file):
    fifo = tmp_path / "s.toml"
    os.mkfifo(fifo)   # reading it would block forever
    for path in ("/dev/zero", fifo):
        line = one_error_line(run_cli(["simulate", path, "--out", tmp_path / "o"]))
        assert line == f"error: {path}: not a regular file (a folder, device or pipe): expected a scenario TOML file"
    p = write_file('profile = "/dev/zero"\n' + SMALL, "p.toml")
    assert last_error_line(run_cli(["simulate", p, "--out", tmp_path / "o"])) == (
        "error: /dev/zero: not a regular file (a folder, device or pipe): expected a profile JSON file")


def test_profile_json_that_cannot_parse_cleanly(tmp_path):
    from agentwatt.core.profile import load_profile
    p = tmp_path / "p.json"
    for text in ("[" * 100_000, '{"schema_version": ' + "9" * 5001 + "}"):
        p.write_text(text)
        with pytest.raises(InputError) as e:
            load_profile(p)
        assert "invalid JSON" in str(e.value) and "\n" not in str(e.value)


def test_profile_idle_above_max_and_unknown_keys(tmp_path):
    from agentwatt.core.profile import load_profile, profile_from_dict
    d = load_profile("llama-3.1-8b_a100-40gb").to_dict()
    bad = json.loads(json.dumps(d))
    bad["power"]["max_w"] = bad["power"]["idle_w"] - 1
    with pytest.raises(InputError, match=r"power.idle_w = .*: expected <= max_w"):
        profile_from_dict(bad)
    for where in ("", "model", "hardware", "latency", "power"):
        bad = json.loads(json.dumps(d))
        (bad[where] if where else bad)["idel_w"] = 1.0
        with pytest.raises(InputError, match="unknown key 'idel_w'"):
            profile_from_dict(bad)
    profile_from_dict(d)   # the profile itself loads


@pytest.mark.parametrize("name", ["two\nlines", "bell\x07", "esc\x1b[2J"])
def test_scenario_name_with_control_characters(run_cli, write_file, name):
    p = write_file(f"name = {json.dumps(name)}\n" + SMALL)
    line = one_error_line(run_cli(["simulate", p, "--out", p.parent / "o"]))
    assert line.startswith(f"error: {p}: [top level] name = ") and "expected printable text" in line


def test_out_is_checked_before_the_run(run_cli, tmp_path, write_file):
    p = write_file(SMALL)
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for out, expected in (("/", "the file-system root"), (tmp_path / "file", "is a file"),
                          (tmp_path / "file" / "sub", "cannot write in"),
                          (tmp_path / "mine", "holds files that are not results of a run (notes.txt)")):
        r = run_cli(["simulate", p, "--out", out])
        assert expected in one_error_line(r) and "scenario:" not in r.output   # refused before simulating
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    r = run_cli(["project", p, "--queries-per-day", "1e6", "--out", "/"])
    assert "the file-system root" in one_error_line(r)


def test_memory_error_is_one_line(run_cli, monkeypatch, write_file):
    import agentwatt.sim.run as R

    def boom(*a, **k):
        raise MemoryError
    monkeypatch.setattr(R, "run", boom)
    p = write_file(SMALL)
    assert last_error_line(run_cli(["simulate", p, "--out", p.parent / "o"])).startswith("error: out of memory")


@pytest.mark.parametrize("value", ["9" * 5001, "[" * 100_000])
def test_scenario_toml_with_a_huge_number_or_deep_nesting(run_cli, write_file, value):
    p = write_file(f"name = {value}\n" + SMALL)
    assert one_error_line(run_cli(["simulate", p, "--out", p.parent / "o"])).startswith(f"error: {p}: invalid TOML (")


def test_set_value_with_5001_digits(run_cli):
    line = one_error_line(run_cli(["simulate", "--set", "fleet.replicas=" + "9" * 5001]))
    assert "a value of 5,001 characters is not a usable TOML scalar" in line
