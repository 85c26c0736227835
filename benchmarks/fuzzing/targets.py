"""Fuzz targets shared by the short CI fuzz tests and benchmarks/fuzz.py (the long run).

A target takes one generated input and either runs it or fails *cleanly*: with an
``AgentwattError`` whose message is one line. Anything else (another exception type, a traceback
reaching the user, a multi-line message) is a bad failure.
"""
from __future__ import annotations

import copy
import json
import tomllib

from hypothesis import strategies as st

from agentwatt.core.errors import AgentwattError

VALID_SCENARIO = {
    "name": "fuzz",
    "profile": "llama-3.1-8b_a100-40gb",
    "run": {"seed": 1, "duration_s": 5.0, "drain_timeout_s": 5.0, "power_resolution_s": 1.0},
    "fleet": {"replicas": 1},
    "engine": {"max_num_seqs": 8, "max_num_batched_tokens": 512, "block_size_tokens": 16,
               "gpu_memory_utilization": 0.9, "prefix_caching": True},
    "router": {"policy": "least_loaded", "session_affinity": True},
    "facility": {"pue": 1.2},
    "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 0.5}],
}

# numbers that pass a type check but no machine can run: 10^12 replicas or tokens, 1e300 seconds,
# integers past int()'s 4,300-digit limit (issue #18)
HUGE_NUMBERS = st.one_of(
    st.integers(min_value=10**9, max_value=10**13), st.sampled_from([10**18, 2**63, 2**70, 10**4301]),
    st.floats(min_value=1e9, max_value=1e308), st.sampled_from([float("inf"), -float("inf"), float("nan")]))

_ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    HUGE_NUMBERS, st.text(alphabet=st.characters(codec="utf-8", categories=["Cc"]), min_size=1, max_size=4))


@st.composite
def hostile_bytes(draw) -> bytes:
    """File contents that broke parsers: JSON nested 1,000-200,000 deep, a 5,001-digit number, a
    line of up to 2 MB without a newline, or random bytes."""
    kind = draw(st.sampled_from(["nest", "digits", "long", "binary"]))
    if kind == "nest":
        return draw(st.sampled_from([b"[", b"{\"a\":", b"[{\"x\":"])) * draw(st.integers(1000, 200_000)) + b"\n"
    if kind == "digits":
        n = draw(st.integers(4300, 6000))
        head = draw(st.sampled_from([b"", b'{"timestamp": 0, "input_length": ', b"TIMESTAMP,ContextTokens,"
                                                                               b"GeneratedTokens\n2023-11-16 18:15:46,"]))
        return head + b"9" * n + draw(st.sampled_from([b"", b",5\n", b', "output_length": 5, "hash_ids": [0]}\n']))
    if kind == "long":
        return draw(st.sampled_from([b"x", b",", b"\xff"])) * draw(st.integers(10_000, 2_000_000))
    return draw(st.binary(max_size=300))


SPECIAL_FILES = ("/dev/zero", "/dev/null", "fifo", "folder")


def special_path(kind: str, tmp_dir):
    """A path that is not a regular file: a device, a FIFO (reading blocks until a writer comes)
    or a folder."""
    import os
    if kind.startswith("/dev/"):
        return kind
    p = tmp_dir / kind
    if not p.exists():
        os.mkfifo(p) if kind == "fifo" else p.mkdir()
    return p


def path_target(load, path) -> str:
    """A loader given a path that is not a file must fail cleanly (and never block: the caller
    runs it under a time limit)."""
    def go():
        res = load(path)
        if hasattr(res, "__iter__") and not isinstance(res, (dict, str, bytes)):
            for _ in res:
                pass
    return _outcome(go)


@st.composite
def backwards_rounds(draw) -> tuple[bytes, bool]:
    """TraceLab rounds of one session with random timestamps; returns (file bytes, whether some round
    starts before the previous one, which the loader must reject)."""
    n = draw(st.integers(2, 5))
    times = [draw(st.integers(0, 10**9)) for _ in range(n)]
    lines = []
    for i, t in enumerate(times):
        ts = f"2026-01-01T00:00:00.000Z" if t == 0 else _iso_ms(t)
        lines.append(json.dumps({"session_id": "a", "round_index": i, "input_tokens_total": 100 + i,
                                 "prefix_tokens": 90, "output_tokens": 5,
                                 "first_input_event_type": draw(st.sampled_from(["user_message", "tool_result"])),
                                 "timing_events": [{"timestamp": ts}], "tools": []}))
    backwards = any(b < a for a, b in zip(times, times[1:]))
    return ("\n".join(lines) + "\n").encode(), backwards


def _iso_ms(t_ms: int) -> str:
    import datetime as dt
    t = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=t_ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _paths(d, prefix=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, base: dict):
    """``base`` with 0–3 mutations: a value replaced by an odd one, a key dropped or an unknown key
    added. Returns (data, n_mutations)."""
    data = copy.deepcopy(base)
    n = draw(st.integers(min_value=0, max_value=3))
    for _ in range(n):
        paths = list(_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for p in path[:-1]:
            parent = parent[p]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        last = path[-1]
        if action == "replace":
            parent[last] = draw(_ODD_VALUES)
        elif action == "drop" and isinstance(parent, dict):
            parent.pop(last, None)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(_ODD_VALUES)
    return data, n


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        if isinstance(v, int) and abs(v) >= 10**4000:   # repr() refuses > 4,300 digits: write them out
            return ("-" if v < 0 else "") + "9" * 4301
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return '""'  # None has no TOML form: an empty string stands in


def to_toml(d: dict) -> str:
    """A small TOML writer for fuzzed scenarios (tables, arrays of tables, inline values)."""
    lines = []
    for k, v in d.items():
        if not isinstance(v, (dict, list)) or (isinstance(v, list) and not all(isinstance(x, dict) for x in v)):
            lines.append(f"{json.dumps(str(k))} = {_toml_value(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(str(k))}]")
            lines += [f"{json.dumps(str(a))} = {_toml_value(b)}" for a, b in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                lines.append(f"[[{json.dumps(str(k))}]]")
                lines += [f"{json.dumps(str(a))} = {_toml_value(b)}" for a, b in item.items()]
    return "\n".join(lines) + "\n"


def scenario_target(data: dict, tmp_dir) -> str:
    """Write ``data`` as TOML, load and (when it validates) simulate it. Returns "ran" or "rejected";
    raises ``BadFailure`` on anything unclean."""
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import load_scenario
    path = tmp_dir / "s.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):   # TOMLDecodeError, a 4,301-digit integer, deep nesting
        pass  # the loader must reject it cleanly too
    return _outcome(lambda: run(load_scenario(path)))


_HUGE = "\u0000huge\u0000"


def _mark_huge(d):
    if isinstance(d, dict):
        return {k: _mark_huge(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_mark_huge(v) for v in d]
    if isinstance(d, int) and not isinstance(d, bool) and abs(d) >= 10**4000:
        return _HUGE + ("-" if d < 0 else "")
    return d


def json_text(data) -> str:
    """``json.dumps`` that writes integers past int()'s 4,300-digit limit as 4,301 digits (json.dumps
    itself refuses them)."""
    text = json.dumps(_mark_huge(data), allow_nan=True)
    return text.replace(json.dumps(_HUGE + "-"), "-" + "9" * 4301).replace(json.dumps(_HUGE), "9" * 4301)


def profile_target(data: dict, tmp_dir) -> str:
    from agentwatt.core.profile import load_profile
    path = tmp_dir / "p.json"
    path.write_text(json_text(data), encoding="utf-8")
    return _outcome(lambda: load_profile(path))


def bytes_target(loader, raw: bytes, tmp_dir, suffix: str = ".txt") -> str:
    """Arbitrary bytes into a file loader (consumed fully)."""
    path = tmp_dir / f"f{suffix}"
    path.write_bytes(raw)

    def go():
        res = loader(path)
        if hasattr(res, "__iter__") and not isinstance(res, (dict, str, bytes)):
            for _ in res:
                pass
    return _outcome(go)


class BadFailure(Exception):
    pass


def _outcome(fn) -> str:
    try:
        fn()
    except AgentwattError as e:
        msg = str(e)
        if "\n" in msg or not msg:
            raise BadFailure(f"multi-line or empty message: {msg!r}") from e
        return "rejected"
    except Exception as e:  # noqa: BLE001 - the point is to catch anything unclean
        raise BadFailure(f"{type(e).__name__}: {e}") from e
    return "ran"
