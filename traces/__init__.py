"""Workloads for the simulator: sessions (DAGs of LLM and tool calls), how they are generated,
when they arrive, how recorded traces are read, and what a workload looks like in numbers.

* ``schema``      Session / LLMCall / ToolCall / Segment (the contract with the simulator);
* ``agents``      the registry (``make_agent``): chatbot, CoT, self-consistency, ReAct, Reflexion,
  LATS, LLMCompiler on the paper's benchmarks; built from ``tasks`` (benchmark token and tool
  distributions) and the strategies ``cot``, ``react``, ``reflexion``, ``lats``, ``llmcompiler``
  (``builder`` assembles their DAGs, ``params`` checks their fields, ``sampling`` draws);
* ``arrivals``    Poisson, recorded times, diurnal, MMPP (``make_arrivals``);
* ``loaders``     Azure 2023, Mooncake, Claude Code, TraceLab, Vidur CSV (``load_trace``), bundled cuts
  in ``data/``; ``readers`` and the ``load_*`` modules hold the per-format code;
* ``stats`` / ``estimate``  workload statistics and single-request latency without the simulator;
* ``cli``         the ``agentwatt workload`` commands.

Import the submodule you need, e.g. ``from agentwatt.traces.agents import make_agent``; importing
the package itself loads nothing else.
"""
