"""Where sweep runs execute: in this process, or on Dask workers (a local cluster or yours).

A run travels as plain data (scenario path, its SHA-256, overrides, seed) and comes back as the
JSON-able summary dict, so a worker rebuilds everything itself and any worker gives the same
summary for the same run (``wall_time_s`` aside). Runners yield runs as they finish; the caller
stores each one at once, so a worker killed mid-sweep or a Ctrl-C loses only unfinished runs.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator

from agentwatt.core.errors import AgentwattError, InputError
from agentwatt.plan.store import RunSpec

RETRIES = 3   # a run whose task raises is retried this often; lost workers are retried by Dask itself


LOOPBACK = "127.0.0.1"


def scenario_sha256(path: str | None) -> str:
    """SHA-256 of the scenario file's bytes (of the built-in default when ``path`` is None)."""
    from agentwatt.sim.scenario import default_scenario_path
    p = default_scenario_path() if path is None else Path(path)
    try:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found on {socket.gethostname()}: expected a scenario TOML file "
                         f"(with --scheduler, every worker must see it at the same path)") from None


def inputs_sha256(scenario: str | None, params: dict[str, Any]) -> str:
    """SHA-256 over the contents of the files the scenario with overrides ``params`` refers to (a
    profile JSON, trace files; bundled ones are covered by the agentwatt version); "" when none."""
    from agentwatt.sim.scenario import load_scenario
    from agentwatt.traces.loaders import BUNDLED_TRACES
    sc = load_scenario(scenario, params or None)
    files = [sc.profile] if Path(sc.profile).is_file() else []
    files += [w.trace for w in sc.workload if w.trace is not None and w.trace not in BUNDLED_TRACES]
    if not files:
        return ""
    h = hashlib.sha256()
    for f in sorted(set(files)):
        h.update(f.encode("utf-8") + b"\0" + hashlib.sha256(Path(f).read_bytes()).digest())
    return h.hexdigest()


def run_point(scenario: str | None, overrides: dict[str, Any], seed: int,
              expected_sha256: str | None = None) -> dict[str, Any]:
    """The task: load the scenario with ``overrides``, simulate with ``seed``, return the summary."""
    from agentwatt.sim.run import run
    from agentwatt.sim.scenario import load_scenario
    if expected_sha256 is not None and scenario_sha256(scenario) != expected_sha256:
        raise InputError(f"{scenario}: differs on worker {socket.gethostname()} from the client's copy "
                         f"(SHA-256 {expected_sha256[:12]}…): expected the same file everywhere")
    return run(load_scenario(scenario, overrides).with_seed(seed)).summary


def describe_run(spec: RunSpec) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in spec.params.items()) or "no overrides"
    return f"run ({params}; seed {spec.seed})"


class SerialRunner:
    """Runs one after another in this process (``--serial`` / ``--workers 1``)."""

    slots = 1

    def describe(self) -> str:
        return "in-process (serial)"

    def run(self, specs: Iterable[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        for spec in specs:
            yield spec, _call(spec, lambda: run_point(spec.scenario, spec.params, spec.seed, spec.scenario_sha256))

    def close(self) -> None:
        pass


class DaskRunner:
    """Runs on a ``dask.distributed`` cluster: a new ``LocalCluster`` (processes, one thread each)
    or, with ``scheduler``, an existing cluster used as it is."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None, retries: int = RETRIES):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise AgentwattError("dask is not installed: pip install dask distributed, or use --serial") from None
        self.retries = retries
        self.cluster = None
        if scheduler is not None:
            try:
                self.client = Client(scheduler, timeout="15s")
            except (OSError, TimeoutError, ValueError) as e:
                raise InputError(f"--scheduler {scheduler}: cannot connect ({e}): expected tcp://HOST:PORT "
                                 f"of a running dask scheduler") from None
        else:
            # loopback only: a LocalCluster's scheduler and dashboard run any pickled task sent to
            # them, so they must not listen on the machine's other interfaces (README: sweeps on Dask)
            self.cluster = LocalCluster(n_workers=workers or available_cores(), processes=True,
                                        threads_per_worker=1, host=LOOPBACK, dashboard_address=f"{LOOPBACK}:0",
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster)

    @property
    def slots(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def describe(self) -> str:
        where = "local cluster" if self.cluster is not None else f"cluster at {self.client.scheduler.address}"
        return f"dask {where}, {self.slots} worker thread(s)"

    def run(self, specs: Iterable[RunSpec]) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
        from distributed import as_completed
        pending = {self.client.submit(run_point, s.scenario, s.params, s.seed, s.scenario_sha256,
                                      key=f"agentwatt-run-{s.key}", retries=self.retries): s for s in specs}
        try:
            for fut in as_completed(list(pending), loop=self.client.loop):   # this client's loop, not the default's
                spec = pending.pop(fut)
                yield spec, _call(spec, fut.result)
        finally:
            if pending:
                self.client.cancel(list(pending))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _call(spec: RunSpec, fn) -> dict[str, Any]:
    """``fn()``, with project errors re-raised naming the run they came from."""
    try:
        return fn()
    except AgentwattError as e:
        raise type(e)(f"{describe_run(spec)}: {e}") from None
    except Exception as e:
        if type(e).__name__ == "KilledWorker":
            raise AgentwattError(f"{describe_run(spec)}: lost with its worker too often ({e}): see the "
                                 f"workers' logs (memory?)") from None
        raise


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def open_runner(scheduler: str | None = None, workers: int | None = None, serial: bool = False):
    """The runner the flags ask for: ``--serial``/``--workers 1`` in-process, ``--scheduler`` an
    existing cluster, otherwise a local cluster with ``--workers`` (default: all cores)."""
    if scheduler is not None and (serial or workers is not None):
        raise InputError(f"--scheduler {scheduler}: not used with --serial or --workers: the cluster's own "
                         f"workers run the sweep")
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: expected an integer >= 1")
    if serial or workers == 1:
        return SerialRunner()
    return DaskRunner(scheduler=scheduler, workers=workers)
