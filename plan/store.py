"""The resumable result store of a sweep: one small JSON file per finished point × seed.

    DIR/points/<key>.json    one finished run: {key, point, params, seed, scenario, summary}
    DIR/sweep.parquet        one row per point × seed, rebuilt from the point files

A point file is written atomically (temp file + rename) as soon as its run finishes, so an
interrupted sweep keeps every finished run and a rerun skips them. The key hashes the scenario
file's bytes, the contents of the files it refers to with the point's overrides (a profile JSON,
trace files; ``RunSpec.inputs_sha256``), the overrides (a number by value: ``1`` and ``1.0`` are
one point), the seed and the agentwatt version: editing the scenario, recalibrating a profile,
editing a trace or upgrading starts fresh points instead of reusing stale ones. Unreleased code
changes are not hashed: delete ``DIR/points`` then.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from agentwatt.core import __version__
from agentwatt.core.errors import InputError
from agentwatt.core.io import atomic_write, atomic_write_json

FORMAT = 1
POINTS_DIR = "points"


def _digest(obj: Any, n: int = 20) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _by_value(params: dict[str, Any]) -> dict[str, Any]:
    """Overrides as the run sees them: an integral float is the integer (``1.0`` → ``1``: a float
    field reads both as 1.0, an integer field refuses 1.0), so one run is never stored twice."""
    return {k: int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v
            for k, v in params.items()}


def _identity(scenario_sha256: str, params: dict[str, Any], inputs_sha256: str) -> dict[str, Any]:
    d = {"scenario": scenario_sha256, "params": _by_value(params), "agentwatt": __version__}
    if inputs_sha256:   # only when the scenario refers to files of its own (keys of others unchanged)
        d["inputs"] = inputs_sha256
    return d


def point_id(scenario_sha256: str, params: dict[str, Any], inputs_sha256: str = "") -> str:
    """Identifies a grid point (scenario + referenced files + overrides), the same for every seed."""
    return _digest(_identity(scenario_sha256, params, inputs_sha256), 12)


def point_key(scenario_sha256: str, params: dict[str, Any], seed: int, inputs_sha256: str = "") -> str:
    """Identifies one run: a grid point with one seed; also its file name."""
    return _digest({**_identity(scenario_sha256, params, inputs_sha256), "seed": seed})


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One run to do, as plain data: what a worker needs to reproduce it anywhere."""

    scenario: str | None          # scenario path (None: the built-in default scenario)
    scenario_sha256: str
    params: dict[str, Any]        # dotted-key overrides, e.g. {"fleet.replicas": 8}
    seed: int
    inputs_sha256: str = ""       # the files the scenario refers to (runners.inputs_sha256); "" none

    @property
    def key(self) -> str:
        return point_key(self.scenario_sha256, self.params, self.seed, self.inputs_sha256)

    @property
    def point(self) -> str:
        return point_id(self.scenario_sha256, self.params, self.inputs_sha256)


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars of a nested summary under dotted names (``by_agent.react-hotpotqa.session_e2e_s.p99``).
    Lists (provenance notes, references) are left out: they are not metrics."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[name] = v
    return out


class ResultStore:
    """Finished runs of a sweep under ``root``; safe to read while a sweep is writing."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.points_dir = self.root / POINTS_DIR
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"{self.root}: not a folder: expected a folder for sweep results")

    def path(self, key: str) -> Path:
        return self.points_dir / f"{key}.json"

    def has(self, spec: RunSpec) -> bool:
        return self.path(spec.key).exists()

    def put(self, spec: RunSpec, summary: dict[str, Any]) -> Path:
        record = {"format": FORMAT, "key": spec.key, "point": spec.point, "params": spec.params,
                  "seed": spec.seed, "scenario": spec.scenario, "scenario_sha256": spec.scenario_sha256,
                  "summary": summary}
        return atomic_write_json(self.path(spec.key), record)

    def get(self, spec: RunSpec) -> dict[str, Any] | None:
        """The stored record of ``spec``, or None if it has not finished."""
        p = self.path(spec.key)
        try:
            record = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"{p}: unreadable point file ({e}): expected JSON written by agentwatt sweep; "
                             f"delete it to rerun that point") from None
        if record.get("key") != spec.key or record.get("format") != FORMAT:
            raise InputError(f"{p}: holds another run (key {record.get('key')!r}, format "
                             f"{record.get('format')!r}): expected key {spec.key}, format {FORMAT}")
        return record

    def table(self, specs: Iterable[RunSpec]) -> pd.DataFrame:
        """One row per finished spec, in the order given; specs not finished are left out."""
        rows = []
        for spec in {s.key: s for s in specs}.values():
            record = self.get(spec)
            if record is not None:
                rows.append(record_row({**record, "params": spec.params}))   # columns in grid order
        return rows_to_frame(rows)


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """A table row: identity and ``param.*`` columns first, then every scalar summary metric."""
    row: dict[str, Any] = {"point": record["point"], "seed": record["seed"], "key": record["key"]}
    row.update({f"param.{k}": v for k, v in record["params"].items()})
    for k, v in flatten(record["summary"]).items():
        row.setdefault(k, v)
    return row


def rows_to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if v is not None and v == v}
            if len(kinds) > 1:       # e.g. a parameter swept over 1 and "auto": Parquet needs one type
                df[col] = df[col].map(lambda v: None if v is None else str(v))
    return df


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False, engine="pyarrow"))
