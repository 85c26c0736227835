"""What every example shares: its command line (an output folder and ``--fast``) and a one-line
way to build a scenario from a dict. Not an example itself."""
from __future__ import annotations

import argparse
from pathlib import Path

from agentwatt.sim.scenario import Scenario, scenario_from_dict

EXAMPLES = Path(__file__).resolve().parent


def parse_args(name: str, doc: str | None, argv: list[str] | None = None) -> tuple[Path, bool]:
    """(output folder, fast): the folder defaults to examples/out/<name>/."""
    p = argparse.ArgumentParser(prog=f"{name}.py", description=(doc or "").split("\n\n")[0])
    p.add_argument("out", nargs="?", type=Path, default=EXAMPLES / "out" / name,
                   help="folder for the PNG plots (default: examples/out/%(prog)s without .py)")
    p.add_argument("--fast", action="store_true", help="a much smaller run (seconds), for tests")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    return a.out, a.fast


def scenario(name: str, workload: list[dict], *, profile: str = "llama-3.1-8b_a100-40gb", seed: int = 1,
             duration_s: float = 1e9, drain_s: float = 1e9, replicas: int = 1, engine: dict | None = None,
             facility: dict | None = None, resolution_s: float = 1.0) -> Scenario:
    """A scenario as the TOML file would describe it (see README.md, "Scenario file")."""
    return scenario_from_dict({
        "name": name, "profile": profile,
        "run": {"seed": seed, "duration_s": duration_s, "drain_timeout_s": drain_s,
                "power_resolution_s": resolution_s},
        "fleet": {"replicas": replicas}, "engine": engine or {}, "facility": facility or {},
        "workload": workload,
    })


def one_at_a_time(agent: str, sessions: int, knobs: dict | None = None) -> list[dict]:
    """The paper's measurement mode: one user running sessions back to back."""
    return [{"agent": agent, "arrival": "closed", "concurrency": 1, "sessions": sessions, "knobs": knobs or {}}]


def plt():
    """matplotlib.pyplot with a file-only backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    return pyplot


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt().close(fig)
    print(f"wrote {path}")
    return path
