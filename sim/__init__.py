"""The simulator: a SimPy fleet of vLLM-like replicas behind a router, replaying agent sessions.

Pure model code (no SimPy): ``batching`` (step composition), ``kv`` (blocks, prefix cache),
``facility`` (GPU → server → rack → site watts). The SimPy shell: ``replica``, ``energy``
(a replica's books), ``router``, ``session``, ``workload``, ``fleet`` (``build``). ``run`` turns a
scenario into ``Results``; ``report`` summarises result tables; ``output``/``plots`` write them.
Start reading at ``sim/run.py``.
"""
