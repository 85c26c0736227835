"""Llama-shaped decoders written directly in torch, for timing prefill and decode.

Presets are rows of data (``PRESETS``); ``build_model`` makes a model with random weights
(normal, std 0.02) from one. The module names follow Hugging Face's Llama key names
(``model.layers.0.self_attn.q_proj.weight`` ...), so ``load_real_weights`` copies a local
``config.json`` + ``*.safetensors`` folder without renaming.

KV cache layout (one tensor for K, one for V, all layers)::

    k[layer, batch, kv_head, position, head_dim]      capacity = positions allocated

A forward at ``start_pos`` writes its T new positions ``start_pos .. start_pos+T-1`` and attends over
``0 .. start_pos+T-1``. Attention with grouped KV heads uses three paths, all equivalent:
fresh causal prefill (K/V repeated per query head, ``is_causal``), single-token decode (query heads
folded into the query-length axis, no mask) and the general chunk after a cached prefix (folded,
explicit mask).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agentwatt.calibrate.presets import (PRESETS, Llama3RopeScaling, ModelConfig,  # noqa: F401  (re-exported)
                                        expected_n_params, get_preset)
from agentwatt.core.profile import ModelShape
from agentwatt.core.errors import InputError

INIT_STD = 0.02


def default_dtype(device: str | torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 matmuls are slow there), bf16 on CUDA."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


# ------------------------------------------------------------------------------- pure math

def rope_inv_freq(cfg: ModelConfig) -> torch.Tensor:
    """Inverse frequencies (fp32, ``head_dim/2``), with the Llama 3 stretch when configured."""
    inv = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim)
    s = cfg.rope_scaling
    if s is None:
        return inv.float()
    wavelen = 2 * math.pi / inv
    low_wavelen = s.original_max_position / s.low_freq_factor    # longer waves than this: fully stretched
    high_wavelen = s.original_max_position / s.high_freq_factor  # shorter waves than this: untouched
    smooth = (s.original_max_position / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    blended = (1 - smooth) * inv / s.factor + smooth * inv
    out = torch.where(wavelen > low_wavelen, inv / s.factor, blended)
    out = torch.where(wavelen < high_wavelen, inv, out)
    return out.float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x``: [B, heads, T, d]; ``cos``/``sin``: [T, d] (half-split convention, as HF Llama)."""
    return x * cos + rotate_half(x) * sin


# ---------------------------------------------------------------------------------- modules

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        h, d = cfg.hidden_size, cfg.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, d
        kw = dict(bias=False, device=device, dtype=dtype)
        self.q_proj = nn.Linear(h, cfg.n_heads * d, **kw)
        self.k_proj = nn.Linear(h, cfg.n_kv_heads * d, **kw)
        self.v_proj = nn.Linear(h, cfg.n_kv_heads * d, **kw)
        self.o_proj = nn.Linear(cfg.n_heads * d, h, **kw)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                kv: tuple[torch.Tensor, torch.Tensor] | None, start: int) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv is not None:
            kc, vc = kv
            kc[:, :, start:start + t] = k
            vc[:, :, start:start + t] = v
            k, v = kc[:, :, :start + t], vc[:, :, :start + t]
        out = self._attend(q, k, v, start)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
        b, _, t, d = q.shape
        g = self.n_heads // self.n_kv_heads
        if start == 0 and t > 1:  # fresh causal prefill: lets CUDA pick the flash kernel
            if g > 1:
                k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        # fold the g query heads that share a KV head into the query axis: no copy of the cache
        qg = q.reshape(b, self.n_kv_heads, g * t, d)
        mask = None
        if t > 1:
            q_pos = start + torch.arange(t, device=q.device).repeat(g)
            mask = torch.arange(k.shape[2], device=q.device)[None, :] <= q_pos[:, None]
        out = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask)
        return out.reshape(b, self.n_heads, t, d)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        kw = dict(bias=False, device=device, dtype=dtype)
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, **kw)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, **kw)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_eps, device, dtype)
        self.self_attn = Attention(cfg, device, dtype)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_eps, device, dtype)
        self.mlp = MLP(cfg, device, dtype)

    def forward(self, x, cos, sin, kv, start):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv, start)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size, device=device, dtype=dtype)
        self.layers = nn.ModuleList(DecoderLayer(cfg, device, dtype) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_eps, device, dtype)


@dataclass
class KVCache:
    """Preallocated K and V for every layer: ``[layers, batch, kv_heads, capacity, head_dim]``."""

    k: torch.Tensor
    v: torch.Tensor

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    @property
    def batch(self) -> int:
        return self.k.shape[1]


class Decoder(nn.Module):
    """A Llama-shaped causal LM. ``forward(ids, cache, start_pos, last_only) -> logits``."""

    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        self.config = cfg
        self.model = Backbone(cfg, device, dtype)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(
            cfg.hidden_size, cfg.vocab_size, bias=False, device=device, dtype=dtype)
        self.register_buffer("inv_freq", rope_inv_freq(cfg).to(device), persistent=False)
        self._rope: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    def rope_tables(self, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin ``[positions, head_dim]`` for positions ``0..end-1`` at least (grown on demand)."""
        stale = self._rope is None or self._rope[0].dtype != self.dtype or self._rope[0].device != self.device
        if stale or self._rope[0].shape[0] < end:
            n = max(end, 2 * self._rope[0].shape[0] if not stale else 256)
            pos = torch.arange(n, device=self.inv_freq.device, dtype=torch.float32)
            ang = torch.outer(pos, self.inv_freq.float())
            ang = torch.cat((ang, ang), dim=-1)
            self._rope = (ang.cos().to(self.dtype), ang.sin().to(self.dtype))
        return self._rope

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, start_pos: int = 0,
                last_only: bool = False) -> torch.Tensor:
        t = ids.shape[1]
        if cache is not None and start_pos + t > cache.capacity:
            raise ValueError(f"KV cache capacity {cache.capacity} < {start_pos + t} positions")
        if cache is None and start_pos != 0:
            raise ValueError("start_pos > 0 needs a KV cache holding the earlier positions")
        cos, sin = (x[start_pos:start_pos + t] for x in self.rope_tables(start_pos + t))
        x = self.model.embed_tokens(ids)
        for i, layer in enumerate(self.model.layers):
            kv = (cache.k[i], cache.v[i]) if cache is not None else None
            x = layer(x, cos, sin, kv, start_pos)
        if last_only:
            x = x[:, -1:, :]
        x = self.model.norm(x)
        head = self.lm_head.weight if self.lm_head is not None else self.model.embed_tokens.weight
        return F.linear(x, head)


# ------------------------------------------------------------------------------ build & run

def build_model(cfg: ModelConfig | str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                seed: int = 0) -> Decoder:
    """Random weights (normal, std 0.02; norms 1). ``device="meta"`` builds shapes only."""
    cfg = get_preset(cfg) if isinstance(cfg, str) else cfg
    dtype = dtype or default_dtype(device)
    model = Decoder(cfg, device=device, dtype=dtype)
    if torch.device(device).type != "meta":
        gen = torch.Generator(device=torch.device(device)).manual_seed(seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if not name.endswith("norm.weight"):
                    p.normal_(0.0, INIT_STD, generator=gen)
    return model.eval()


def count_params(model: nn.Module) -> int:
    """Exact count of distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())


def model_shape(model: Decoder) -> ModelShape:
    c = model.config
    return ModelShape(name=c.name, n_layers=c.n_layers, hidden_size=c.hidden_size, n_heads=c.n_heads,
                      n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, intermediate_size=c.intermediate_size,
                      vocab_size=c.vocab_size, n_params=count_params(model),
                      dtype_bytes=torch.empty((), dtype=model.dtype).element_size())


def random_token_ids(model: Decoder, batch: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.randint(0, model.config.vocab_size, (batch, length), generator=generator,
                         device="cpu").to(model.device)


def kv_cache_bytes(cfg: ModelConfig, batch: int, capacity: int, dtype_bytes: int) -> int:
    return 2 * cfg.n_layers * batch * cfg.n_kv_heads * capacity * cfg.head_dim * dtype_bytes


def new_kv_cache(model: Decoder, batch: int, capacity: int, *, random_fill: bool = False,
                 generator: torch.Generator | None = None) -> KVCache:
    """Allocate a cache; ``random_fill`` writes random values so a decode can run at any context."""
    c = model.config
    shape = (c.n_layers, batch, c.n_kv_heads, capacity, c.head_dim)
    if random_fill:
        k = torch.randn(shape, generator=generator, dtype=model.dtype, device=model.device)
        v = torch.randn(shape, generator=generator, dtype=model.dtype, device=model.device)
    else:
        k = torch.zeros(shape, dtype=model.dtype, device=model.device)
        v = torch.zeros(shape, dtype=model.dtype, device=model.device)
    return KVCache(k=k, v=v)


@torch.inference_mode()
def prefill(model: Decoder, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
    """One fresh prefill of ``ids`` [B, L] (writing the cache if given); logits of the last position."""
    return model(ids, cache=cache, start_pos=0, last_only=True)[:, -1]


@torch.inference_mode()
def decode_step(model: Decoder, ids: torch.Tensor, cache: KVCache, context: int) -> torch.Tensor:
    """One decode step: ``ids`` [B, 1] at position ``context`` after ``context`` cached tokens."""
    return model(ids, cache=cache, start_pos=context)[:, -1]


# ------------------------------------------------------------------------------ real weights

_HF_KEYS = {"num_hidden_layers": "n_layers", "hidden_size": "hidden_size", "num_attention_heads": "n_heads",
            "num_key_value_heads": "n_kv_heads", "intermediate_size": "intermediate_size",
            "vocab_size": "vocab_size"}


def _safetensors_torch() -> Any:
    try:
        import safetensors.torch as st
    except ImportError:
        raise InputError("real weights need the 'safetensors' package: pip install safetensors") from None
    return st


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not found: expected a Hugging Face model folder with config.json") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object")
    return d


def config_from_hf(folder: str | Path, name: str | None = None) -> ModelConfig:
    """A ``ModelConfig`` from a Hugging Face Llama ``config.json``."""
    folder = Path(folder)
    d = _read_config(folder)
    missing = [k for k in _HF_KEYS if k not in d]
    if missing:
        raise InputError(f"{folder / 'config.json'}: missing {', '.join(missing)}: expected a Llama config")
    kw = {ours: int(d[hf]) for hf, ours in _HF_KEYS.items()}
    rs = d.get("rope_scaling") or None
    scaling = None
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        scaling = Llama3RopeScaling(factor=float(rs["factor"]), low_freq_factor=float(rs["low_freq_factor"]),
                                    high_freq_factor=float(rs["high_freq_factor"]),
                                    original_max_position=int(rs["original_max_position_embeddings"]))
    return ModelConfig(name=name or folder.name, head_dim=int(d.get("head_dim") or kw["hidden_size"] // kw["n_heads"]),
                       tie_embeddings=bool(d.get("tie_word_embeddings", False)),
                       rope_theta=float(d.get("rope_theta", 10000.0)), rms_eps=float(d.get("rms_norm_eps", 1e-5)),
                       rope_scaling=scaling, **kw)


def _weight_files(folder: Path) -> list[Path]:
    single = folder / "model.safetensors"
    if single.exists():
        return [single]
    index = folder / "model.safetensors.index.json"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{index}: expected a JSON object with a 'weight_map'") from None
        return [folder / f for f in sorted(set(weight_map.values()))]
    raise InputError(f"{folder}: no model.safetensors or model.safetensors.index.json")


def load_real_weights(model: Decoder, path: str | Path) -> Decoder:
    """Copy weights from a local HF-style folder (config.json + safetensors) into ``model``."""
    st = _safetensors_torch()
    folder = Path(path)
    theirs = config_from_hf(folder, name=model.config.name)
    for field_name in ("n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "intermediate_size",
                       "vocab_size", "tie_embeddings"):
        a, b = getattr(theirs, field_name), getattr(model.config, field_name)
        if a != b:
            raise InputError(f"{folder / 'config.json'}: {field_name} = {a}: expected {b} "
                             f"(the shape of model {model.config.name!r})")
    tensors: dict[str, torch.Tensor] = {}
    for f in _weight_files(folder):
        if not f.exists():
            raise InputError(f"{f}: weight file not found")
        tensors.update(st.load_file(str(f), device="cpu"))
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(tensors))
    if missing:
        raise InputError(f"{folder}: missing weights {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''} ({len(missing)} in all)")
    with torch.no_grad():
        for name, p in params.items():
            t = tensors[name]
            if tuple(t.shape) != tuple(p.shape):
                raise InputError(f"{folder}: {name} has shape {tuple(t.shape)}: expected {tuple(p.shape)}")
            p.copy_(t.to(device=p.device, dtype=p.dtype))
    return model


def hf_config_dict(cfg: ModelConfig, dtype: torch.dtype) -> dict[str, Any]:
    d: dict[str, Any] = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                         "head_dim": cfg.head_dim, "tie_word_embeddings": cfg.tie_embeddings,
                         "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.rms_eps, "hidden_act": "silu",
                         "torch_dtype": str(dtype).removeprefix("torch."),
                         **{hf: getattr(cfg, ours) for hf, ours in _HF_KEYS.items()}}
    if cfg.rope_scaling is not None:
        s = cfg.rope_scaling
        d["rope_scaling"] = {"rope_type": "llama3", "factor": s.factor, "low_freq_factor": s.low_freq_factor,
                             "high_freq_factor": s.high_freq_factor,
                             "original_max_position_embeddings": s.original_max_position}
    return d


def save_hf_folder(model: Decoder, path: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors`` with Llama key names (tied head omitted)."""
    from agentwatt.core.io import atomic_write, atomic_write_json
    st = _safetensors_torch()
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters()}
    atomic_write(folder / "model.safetensors", lambda tmp: st.save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write_json(folder / "config.json", hf_config_dict(model.config, model.dtype))
    return folder
