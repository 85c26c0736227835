"""Each class of bad scenario input gets one line naming the file/field and what was expected."""
import pytest

from agentwatt.core.errors import InputError
from agentwatt.sim.run import run
from agentwatt.sim.scenario import load_scenario


WL = '\n[[workload]]\nagent = "chatbot-sharegpt"\nrate_per_s = 1.0\n'


@pytest.mark.parametrize("text,msg", [
    ("[fleet]\nreplicas = -2\n" + WL, "[fleet] replicas = -2: expected an integer >= 1 and <= 1000000"),
    ("[run]\nduration_s = 0\n" + WL, "[run] duration_s = 0: expected a number > 0 and <= 1000000000.0"),
    ("[engine]\ngpu_memory_utilization = 1.5\n" + WL,
     "[engine] gpu_memory_utilization = 1.5: expected a number > 0 and <= 1"),
    ("[engine]\nprefix_caching = 'yes'\n" + WL, "[engine] prefix_caching = 'yes': expected true or false"),
    ("[facility]\nserver = 'dgx-z9'\n" + WL,
     "[facility] server = 'dgx-z9': expected one of dgx-a100, dgx-b200, dgx-h100"),
    ("[facility]\npue = 0.8\n" + WL, "[facility] pue = 0.8: expected a number >= 1.0 and <= 5.0"),
    ("[facility]\npue = [1.1, 1.2]\n" + WL, "[facility] pue: 2 values: expected one number or 24 hourly values"),
    ("[router]\npolicy = 'random'\n" + WL,
     "[router] policy = 'random': expected one of round_robin, least_loaded, fewest_queued"),
    ('[[workload]]\nagent = "chatbot-sharegpt"\n', "[workload #1] rate_per_s missing: expected a number > 0"),
    ('[[workload]]\nagent = "chatbot-sharegpt"\nrate_per_s = 1\nconcurrency = 2\n',
     '[workload #1] concurrency: only used with arrival = "closed"'),
])
def test_scenario_messages(tmp_path, text, msg, write_file):
    p = write_file(text)
    with pytest.raises(InputError) as e:
        load_scenario(p)
    assert str(e.value).startswith(f"{p}: {msg}")
    assert "\n" not in str(e.value)


def test_kv_too_small_for_weights(tmp_path, write_file):
    p = write_file("[engine]\ngpu_memory_utilization = 0.3\n" + WL)
    with pytest.raises(InputError, match=r"no room for a KV cache: 40 GiB × 0.3 per device holds 15.0 GiB of weights"):
        run(load_scenario(p))


def test_prompt_longer_than_kv_is_dropped_and_reported(tmp_path, write_file, cli_process):
    p = write_file('[run]\nduration_s = 20\n[engine]\nkv_capacity_tokens = 1024\n'
                        '[[workload]]\nagent = "synthetic-fixed"\nrate_per_s = 0.5\n'
                        'knobs = { prompt_tokens = 2000, output_tokens = 10 }\n')
    s = run(load_scenario(p)).summary
    assert s["calls_dropped"] == s["calls_submitted"] > 0 and s["sessions_dropped"] == s["sessions_arrived"]
    r = cli_process("simulate", p, "--out", tmp_path / "o", "--no-plots")
    assert r.returncode == 0
    assert "warning: " in r.stderr and "longer than a replica's KV cache (1024 tokens)" in r.stderr
