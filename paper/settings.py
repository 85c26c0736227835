"""How big each part of the report's simulation is: the full run and ``--fast`` (for tests).

The full run keeps the paper's 50 questions per design point (docs/paper.md §1.2 [Q]) for the
one-request-at-a-time rows and a few hundred seconds of Poisson arrivals per load point; it takes
a few minutes on two cores. ``--fast`` keeps every section and every row but uses a handful of
sessions and coarse rate grids, so its numbers are noisy: it exists to exercise the code.
"""
from __future__ import annotations

from dataclasses import dataclass

# Table II (docs/paper.md §1.2): which agent runs on which benchmark.
DESIGN_POINTS = (
    "cot-hotpotqa", "cot-math", "cot-humaneval",
    "react-hotpotqa", "react-webshop", "react-math", "react-humaneval",
    "reflexion-hotpotqa", "reflexion-webshop", "reflexion-math", "reflexion-humaneval",
    "lats-hotpotqa", "lats-webshop", "lats-math", "lats-humaneval",
    "llmcompiler-hotpotqa", "llmcompiler-webshop",
)
LOAD_WORKLOADS = ("chatbot-sharegpt", "react-hotpotqa", "react-webshop")


@dataclass(frozen=True)
class Settings:
    fast: bool
    seed: int = 1
    design_sessions: int = 50          # per design point, one request at a time (the paper's 50 questions)
    fig7_sessions: int = 1000          # ShareGPT / ReAct alone: enough for a stable p95 (WebShop's tail is 6 %)
    load_duration_s: float = 400.0     # Poisson arrivals per load point
    rates: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("chatbot-sharegpt", (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)),
        ("react-hotpotqa", (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)),
        ("react-webshop", (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)),
    )
    rates_no_cache: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("chatbot-sharegpt", (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)),
        ("react-hotpotqa", (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)),
        ("react-webshop", (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)),
    )
    kv_duration_s: float = 1200.0      # Fig. 12's low-load runs
    budget_sessions: int = 200         # Fig. 14 per iteration budget
    width_sessions: int = 40           # Fig. 16 per width / reflection count
    table3_sessions: int = 40          # Table III per row
    knob_sessions: int = 30            # Table III: sessions per stratum for the knob search (estimated, not simulated)
    seed_tries: int = 40               # Table III: seeds tried for a sample of the paper's latency
    batched_users: tuple[int, ...] = (2, 4, 8, 16, 32)   # Table IV: users per replica tried, in order
    batched_rounds: int = 2            # Table IV: sessions per user ...
    batched_max_sessions: int = 32     # ... but at most this many sessions per run (at least one per user)


FULL = Settings(fast=False)
FAST = Settings(
    fast=True, design_sessions=3, fig7_sessions=12, load_duration_s=40.0,
    rates=(("chatbot-sharegpt", (3, 6, 9)), ("react-hotpotqa", (0.5, 1.0, 2.0)), ("react-webshop", (0.5, 1.0, 2.0))),
    rates_no_cache=(("chatbot-sharegpt", (3, 6, 9)), ("react-hotpotqa", (0.2, 0.5)), ("react-webshop", (0.2, 0.5))),
    kv_duration_s=150.0, budget_sessions=6, width_sessions=2, table3_sessions=2, knob_sessions=4, seed_tries=5,
    batched_users=(2,), batched_rounds=1,
)
