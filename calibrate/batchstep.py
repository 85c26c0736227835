"""One continuous-batching engine step on the calibration model: decodes and prompt chunks together.

All tokens of the step (one per decoding sequence, then every prompt chunk) go through the
embedding, norms, projections and MLP as one flattened ``[1, T, hidden]`` batch, as vLLM flattens a
step. KV lives in a pool ``k[layer, slot, kv_head, position, head_dim]`` (and ``v``); each running
request owns a slot.

Attention, and what it costs against the profile's terms:

* **decode (pad and mask)**: the serving loop keeps the decoding requests in slots ``0..D-1``, so
  their attention is ONE ``scaled_dot_product_attention`` over the pool view ``k[:, :D, :, :max_ctx]``
  (no copy) with a mask hiding each sequence's positions past its own context; with equal contexts
  there is no mask and the call is exactly the calibration sweep's batched decode. The cost against
  the profile: attention reads ``D x max_ctx`` KV tokens where the profile's ``decode_ctx`` term
  counts ``sum(ctx)``, i.e. an extra ``decode_ctx_s x (D x max_ctx - sum(ctx))`` per step
  (``padding_tokens`` below; ``calibrate check`` reports it). The alternative, one attention call
  per sequence, reads exactly ``sum(ctx)`` but pays a few small kernel calls per sequence per layer
  (measured on a 2-core CPU: about as much as a whole decoded token of the tiny model; on a GPU,
  kernel launches per sequence per layer): it is used only when the decoding set is not slots
  ``0..D-1`` (a step budget smaller than the batch).
* **prompt chunks**: one call per chunk, causal over the chunk and its cached prefix, as the sweep's
  prefill (which ran fresh prompts; a later chunk of a long prompt has a cached prefix, the profile's
  ``prefill_attn`` feature counts it).

The math is the model's own (``Attention._attend`` paths), so logits equal ``Decoder.forward`` on
each sequence alone (a test checks this).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from agentwatt.calibrate.models import Decoder, apply_rope


@dataclass
class KVPool:
    k: torch.Tensor   # [layers, slots, kv_heads, capacity, head_dim]
    v: torch.Tensor

    @classmethod
    def allocate(cls, model: Decoder, slots: int, capacity: int) -> "KVPool":
        c = model.config
        shape = (c.n_layers, slots, c.n_kv_heads, capacity, c.head_dim)
        return cls(torch.zeros(shape, dtype=model.dtype, device=model.device),
                   torch.zeros(shape, dtype=model.dtype, device=model.device))

    @staticmethod
    def nbytes(model: Decoder, slots: int, capacity: int) -> int:
        c = model.config
        return 2 * c.n_layers * slots * c.n_kv_heads * capacity * c.head_dim * model.dtype.itemsize

    def move(self, src: int, dst: int, tokens: int) -> None:
        """Copy the first ``tokens`` positions of slot ``src`` into slot ``dst`` (all layers)."""
        if tokens > 0 and src != dst:
            self.k[:, dst, :, :tokens].copy_(self.k[:, src, :, :tokens])
            self.v[:, dst, :, :tokens].copy_(self.v[:, src, :, :tokens])


@dataclass
class Segment:
    """``ids`` (1-D, n tokens) at positions ``start .. start+n-1`` of the sequence in pool ``slot``.
    ``decode``: a single token after a cached context; ``want_logits``: return its last position's logits."""

    ids: torch.Tensor
    start: int
    slot: int
    decode: bool = False
    want_logits: bool = True


@dataclass
class StepInfo:
    batched_decode: bool      # one padded attention call for the decodes (else one per sequence)
    padding_tokens: int       # D x max_ctx - sum(ctx) KV positions read for nothing


@torch.inference_mode()
def model_step(model: Decoder, pool: KVPool, segments: list[Segment]) -> tuple[torch.Tensor, StepInfo]:
    """Run one step. Decode segments must come first. Returns logits ``[k, vocab]`` of the segments that
    want them (in order) and what the attention did."""
    cfg = model.config
    dev = model.device
    nh, nkv, d = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    g = nh // nkv
    dec = [s for s in segments if s.decode]
    pre = [s for s in segments if not s.decode]
    if segments[:len(dec)] != dec:
        raise ValueError("model_step: decode segments must come first")
    nd = len(dec)
    lens = [int(s.ids.shape[0]) for s in segments]
    t = sum(lens)
    ids = torch.cat([s.ids for s in segments]).unsqueeze(0).to(dev)
    pos_list = [p for s, n in zip(segments, lens) for p in range(s.start, s.start + n)]
    pos = torch.tensor(pos_list, device=dev)
    cos_t, sin_t = model.rope_tables(max(pos_list) + 1)
    cos, sin = cos_t[pos], sin_t[pos]
    ctx = [s.start + 1 for s in dec]             # positions each decode attends over (with its new token)
    batched = nd > 0 and [s.slot for s in dec] == list(range(nd))
    info = StepInfo(batched_decode=batched, padding_tokens=nd * max(ctx) - sum(ctx) if batched else 0)
    if nd:
        dslots = torch.tensor([s.slot for s in dec], device=dev)
        dpos = pos[:nd]
        mask = None
        if batched and len(set(ctx)) > 1:
            mask = (torch.arange(max(ctx), device=dev)[None, :] < torch.tensor(ctx, device=dev)[:, None]).view(nd, 1, 1, -1)
    x = model.model.embed_tokens(ids)
    for i, layer in enumerate(model.model.layers):
        att = layer.self_attn
        h = layer.input_layernorm(x)
        q = apply_rope(att.q_proj(h).view(1, t, nh, d).transpose(1, 2), cos, sin)
        k = apply_rope(att.k_proj(h).view(1, t, nkv, d).transpose(1, 2), cos, sin)
        v = att.v_proj(h).view(1, t, nkv, d).transpose(1, 2)
        pk, pv = pool.k[i], pool.v[i]
        outs = []
        if nd:
            pk[dslots, :, dpos] = k[0, :, :nd].transpose(0, 1)
            pv[dslots, :, dpos] = v[0, :, :nd].transpose(0, 1)
            qd = q[0, :, :nd].transpose(0, 1).reshape(nd, nkv, g, d)
            if batched:
                m = max(ctx)
                o = F.scaled_dot_product_attention(qd, pk[:nd, :, :m], pv[:nd, :, :m], attn_mask=mask)
            else:
                o = torch.cat([F.scaled_dot_product_attention(qd[j:j + 1], pk[s.slot:s.slot + 1, :, :c],
                                                              pv[s.slot:s.slot + 1, :, :c])
                               for j, (s, c) in enumerate(zip(dec, ctx))])
            outs.append(o.reshape(nd, nh, d).transpose(0, 1).unsqueeze(0))
        off = nd
        for s, n in zip(pre, lens[nd:]):
            kc, vc = pk[s.slot:s.slot + 1], pv[s.slot:s.slot + 1]
            kc[:, :, s.start:s.start + n] = k[:, :, off:off + n]
            vc[:, :, s.start:s.start + n] = v[:, :, off:off + n]
            outs.append(att._attend(q[:, :, off:off + n], kc[:, :, :s.start + n], vc[:, :, :s.start + n], s.start))
            off += n
        a = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        x = x + att.o_proj(a.transpose(1, 2).reshape(1, t, nh * d))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    ends, acc = [], 0
    for s, n in zip(segments, lens):
        acc += n
        if s.want_logits:
            ends.append(acc - 1)
    if not ends:
        return torch.empty(0, cfg.vocab_size, device=dev, dtype=model.dtype), info
    xl = model.model.norm(x[0, ends])
    head = model.lm_head.weight if model.lm_head is not None else model.model.embed_tokens.weight
    return F.linear(xl, head), info
