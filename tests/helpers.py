"""Plain helpers shared by the tests (fixtures are in tests/conftest.py)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ENV = "AGENTWATT_SHARED"


def find_shared_dir() -> Path | None:
    """The shared data folder: ``$AGENTWATT_SHARED`` if set, else ``../shared`` beside the repository;
    None when that folder does not exist."""
    env = os.environ.get(SHARED_ENV)
    path = Path(env) if env else REPO_ROOT.parent / "shared"
    return path if path.is_dir() else None


def tiny_scenario(*, name: str = "tiny", seed: int, rate_per_s: float, drain_timeout_s: int = 300,
                  agent: str = "react-hotpotqa") -> str:
    """A 20-second, one-replica scenario on the bundled 8B/A100 profile, one workload class."""
    return f"""
name = "{name}"
profile = "llama-3.1-8b_a100-40gb"
[run]
seed = {seed}
duration_s = 20
drain_timeout_s = {drain_timeout_s}
[fleet]
replicas = 1
[[workload]]
agent = "{agent}"
rate_per_s = {rate_per_s}
"""



def mix_scenario(*, name: str, seed: int) -> str:
    """A 30-second, two-replica chatbot + ReAct mix on the bundled 8B/A100 profile (the report tests')."""
    return f"""
name = "{name}"
profile = "llama-3.1-8b_a100-40gb"
[run]
seed = {seed}
duration_s = 30
drain_timeout_s = 300
[fleet]
replicas = 2
[[workload]]
mix = {{ chatbot-sharegpt = 0.6, react-hotpotqa = 0.4 }}
rate_per_s = 1.5
"""

def one_error_line(result) -> str:
    """The single ``error: ...`` line of a CliRunner result that exited with a usage/input error (2)."""
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# A scenario body with one chatbot class: BASE.format(replicas=..., rate=...)
CHATBOT_BASE = '''
[fleet]
replicas = {replicas}
[[workload]]
agent = "chatbot-sharegpt"
rate_per_s = {rate}
'''
