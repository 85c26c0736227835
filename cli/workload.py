"""``agentwatt workload ...``: describe a workload before simulating it.

``workload stats SPEC`` prints the statistics of ``traces.stats.workload_stats`` for SPEC, which is

* an agent name (``react-hotpotqa``; see ``traces.agents.AGENTS``): ``-n`` sessions are generated
  with ``--seed``, each ``--knob K=V`` overriding one field (``--knob iteration_budget=20``);
* a bundled trace name (``mooncake-conv-head1000``; its format is known), or a trace file with
  ``--format`` (one of ``traces.loaders.LOADERS``), at most ``--limit`` sessions.

``--out PATH`` (or ``--json PATH``) also writes the numbers as JSON (atomically). ``workload list``
prints the agent generators and the bundled traces. The click group ``workload_cmd`` is
attached to the main ``agentwatt`` command by ``cli/main.py``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np

from agentwatt.core.errors import AgentwattError, InputError

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class AgentwattGroup(click.Group):
    """Prints an ``AgentwattError`` as one line and exits 2 (``--debug`` of the main command re-raises)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgentwattError as e:
            root = ctx.find_root()
            if isinstance(root.obj, dict) and root.obj.get("debug"):
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)


def parse_knob(text: str) -> tuple[str, Any]:
    """``"k=v"`` → ``(k, v)`` with v an int, float, bool (true/false) or text."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key.isidentifier():
        raise InputError(f"--knob {text!r}: expected K=V, e.g. --knob iteration_budget=20")
    if _INT.fullmatch(raw):
        return key, int(raw)
    if _FLOAT.fullmatch(raw):
        return key, float(raw)
    if raw.lower() in ("true", "false"):
        return key, raw.lower() == "true"
    return key, raw.strip("'\"")


@click.group("workload", cls=AgentwattGroup)
def workload_cmd() -> None:
    """Describe workloads: agent generators and recorded traces."""


@workload_cmd.command("list")
def list_cmd() -> None:
    """The agent generators (for [[workload]] agent = ... or mix) and the bundled traces."""
    from agentwatt.traces.agents import AGENTS, Preset
    from agentwatt.traces.loaders import BUNDLED_FORMATS, BUNDLED_TRACES, LOADERS
    click.echo("agents (agent = NAME; knobs: agentwatt workload stats NAME --knob K=V):")
    width = max(map(len, AGENTS))
    for name, entry in AGENTS.items():
        if isinstance(entry, Preset):
            what = f"{entry.strategy.__name__} on {entry.task.benchmark}, tool {entry.task.tool}"
        else:
            what = " ".join((entry.__doc__ or "").split()).replace("``", "").split(". ")[0].rstrip(".")
        click.echo(f"  {name:<{width}}  {what}")
    click.echo("bundled traces (trace = NAME):")
    width = max(map(len, BUNDLED_TRACES))
    for name, file in BUNDLED_TRACES.items():
        click.echo(f"  {name:<{width}}  format {BUNDLED_FORMATS[name]}, traces/data/{file}")
    click.echo(f"trace formats (format = ...): {', '.join(sorted(LOADERS))}")


@workload_cmd.command("stats")
@click.argument("spec")
@click.option("--knob", "knobs", multiple=True, metavar="K=V", help="Override one agent field (repeatable).")
@click.option("-n", "--sessions", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Sessions to generate (agents).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed (agents).")
@click.option("--format", "fmt", default=None, help="Trace format (a file; bundled traces know theirs).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many trace sessions.")
@click.option("--max-tokens", type=click.IntRange(min=2), default=None, help="Cap prompt + output per call (traces).")
@click.option("--profile", default="llama-3.1-8b_a100-40gb", show_default=True,
              help="Profile for the single-request latency estimate.")
@click.option("--no-latency", is_flag=True, help="Skip the single-request latency estimate.")
@click.option("--no-prefix-reuse", is_flag=True, help="Skip the prefix-reuse count (the slowest part).")
@click.option("--out", "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the statistics as JSON to this file.")
def stats_cmd(spec: str, knobs: tuple[str, ...], sessions: int, seed: int, fmt: Optional[str], limit: Optional[int],
              max_tokens: Optional[int], profile: str, no_latency: bool, no_prefix_reuse: bool,
              json_path: Optional[Path]) -> None:
    """Statistics of SPEC: an agent name, a bundled trace name or a trace file."""
    from agentwatt.core.io import atomic_write_json
    from agentwatt.traces.stats import format_stats, workload_stats
    source, stream = _sessions(spec, knobs, sessions, seed, fmt, limit, max_tokens)
    model = None
    if not no_latency:
        from agentwatt.core.profile import load_profile
        model = load_profile(profile).latency
        source["latency_profile"] = profile
    result = workload_stats(stream, latency_model=model, prefix_reuse=not no_prefix_reuse)
    click.echo(format_stats(result, title=source["title"]))
    if json_path is not None:
        atomic_write_json(json_path, {"source": source, "stats": result})
        click.echo(f"wrote {json_path}")


def _sessions(spec: str, knobs: tuple[str, ...], n: int, seed: int, fmt: Optional[str], limit: Optional[int],
              max_tokens: Optional[int]) -> tuple[dict, Any]:
    from agentwatt.traces.agents import AGENTS, generate_sessions, make_agent
    from agentwatt.traces.loaders import BUNDLED_FORMATS, BUNDLED_TRACES, LOADERS, load_trace
    if spec in AGENTS:
        if fmt or limit or max_tokens:
            raise InputError(f"{spec}: --format/--limit/--max-tokens are for traces: expected -n, --seed, --knob")
        parsed = dict(parse_knob(k) for k in knobs)
        agent = make_agent(spec, **parsed)
        stream = generate_sessions(agent, np.random.default_rng(seed), (0.0 for _ in range(n)))
        title = f"agent {spec} ({n} sessions, seed {seed}{', ' if parsed else ''}" \
                f"{', '.join(f'{k}={v}' for k, v in parsed.items())})"
        return {"kind": "agent", "agent": spec, "knobs": parsed, "sessions": n, "seed": seed, "title": title}, stream
    if knobs:
        raise InputError(f"{spec}: --knob is for agents: expected an agent name, one of {', '.join(sorted(AGENTS))}")
    if spec in BUNDLED_TRACES:
        fmt = fmt or BUNDLED_FORMATS[spec]
    elif not Path(spec).is_file():
        raise InputError(f"{spec}: not an agent, a bundled trace or a file: expected an agent "
                         f"({', '.join(sorted(AGENTS))}), a bundled trace ({', '.join(sorted(BUNDLED_TRACES))}) "
                         f"or a trace path")
    elif fmt is None:
        raise InputError(f"{spec}: --format missing: expected one of {', '.join(sorted(LOADERS))}")
    stream = load_trace(fmt, spec, limit=limit, max_tokens=max_tokens)
    title = f"trace {spec} (format {fmt}{f', limit {limit}' if limit else ''})"
    return {"kind": "trace", "trace": spec, "format": fmt, "limit": limit, "max_tokens": max_tokens,
            "title": title}, stream
