"""Prefill/decode disaggregation: a prefill pool and a decode pool joined by a KV-transfer link.

With ``[disaggregation]`` an LLM call runs in three stages (``Disaggregation.serve``)::

    prefill pool                      link                       decode pool
    ┌───────────────────────┐   ┌──────────────────────┐   ┌───────────────────────────────┐
    │ prompt → first token  │──►│ prompt KV, in order, │──►│ blocks for the context, KV    │
    │ (TTFT ends here)      │   │ one transfer at a    │   │ "loaded", decode the other    │
    └───────────────────────┘   │ time per prefill     │   │ output − 1 tokens             │
                                │ replica (FIFO)       │   └───────────────────────────────┘
                                └──────────────────────┘

* The prefill replica is picked by the prefill router (session affinity keeps an agent's next
  call where its prefix cache lives; ``[engine] kv_retention`` pins it there during tool calls).
  It runs the call as a one-token request: prefill, then the first token.
* The KV of the prompt (``kv_bytes_per_token × prompt tokens``, all layers) crosses the link of
  that prefill replica: ``latency + bytes / (tp × link bandwidth)`` (each of the ``tp`` GPUs sends
  its shard over its own link). With ``layer_overlap`` the layers computed before the last one
  are assumed sent while later layers compute, and only the last layer's share (``1 / n_layers``)
  is on the critical path: an optimistic bound (Splitwise and DistServe overlap by layer).
  Transfers from one prefill replica queue FIFO on its link; no other contention is modelled.
* The decode replica (decode router) allocates blocks for the context and starts decoding at once
  (``Request.loaded``); a decode-side preemption recomputes the context there, as vLLM would.
  A call of one output token ends at the prefill pool (nothing to transfer).

Replicas are numbered prefill first (0 … P−1), then decode (P … P+D−1); each pool may run its own
profile (Splitwise: H100 prefill, A100 decode) with the same ``tp``, and its own batching limits.
Power and energy are booked per replica as everywhere; ``fleet_power`` builds the facility view
of both pools (each pool on its own servers and racks).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import simpy

from agentwatt.sim.batching import Request

# Per-GPU one-direction link bandwidth (GB/s) of the KV-transfer link presets.
LINKS: dict[str, float] = {
    # NVLink 4 (H100 SXM): 900 GB/s bidirectional per GPU (nvidia.com/en-us/data-center/h100/) → 450 one way
    "nvlink-4": 450.0,
    # NVLink 3 (A100 SXM): 600 GB/s bidirectional per GPU (nvidia.com/en-us/data-center/a100/) → 300 one way
    "nvlink-3": 300.0,
    # InfiniBand NDR 400 Gb/s, one ConnectX-7 per GPU as in DGX H100
    # (docs.nvidia.com/networking/display/ConnectX7VPI/Introduction: single-port NDR 400Gb/s) → 50 GB/s
    "infiniband-ndr": 50.0,
    # InfiniBand HDR 200 Gb/s (ConnectX-6, DGX A100's compute fabric) → 25 GB/s
    "infiniband-hdr": 25.0,
    # RoCE on 400GbE (ConnectX-7's Ethernet mode, same manual) → 50 GB/s
    "roce-400g": 50.0,
    # RoCE on 200GbE (ConnectX-7 NDR200/200GbE, same manual) → 25 GB/s
    "roce-200g": 25.0,
}


def transfer_seconds(tokens: int, kv_bytes_per_token: float, tp: int, link_gb_per_s: float,
                     latency_s: float = 0.0, overlap_layers: int | None = None) -> float:
    """Time a prompt's KV spends on the critical path: ``latency + bytes / (tp × bandwidth)``, or
    with ``overlap_layers = L`` only the last layer's share of the bytes."""
    s = tokens * kv_bytes_per_token / (tp * link_gb_per_s * 1e9)
    if overlap_layers:
        s /= overlap_layers
    return latency_s + s


class Disaggregation:
    """The pools, their routers and links, and the transfer records of one run."""

    def __init__(self, env: simpy.Environment, cfg, prefill: list, decode: list, prefill_router, decode_router,
                 prefill_profile, decode_profile, ctx=None) -> None:
        self.env, self.cfg = env, cfg
        self.prefill, self.decode = prefill, decode
        self.prefill_router, self.decode_router = prefill_router, decode_router
        self.prefill_profile, self.decode_profile = prefill_profile, decode_profile
        self.ctx = ctx                        # the SessionContext (request ids)
        self.links = {r.index: simpy.Resource(env, capacity=1) for r in prefill}
        self.bandwidth_gb_per_s = cfg.link_gb_per_s if cfg.link_gb_per_s is not None else LINKS[cfg.link]
        self.in_transfer = 0                  # calls between the pools (counted as in flight)
        self.rows: list[tuple] = []           # one per transferred call (TRANSFER_COLUMNS)

    def transfer_s(self, tokens: int) -> float:
        m = self.prefill_profile.model
        return transfer_seconds(tokens, m.kv_bytes_per_token, self.prefill_profile.hardware.tp,
                                self.bandwidth_gb_per_s, self.cfg.link_latency_s,
                                m.n_layers if self.cfg.layer_overlap else None)

    def serve(self, req: Request, replica, session_id: int):
        """Run ``req`` (already routed to prefill ``replica``): prefill, transfer, decode. On return
        ``req`` holds the whole call: first token from the prefill, finish, tokens and joules of both."""
        env = self.env
        out_len = req.output_len
        req.output_len = 1
        replica.submit(req)
        yield req.done
        req.output_len = out_len
        if req.finish_s is None or out_len <= 1:   # dropped at prefill, or nothing left to decode
            return
        req.finish_s = None
        self.in_transfer += 1
        t_ready = env.now
        with self.links[replica.index].request() as link:
            yield link
            t_start = env.now
            dt = self.transfer_s(req.prompt_len)
            yield env.timeout(dt)
        self.in_transfer -= 1
        dec = self.decode_router.route(session_id)
        d = Request(self.ctx.next_rid, req.prompt_len, out_len, [], env.now, done=env.event(), tag=req.tag)
        self.ctx.next_rid += 1
        d.num_generated = 1                 # the first token came from the prefill
        d.first_token_s = req.first_token_s
        d.loaded = req.prompt_len
        d.admitted = True                   # no prefix-cache lookup on the decode side
        dec.submit(d)
        yield d.done
        d.done = None
        req.finish_s = d.finish_s
        req.num_generated = d.num_generated
        req.energy_j += d.energy_j
        req.preemptions += d.preemptions
        req.prefill_computed += d.prefill_computed
        m = self.prefill_profile.model
        self.rows.append((req.tag[0], req.tag[1], replica.index, dec.index, req.prompt_len,
                          req.prompt_len * m.kv_bytes_per_token, t_ready, t_start, dt))

    # ------------------------------------------------------------------ results
    def transfers(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(TRANSFER_COLUMNS))

    def summary(self, replicas_rows: pd.DataFrame) -> dict:
        t = self.transfers()
        p_idx = [r.index for r in self.prefill]
        d_idx = [r.index for r in self.decode]
        rows = replicas_rows.set_index("replica")

        def pool(idx, prof) -> dict:
            r = rows.loc[idx]
            e = float((r["busy_energy_j"] + r["idle_energy_j"]).sum()) if prof.power.available else None
            return {"replicas": len(idx), "gpus": len(idx) * prof.hardware.tp, "profile": prof.name,
                    "busy_s": float(r["busy_s"].sum()), "prefill_tokens": int(r["prefill_tokens"].sum()),
                    "decode_tokens": int(r["decode_tokens"].sum()), "preemptions": int(r["preemptions"].sum()),
                    "gpu_energy_j": e}
        wait = (t["start_s"] - t["ready_s"]).to_numpy()
        return {
            "link": self.cfg.link, "link_gb_per_s": self.bandwidth_gb_per_s,
            "link_latency_s": self.cfg.link_latency_s, "layer_overlap": self.cfg.layer_overlap,
            "prefill": pool(p_idx, self.prefill_profile), "decode": pool(d_idx, self.decode_profile),
            "kv_transfers": len(t), "kv_bytes_transferred": float(t["kv_bytes"].sum()),
            "kv_transfer_s": {"total": float(t["transfer_s"].sum()),
                              "mean": float(t["transfer_s"].mean()) if len(t) else None,
                              "p99": float(np.percentile(t["transfer_s"], 99)) if len(t) else None},
            "kv_link_wait_s": {"mean": float(wait.mean()) if len(t) else None,
                               "p99": float(np.percentile(wait, 99)) if len(t) else None},
        }

    def fleet_power(self, fac, end_s: float):
        """The facility view of both pools: each pool's servers and racks (its own server type when
        ``[facility] server`` is not set), the site's series summed."""
        from agentwatt.sim.facility import fleet_power
        parts = []
        for reps, prof in ((self.prefill, self.prefill_profile), (self.decode, self.decode_profile)):
            f = fac if prof is self.prefill_profile else _server_of(fac, prof, self.prefill_profile)
            parts.append(fleet_power([r.bins for r in reps], prof.hardware.tp, prof.power.idle_w, f, end_s))
        return merge_fleet_power(*parts)


TRANSFER_COLUMNS = ("session_id", "node_id", "prefill_replica", "decode_replica", "tokens", "kv_bytes",
                    "ready_s", "start_s", "transfer_s")


def _server_of(fac, prof, main):
    """``fac`` for a pool running ``prof``: the server of its own GPU unless the scenario chose one
    (``fac.server`` was resolved for ``main``'s GPU by ``run``)."""
    from agentwatt.sim.facility import server_name_for
    if fac.server != server_name_for(replace(fac, server=None), main):
        return fac                     # set by the scenario: the same for both pools
    return replace(fac, server=server_name_for(replace(fac, server=None), prof))


def merge_fleet_power(a, b):
    """Two pools' ``FleetPower`` as one site: series summed, servers and racks side by side."""
    from agentwatt.sim.facility import FleetPower
    return FleetPower(time_s=a.time_s, width_s=a.width_s, gpu_w=a.gpu_w + b.gpu_w, host_w=a.host_w + b.host_w,
                      network_w=a.network_w + b.network_w, pue=a.pue,
                      server_it_w=np.vstack([a.server_it_w, b.server_it_w]),
                      rack_it_w=np.vstack([a.rack_it_w, b.rack_it_w]), gpus=a.gpus + b.gpus,
                      busy_s=a.busy_s + b.busy_s, idle_tool_s=a.idle_tool_s + b.idle_tool_s,
                      idle_empty_s=a.idle_empty_s + b.idle_empty_s, capped_s=a.capped_s + b.capped_s)
