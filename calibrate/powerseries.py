"""A power time series from an energy meter, sampled in a background thread.

The sampler reads the meter's energy counter (``Meter.read_state``) every ``1/hz`` seconds and,
whenever the counter advanced, records the interval and its mean watts (energy / time). The NVML
counter steps every ~20-100 ms (docs/power.md §1.4), so at 20 Hz some reads see no change; those are
merged into the next interval instead of giving 0 W. RAPL counters advance every ~1 ms.

``energy_j(t0, t1)`` integrates the piecewise-constant series over any window (a serving step),
which is how ``calibrate check`` attributes energy to steps and then to requests.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from agentwatt.calibrate.meters import Meter


@dataclass
class PowerSeries:
    """Intervals ``[t0[i], t1[i])`` (seconds on the sampler's clock) at ``watts[i]``."""

    t0: np.ndarray
    t1: np.ndarray
    watts: np.ndarray
    source: str
    failures: list[str] = field(default_factory=list)

    @property
    def mid_s(self) -> np.ndarray:
        return 0.5 * (self.t0 + self.t1)

    def energy_j(self, start: float, end: float) -> float | None:
        """Joules in ``[start, end)``; ``None`` when the series does not cover the window."""
        if len(self.t0) == 0 or start < self.t0[0] - 1e-9 or end > self.t1[-1] + 1e-9:
            return None
        overlap = np.clip(np.minimum(self.t1, end) - np.maximum(self.t0, start), 0.0, None)
        return float(np.sum(overlap * self.watts))


class PowerSampler:
    """``with PowerSampler(meter) as s: ...`` then ``s.series``. Times are ``clock() - origin``."""

    def __init__(self, meter: Meter, hz: float = 20.0, clock: Callable[[], float] = time.perf_counter,
                 origin: float = 0.0):
        self.meter, self.period, self.clock, self.origin = meter, 1.0 / hz, clock, origin
        self._rows: list[tuple[float, float, float]] = []
        self._failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentwatt-power-sampler", daemon=True)
        self.series: PowerSeries | None = None

    def __enter__(self) -> "PowerSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        rows = np.array(self._rows, dtype=float).reshape(-1, 3)
        self.series = PowerSeries(t0=rows[:, 0], t1=rows[:, 1], watts=rows[:, 2], source=self.meter.source,
                                  failures=self._failures[:10])

    def _read(self) -> tuple[float, object, str | None]:
        _, state, err = self.meter.read_state()
        return self.clock() - self.origin, state, err

    def _run(self) -> None:
        prev: tuple[float, object] | None = None   # last good read
        while True:
            t, state, err = self._read()
            if err is not None:
                self._failures.append(err)
                prev = None
            elif prev is None:
                prev = (t, state)
            else:
                joules, _ = self.meter.energy_between(prev[1], state, t - prev[0])
                if joules is not None:      # else the counter did not advance yet: widen the interval
                    self._rows.append((prev[0], t, joules / (t - prev[0])))
                    prev = (t, state)
            if self._stop.is_set():    # one last read after stop() so the series reaches the end
                return
            self._stop.wait(self.period)
