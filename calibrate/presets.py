"""Model presets for calibration: Llama-shaped decoder shapes as rows of data (torch-free, so the CLI
can list them without importing torch). ``models.build_model`` turns one into a torch module."""
from __future__ import annotations

from dataclasses import dataclass

from agentwatt.core.errors import InputError


@dataclass(frozen=True, kw_only=True)
class Llama3RopeScaling:
    """Llama 3.1's frequency-dependent RoPE stretch (``rope_type: llama3`` in config.json)."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position: int


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Architecture of a dense Llama-shaped decoder. ``n_params``/``dtype_bytes`` come from the build."""

    name: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_embeddings: bool
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    rope_scaling: Llama3RopeScaling | None = None


_LLAMA3_SCALING = dict(low_freq_factor=1.0, high_freq_factor=4.0, original_max_position=8192)

PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(name="tiny", n_layers=4, hidden_size=256, n_heads=4, n_kv_heads=2, head_dim=64,
                        intermediate_size=688, vocab_size=4096, tie_embeddings=True),
    "smollm2-135m": ModelConfig(name="smollm2-135m", n_layers=30, hidden_size=576, n_heads=9, n_kv_heads=3,
                                head_dim=64, intermediate_size=1536, vocab_size=49152, tie_embeddings=True,
                                rope_theta=100000.0),
    "llama-3.2-1b": ModelConfig(name="llama-3.2-1b", n_layers=16, hidden_size=2048, n_heads=32, n_kv_heads=8,
                                head_dim=64, intermediate_size=8192, vocab_size=128256, tie_embeddings=True,
                                rope_theta=500000.0,
                                rope_scaling=Llama3RopeScaling(factor=32.0, **_LLAMA3_SCALING)),
    "llama-3.1-8b": ModelConfig(name="llama-3.1-8b", n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=8,
                                head_dim=128, intermediate_size=14336, vocab_size=128256, tie_embeddings=False,
                                rope_theta=500000.0,
                                rope_scaling=Llama3RopeScaling(factor=8.0, **_LLAMA3_SCALING)),
}


def get_preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise InputError(f"--preset {name!r}: unknown model preset: expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def expected_n_params(cfg: ModelConfig) -> int:
    """Parameter count from the shape alone (tied embeddings counted once)."""
    h, kv = cfg.hidden_size, cfg.n_kv_heads * cfg.head_dim
    attn = h * cfg.n_heads * cfg.head_dim * 2 + h * kv * 2
    layer = attn + 3 * h * cfg.intermediate_size + 2 * h
    embed = cfg.vocab_size * h * (1 if cfg.tie_embeddings else 2)
    return cfg.n_layers * layer + h + embed
