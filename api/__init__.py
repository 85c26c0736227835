"""agentwatt: what serving AI agents costs a datacenter (GPUs, power, queueing, tail latency).

The Python API (defined in ``agentwatt.api``, loaded on first use so that ``import agentwatt.core``
and ``agentwatt --help`` stay light):

* ``load_scenario(source=None, overrides=None, **overrides)`` → ``Scenario``
* ``run(scenario, *, profile=None, sessions=None, seed=None)`` → ``Results``
* ``sweep(scenario, grid, seeds=1, out=None, workers=1)`` → ``SweepResults``
* ``plan(scenario, slo, param="fleet.replicas", lo=1, hi=64, seeds=3, out=None)`` → ``PlanResults``
"""
import functools
import importlib
import sys
import types

from agentwatt.core import __version__

_API = ("load_scenario", "run", "sweep", "plan", "Results", "SweepResults", "PlanResults", "Scenario",
        "scenario_to_dict")

__all__ = ["__version__", *_API]


class _PlanFunction:
    """``agentwatt.plan``: the API function, whose attributes are the subpackage ``agentwatt.plan``'s
    (``agentwatt.plan.sweep`` is the module ``plan/sweep.py``), so both names keep working."""

    def __init__(self, fn) -> None:
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        return self.__wrapped__(*args, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        package = importlib.import_module("agentwatt.plan")
        try:
            return getattr(package, name)
        except AttributeError:
            pass
        try:
            return importlib.import_module(f"agentwatt.plan.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"agentwatt.plan has no attribute {name!r}") from None

    def __repr__(self) -> str:
        return "<function agentwatt.plan (the subpackage's modules are its attributes)>"


class _Root(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        # importing agentwatt.plan.* makes the import system set agentwatt.plan to the subpackage:
        # agentwatt.plan stays the API function (which reaches the subpackage, see _PlanFunction)
        if name == "plan" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Root


def __getattr__(name: str):
    if name in _API:
        from agentwatt import api
        value = getattr(api, name)
        if name == "plan":
            value = _PlanFunction(value)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agentwatt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
