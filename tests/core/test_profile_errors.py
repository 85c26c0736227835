"""Bad profile files: one line naming the file and the field, and what was expected."""
import json

import pytest

from agentwatt.core.errors import InputError
from agentwatt.core.profile import load_profile


@pytest.mark.parametrize("mutate,msg", [
    (lambda d: d.pop("latency"), ".latency: missing: expected an object"),
    (lambda d: d["model"].update(n_layers=0), ".model.n_layers = 0: expected a number > 0"),
    (lambda d: d["hardware"].update(kind="tpu"), ".hardware.kind = 'tpu': expected 'gpu' or 'cpu'"),
    (lambda d: d["latency"].update(overhead_s="fast"), ".latency.overhead_s = 'fast': expected a number"),
    (lambda d: d.update(schema_version=9), ".schema_version = 9: expected 1"),
])
def test_profile_messages(tmp_path, mutate, msg):
    d = json.loads(json.dumps(load_profile("llama-3.1-8b_a100-40gb").to_dict()))
    mutate(d)
    p = tmp_path / "p.json"
    p.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_profile(p)
    assert str(e.value) == f"{p}{msg}"


def test_profile_truncated_empty_and_binary(tmp_path):
    good = json.dumps(load_profile("llama-3.1-8b_a100-40gb").to_dict())
    p = tmp_path / "p.json"
    p.write_text(good[: len(good) // 2], encoding="utf-8")
    with pytest.raises(InputError, match=r"p.json: line \d+: invalid JSON"):
        load_profile(p)
    p.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="empty file: expected a profile JSON object"):
        load_profile(p)
    p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8 text"):
        load_profile(p)
