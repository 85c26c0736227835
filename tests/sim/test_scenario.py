"""Scenario validation messages: each names the file and the field, and what was expected."""
import pytest

from agentwatt.core.errors import InputError
from agentwatt.sim.scenario import load_scenario
from tests.helpers import CHATBOT_BASE as BASE


@pytest.mark.parametrize("replicas,rate,msg", [
    (0, 1.0, "[fleet] replicas = 0: expected an integer >= 1 and <= 1000000"),
    ("'two'", 1.0, "[fleet] replicas = 'two': expected an integer"),
    (1, 0, "[workload #1] rate_per_s = 0: expected a number > 0 and <= 10000000.0"),
    (1, -3.5, "[workload #1] rate_per_s = -3.5: expected a number > 0 and <= 10000000.0"),
])
def test_bad_fields_name_the_field(tmp_path, replicas, rate, msg, write_file):
    p = write_file(BASE.format(replicas=replicas, rate=rate))
    with pytest.raises(InputError) as e:
        load_scenario(p)
    assert str(e.value) == f"{p}: {msg}"


def test_unknown_key_and_agent(tmp_path, write_file):
    p = write_file("[fleet]\nreplica = 2\n[[workload]]\nagent='chatbot-sharegpt'\nrate_per_s=1\n")
    with pytest.raises(InputError, match=r"\[fleet\] unknown key 'replica': expected one of replicas"):
        load_scenario(p)
    p = write_file("[[workload]]\nagent='gpt-agent'\nrate_per_s=1\n")
    with pytest.raises(InputError, match=r"\[workload #1\].*gpt-agent"):
        load_scenario(p)


def test_missing_workload_empty_and_bad_toml(tmp_path, write_file):
    with pytest.raises(InputError, match=r"\[\[workload\]\] missing"):
        load_scenario(write_file("[fleet]\nreplicas = 1\n"))
    with pytest.raises(InputError, match="empty file"):
        load_scenario(write_file(""))
    with pytest.raises(InputError, match="invalid TOML"):
        load_scenario(write_file("[fleet\n"))
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(InputError, match="not UTF-8"):
        load_scenario(p)
    with pytest.raises(InputError, match="file not found"):
        load_scenario(tmp_path / "nope.toml")


def test_unknown_profile_is_one_line(tmp_path, write_file):
    from agentwatt.sim.run import run
    p = write_file('profile = "h100-magic"\n' + BASE.format(replicas=1, rate=1.0))
    with pytest.raises(InputError, match="h100-magic: profile not found: expected a JSON file path, one of the bundled profiles"):
        run(load_scenario(p))
