"""What one replica does over a short window: batch composition, KV use and power, step by step.

For teaching continuous batching. ``record_timeline`` builds the scenario with ``sim/fleet.py``'s
``build``, as ``sim/run.py`` does (same fleet, router, sessions and seeds), and runs it for ``until_s``
simulated seconds, with two additions that leave the model untouched:

* a sampler process reads the chosen replica's state every ``sample_s``: requests still reading
  their prompt (prefill, possibly in chunks), requests generating tokens (decode), requests waiting
  for admission, and KV blocks in use;
* the replica's own energy bins, kept at ``sample_s`` resolution, give its GPU power and how each
  bin split into busy, idle-waiting-for-tools and idle-empty time;
* with a host KV tier (``[engine] kv_retention = "offload"`` or ``"cost"``), the host tier's blocks
  in use too (``host_kv_used_tokens``, ``host_kv_used_share``).

Engine steps are simulated one by one (``step_skipping`` off; it changes how many events run, not
the result), so a sample shows the batch of the step in progress. Samples are instants: a step
shorter than ``sample_s`` can fall between two samples; power bins are exact integrals.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import simpy

from agentwatt.core.profile import Profile, load_profile
from agentwatt.core.errors import InputError
from agentwatt.sim.fleet import build
from agentwatt.sim.scenario import Scenario


@dataclass
class Timeline:
    samples: pd.DataFrame   # time_s, prefill, decode, waiting, kv_used_tokens, kv_used_share (+ host_kv_* with a tier)
    power: pd.DataFrame     # time_s, width_s, gpu_power_w, busy/idle_tool/idle_empty shares (per bin)
    calls: pd.DataFrame     # the run's calls table (calls finished by until_s), all replicas
    replica_index: int
    kv_capacity_tokens: int
    idle_w: float | None


def _sampler(env: simpy.Environment, replica, sample_s: float, until_s: float, rows: list, tier=None):
    st = replica.state
    while env.now <= until_s:
        prefill = sum(1 for r in st.running if r.num_computed < r.prompt_len)
        row = (env.now, prefill, len(st.running) - prefill, len(st.waiting), st.kv.num_used)
        rows.append(row if tier is None else (*row, tier.host.used))
        yield env.timeout(sample_s)


def record_timeline(scenario: Scenario, replica_index: int = 0, until_s: float = 60.0, sample_s: float = 0.05,
                    profile: Profile | None = None) -> Timeline:
    """Run ``scenario`` for ``until_s`` simulated seconds and record replica ``replica_index``."""
    if not 0 <= replica_index < scenario.fleet.replicas:
        raise InputError(f"replica_index = {replica_index}: expected 0..{scenario.fleet.replicas - 1}")
    if not until_s > 0 or not sample_s > 0:
        raise InputError(f"until_s = {until_s}, sample_s = {sample_s}: expected numbers > 0")
    sc = replace(scenario, run=replace(scenario.run, power_resolution_s=sample_s),
                 engine=replace(scenario.engine, step_skipping=False))
    profile = profile if profile is not None else load_profile(sc.profile)
    world = build(sc, profile)
    env, num_blocks = world.env, world.num_blocks
    rows: list = []
    rep = world.replicas[replica_index]
    tier = world.ctx.kv_tiers[replica_index] if world.ctx.kv_tiers is not None else None
    env.process(_sampler(env, rep, sample_s, until_s, rows, tier))
    env.run(until=until_s)
    rep.finish(until_s)
    block = sc.engine.block_size_tokens
    samples = pd.DataFrame(rows, columns=["time_s", "prefill", "decode", "waiting", "kv_used_blocks"]
                           + (["host_kv_used_blocks"] if tier is not None else []))
    samples["kv_used_tokens"] = samples.pop("kv_used_blocks") * block
    samples["kv_used_share"] = samples["kv_used_tokens"] / (num_blocks * block)
    if tier is not None:
        samples["host_kv_used_tokens"] = samples.pop("host_kv_used_blocks") * block
        samples["host_kv_used_share"] = samples["host_kv_used_tokens"] / max(1, tier.host.capacity * block)
    t, width, cols = rep.bins.columns(until_s)
    power = pd.DataFrame({"time_s": t, "width_s": width, "gpu_power_w": cols["energy_j"] / width,
                          "busy_share": cols["busy_s"] / width, "idle_tool_share": cols["idle_tool_s"] / width,
                          "idle_empty_share": cols["idle_empty_s"] / width})
    return Timeline(samples=samples, power=power, calls=world.recorder.calls_frame(), replica_index=replica_index,
                    kv_capacity_tokens=num_blocks * block, idle_w=rep.idle_w)


def plot_timeline(tl: Timeline, path: str | Path, title: str | None = None) -> Path:
    """Three stacked panels sharing the time axis: batch composition, KV use, GPU power."""
    from agentwatt.sim.plots import integer_ticks, pyplot, save_figure
    plt = pyplot()
    s, p = tl.samples, tl.power
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    a.stackplot(s["time_s"], s["decode"], s["prefill"], s["waiting"], step="post",
                labels=["decoding", "reading prompt (prefill)", "waiting for admission"], alpha=0.85)
    a.set_ylabel("requests")
    integer_ticks(a.yaxis)
    a.legend(fontsize=8, loc="upper left")
    a.set_title(title or f"replica {tl.replica_index}: continuous batching over time")
    b.plot(s["time_s"], 100 * s["kv_used_share"], drawstyle="steps-post", lw=1, label="GPU")
    if "host_kv_used_share" in s:
        b.plot(s["time_s"], 100 * s["host_kv_used_share"], drawstyle="steps-post", lw=1, label="host tier")
        b.legend(fontsize=8, loc="upper left")
    b.set_ylabel("KV cache in use (%)")
    b.set_ylim(bottom=0)
    c.plot(p["time_s"], p["gpu_power_w"], drawstyle="steps-post", lw=1, label="GPU power (all GPUs of the replica)")
    idle = p["idle_tool_share"] > 0.5
    if idle.any():
        c.fill_between(p["time_s"], 0, p["gpu_power_w"].max() * 1.05, where=idle, step="post", color="orange",
                       alpha=0.2, label="idle: every session here waits on a tool")
    c.set_ylabel("power (W)")
    c.set_xlabel("simulated time (s)")
    c.set_ylim(bottom=0)
    c.legend(fontsize=8, loc="upper left")
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
    return save_figure(fig, Path(path))
