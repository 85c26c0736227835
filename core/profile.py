"""Profile: the fitted latency and power model of one model on one device, with provenance.

A profile is a JSON file (``schema_version`` 1). It is the only thing the simulator knows about
hardware. It is written by ``agentwatt calibrate`` (``source: measured``), by
``calibrate transfer`` (``source: transfer/estimate``), or built from published figures and
shipped with the package (``source: published/estimate``, see ``core/data/``).

Step-time model (one engine step of a continuous-batching server, all devices of a replica)::

    step_s = overhead_s
           + prefill_token_s * P      P = prompt tokens computed in the step (all chunks)
           + prefill_attn_s  * A      A = sum over chunks of chunk * (cached_before + chunk)
           + decode_seq_s    * D      D = sequences that decode one token in the step
           + decode_ctx_s    * C      C = sum of the context lengths (KV tokens read) of those

Power model (watts per device while a step runs)::

    share_prefill = (prefill_token_s*P + prefill_attn_s*A) / (step_s - overhead_s)   (0 if none)
    decode_w(D)   = decode_base_w + decode_log2_batch_w * log2(max(D, 1))
    power_w       = min(max_w, share_prefill*prefill_w + (1 - share_prefill)*decode_w(D))

and ``idle_w`` per device when no step runs. When no meter was available the power block says
``available: false`` with the reason, and every power field is ``null`` (never 0).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from agentwatt.core import step
from agentwatt.core.errors import InputError

SCHEMA_VERSION = 1
SOURCES = ("measured", "published/estimate", "transfer/estimate")
POWER_SOURCES = ("nvml_energy", "rapl", "published", "transfer", "step_trace", "unavailable")


@dataclass(frozen=True, kw_only=True)
class ModelShape:
    """A dense Llama-shaped decoder. Units in names; ``dtype_bytes`` is per weight and KV element."""

    name: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    n_params: int
    dtype_bytes: int

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V, every layer, every KV head (whole model, before TP sharding)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * self.dtype_bytes

    @property
    def weight_bytes(self) -> int:
        return self.n_params * self.dtype_bytes


@dataclass(frozen=True, kw_only=True)
class Hardware:
    """The devices one replica runs on. ``tp`` devices hold one copy of the model."""

    device_name: str
    kind: str  # "gpu" or "cpu"
    tp: int
    mem_gib_per_device: float
    tdp_w_per_device: float | None = None


@dataclass(frozen=True, kw_only=True)
class FitStats:
    """Fit quality: absolute percentage errors on the fitting points and on held-out points."""

    n_points: int
    mape: float
    max_ape: float
    holdout_n_points: int = 0
    holdout_mape: float | None = None
    holdout_max_ape: float | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class LatencyModel:
    overhead_s: float
    prefill_token_s: float
    prefill_attn_s: float
    decode_seq_s: float
    decode_ctx_s: float
    # linear layers as a smooth roofline (0 = absent: the additive model of CPU calibration profiles)
    weight_s: float = 0.0           # reading the dense weights once
    token_s: float = 0.0            # matmul compute per token in the step
    overlap_p: float = 2.0          # smooth-max exponent of the two
    expert_weight_s: float = 0.0    # reading every routed expert's weights (MoE), scaled by the share touched
    experts: int = 1
    experts_per_token: int = 1
    fit: FitStats | None = None

    def step_s(self, prefill_tokens: float, prefill_attn: float, decode_seqs: float, decode_ctx: float) -> float:
        """Seconds for one engine step with the given work (``core/step.py`` holds the formula)."""
        return step.step_s(self, prefill_tokens, prefill_attn, decode_seqs, decode_ctx)

    def prefill_part_s(self, prefill_tokens: float, prefill_attn: float) -> float:
        return step.prefill_part_s(self, prefill_tokens, prefill_attn)

    @property
    def coefficients(self) -> tuple[float, float, float, float, float]:
        return (self.overhead_s, self.prefill_token_s, self.prefill_attn_s, self.decode_seq_s, self.decode_ctx_s)


@dataclass(frozen=True, kw_only=True)
class PowerModel:
    """Watts per device. ``available=False`` means no meter: every number is ``None``."""

    available: bool
    source: str
    reason: str | None = None
    idle_w: float | None = None
    prefill_w: float | None = None
    decode_base_w: float | None = None
    decode_log2_batch_w: float | None = None
    max_w: float | None = None
    # activity model (published-measurement profiles): idle_w is idle with the model loaded, and a
    # step adds compute_w x (share of its time computing) + memory_w x (share streaming HBM)
    compute_w: float | None = None
    memory_w: float | None = None
    parked_w: float | None = None     # no work, no CUDA context (clocks down): a parked or spare GPU
    fit: FitStats | None = None

    @property
    def activity(self) -> bool:
        return self.compute_w is not None

    def activity_w(self, compute_share: float, memory_share: float) -> float:
        """Per-device watts of a step computing ``compute_share`` and streaming ``memory_share`` of its time."""
        w = self.idle_w + self.compute_w * compute_share + self.memory_w * memory_share
        return min(self.max_w, w) if self.max_w is not None else w

    def busy_w(self, prefill_share: float, decode_seqs: float) -> float:
        """Per-device watts during a step whose time is ``prefill_share`` prefill work."""
        if not self.available:
            raise InputError(f"profile power model unavailable ({self.reason}): cannot compute watts")
        dec = self.decode_base_w + self.decode_log2_batch_w * math.log2(max(decode_seqs, 1.0))
        w = prefill_share * self.prefill_w + (1.0 - prefill_share) * dec
        return min(self.max_w, w) if self.max_w is not None else w


@dataclass(frozen=True, kw_only=True)
class Profile:
    name: str
    source: str
    model: ModelShape
    hardware: Hardware
    latency: LatencyModel
    power: PowerModel
    provenance: dict[str, Any]
    measurements: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @property
    def n_devices(self) -> int:
        return self.hardware.tp

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------- I/O

def save_profile(profile: Profile, path: str | Path) -> Path:
    from agentwatt.core.io import atomic_write_json
    return atomic_write_json(path, profile.to_dict())


def bundled_profile_names() -> list[str]:
    data = resources.files("agentwatt.core") / "data"
    catalogs = {"efficiency.json", "models.json"}   # core/derive.py and core/models.py data, not profiles
    return sorted(p.name[:-5] for p in data.iterdir() if p.name.endswith(".json") and p.name not in catalogs)


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a bundled profile by name (see ``bundled_profile_names``) or a JSON file by path."""
    s = str(name_or_path)
    if s in bundled_profile_names():
        ref = resources.files("agentwatt.core") / "data" / f"{s}.json"
        return profile_from_dict(_parse_json(ref.read_text(encoding="utf-8"), f"bundled profile {s}"), f"bundled profile {s}")
    path = Path(s)
    if path.exists() and not path.is_file():
        raise InputError(f"{s}: not a regular file (a folder, device or pipe): expected a profile JSON file")
    if not path.exists():
        from agentwatt.core import derive   # same layer; imported here because derive imports this module
        if "/" not in s and "\\" not in s and not s.endswith(".json") and derive.parse_derived_name(s) is not None:
            return derive.derived_profile(s)
        raise InputError(f"{s}: profile not found: expected a JSON file path, one of the bundled "
                         f"profiles {', '.join(bundled_profile_names())}, or a derived name "
                         f"<model>_[<N>x]<gpu>[_fp8] (agentwatt profiles lists them)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{s}: not UTF-8 text (byte {e.start}): expected a profile JSON file") from None
    except OSError as e:
        raise InputError(f"{s}: cannot read profile: {e.strerror}") from None
    return profile_from_dict(_parse_json(text, s), s)


def _parse_json(text: str, where: str) -> Any:
    if not text.strip():
        raise InputError(f"{where}: empty file: expected a profile JSON object")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{where}: line {e.lineno}: invalid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:   # a number of > 4,300 digits; arrays nested ~1,000 deep
        raise InputError(f"{where}: invalid JSON ({str(e).splitlines()[0][:120]}): expected a profile JSON "
                         f"object") from None


def _field(d: dict, key: str, kind: type | tuple, where: str, *, optional: bool = False,
           positive: bool = False, nonneg: bool = False) -> Any:
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a JSON object")
    if key not in d or d[key] is None:
        if optional:
            return None
        raise InputError(f"{where}.{key}: missing: expected {_kind_name(kind)}")
    v = d[key]
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
        raise InputError(f"{where}.{key} = {v!r}: expected {_kind_name(kind)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(f"{where}.{key} = {v!r}: expected a finite number")
    if positive and v <= 0:
        raise InputError(f"{where}.{key} = {v!r}: expected a number > 0")
    if nonneg and v < 0:
        raise InputError(f"{where}.{key} = {v!r}: expected a number >= 0")
    return v


def _known_keys(d: dict, cls: type, where: str) -> None:
    """A misspelt key must not silently take a default: every key must be a field of ``cls``."""
    from dataclasses import fields
    allowed = {f.name for f in fields(cls)}
    for k in d:
        if k not in allowed:
            raise InputError(f"{where}: unknown key {k!r}: expected one of {', '.join(sorted(allowed))}")


def _kind_name(kind: type | tuple) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "an object", list: "a list"}.get(kind, str(kind))


def _fit_from(d: Any, where: str) -> FitStats | None:
    if d is None:
        return None
    if isinstance(d, dict):
        _known_keys(d, FitStats, where)
    return FitStats(
        n_points=_field(d, "n_points", int, where, nonneg=True),
        mape=_field(d, "mape", float, where, nonneg=True),
        max_ape=_field(d, "max_ape", float, where, nonneg=True),
        holdout_n_points=_field(d, "holdout_n_points", int, where, optional=True) or 0,
        holdout_mape=_field(d, "holdout_mape", float, where, optional=True),
        holdout_max_ape=_field(d, "holdout_max_ape", float, where, optional=True),
        note=_field(d, "note", str, where, optional=True) or "",
    )


def _idle_below_max(vals: dict, w: str) -> None:
    """A GPU cannot idle above its power limit: ``max_w`` caps every step, idle included."""
    if vals["max_w"] is not None and vals["idle_w"] > vals["max_w"]:
        raise InputError(f"{w}.idle_w = {vals['idle_w']}: expected <= max_w ({vals['max_w']})")


def profile_from_dict(d: Any, where: str = "profile") -> Profile:
    """Validate a parsed profile; every error names ``where`` and the field."""
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected a JSON object at the top level")
    _known_keys(d, Profile, where)
    ver = _field(d, "schema_version", int, where)
    if ver != SCHEMA_VERSION:
        raise InputError(f"{where}.schema_version = {ver}: expected {SCHEMA_VERSION}")
    source = _field(d, "source", str, where)
    if source not in SOURCES:
        raise InputError(f"{where}.source = {source!r}: expected one of {', '.join(SOURCES)}")
    m = _field(d, "model", dict, where)
    w = f"{where}.model"
    _known_keys(m, ModelShape, w)
    model = ModelShape(
        name=_field(m, "name", str, w),
        **{k: _field(m, k, int, w, positive=True) for k in (
            "n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "intermediate_size",
            "vocab_size", "n_params", "dtype_bytes")},
    )
    h = _field(d, "hardware", dict, where)
    w = f"{where}.hardware"
    _known_keys(h, Hardware, w)
    kind = _field(h, "kind", str, w)
    if kind not in ("gpu", "cpu"):
        raise InputError(f"{w}.kind = {kind!r}: expected 'gpu' or 'cpu'")
    hw = Hardware(device_name=_field(h, "device_name", str, w), kind=kind,
                  tp=_field(h, "tp", int, w, positive=True),
                  mem_gib_per_device=_field(h, "mem_gib_per_device", float, w, positive=True),
                  tdp_w_per_device=_field(h, "tdp_w_per_device", float, w, optional=True, positive=True))
    lat = _field(d, "latency", dict, where)
    w = f"{where}.latency"
    _known_keys(lat, LatencyModel, w)
    latency = LatencyModel(**{k: _field(lat, k, float, w, nonneg=True) for k in (
        "overhead_s", "prefill_token_s", "prefill_attn_s", "decode_seq_s", "decode_ctx_s")},
        **{k: _field(lat, k, float, w, nonneg=True, optional=True) or 0.0 for k in (
            "weight_s", "token_s", "expert_weight_s")},
        overlap_p=_field(lat, "overlap_p", float, w, optional=True, positive=True) or 2.0,
        experts=_field(lat, "experts", int, w, optional=True, positive=True) or 1,
        experts_per_token=_field(lat, "experts_per_token", int, w, optional=True, positive=True) or 1,
        fit=_fit_from(lat.get("fit"), f"{w}.fit"))
    if latency.step_s(1, 1, 0, 0) <= 0 or latency.step_s(0, 0, 1, 1) <= 0:
        raise InputError(f"{w}: all coefficients are 0: expected a step time > 0")
    p = _field(d, "power", dict, where)
    w = f"{where}.power"
    _known_keys(p, PowerModel, w)
    available = _field(p, "available", bool, w)
    psrc = _field(p, "source", str, w)
    if psrc not in POWER_SOURCES:
        raise InputError(f"{w}.source = {psrc!r}: expected one of {', '.join(POWER_SOURCES)}")
    if available and p.get("compute_w") is not None:
        vals = {k: _field(p, k, float, w, nonneg=True) for k in ("idle_w", "compute_w", "memory_w")}
        vals["max_w"] = _field(p, "max_w", float, w, optional=True, positive=True)
        vals["parked_w"] = _field(p, "parked_w", float, w, optional=True, nonneg=True)
        if vals["parked_w"] is not None and vals["parked_w"] > vals["idle_w"]:
            raise InputError(f"{w}.parked_w = {vals['parked_w']}: expected <= idle_w ({vals['idle_w']})")
        _idle_below_max(vals, w)
        power = PowerModel(available=True, source=psrc, reason=None, fit=_fit_from(p.get("fit"), f"{w}.fit"), **vals)
    elif available:
        vals = {k: _field(p, k, float, w, nonneg=True) for k in (
            "idle_w", "prefill_w", "decode_base_w", "decode_log2_batch_w")}
        vals["max_w"] = _field(p, "max_w", float, w, optional=True, positive=True)
        _idle_below_max(vals, w)
        power = PowerModel(available=True, source=psrc, reason=None, fit=_fit_from(p.get("fit"), f"{w}.fit"), **vals)
    else:
        reason = _field(p, "reason", str, w)
        for k in ("idle_w", "prefill_w", "decode_base_w"):
            if p.get(k) not in (None,):
                raise InputError(f"{w}.{k} = {p[k]!r}: expected null when power is unavailable")
        power = PowerModel(available=False, source="unavailable", reason=reason)
    prov = _field(d, "provenance", dict, where)
    meas = _field(d, "measurements", list, where, optional=True) or []
    return Profile(name=_field(d, "name", str, where), source=source, model=model, hardware=hw,
                   latency=latency, power=power, provenance=prov, measurements=meas, schema_version=ver)
