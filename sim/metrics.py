"""Recording during a run (append rows; no statistics here) and the energy time series."""
from __future__ import annotations

import math

import numpy as np

CALL_COLUMNS = ("session_id", "node_id", "agent", "replica", "submit_s", "first_token_s",
                "finish_s", "prompt_tokens", "cached_tokens", "prefill_computed_tokens",
                "output_tokens", "output_tokens_requested", "preemptions", "energy_j", "status")
SESSION_COLUMNS = ("session_id", "agent", "arrival_s", "finish_s", "n_llm_calls", "n_tool_calls",
                   "tool_time_s", "prompt_tokens", "output_tokens", "energy_j", "status")


class EnergyBinner:
    """Accumulates joules into fixed time bins; power of a bin = its joules / resolution.

    ``add(t0, t1, watts)`` splits a constant-power interval across the bins it covers, so the
    series integrates exactly to the energy added (conservation is tested).
    """

    def __init__(self, resolution_s: float = 1.0) -> None:
        self.resolution_s = resolution_s
        self.bins = np.zeros(1024)
        self.total_j = 0.0

    def _grow(self, idx: int) -> None:
        n = len(self.bins)
        while n <= idx:
            n *= 2
        new = np.zeros(n)
        new[: len(self.bins)] = self.bins
        self.bins = new

    def add(self, t0: float, t1: float, watts: float) -> None:
        if t1 <= t0 or watts == 0.0:
            return
        res = self.resolution_s
        i0 = int(t0 // res)
        i1 = int(t1 // res)
        if i1 >= len(self.bins):
            self._grow(i1)
        if i0 == i1:
            e = watts * (t1 - t0)
            self.bins[i0] += e
            self.total_j += e
            return
        self.bins[i0] += watts * ((i0 + 1) * res - t0)
        if i1 > i0 + 1:
            self.bins[i0 + 1: i1] += watts * res
        self.bins[i1] += watts * (t1 - i1 * res)
        self.total_j += watts * (t1 - t0)

    def series(self, end_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(bin start times, mean watts per bin) up to ``end_s`` (last bin may be partial)."""
        n = max(1, math.ceil(end_s / self.resolution_s - 1e-12))
        if n > len(self.bins):
            self._grow(n)
        t = np.arange(n) * self.resolution_s
        width = np.minimum(self.resolution_s, end_s - t)
        width[width <= 0] = self.resolution_s
        return t, self.bins[:n] / width


class Recorder:
    """Row lists for the per-call and per-session tables."""

    def __init__(self) -> None:
        self.calls: dict[str, list] = {c: [] for c in CALL_COLUMNS}
        self.sessions: dict[str, list] = {c: [] for c in SESSION_COLUMNS}

    def call(self, **row) -> None:
        for c in CALL_COLUMNS:
            self.calls[c].append(row[c])

    def session(self, **row) -> None:
        for c in SESSION_COLUMNS:
            self.sessions[c].append(row[c])
