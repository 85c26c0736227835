"""Valid-input generators for the fuzzers: inputs that must *run*, not merely fail cleanly.

Shared by the short CI profile (tests/test_fuzz_short.py) and the long run (benchmarks/fuzz.py),
beside the mutated and byte-level inputs of ``targets``. Three families:

* ``valid_scenarios``: random but legal scenario dicts (bundled profile, 1-3 replicas, catalog agents
  or mixes or bundled trace cuts, every arrival kind, router policies, engine and facility knobs,
  5-30 s of arrivals). ``valid_scenario_target`` writes one as TOML, loads and simulates it (the
  end-of-run invariants run inside ``run``), then checks sanity properties of the summary.
* ``valid_traces(fmt)``: well-formed trace files for each loader in ``traces.loaders.LOADERS`` built
  from random rows, with the sessions those rows must become; ``trace_roundtrip_target`` loads the
  file and compares (round trip: the loader yields exactly the rows' values).
* ``valid_profiles``: a bundled profile with its coefficients, power model, memory, fit statistics
  and provenance redrawn within legal ranges; ``profile_roundtrip_target`` loads it, compares field by
  field and runs a 5-second simulation with it.

A target returns ``"ran"``; anything else (a clean rejection included) raises ``BadFailure``.
The expected sessions of a trace are computed here from the generated rows by the loaders'
documented rules (module docstrings of ``traces/load_*.py``), not by calling the loaders' helpers.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import signal
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from hypothesis import strategies as st

from . import targets as F

BadFailure = F.BadFailure
RUN_TIME_LIMIT_S = 60.0   # a valid scenario of <= 30 s of arrivals runs in ~1 s; far longer is a hang


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise ``Hang`` in the main thread after ``seconds`` of wall time (a no-op off the main thread)."""
    def _alarm(signum, frame):
        raise Hang(f"did not finish within {seconds:g} s")
    try:
        old = signal.signal(signal.SIGALRM, _alarm)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _must_run(what: str, fn):
    """``fn()``; any exception (a clean AgentwattError too) is a failure of a valid input."""
    try:
        with time_limit(RUN_TIME_LIMIT_S):
            return fn()
    except BadFailure:
        raise
    except BaseException as e:  # noqa: BLE001 - a valid input must not raise anything
        if isinstance(e, KeyboardInterrupt):
            raise
        raise BadFailure(f"valid {what} failed: {type(e).__name__}: {e}") from e


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise BadFailure(f"property failed: {what}")


# ================================================================================ scenarios

def _names():
    from agentwatt.core.profile import bundled_profile_names
    from agentwatt.sim.facility import SERVER_SPECS
    from agentwatt.sim.router import ROUTERS
    from agentwatt.traces.agents import AGENTS
    from agentwatt.traces.loaders import BUNDLED_FORMATS
    return (bundled_profile_names(), sorted(AGENTS), sorted(ROUTERS), sorted(SERVER_SPECS),
            dict(BUNDLED_FORMATS))


def _f(lo: float, hi: float):
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


def _maybe(draw, key: str, strategy, into: dict) -> None:
    """Set ``into[key]`` to a drawn value half of the time (absent keys take their defaults)."""
    if draw(st.booleans()):
        into[key] = draw(strategy)


@st.composite
def _arrival(draw, duration_s: float) -> dict:
    kind = draw(st.sampled_from(["poisson", "poisson", "diurnal", "mmpp", "closed", "trace"]))
    rate = _f(0.05, 2.0)
    if kind == "poisson":
        return {"rate_per_s": draw(rate)}
    if kind == "diurnal":
        w: dict[str, Any] = {"arrival": "diurnal", "rate_per_s": draw(rate)}
        params: dict[str, Any] = {}
        choice = draw(st.sampled_from(["none", "hourly", "curve"]))
        if choice == "hourly":
            params["hourly"] = draw(st.lists(_f(0.0, 3.0), min_size=24, max_size=24).filter(lambda h: sum(h) > 0))
        elif choice == "curve":
            params["curve"] = "servegen-m-small"
        _maybe(draw, "start_hour", _f(0.0, 23.9), params)
        if params:
            w["arrival_params"] = params
        return w
    if kind == "mmpp":
        params = {"rates_per_s": [draw(_f(0.01, 1.0)), draw(_f(0.5, 4.0))],
                  "mean_sojourn_s": [draw(_f(0.5, 20.0)), draw(_f(0.5, 10.0))]}
        _maybe(draw, "rate_per_s", rate, params)
        return {"arrival": "mmpp", "arrival_params": params}
    if kind == "closed":
        w = {"arrival": "closed"}
        _maybe(draw, "concurrency", st.integers(1, 4), w)
        _maybe(draw, "sessions", st.integers(1, 10), w)
        _maybe(draw, "think_time_s", _f(0.0, 5.0), w)
        return w
    gaps = draw(st.lists(_f(0.0, duration_s / 4), min_size=0, max_size=8))
    times = [round(sum(gaps[:i + 1]), 6) for i in range(len(gaps))]
    return {"arrival": "trace", "arrival_params": {"times": times}}


@st.composite
def _workload_class(draw, duration_s: float) -> dict:
    _, agents, _, _, traces = _names()
    kind = draw(st.sampled_from(["agent", "agent", "mix", "trace"]))
    if kind == "trace":
        name = draw(st.sampled_from(sorted(traces)))
        heavy = traces[name] == "claude-code"  # 15k-token prompts, hundreds of calls per session
        w = {"trace": name, "format": traces[name], "limit": draw(st.integers(1, 2 if heavy else 30))}
        how = draw(st.sampled_from(["as recorded", "time_scale", "retime"]))
        if how == "time_scale":
            w["time_scale"] = draw(_f(0.05, 5.0))
        elif how == "retime":
            w["arrival"] = "poisson"
            w["rate_per_s"] = draw(_f(0.1, 2.0))
            _maybe(draw, "repeat", st.booleans(), w)
        return w
    if kind == "mix":
        chosen = draw(st.lists(st.sampled_from(agents), min_size=1, max_size=3, unique=True))
        w = {"mix": {a: draw(_f(0.1, 5.0)) for a in chosen}}
    else:
        w = {"agent": draw(st.sampled_from(agents))}
    w.update(draw(_arrival(duration_s)))
    return w


@st.composite
def _engine(draw) -> dict:
    e: dict[str, Any] = {}
    _maybe(draw, "max_num_seqs", st.integers(1, 256), e)
    _maybe(draw, "max_num_batched_tokens", st.sampled_from([16, 64, 512, 2048, 8192]) | st.integers(16, 8192), e)
    _maybe(draw, "block_size_tokens", st.sampled_from([8, 16, 32, 64]), e)
    _maybe(draw, "gpu_memory_utilization", _f(0.7, 0.95), e)
    _maybe(draw, "prefix_caching", st.booleans(), e)
    _maybe(draw, "step_skipping", st.booleans(), e)
    if draw(st.integers(0, 3)) == 0:
        e["kv_capacity_tokens"] = draw(st.integers(4096, 400_000))
    retention = draw(st.sampled_from([None, "drop", "keep", "ttl"]))
    if retention is not None:
        e["kv_retention"] = retention
        if retention == "ttl":
            e["kv_retention_ttl_s"] = draw(_f(0.1, 30.0))
    return e


def _max_idle_w() -> float:
    from agentwatt.core.profile import bundled_profile_names, load_profile
    return max((load_profile(n).power.idle_w or 0.0) for n in bundled_profile_names())


@st.composite
def _facility(draw) -> dict:
    _, _, _, servers, _ = _names()
    fac: dict[str, Any] = {}
    _maybe(draw, "server", st.sampled_from(servers), fac)
    _maybe(draw, "servers_per_rack", st.integers(1, 8), fac)
    _maybe(draw, "row_power_limit_w", _f(20_000.0, 2_000_000.0), fac)
    _maybe(draw, "pue", _f(1.0, 2.0) | st.lists(_f(1.0, 2.0), min_size=24, max_size=24), fac)
    _maybe(draw, "network_w_per_rack", _f(0.0, 2000.0), fac)
    _maybe(draw, "host_dynamic_fraction", _f(0.0, 1.0), fac)
    # a cap must leave more than a GPU's idle power (sim/fleet.py gpu_cap_w): above every bundled profile's
    _maybe(draw, "gpu_cap_w", _f(_max_idle_w() + 1.0, 1000.0), fac)
    if draw(st.integers(0, 3)) == 0:
        fac["server_cap_w"] = draw(_f(4000.0, 15000.0))
    if draw(st.integers(0, 3)) == 0:
        per_server = draw(_f(4000.0, 15000.0))   # every cap must leave more than idle per GPU
        fac["rack_cap_w"] = fac.get("servers_per_rack", 4) * per_server + fac.get("network_w_per_rack", 0.0)
    _maybe(draw, "carbon_g_per_kwh", _f(0.0, 900.0) | st.lists(_f(0.0, 900.0), min_size=24, max_size=24), fac)
    _maybe(draw, "price_usd_per_kwh", _f(0.0, 0.5) | st.lists(_f(0.0, 0.5), min_size=24, max_size=24), fac)
    _maybe(draw, "gpu_hour_usd", _f(0.0, 10.0), fac)
    _maybe(draw, "racks_per_row", st.integers(1, 50), fac)
    _maybe(draw, "gpu_noise_frac", _f(0.0, 0.2), fac)
    _maybe(draw, "gpu_noise_corr_s", _f(0.1, 10.0), fac)
    _maybe(draw, "meter_window_s", _f(0.0, 5.0), fac)
    return fac


@st.composite
def valid_scenarios(draw) -> dict:
    """A legal scenario dict (TOML-shaped) that must simulate without error."""
    profiles, _, routers, _, _ = _names()
    duration = draw(_f(5.0, 30.0))
    data: dict[str, Any] = {
        # BMP only: the fuzzers' TOML writer escapes with json.dumps, whose surrogate pairs TOML rejects
        "name": draw(st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs", "Cc")),
                             min_size=1, max_size=12)),
        "profile": draw(st.sampled_from(profiles)),
        "run": {"seed": draw(st.integers(0, 2**63 - 1)), "duration_s": duration,
                "drain_timeout_s": draw(_f(0.0, 30.0)), "power_resolution_s": draw(_f(0.1, 5.0))},
        "fleet": {"replicas": draw(st.integers(1, 3))},
        "engine": draw(_engine()),
        "router": {"policy": draw(st.sampled_from(routers)), "session_affinity": draw(st.booleans())},
        "facility": draw(_facility()),
        "workload": draw(st.lists(_workload_class(duration), min_size=1, max_size=2)),
    }
    return data


def valid_scenario_target(data: dict, tmp_dir) -> str:
    """Simulate a valid scenario (through its TOML text) and check the summary's sanity."""
    import tomllib

    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import load_scenario
    path = tmp_dir / "valid.toml"
    text = F.to_toml(data)
    path.write_text(text, encoding="utf-8")
    _check(tomllib.loads(text) == data, "the TOML writer round-trips the scenario dict")
    res = _must_run("scenario", lambda: run(load_scenario(path)))
    check_results(res, data)
    return "ran"


def check_results(res, data: dict) -> None:
    s = res.summary
    sc = res.scenario
    tp = res.profile.hardware.tp
    eps = 1e-6
    _check(s["replicas"] == data["fleet"]["replicas"] and s["gpus"] == s["replicas"] * tp, "replicas as asked")
    _check(s["seed"] == data["run"]["seed"], "summary names the seed")
    _check(0 <= s["sessions_completed"] <= s["sessions_arrived"], "sessions completed <= arrived")
    _check(0 <= s["calls_completed"] <= s["calls_submitted"], "calls completed <= submitted")
    _check(s["sessions_arrived"] == s["sessions_completed"] + s["sessions_dropped"] + s["sessions_in_flight"],
           "sessions arrived = completed + dropped + in flight")
    _check(s["calls_submitted"] == s["calls_completed"] + s["calls_dropped"] + s["calls_in_flight"],
           "calls submitted = completed + dropped + in flight")
    _check(int((res.calls["status"] == "finished").sum()) == s["calls_completed"], "calls table matches counters")
    _check(int((res.sessions["status"] == "finished").sum()) == s["sessions_completed"],
           "sessions table matches counters")
    end = s["sim_time_s"]
    _check(end <= sc.run.duration_s + sc.run.drain_timeout_s + eps, "run ends by duration + drain timeout")
    if any(w.arrival != "closed" and (w.trace is None or w.retime) for w in sc.workload):
        _check(end >= sc.run.duration_s - eps, "an open-loop run lasts at least its arrival window")
    util = s["gpu_utilization"]
    _check(util is None or -eps <= util <= 1 + eps, f"GPU utilisation {util} in [0, 1]")
    _check(0 <= s["kv_peak_utilization"] <= 1 + eps, "KV peak utilisation in [0, 1]")
    # a call's first token comes from its last prefill chunk, and so does the next token after a
    # recompute (preemption); every other output token is a decode step
    _check(s["output_tokens"] <= s["decode_tokens"] + s["calls_completed"] + s["preemptions"],
           "output tokens of finished calls <= decode tokens + one per finished call and per preemption")
    fin = res.calls[res.calls["status"] == "finished"]
    _check(bool((fin["output_tokens"] >= 1).all()) and bool((fin["prompt_tokens"] >= 1).all()),
           "finished calls have >= 1 prompt and output token")
    if res.profile.power.available:
        pm = res.profile.power
        e = s["gpu_energy_j"]
        # > 0 unless the run lasted no time (a trace replay ends with its sessions: all dropped at t = 0)
        _check(e is not None and (e > 0 if end > 0 else e == 0), f"GPU energy {e} > 0 over {end} s")
        _check(math.isclose(e, s["gpu_busy_energy_j"] + s["gpu_idle_energy_j"], rel_tol=1e-6),
               "GPU energy = busy + idle")
        _check(s["facility_energy_j"] >= e * (1 - 1e-6), "facility energy >= GPU energy (PUE >= 1, host >= 0)")
        if end > 0:
            lo = pm.idle_w * s["gpus"] * (1 - 1e-6)
            _check(s["gpu_avg_power_w"] >= lo, f"average GPU power {s['gpu_avg_power_w']} >= idle {lo}")
            hi = max(pm.max_w or math.inf, pm.idle_w) * s["gpus"] * (1 + 1e-6)
            _check(s["gpu_peak_power_w"] <= hi, f"peak GPU power {s['gpu_peak_power_w']} <= max {hi}")
        if len(fin):
            _check(bool((fin["energy_j"] >= 0).all()), "per-call energy >= 0")
            _check(float(fin["energy_j"].sum()) <= s["gpu_busy_energy_j"] * (1 + 1e-6) + 1e-6,
                   "finished calls' energy <= busy energy")
    else:
        _check(s["gpu_energy_j"] is None and s["energy_available"] is False, "no meter: energy is null, not 0")
    json.dumps(s, allow_nan=False)  # the summary is strict JSON


# ================================================================================ traces
# A generated trace: the file's bytes, the keyword arguments to load it with and the sessions it must
# become, each session a tuple of node descriptors in node order:
#   ("llm", prompt, output_tokens, deps)   prompt: tuple of (key, tokens), or an int (tokens only)
#   ("tool", name, latency_s, deps)
# plus the session's agent label and arrival time.

@dataclass
class TraceCase:
    fmt: str
    suffix: str
    raw: bytes
    kwargs: dict
    sessions: list = field(default_factory=list)   # [(agent, arrival_s, nodes)]

    def __repr__(self) -> str:  # hypothesis prints the falsifying example with this
        return f"TraceCase({self.fmt}, kwargs={self.kwargs}, raw={self.raw[:2000]!r})"


def _take_prefix(segs: tuple, tokens: int) -> tuple:
    out, left = [], tokens
    for key, n in segs:
        if left <= 0:
            break
        out.append((key, min(n, left)))
        left -= n
    return tuple(out)


def _cap(segs: tuple, out: int, max_tokens: int | None) -> tuple[tuple, int]:
    """Vidur's replay cap as the loaders document it: output <= max_tokens - 1, then the prompt cut."""
    if max_tokens is None:
        return segs, out
    out = min(out, max_tokens - 1)
    if sum(n for _, n in segs) + out <= max_tokens:
        return segs, out
    return _take_prefix(segs, max_tokens - out), out


def _lines(draw, rows: list[str], header: str | None = None) -> bytes:
    """Join lines with a drawn line ending, optional BOM, blank lines and final newline."""
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    body = []
    for r in rows:
        body.append(r)
        if draw(st.integers(0, 9)) == 0:
            body.append(draw(st.sampled_from(["", " ", "\t"])))
    text = eol.join(([header] if header is not None else []) + body)
    if draw(st.booleans()):
        text += eol
    if draw(st.integers(0, 4)) == 0:
        text = "\ufeff" + text
    return text.encode("utf-8")


@st.composite
def _load_kwargs(draw, n: int) -> dict:
    kw: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        kw["limit"] = draw(st.integers(1, n + 2))
    if draw(st.integers(0, 3)) == 0:
        kw["max_tokens"] = draw(st.integers(2, 6000))
    return kw


def _limited(sessions: list, kw: dict) -> list:
    return sessions[:kw["limit"]] if "limit" in kw else sessions


# --- Azure 2023/2024 CSV

_AZURE_BASE = dt.datetime(2023, 11, 16, 18, 15, 46)


@st.composite
def azure_trace(draw) -> TraceCase:
    n = draw(st.integers(1, 25))
    digits = draw(st.sampled_from([0, 3, 6, 7, 9]))
    zone = draw(st.sampled_from(["", "", "Z", "+00:00", "+05:30", "-0800"]))
    sep = draw(st.sampled_from([" ", "T"]))
    unit = 10 ** digits
    ticks = [0]
    for _ in range(n - 1):
        ticks.append(ticks[-1] + draw(st.sampled_from([0, 1]) | st.integers(0, 100 * unit)))
    start = draw(st.integers(0, 10 * unit))
    cols = draw(st.permutations(["TIMESTAMP", "ContextTokens", "GeneratedTokens"] + draw(
        st.sampled_from([[], ["Extra"]]))))
    kw = draw(_load_kwargs(n))
    rows, expected = [], []
    for i, tick in enumerate(ticks):
        whole, frac = divmod(start + tick, unit)
        t = _AZURE_BASE + dt.timedelta(seconds=whole)
        ts = t.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{frac:0{digits}d}" if digits else "") + zone
        ctx, gen = draw(st.integers(0, 20_000)), draw(st.integers(0, 4000))
        cells = {"TIMESTAMP": ts, "ContextTokens": str(ctx), "GeneratedTokens": str(gen), "Extra": str(i)}
        rows.append(",".join(cells[c] for c in cols))
        segs, out = _cap(((f"s{i}:q", max(1, ctx)),), max(1, gen), kw.get("max_tokens"))
        arrival = float(Fraction(tick, unit))
        expected.append(("azure-conv", arrival, (("llm", segs, out, ()),)))
    raw = _lines(draw, rows, ",".join(cols))
    return TraceCase("azure-2023", ".csv", raw, kw, _limited(expected, kw))


# --- Mooncake JSONL

@st.composite
def mooncake_trace(draw) -> TraceCase:
    n = draw(st.integers(1, 25))
    kw = draw(_load_kwargs(n))
    t0 = ts = draw(st.sampled_from([0, 1000, 123456]))
    lines, expected = [], []
    for i in range(n):
        if i:
            ts += draw(st.sampled_from([0]) | st.integers(0, 5000))
        inp = draw(st.integers(1, 6000))
        out = draw(st.integers(0, 2000))
        ids = draw(st.lists(st.integers(0, 10**6), min_size=-(-inp // 512), max_size=-(-inp // 512)))
        obj: dict[str, Any] = {"timestamp": ts if draw(st.booleans()) else float(ts), "input_length": inp,
                               "output_length": out, "hash_ids": ids}
        if draw(st.booleans()):
            obj["extra"] = i
        keys = list(obj)
        order = draw(st.permutations(keys))
        lines.append(json.dumps({k: obj[k] for k in order},
                                separators=draw(st.sampled_from([(",", ":"), (", ", ": ")]))))
        segs = tuple((f"mooncake:{h}", 512 if j < len(ids) - 1 else inp - 512 * (len(ids) - 1))
                     for j, h in enumerate(ids))
        segs, o = _cap(segs, max(1, out), kw.get("max_tokens"))
        expected.append(("mooncake", (ts - t0) / 1000.0, (("llm", segs, o, ()),)))
    return TraceCase("mooncake", ".jsonl", _lines(draw, lines), kw, _limited(expected, kw))


# --- Vidur CSV (GitHub main and PyPI 0.0.26 headers)

@st.composite
def vidur_trace(draw) -> TraceCase:
    n = draw(st.integers(1, 25))
    kw = draw(_load_kwargs(n))
    pypi = draw(st.booleans())
    if pypi:
        base = ["Date", "Time", "PromptTokenCount", "CompletionTokenCount"]
    else:
        base = ["arrived_at", "num_prefill_tokens", "num_decode_tokens"]
    cols = draw(st.permutations(base + draw(st.sampled_from([[], ["num_total_tokens"]]))))
    quote = draw(st.booleans())
    date = draw(st.sampled_from(["2023-11-16", "2024-05-12"]))
    t0 = t = draw(_f(0.0, 1e5))
    rows, expected = [], []
    for i in range(n):
        if i:
            t += draw(st.sampled_from([0.0]) | _f(0.0, 100.0))
        p, d = draw(st.integers(0, 20_000)), draw(st.integers(0, 4000))
        as_float = draw(st.booleans())
        prompt = f"{p}.0" if as_float else str(p)
        cells = {"Date": date, "Time": repr(t), "arrived_at": repr(t),
                 "PromptTokenCount": prompt, "num_prefill_tokens": prompt,
                 "CompletionTokenCount": str(d), "num_decode_tokens": str(d), "num_total_tokens": str(p + d)}
        rows.append(",".join(f'"{cells[c]}"' if quote else cells[c] for c in cols))
        segs, out = _cap(((f"s{i}:q", max(1, p)),), max(1, d), kw.get("max_tokens"))
        expected.append(("vidur-csv", t - t0, (("llm", segs, out, ()),)))
    raw = _lines(draw, rows, ",".join(cols))
    return TraceCase("vidur-csv", ".csv", raw, kw, _limited(expected, kw))


# --- TraceLab rounds JSONL

def _iso(t_ms: int) -> str:
    t = dt.datetime(2026, 6, 1, 5, 40, 20) + dt.timedelta(milliseconds=t_ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@st.composite
def tracelab_trace(draw) -> TraceCase:
    n_sessions = draw(st.integers(1, 4))
    kw = draw(_load_kwargs(n_sessions))
    mt = kw.get("max_tokens")
    lines, expected = [], []
    clock = 0
    tools_names = ["Bash", "Read", "Edit", "WebSearch", "Grep"]
    for sidx in range(n_sessions):
        sid = sidx
        nodes: list = []
        context: tuple = ()
        deps: tuple = ()
        prev_end = None
        for k in range(draw(st.integers(1, 5))):
            total = draw(st.integers(1, 40_000))
            prefix = draw(st.integers(0, total + 100))
            out = draw(st.integers(0, 3000))
            clock += draw(st.integers(0, 60_000))
            ev = sorted(clock + draw(st.integers(0, 5000)) for _ in range(draw(st.integers(1, 3))))
            first_type = draw(st.sampled_from(["user_message", "tool_result"]))
            tools = []
            for j in range(draw(st.integers(0, 3))):
                lat = draw(st.none() | st.integers(0, 30_000))
                tool = {"tool_index": j, "tool_name": draw(st.sampled_from(tools_names)),
                        "tool_wall_latency_ms": lat}
                if lat is not None and draw(st.booleans()):
                    tool["result_at"] = _iso(ev[-1] + lat)
                tools.append(tool)
            obj = {"session_id": f"claude:{sidx}", "round_index": k, "input_tokens_total": total,
                   "prefix_tokens": prefix, "output_tokens": out,
                   "timing_events": [{"event_type": "x", "timestamp": _iso(e)} for e in draw(st.permutations(ev))],
                   "tools": tools, "first_input_event_type": first_type}
            lines.append(json.dumps(obj))
            # expected nodes (the TraceLab rules of traces/load_tracelab.py's docstring)
            if prev_end is not None and first_type == "user_message":
                nodes.append(("tool", "human", max(0.0, ev[0] / 1000 - prev_end), deps))
                deps = (len(nodes) - 1,)
            head = _take_prefix(context, min(prefix, total))
            new = total - sum(x for _, x in head)
            prompt = head + (((f"s{sid}:r{k}", new),) if new > 0 else ())
            capped, o = _cap(prompt, max(1, out), mt)
            call_id = len(nodes)
            nodes.append(("llm", capped, o, deps))
            context = prompt + ((f"s{sid}:o{call_id}", o),)
            end = ev[-1] / 1000
            ids = []
            for t in tools:
                ids.append(len(nodes))
                nodes.append(("tool", t["tool_name"], (t["tool_wall_latency_ms"] or 0) / 1000, (call_id,)))
                if "result_at" in t:
                    end = max(end, (ev[-1] + t["tool_wall_latency_ms"]) / 1000)
            deps = tuple(ids) if ids else (call_id,)
            prev_end = end
            clock = ev[-1]
        expected.append(("tracelab", 0.0, tuple(nodes)))
    return TraceCase("tracelab", ".jsonl", _lines(draw, lines), kw, _limited(expected, kw))


# --- WEKA Claude Code: raw JSON lines and the flattened CSV

@dataclass
class _CC:
    """A generated agent chain: its calls and its subagents (spawn t, parent call index, chain)."""
    name: str
    calls: list = field(default_factory=list)      # dicts: t, api, think, tool_result, segs(or tokens), out
    children: list = field(default_factory=list)


def _cc_gap(calls: list, i: int) -> float:
    c = calls[i]
    if c["think"] is not None:
        return c["think"]
    p = calls[i - 1]
    return max(0.0, c["t"] - p["t"] - (p["api"] or 0.0))


def _cc_nodes(agent: _CC, sid: int, mt, nodes: list, deps: tuple, first_gap: float) -> None:
    ids = []
    for i, c in enumerate(agent.calls):
        gap = first_gap if i == 0 else _cc_gap(agent.calls, i)
        if gap > 0:
            nodes.append(("tool", "client" if c["tool_result"] or i == 0 else "human", gap, deps))
            deps = (len(nodes) - 1,)
        segs = tuple((k.replace("s?:", f"s{sid}:", 1) if k.startswith("s?:") else k, n) for k, n in c["segs"])
        segs, o = _cap(segs, c["out"], mt)
        nodes.append(("llm", segs, o, deps))
        deps = (len(nodes) - 1,)
        ids.append(deps[0])
    for spawn, parent, child in agent.children:
        p = agent.calls[parent]
        _cc_nodes(child, sid, mt, nodes, (ids[parent],), max(0.0, spawn - p["t"] - (p["api"] or 0.0)))


@st.composite
def _cc_call(draw, t: float) -> dict:
    return {"t": t, "in": draw(st.integers(1, 20_000)), "out": draw(st.integers(0, 2000)),
            "api": draw(st.none() | _f(0.0, 30.0)), "think": draw(st.none() | _f(0.0, 60.0)),
            "tool_result": draw(st.booleans())}


@st.composite
def claude_code_raw_trace(draw) -> TraceCase:
    n = draw(st.integers(1, 3))
    kw = draw(_load_kwargs(n))
    lines, expected = [], []
    for sidx in range(n):
        bs = draw(st.sampled_from([None, 64, 16, 128]))
        b = bs or 64
        scope = draw(st.sampled_from([None, "local", "global"]))
        prefix = "claude-code:h" if scope == "global" else "s?:h"

        def request(c: dict, name: str, idx: int) -> dict:
            nmax = -(-c["in"] // b)
            ids = draw(st.lists(st.integers(0, 500), min_size=0, max_size=min(nmax, 40)))
            segs = [(f"{prefix}{h}", min(b, c["in"] - b * j)) for j, h in enumerate(ids)]
            if c["in"] - b * len(ids) > 0:
                segs.append((f"s?:{name}.r{idx}", c["in"] - b * len(ids)))
            c["segs"], c["out"] = tuple(segs), max(1, c["out"])
            r = {"t": c["t"], "type": "n", "in": c["in"], "out": c.pop("raw_out"), "hash_ids": ids,
                 "input_types": ["tool_result"] if c["tool_result"] else ["text"]}
            for key, src in (("api_time", "api"), ("think_time", "think")):
                if c[src] is not None or draw(st.booleans()):
                    r[key] = c[src]   # absent or null: the loader's fallback either way
            return r

        def chain(name: str, t0: float, nested: bool) -> tuple[_CC, list]:
            agent, reqs, t = _CC(name), [], t0
            for i in range(draw(st.integers(1, 4))):
                t += draw(_f(0.0, 50.0))
                c = draw(_cc_call(t))
                c["raw_out"] = c["out"]
                reqs.append(request(c, name, len(agent.calls)))
                agent.calls.append(c)
                if nested and draw(st.integers(0, 2)) == 0:
                    spawn = t + draw(_f(0.0, 10.0))
                    sub_name = f"agent_{len(reqs):03d}"
                    child, sub_reqs = chain(sub_name, 0.0, False)
                    reqs.append({"t": spawn, "type": "subagent", "agent_id": sub_name, "requests": sub_reqs})
                    agent.children.append((spawn, len(agent.calls) - 1, child))
            return agent, reqs

        root, reqs = chain("root", 0.0, True)
        obj: dict[str, Any] = {"id": f"trace_{sidx:04d}", "requests": reqs}
        if bs is not None:
            obj["block_size"] = bs
        if scope is not None:
            obj["hash_id_scope"] = scope
        lines.append(json.dumps(obj))
        nodes: list = []
        _cc_nodes(root, sidx, kw.get("max_tokens"), nodes, (), 0.0)
        expected.append(("claude-code", 0.0, tuple(nodes)))
    return TraceCase("claude-code", ".jsonl", _lines(draw, lines), kw, _limited(expected, kw))


@st.composite
def claude_code_csv_trace(draw) -> TraceCase:
    from agentwatt.traces.load_claude_code import CSV_COLUMNS
    n = draw(st.integers(1, 3))
    kw = draw(_load_kwargs(n))
    cols = list(CSV_COLUMNS) + ["n_blocks"]
    cols = draw(st.permutations(cols))
    rows, expected = [], []

    def fmt(v) -> str:
        return "" if v is None else repr(v)

    for sidx in range(n):
        agents: list[_CC] = []
        per_agent_rows: list[list[dict]] = []
        root = _CC("root")
        names = ["root"] + [f"agent_{j:03d}" for j in range(draw(st.integers(0, 2)))]
        spawns = {}
        for name in names:
            agent = root if name == "root" else _CC(name)
            rs, t = [], 0.0
            if name != "root":
                spawns[name] = draw(_f(0.0, 100.0))
            for i in range(draw(st.integers(1, 4))):
                t += draw(_f(0.0, 50.0))
                c = draw(_cc_call(t))
                shared = draw(st.integers(0, 400))
                prev = agent.calls[-1]["segs"] if agent.calls else ()
                head = _take_prefix(prev, min(64 * shared, c["in"])) if prev else ()
                new = c["in"] - sum(x for _, x in head)
                c["segs"] = head + (((f"s?:{name}.p{i}", new),) if new > 0 else ())
                raw_out, c["out"] = c["out"], max(1, c["out"])
                rs.append({"trace_id": f"t{sidx}", "agent": name, "spawn_t_s": fmt(spawns.get(name)),
                           "req_idx": str(i), "t_s": fmt(c["t"]), "in_tokens": str(c["in"]),
                           "out_tokens": str(raw_out), "api_time_s": fmt(c["api"]),
                           "think_time_s": fmt(c["think"]),
                           "input_types": "text|tool_result" if c["tool_result"] else "text",
                           "prefix_blocks_shared_with_prev": str(shared), "n_blocks": "0"})
                agent.calls.append(c)
            agents.append(agent)
            per_agent_rows.append(rs)
        # interleave the agents' rows, each agent's in order (rows of one trace stay together)
        order = draw(st.permutations([j for j, rs in enumerate(per_agent_rows) for _ in rs]))
        taken = [0] * len(per_agent_rows)
        first_seen: list[int] = []
        for j in order:
            rows.append(",".join(per_agent_rows[j][taken[j]][c] for c in cols))
            taken[j] += 1
            if j not in first_seen:
                first_seen.append(j)
        for j in first_seen:
            if j == 0:
                continue
            spawn = spawns[agents[j].name]
            parent = max((i for i, c in enumerate(root.calls) if c["t"] <= spawn), default=0)
            root.children.append((spawn, parent, agents[j]))
        nodes: list = []
        _cc_nodes(root, sidx, kw.get("max_tokens"), nodes, (), 0.0)
        expected.append(("claude-code", 0.0, tuple(nodes)))
    raw = _lines(draw, rows, ",".join(cols))
    return TraceCase("claude-code", ".csv", raw, kw, _limited(expected, kw))


TRACE_STRATEGIES = {
    "azure-2023": azure_trace,
    "mooncake": mooncake_trace,
    "vidur-csv": vidur_trace,
    "tracelab": tracelab_trace,
    "claude-code": lambda: st.one_of(claude_code_raw_trace(), claude_code_csv_trace()),
}


def valid_traces(fmt: str):
    return TRACE_STRATEGIES[fmt]()


def trace_roundtrip_target(case: TraceCase, tmp_dir) -> str:
    """Load a generated trace and compare every session with the rows it came from."""
    from agentwatt.traces.loaders import load_trace
    from agentwatt.traces.schema import LLMCall, validate_session
    path = tmp_dir / f"trace{case.suffix}"
    path.write_bytes(case.raw)
    got = _must_run(f"{case.fmt} trace", lambda: list(load_trace(case.fmt, path, **case.kwargs)))
    _check(len(got) == len(case.sessions), f"{len(got)} sessions loaded: expected {len(case.sessions)}")
    for i, (s, (agent, arrival, nodes)) in enumerate(zip(got, case.sessions)):
        where = f"session {i}"
        _must_run("session", lambda: validate_session(s))
        _check(s.id == i and s.agent == agent, f"{where}: id {s.id} agent {s.agent!r}: expected {i}, {agent!r}")
        _check(math.isclose(s.arrival_s, arrival, rel_tol=1e-12, abs_tol=1e-6),
               f"{where}: arrival {s.arrival_s!r}: expected {arrival!r}")
        _check(len(s.nodes) == len(nodes), f"{where}: {len(s.nodes)} nodes: expected {len(nodes)}")
        for j, (n, want) in enumerate(zip(s.nodes, nodes)):
            if want[0] == "llm":
                prompt = tuple((seg.key, seg.tokens) for seg in n.prompt) if isinstance(n, LLMCall) else None
                got_node = ("llm", prompt, getattr(n, "output_tokens", None), n.deps)
                _check(got_node == want, f"{where} node {j}: {got_node}: expected {want}")
                _check(n.output_key == f"s{i}:o{j}", f"{where} node {j}: output key {n.output_key!r}")
            else:
                # 1e-4 s: TraceLab gaps are differences of absolute ISO times (~6e10 s, float resolution ~1e-5)
                ok = (getattr(n, "tool", None) == want[1] and n.deps == want[3]
                      and math.isclose(n.latency_s, want[2], rel_tol=1e-9, abs_tol=1e-4))
                _check(ok, f"{where} node {j}: {n}: expected {want}")
    return "ran"


# ================================================================================ profiles

def _scaled(draw, v: float, lo: float = 0.25, hi: float = 4.0) -> float:
    return v * draw(_f(lo, hi))


def _number(draw, v: float):
    """A float, written as an int when it is one half of the time (the loader takes both)."""
    return int(v) if float(v).is_integer() and abs(v) < 2**53 and draw(st.booleans()) else v


@st.composite
def _fit(draw):
    if draw(st.booleans()):
        return None
    fit: dict[str, Any] = {"n_points": draw(st.integers(0, 500)), "mape": draw(_f(0.0, 1.0)),
                           "max_ape": draw(_f(0.0, 5.0))}
    if draw(st.booleans()):
        fit.update(holdout_n_points=draw(st.integers(0, 100)), holdout_mape=draw(st.none() | _f(0.0, 1.0)),
                   holdout_max_ape=draw(st.none() | _f(0.0, 5.0)), note=draw(st.text(max_size=20)))
    return fit


@st.composite
def valid_profiles(draw) -> dict:
    """A bundled profile (as a JSON-able dict) with legal values redrawn; it must load and run."""
    from agentwatt.core.profile import POWER_SOURCES, SOURCES, bundled_profile_names, load_profile
    base = load_profile(draw(st.sampled_from(bundled_profile_names()))).to_dict()
    d = json.loads(json.dumps(base))
    d["name"] = draw(st.text(min_size=1, max_size=16))
    d["source"] = draw(st.sampled_from(SOURCES))
    lat = d["latency"]
    for k in ("overhead_s", "prefill_token_s", "prefill_attn_s", "decode_seq_s", "decode_ctx_s"):
        lat[k] = 0.0 if k in ("prefill_attn_s", "decode_ctx_s") and draw(st.integers(0, 4)) == 0 else \
            _scaled(draw, lat[k])
    lat["fit"] = draw(_fit())
    hw = d["hardware"]
    hw["mem_gib_per_device"] = _number(draw, float(draw(st.sampled_from([hw["mem_gib_per_device"], 80.0, 141.0]))))
    hw["kind"] = draw(st.sampled_from(["gpu", "cpu"]))
    hw["tdp_w_per_device"] = draw(st.none() | _f(50.0, 1500.0))
    if draw(st.integers(0, 4)) == 0:
        reason = draw(st.text(min_size=1, max_size=30))
        d["power"] = {"available": False, "source": "unavailable", "reason": reason,
                      **{k: None for k in ("idle_w", "prefill_w", "decode_base_w", "decode_log2_batch_w", "max_w")},
                      "fit": None}
    else:
        idle = draw(_f(5.0, 150.0))
        measured = [s for s in POWER_SOURCES if s != "unavailable"]
        d["power"] = {"available": True, "source": draw(st.sampled_from(measured)),
                      "reason": None, "idle_w": _number(draw, idle),
                      "prefill_w": _number(draw, idle + draw(_f(0.0, 800.0))),
                      "decode_base_w": _number(draw, idle + draw(_f(0.0, 600.0))),
                      "decode_log2_batch_w": _number(draw, draw(_f(0.0, 30.0))),
                      "max_w": draw(st.none() | _f(idle + 1.0, 1500.0)), "fit": draw(_fit())}
    d["provenance"] = draw(st.dictionaries(st.text(max_size=8), st.text(max_size=12) | st.integers(), max_size=3))
    d["measurements"] = draw(st.lists(st.dictionaries(st.text(max_size=5), _f(0.0, 1e3), max_size=3), max_size=2))
    return d


def profile_roundtrip_target(d: dict, tmp_dir) -> str:
    """Load a valid profile, compare it with the file field by field, then simulate 5 s with it."""
    from agentwatt.core.profile import load_profile
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import scenario_from_dict
    path = tmp_dir / "valid_profile.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    p = _must_run("profile", lambda: load_profile(path))
    got = json.loads(json.dumps(p.to_dict()))
    want = json.loads(json.dumps(d))
    if not want["power"]["available"]:
        want["power"]["fit"] = None   # an unavailable power model has no fit
    for fit in (want["latency"]["fit"], want["power"]["fit"]):
        if fit is not None:           # the optional fit fields take their defaults
            for k, v in (("holdout_n_points", 0), ("holdout_mape", None), ("holdout_max_ape", None), ("note", "")):
                fit.setdefault(k, v)
    # optional fields of the smooth-roofline latency and activity power models take their defaults
    for k, v in (("weight_s", 0.0), ("token_s", 0.0), ("overlap_p", 2.0), ("expert_weight_s", 0.0), ("experts", 1),
                 ("experts_per_token", 1)):
        want["latency"].setdefault(k, v)
    for k in ("compute_w", "memory_w", "parked_w"):
        want["power"].setdefault(k, None)
    _check(_numeric_equal(got, want), f"loaded profile differs from the file: {_first_difference(got, want)}")
    data = {"name": "with-profile", "profile": str(path),
            "run": {"seed": 3, "duration_s": 5.0, "drain_timeout_s": 5.0}, "fleet": {"replicas": 1},
            "workload": [{"agent": "chatbot-sharegpt", "rate_per_s": 1.0}]}
    res = _must_run("simulation with the profile", lambda: run(scenario_from_dict(data, "profile-fuzz")))
    check_results(res, data)
    return "ran"


def _numeric_equal(a, b) -> bool:
    """JSON values equal, an int and the equal float counting as equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_numeric_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_numeric_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return a == b
    return a == b and type(a) is type(b)


def _first_difference(a, b, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b or not _numeric_equal(a[k], b[k]):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
    return f"{path or '<top>'}: loaded {a!r}, file {b!r}"
