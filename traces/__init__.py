"""Workloads for the simulator: sessions (DAGs of LLM and tool calls), how they are generated
(``agents``), when they arrive (``arrivals``) and how recorded traces are read (``loaders``).

Import the submodule you need, e.g. ``from agentwatt.traces.agents import make_agent``; importing
the package itself loads nothing else.
"""
