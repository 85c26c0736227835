"""Issue 17: power compare reads nvidia-smi CSV, dcgmi dmon output and Zeus JSON besides its own
format; anything else gets a one-line error."""
import json

import numpy as np
import pytest

from agentwatt.core.errors import InputError
from agentwatt.validate.powercompare import read_power_series
from tests.helpers import one_error_line

# nvidia-smi --query-gpu=timestamp,index,power.draw --format=csv -lms 500, two GPUs
SMI = """timestamp, index, power.draw [W]
2026/05/01 12:00:00.000, 0, 100.00 W
2026/05/01 12:00:00.000, 1, 200.50 W
2026/05/01 12:00:00.500, 0, 110.00 W
2026/05/01 12:00:00.500, 1, 210.50 W
2026/05/01 12:00:01.000, 0, 120.00 W
2026/05/01 12:00:01.000, 1, 220.50 W
"""

DCGM = """#Entity   POWER
ID
GPU 0     250.125
GPU 1     150.000
GPU 0     260.125
GPU 1     160.000
GPU 0     270.125
GPU 1     170.000
"""


def test_nvidia_smi_csv_sums_the_gpus(tmp_path):
    p = tmp_path / "smi.csv"
    p.write_text(SMI)
    t, w = read_power_series(p)
    np.testing.assert_allclose(t, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(w, [300.5, 320.5, 340.5])
    p.write_text(SMI.replace(" W\n", "\n", 1).replace("power.draw [W]", "power.draw [W]"))   # csv,nounits
    assert read_power_series(p)[1][0] == 300.5
    p.write_text(SMI.replace("110.00 W", "[N/A]"))
    with pytest.raises(InputError, match=r"smi.csv: row 4: power '\[N/A\]': expected a number of watts"):
        read_power_series(p)


def test_dcgmi_dmon_output(tmp_path):
    p = tmp_path / "dmon.txt"
    p.write_text(DCGM)
    t, w = read_power_series(p)
    np.testing.assert_allclose(t, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(w, [400.125, 420.125, 440.125])
    t, _ = read_power_series(p, dcgm_interval_s=0.1)
    np.testing.assert_allclose(t, [0.0, 0.1, 0.2])
    p.write_text(DCGM.replace("POWER", "SMACT"))
    with pytest.raises(InputError, match="without a POWER column"):
        read_power_series(p)


def test_zeus_power_timeline_json(tmp_path):
    p = tmp_path / "zeus.json"
    p.write_text(json.dumps({"0": [[1000.0, 100.0], [1001.0, 120.0], [1002.0, 140.0]],
                             "1": [[1000.5, 50.0], [1002.5, 70.0]]}))
    t, w = read_power_series(p)
    # common span 1000.5..1002: GPU 0 interpolated at 1000.5 (110) + GPU 1 (50); at 1001: 120 + 55
    np.testing.assert_allclose(t, [0.5, 1.0, 2.0])
    np.testing.assert_allclose(w, [160.0, 175.0, 205.0])
    p.write_text(json.dumps({"power_timeline": {"0": [[0, 10], [1, 20]]}}))
    np.testing.assert_allclose(read_power_series(p)[1], [10, 20])
    p.write_text(json.dumps({"0": [[0, "x"]]}))
    with pytest.raises(InputError, match=r"zeus.json: GPU 0: expected Zeus PowerMonitor"):
        read_power_series(p)


def test_power_compare_cli_on_nvidia_smi_and_an_unknown_file(run_cli, tmp_path):
    sim = tmp_path / "sim.csv"
    sim.write_text("time_s,power_w\n" + "".join(f"{i * 0.5},{300 + 20 * (i % 3)}\n" for i in range(12)))
    smi = tmp_path / "smi.csv"
    rows = "".join(f"2026/05/01 12:00:{i // 2:02d}.{5 * (i % 2)}00, 0, {300 + 20 * (i % 3)}.00 W\n" for i in range(12))
    smi.write_text("timestamp, index, power.draw [W]\n" + rows)
    r = run_cli(["power", "compare", str(smi), str(sim)], obj={})
    assert r.exit_code == 0, r.output
    assert "energy error   +0.00 %" in r.output
    other = tmp_path / "other.csv"
    other.write_text("when,watts\n1,2\n")
    line = one_error_line(run_cli(["power", "compare", str(other), str(sim)], obj={}))
    assert "no time_s or timestamp column" in line and "nvidia-smi --query-gpu CSV, dcgmi dmon, Zeus JSON" in line
