"""Chatbot vs agent: GPU energy per task.

Covers: closed-loop "one request at a time" runs (the paper's measurement mode), ``gpu_energy_j``,
``gpu_time_split`` (busy vs idle while tools run) and ``by_agent`` call counts.

Scenario: one A100-40GB serving Llama-3.1-8B answers ShareGPT chat prompts, then runs ReAct,
Reflexion and LATS agents on HotpotQA, one task at a time. An agent task makes many LLM calls and
waits for Wikipedia between them; the GPU still draws idle power while it waits. Look at how many
chatbot answers one agent task costs, and how much of that is the GPU idling (paper Table III:
62–137× a chatbot query).
"""
from __future__ import annotations

import sys

import numpy as np
from _common import one_at_a_time, parse_args, plt, save, scenario

from agentwatt.sim.run import run

WORKLOADS = ("chatbot-sharegpt", "react-hotpotqa", "reflexion-hotpotqa", "lats-hotpotqa")


def main(argv: list[str] | None = None) -> None:
    out, fast = parse_args("chatbot_vs_agent_energy", __doc__, argv)
    n = 3 if fast else 30
    rows = {}
    for agent in WORKLOADS:
        s = run(scenario(agent, one_at_a_time(agent, n))).summary
        split = s["gpu_time_split"]
        rows[agent] = {"wh": s["gpu_energy_j"] / s["sessions_completed"] / 3600,
                       "idle_wh": s["gpu_idle_tool_energy_j"] / s["sessions_completed"] / 3600,
                       "calls": s["by_agent"][agent]["llm_calls_per_session"],
                       "idle_share": split["idle_tool_s"] / sum(split.values())}
    base = rows["chatbot-sharegpt"]["wh"]
    for agent, r in rows.items():
        print(f"{agent:<20} {r['calls']:6.1f} LLM calls  {r['wh']:8.3f} Wh/task  = {r['wh'] / base:6.1f} chatbot answers"
              f"  (GPU idle {100 * r['idle_share']:.0f} % of the time)")
    p = plt()
    fig, ax = p.subplots(figsize=(7, 3.8))
    x = np.arange(len(rows))
    busy = [r["wh"] - r["idle_wh"] for r in rows.values()]
    ax.bar(x, busy, label="GPU busy (prefill + decode)")
    ax.bar(x, [r["idle_wh"] for r in rows.values()], bottom=busy, label="GPU idle while tools run")
    for i, r in enumerate(rows.values()):
        ax.text(i, r["wh"], f"{r['wh'] / base:.0f}×", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, list(rows), fontsize=8)
    # a linear axis: stacked bars on a log axis hide the smallest bar (the chatbot's) and misstate the shares
    ax.set_ylabel("GPU Wh per task")
    ax.margins(y=0.1)
    ax.set_title("One task at a time on one A100 (label: × a chatbot answer)")
    ax.legend(fontsize=8)
    save(fig, out / "energy_per_task.png")


if __name__ == "__main__":
    sys.exit(main())
