"""Traces are streamed: the loader reads the file as its rows are asked for and keeps none of them."""
import sys

import numpy as np

from agentwatt.traces import loaders

LINES = 200_000


def _write_azure(path, n: int) -> None:
    rng = np.random.default_rng(0)
    times = np.datetime64("2023-11-16T18:15:46.680590", "us") + np.cumsum(
        rng.exponential(1 / 5.5, n) * 1e6).astype("timedelta64[us]")
    stamps = np.char.replace(np.datetime_as_string(times, unit="us"), "T", " ")
    tokens = rng.integers(1, 4000, size=(n, 2))
    with open(path, "w", encoding="utf-8") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        f.write("".join(f"{s}0,{a},{b}\n" for s, (a, b) in zip(stamps.tolist(), tokens.tolist())))


def test_a_200k_line_trace_streams_in_bounded_memory(tmp_path, monkeypatch):
    p = tmp_path / "long.csv"
    _write_azure(p, LINES)
    size = p.stat().st_size
    opened = []

    def spy_open(*args, **kwargs):
        f = open(*args, **kwargs)
        opened.append(f)
        return f

    monkeypatch.setattr(loaders, "open", spy_open, raising=False)   # the loader's own open() of the trace
    stream = loaders.load_trace("azure-2023", p)
    assert not opened                              # nothing is read until the first row is asked for
    first = next(stream)
    assert first.id == 0 and len(opened) == 1
    assert opened[0].tell() < 100, opened[0].tell()   # the first row is yielded after reading two lines
    # Python memory blocks every 20k rows: a loader that kept rows (a list of lines or sessions) would
    # add >= 1 block per row (200k in all); streaming keeps one row at a time, so the count stays flat.
    blocks, n, last = [], 1, first
    for last in stream:
        n += 1
        if n % 20_000 == 0:
            blocks.append(sys.getallocatedblocks())
    assert n == LINES and last.id == LINES - 1 and opened[0].closed
    assert size > 7_000_000
    assert max(blocks) - min(blocks) < 5_000, blocks
