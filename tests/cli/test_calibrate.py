"""`agentwatt calibrate` as a group: transfer / check / gpus subcommands and their one-line errors."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from agentwatt.cli.calibrate import calibrate_cmd
from agentwatt.core.profile import load_profile
from tests.helpers import one_error_line


def test_calibrate_is_a_group_with_subcommands(run_cli):
    assert set(calibrate_cmd.commands) >= {"transfer", "check", "gpus"}
    r = run_cli(["calibrate", "gpus"])
    assert r.exit_code == 0 and "h100" in r.output and "local-cpu" in r.output


def test_transfer_writes_a_profile_the_simulator_can_load(tmp_path, run_cli):
    out = tmp_path / "70b-h100.json"
    r = run_cli(["calibrate", "transfer", "llama-3.1-8b_a100-40gb", "--to", "h100", "--model", "llama-3.1-70b",
                  "--tp", "8", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "error band: ±" in r.output and f"wrote {out}" in r.output
    p = load_profile(out)
    assert p.source == "transfer/estimate" and p.hardware.tp == 8 and p.model.name == "llama-3.1-70b"


@pytest.mark.parametrize("args, expected", [
    (["transfer", "missing.json", "--to", "h100", "--out", "x.json"], "error: missing.json: profile not found"),
    (["transfer", "llama-3.1-8b_a100-40gb", "--to", "tpu9", "--out", "x.json"],
     "error: --to 'tpu9': unknown GPU: expected one of a100-40gb, a100-80gb, h100, h200, b200, l40s"),
    (["transfer", "llama-3.1-8b_a100-40gb", "--to", "h100", "--model", "gpt-9", "--out", "x.json"],
     "error: --model 'gpt-9': unknown model: expected one of llama-3.1-70b, llama-3.1-8b, llama-3.2-1b, "
     "smollm2-135m, tiny"),
    (["check", "missing.json"], "error: missing.json: profile not found"),
    (["check", "llama-3.1-8b_a100-40gb"], "error: llama-3.1-8b_a100-40gb: source = 'published/estimate': "
                                          "expected a measured profile"),
    ([], "error: calibrate: missing --preset and --out"),
    (["--preset", "tiny", "transfer", "p.json", "--to", "h100", "--out", "x.json"],
     "error: calibrate transfer: --preset: sweep options"),
])
def test_subcommand_errors_are_one_line(tmp_path, monkeypatch, args, expected, run_cli):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(run_cli(["calibrate", *args]))
    assert line.startswith(expected), line
    assert not (tmp_path / "x.json").exists()


def test_sweep_still_runs_without_a_subcommand_flags_checked_first(tmp_path):
    r = CliRunner().invoke(calibrate_cmd, ["--preset", "nope", "--out", str(tmp_path / "x.json")])
    assert r.exit_code != 0 and "nope" in str(r.exception)
