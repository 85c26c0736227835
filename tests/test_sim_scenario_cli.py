"""Scenario validation messages and the CLI's one-line errors."""
import json
import subprocess
import sys

import pytest

from agentwatt.core.errors import InputError
from agentwatt.sim.scenario import load_scenario


def _write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


BASE = '''
[fleet]
replicas = {replicas}
[[workload]]
agent = "chatbot-sharegpt"
rate_per_s = {rate}
'''


@pytest.mark.parametrize("replicas,rate,msg", [
    (0, 1.0, "[fleet] replicas = 0: expected an integer >= 1 and <= 1000000"),
    ("'two'", 1.0, "[fleet] replicas = 'two': expected an integer"),
    (1, 0, "[workload #1] rate_per_s = 0: expected a number > 0 and <= 10000000.0"),
    (1, -3.5, "[workload #1] rate_per_s = -3.5: expected a number > 0 and <= 10000000.0"),
])
def test_bad_fields_name_the_field(tmp_path, replicas, rate, msg):
    p = _write(tmp_path, BASE.format(replicas=replicas, rate=rate))
    with pytest.raises(InputError) as e:
        load_scenario(p)
    assert str(e.value) == f"{p}: {msg}"


def test_unknown_key_and_agent(tmp_path):
    p = _write(tmp_path, "[fleet]\nreplica = 2\n[[workload]]\nagent='chatbot-sharegpt'\nrate_per_s=1\n")
    with pytest.raises(InputError, match=r"\[fleet\] unknown key 'replica': expected one of replicas"):
        load_scenario(p)
    p = _write(tmp_path, "[[workload]]\nagent='gpt-agent'\nrate_per_s=1\n")
    with pytest.raises(InputError, match=r"\[workload #1\].*gpt-agent"):
        load_scenario(p)


def test_missing_workload_empty_and_bad_toml(tmp_path):
    with pytest.raises(InputError, match=r"\[\[workload\]\] missing"):
        load_scenario(_write(tmp_path, "[fleet]\nreplicas = 1\n"))
    with pytest.raises(InputError, match="empty file"):
        load_scenario(_write(tmp_path, ""))
    with pytest.raises(InputError, match="invalid TOML"):
        load_scenario(_write(tmp_path, "[fleet\n"))
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(InputError, match="not UTF-8"):
        load_scenario(p)
    with pytest.raises(InputError, match="file not found"):
        load_scenario(tmp_path / "nope.toml")


def test_unknown_profile_is_one_line(tmp_path):
    from agentwatt.sim.run import run
    p = _write(tmp_path, 'profile = "h100-magic"\n' + BASE.format(replicas=1, rate=1.0))
    with pytest.raises(InputError, match="h100-magic: profile not found: expected a JSON file path or one of"):
        run(load_scenario(p))


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "agentwatt.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_bad_scenario_prints_one_line_no_traceback(tmp_path):
    p = _write(tmp_path, BASE.format(replicas=0, rate=1.0))
    r = _cli("simulate", str(p), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert "replicas = 0" in r.stderr


def test_cli_simulate_writes_summary(tmp_path):
    p = _write(tmp_path, '[run]\nduration_s = 20\n' + BASE.format(replicas=1, rate=1.0))
    r = _cli("simulate", str(p), "--out", str(tmp_path / "o"), "--seed", "7", "--no-plots")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["seed"] == 7 and s["sessions_completed"] > 0
    assert "session e2e" in r.stdout
