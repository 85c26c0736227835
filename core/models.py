"""Model catalog: transformer shapes by name, each with the source of its configuration, and the
quantities the step predictor needs from a shape at a precision (weights read per step, FLOPs per
token, KV bytes per token, attention FLOPs per query-key pair).

The catalog (``data/models.json``) holds each model's Hugging Face ``config.json`` values as read in
the sources it names (repository, path, commit). Mixture-of-experts models (``num_local_experts``)
count total and active parameters apart: a step computes with the active ones and reads the weights
of every expert some token of the step was routed to.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from agentwatt.core.errors import InputError
from agentwatt.core.profile import ModelShape

PRECISION_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp32": 4}
ALIASES = {"llama-3-8b-instruct": "llama-3-8b", "qwen2-7b": "qwen2.5-7b", "qwen2-72b": "qwen2.5-72b",
           "mistral-7b": "mistral-7b-v0.1", "llama-3.1-8b-instruct": "llama-3.1-8b"}


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    name: str
    hf_id: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_embeddings: bool
    mlp_matrices: int            # 3 for gated (SwiGLU), 2 for a plain MLP
    experts: int = 1             # routed experts per layer (1 = dense)
    experts_per_token: int = 1
    max_context: int = 4096
    source: tuple[str, ...] = ()

    # ----------------------------------------------------------------- parameters (counts)
    @property
    def attn_params_per_layer(self) -> int:
        h, hd = self.hidden_size, self.head_dim
        return h * self.n_heads * hd * 2 + h * self.n_kv_heads * hd * 2

    @property
    def expert_params(self) -> int:
        """One expert's MLP (the whole MLP of a dense model)."""
        return self.mlp_matrices * self.hidden_size * self.intermediate_size

    @property
    def layer_params_total(self) -> int:
        return self.attn_params_per_layer + self.experts * self.expert_params

    @property
    def layer_params_active(self) -> int:
        return self.attn_params_per_layer + min(self.experts_per_token, self.experts) * self.expert_params

    @property
    def lm_head_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def n_params(self) -> int:
        emb = self.vocab_size * self.hidden_size
        return self.n_layers * (self.layer_params_total + 2 * self.hidden_size) + emb + (
            0 if self.tie_embeddings else self.lm_head_params) + self.hidden_size

    @property
    def n_params_active(self) -> int:
        return self.n_layers * self.layer_params_active + self.lm_head_params

    def shape(self, dtype_bytes: int = 2) -> ModelShape:
        """The profile's ``ModelShape`` of this model at ``dtype_bytes`` per weight and KV element."""
        return ModelShape(name=self.name, n_layers=self.n_layers, hidden_size=self.hidden_size,
                          n_heads=self.n_heads, n_kv_heads=self.n_kv_heads, head_dim=self.head_dim,
                          intermediate_size=self.intermediate_size, vocab_size=self.vocab_size,
                          n_params=self.n_params, dtype_bytes=dtype_bytes)

    def kv_bytes_per_token(self, kv_bytes: int = 2) -> int:
        """K and V of every layer and KV head, whole model (before TP sharding)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * kv_bytes

    @property
    def attn_flops_per_pair(self) -> float:
        """FLOPs of one query attending to one key (QKᵀ and PV, all layers and heads)."""
        return 4.0 * self.n_layers * self.n_heads * self.head_dim


@lru_cache(maxsize=1)
def catalog() -> dict[str, ModelSpec]:
    raw = json.loads((resources.files("agentwatt.core") / "data" / "models.json").read_text(encoding="utf-8"))
    out = {}
    for m in raw:
        src = m.get("source") or ()
        out[m["name"]] = ModelSpec(
            name=m["name"], hf_id=m.get("hf_id", ""), n_layers=m["num_hidden_layers"], hidden_size=m["hidden_size"],
            n_heads=m["num_attention_heads"], n_kv_heads=m["num_key_value_heads"],
            head_dim=m.get("head_dim") or m["hidden_size"] // m["num_attention_heads"],
            intermediate_size=m["intermediate_size"], vocab_size=m["vocab_size"],
            tie_embeddings=bool(m.get("tie_word_embeddings")), mlp_matrices=int(m.get("mlp_matrices") or 3),
            experts=int(m.get("num_local_experts") or 1), experts_per_token=int(m.get("num_experts_per_tok") or 1),
            max_context=int(m.get("max_position_embeddings") or 4096),
            source=tuple(src) if isinstance(src, list) else (str(src),))
    return out


def get_model(name: str) -> ModelSpec:
    key = name.lower()
    key = ALIASES.get(key, key)
    cat = catalog()
    if key not in cat:
        raise InputError(f"model {name!r}: not in the model catalog: expected one of {', '.join(sorted(cat))}")
    return cat[key]


def precision_bytes(name: str, where: str = "precision") -> int:
    if name not in PRECISION_BYTES:
        raise InputError(f"{where} {name!r}: expected one of {', '.join(PRECISION_BYTES)}")
    return PRECISION_BYTES[name]
