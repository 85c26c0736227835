"""`agentwatt simulate` as a user runs it (a child process): results written, and bad input or flags
give one line on stderr, no traceback."""
import json

from tests.helpers import CHATBOT_BASE as BASE


def test_cli_bad_scenario_prints_one_line_no_traceback(tmp_path, write_file, cli_process):
    p = write_file(BASE.format(replicas=0, rate=1.0))
    r = cli_process("simulate", p, "--out", tmp_path / "o")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert "replicas = 0" in r.stderr


def test_cli_simulate_writes_summary(tmp_path, write_file, cli_process):
    p = write_file('[run]\nduration_s = 20\n' + BASE.format(replicas=1, rate=1.0))
    r = cli_process("simulate", p, "--out", tmp_path / "o", "--seed", "7", "--no-plots")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["seed"] == 7 and s["sessions_completed"] > 0
    assert "session e2e" in r.stdout


def test_cli_flag_errors_are_one_line(tmp_path, cli_process):
    r = cli_process("simulate", "--seed", "-1")
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: agentwatt simulate: Invalid value for '--seed': -1 is not in the range "
                                 "0<=x<=9223372036854775807.")
