"""Recording during a run (append rows; no statistics here): the per-call and per-session tables,
the per-bin time series of a replica, and the end-of-run session counters."""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np

CALL_COLUMNS = ("session_id", "node_id", "agent", "replica", "submit_s", "start_s", "first_token_s",
                "finish_s", "prompt_tokens", "cached_tokens", "prefill_computed_tokens",
                "output_tokens", "output_tokens_requested", "preemptions", "energy_j", "status")
SESSION_COLUMNS = ("session_id", "agent", "arrival_s", "finish_s", "n_llm_calls", "n_tool_calls",
                   "tool_time_s", "prompt_tokens", "output_tokens", "energy_j", "idle_energy_j", "status")


class TimeBins:
    """Per-bin accumulators of several channels (e.g. joules, busy seconds) at a fixed resolution.

    ``add(ch, t0, t1, rate)`` spreads ``rate × (t1 − t0)`` over the bins the interval covers, so
    each channel integrates exactly to what was added (conservation is tested).
    """

    def __init__(self, resolution_s: float, channels: tuple[str, ...]) -> None:
        self.resolution_s = resolution_s
        self.channels = {c: i for i, c in enumerate(channels)}
        # compact double arrays: a step's add touches one or two bins, cheaper than numpy scalars
        self.data: list[array] = [array("d", bytes(8 * 256)) for _ in channels]
        self.totals = [0.0] * len(channels)

    def _grow(self, idx: int) -> None:
        n = len(self.data[0])
        while n <= idx:
            n *= 2
        for d in self.data:
            d.extend(array("d", bytes(8 * (n - len(d)))))

    def add(self, ch: str, t0: float, t1: float, rate: float) -> None:
        if t1 <= t0 or rate == 0.0:
            return
        row = self.channels[ch]
        res = self.resolution_s
        i0 = int(t0 // res)
        i1 = int(t1 // res)
        d = self.data[row]
        if i1 >= len(d):
            self._grow(i1)
        self.totals[row] += rate * (t1 - t0)
        if i0 == i1:
            d[i0] += rate * (t1 - t0)
            return
        d[i0] += rate * ((i0 + 1) * res - t0)
        if i1 > i0 + 1:
            full = rate * res
            for i in range(i0 + 1, i1):
                d[i] += full
        d[i1] += rate * (t1 - i1 * res)

    def total(self, ch: str) -> float:
        return float(self.totals[self.channels[ch]])

    def columns(self, end_s: float) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(bin start times, bin widths, {channel: per-bin sums}) up to ``end_s``."""
        n = max(1, math.ceil(end_s / self.resolution_s - 1e-12))
        if n > len(self.data[0]):
            self._grow(n)
        t = np.arange(n) * self.resolution_s
        width = np.minimum(self.resolution_s, end_s - t)
        width[width <= 0] = self.resolution_s
        return t, width, {c: np.frombuffer(self.data[i], dtype=np.float64, count=n).copy()
                          for c, i in self.channels.items()}


# kv_block_s: KV blocks in use × seconds, batch_s: sequences in the step × seconds (the report's timelines)
REPLICA_CHANNELS = ("energy_j", "busy_s", "idle_tool_s", "idle_empty_s", "capped_s", "kv_block_s", "batch_s")


@dataclass(frozen=True)
class RunCounts:
    """Sessions and LLM calls counted by the session processes, at the end of a run."""

    sessions_arrived: int
    sessions_finished: int
    sessions_dropped: int
    sessions_in_flight: int
    calls_submitted: int
    calls_finished: int
    calls_dropped: int


class _Table:
    """Rows appended as Python values, packed every ``chunk_rows`` rows into compact Arrow arrays,
    so a run holds at most one chunk of Python objects however many rows it records."""

    def __init__(self, columns: tuple[str, ...], chunk_rows: int) -> None:
        self.columns = columns
        self.chunk_rows = chunk_rows
        self.buf: dict[str, list] = {c: [] for c in columns}
        self.batches: list = []
        self._frame = None
        self.n = 0

    def append(self, row: dict) -> None:
        buf = self.buf
        for c in self.columns:
            buf[c].append(row[c])
        self.n += 1
        if len(buf[self.columns[0]]) >= self.chunk_rows:
            self._pack()

    def _pack(self) -> None:
        import pyarrow as pa
        if not self.buf[self.columns[0]]:
            return
        arrays = []
        for c in self.columns:
            arr = pa.array(self.buf[c])
            if pa.types.is_string(arr.type):
                arr = arr.dictionary_encode()
            arrays.append(arr)
        self.batches.append(pa.RecordBatch.from_arrays(arrays, names=list(self.columns)))
        self.buf = {c: [] for c in self.columns}

    def frame(self):
        """The whole table as a pandas DataFrame (strings decoded). The packed batches are handed
        over (freed) on the first call; later calls return the same frame."""
        import pandas as pd
        import pyarrow as pa
        if self._frame is not None:
            return self._frame
        self._pack()
        if not self.batches:
            self._frame = pd.DataFrame({c: [] for c in self.columns})
            return self._frame
        batches, self.batches = self.batches, []
        tables = [pa.Table.from_batches([b]) for b in batches]
        del batches
        tables = [t.cast(pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                     for f in t.schema])) for t in tables]
        table = pa.concat_tables(tables, promote_options="permissive")
        del tables
        self._frame = table.to_pandas(self_destruct=True)
        return self._frame


class Recorder:
    """The per-call and per-session tables, recorded as rows during a run."""

    def __init__(self, chunk_rows: int = 65536) -> None:
        self._calls = _Table(CALL_COLUMNS, chunk_rows)
        self._sessions = _Table(SESSION_COLUMNS, chunk_rows)

    def call(self, **row) -> None:
        self._calls.append(row)

    def session(self, **row) -> None:
        self._sessions.append(row)

    def calls_frame(self):
        return self._calls.frame()

    def sessions_frame(self):
        return self._sessions.frame()
