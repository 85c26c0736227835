"""Agent sessions as SimPy processes: run a DAG of LLM calls and tool calls, closed loop.

Every node is a small process that waits for its dependencies, then either submits an LLM call to
the router and waits for its last token, or waits out the tool's latency (the GPU may idle); a
session whose nodes form a chain runs them in turn in its own process instead.
A session ends when all its nodes have ended; if an LLM call is dropped (it can never fit the
KV cache) the rest of the session is abandoned and the session is recorded as ``dropped``.
"""
from __future__ import annotations

import simpy

from agentwatt.sim import kvtier
from agentwatt.sim.batching import Request, unpin
from agentwatt.sim.metrics import RunCounts
from agentwatt.traces.blocks import BlockHasher
from agentwatt.traces.schema import LLMCall, Session


class SessionContext:
    """Per-run shared state for sessions: router, recorder, counters."""

    def __init__(self, env: simpy.Environment, router, recorder, block_size: int, prefix_caching: bool,
                 energy_available: bool = True, kv_retention: str = "drop", kv_retention_ttl_s: float = 0.0,
                 kv_tiers: list | None = None, prefix_routing: bool = False) -> None:
        self.energy_available = energy_available
        self.prefix_routing = prefix_routing   # the router wants each call's block hashes
        self.kv_tiers = kv_tiers    # one kvtier.ReplicaTier per replica with kv_retention "offload"/"cost"
        self.kv_retention = kv_retention
        self.kv_retention_ttl_s = kv_retention_ttl_s
        self.env = env
        self.router = router
        self.rec = recorder
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.next_rid = 0
        self.next_session_id = 0
        self.active_sessions = 0
        self.calls_submitted = 0
        self.calls_finished = 0
        self.calls_dropped = 0
        self.sessions_arrived = 0
        self.sessions_finished = 0
        self.sessions_dropped = 0
        self.idle_event: simpy.Event | None = None
        self.kv_capacity_tokens: int | None = None   # one replica's KV (set by fleet.build)
        self.disagg = None   # sim/disagg.Disaggregation: calls run prefill → KV transfer → decode

    def counts(self) -> RunCounts:
        """The session and call counters as they stand."""
        return RunCounts(sessions_arrived=self.sessions_arrived, sessions_finished=self.sessions_finished,
                         sessions_dropped=self.sessions_dropped, sessions_in_flight=self.active_sessions,
                         calls_submitted=self.calls_submitted, calls_finished=self.calls_finished,
                         calls_dropped=self.calls_dropped)


def run_session(ctx: SessionContext, session: Session):
    env = ctx.env
    ctx.sessions_arrived += 1
    ctx.active_sessions += 1
    state = {"dropped": False, "energy": 0.0, "prompt": 0, "output": 0, "tool_s": 0.0, "pins": [],
             "idle_energy": 0.0, "last_replica": None,
             "last_llm": max(n.id for n in session.nodes if isinstance(n, LLMCall))}
    nodes = session.nodes
    if all(n.deps == ((i - 1,) if i else ()) for i, n in enumerate(nodes)):
        # a chain (chatbot turn, ReAct loop): run the nodes in turn in this process, without a
        # process and a condition event per node (same times; fewer events)
        for node in nodes:
            if isinstance(node, LLMCall):
                yield from _llm(ctx, session, node, (), state)
            else:
                yield from _tool(ctx, node.latency_s, (), state)
    else:
        done: list[simpy.Process] = []
        for node in nodes:
            deps = [done[d] for d in node.deps]
            if isinstance(node, LLMCall):
                done.append(env.process(_llm(ctx, session, node, deps, state)))
            else:
                done.append(env.process(_tool(ctx, node.latency_s, deps, state)))
        yield env.all_of(done)
    for replica, pid in state["pins"]:
        unpin(replica.state, pid)
    state["pins"] = []
    ctx.router.forget(session.id)
    status = "dropped" if state["dropped"] else "finished"
    ctx.rec.session(session_id=session.id, agent=session.agent, arrival_s=session.arrival_s,
                    finish_s=env.now if not state["dropped"] else float("nan"),
                    n_llm_calls=len(session.llm_calls), n_tool_calls=len(session.tool_calls),
                    tool_time_s=state["tool_s"], prompt_tokens=state["prompt"],
                    output_tokens=state["output"], energy_j=state["energy"],
                    idle_energy_j=state["idle_energy"] if ctx.energy_available else float("nan"), status=status)
    if state["dropped"]:
        ctx.sessions_dropped += 1
    else:
        ctx.sessions_finished += 1
    ctx.active_sessions -= 1
    if ctx.active_sessions == 0 and ctx.idle_event is not None and not ctx.idle_event.triggered:
        ctx.idle_event.succeed()


def _tool(ctx: SessionContext, latency_s: float, deps: list, state: dict):
    env = ctx.env
    if deps:
        yield env.all_of(deps)
    if state["dropped"]:
        return
    state["tool_s"] += latency_s
    replica = state["last_replica"]   # the replica holding this session's context
    if replica is not None:
        replica.tool_wait_begins(state)
        if ctx.kv_tiers is not None:
            _tier_pins(ctx, state, latency_s)
    yield env.timeout(latency_s)
    if replica is not None:
        replica.tool_wait_ends(state)


def _hashes(ctx: SessionContext, state: dict, seq: tuple) -> list[int]:
    """Block hashes of ``seq``, extending the session's previous call's hashes when ``seq`` starts
    with that call's whole token sequence (the usual agent loop)."""
    last = state.get("hashed")
    if last is not None and len(seq) > len(last[0]) and seq[:len(last[0])] == last[0]:
        h = last[1].copy().extend(seq[len(last[0]):])
    else:
        h = BlockHasher(ctx.block_size).extend(seq)
    state["hashed"] = (seq, h)
    return h.hashes


def _hand_over_pins(state: dict, req: Request, replica) -> None:
    """KV this session kept on ``replica`` is released once ``req`` is admitted there (its prefix
    is then referenced by ``req``); KV kept on other replicas is released now."""
    keep = []
    for rep, pid in state["pins"]:
        if rep is replica:
            req.unpin_on_admit.append(pid)
        else:
            unpin(rep.state, pid)
    state["pins"] = keep


def _expire(env: simpy.Environment, ttl_s: float, replica, pid: int, state: dict):
    yield env.timeout(ttl_s)
    unpin(replica.state, pid)
    state["pins"] = [(r, p) for r, p in state["pins"] if p != pid or r is not replica]


def _tier_pins(ctx: SessionContext, state: dict, tool_s: float) -> None:
    """A tool call starts: keep, offload or drop each KV pin of the session not yet decided
    (``kvtier.retention_choice``)."""
    env = ctx.env
    decided = state.setdefault("decided", set())
    state["last_tool_s"] = tool_s
    for rep, pid in list(state["pins"]):
        blocks = rep.state.pins.get(pid)
        if (rep.index, pid) in decided or blocks is None:
            continue
        tier = ctx.kv_tiers[rep.index]
        choice = kvtier.retention_choice(ctx.kv_retention, tool_s=tool_s, n_blocks=len(blocks),
                                         gpu_free_blocks=rep.state.kv.num_free, waiting=len(rep.state.waiting),
                                         reload_s=tier.reload_s(len(blocks)), host_capacity_blocks=tier.host.capacity)
        tier.decisions[choice] += 1
        decided.add((rep.index, pid))
        if choice == "drop":
            _unpin(state, rep, pid)
        elif choice == "offload":
            hashes = rep.state.kv.hashes_of(blocks)
            env.process(_offload(env, tier, tier.offload(env.now, hashes), hashes, rep, pid, state))


def _unpin(state: dict, replica, pid: int) -> None:
    unpin(replica.state, pid)
    state["pins"] = [(r, p) for r, p in state["pins"] if p != pid or r is not replica]


def _offload(env: simpy.Environment, tier, end_s: float, hashes: list, replica, pid: int, state: dict):
    """The D2H copy ends: the host holds the blocks; the GPU copies stay cached but evictable
    (unless the session's next call took the pin over meanwhile: it is released on admission)."""
    if end_s > env.now:
        yield env.timeout(end_s - env.now)
    tier.host.store(hashes)
    tier.note_use(env.now)
    if any(p == pid and r is replica for r, p in state["pins"]):
        _unpin(state, replica, pid)


def _llm(ctx: SessionContext, session: Session, call: LLMCall, deps: list, state: dict):
    env = ctx.env
    if deps:
        yield env.all_of(deps)
    if state["dropped"]:
        return
    # a prompt longer than a replica's whole KV cache is dropped at admission before its hashes are
    # read: skip hashing it (a 1e12-token prompt would take hours and all memory to hash)
    fits = ctx.kv_capacity_tokens is None or call.prompt_tokens <= ctx.kv_capacity_tokens
    hashes = _hashes(ctx, state, (*call.prompt, call.output_segment)) if ctx.prefix_caching and fits else []
    req = Request(ctx.next_rid, call.prompt_tokens, call.output_tokens, hashes, env.now,
                  done=env.event(), tag=(session.id, call.id))
    ctx.next_rid += 1
    ctx.calls_submitted += 1
    replica = ctx.router.route(session.id, hashes) if ctx.prefix_routing else ctx.router.route(session.id)
    _hand_over_pins(state, req, replica)
    req.retain = ctx.kv_retention != "drop" and call.id < state["last_llm"]
    if ctx.kv_tiers is not None:   # blocks after the GPU prefix hit that the host holds come back first
        req.host_blocks, wait = kvtier.plan_load(ctx.kv_tiers[replica.index], replica.state.kv, hashes,
                                                 (call.prompt_tokens - 1) // ctx.block_size, env.now,
                                                 state.get("last_tool_s", 0.0))
        if wait > 0:
            yield env.timeout(wait)
    state["last_replica"] = replica
    if ctx.disagg is None:
        replica.submit(req)
        yield req.done
    else:
        yield from ctx.disagg.serve(req, replica, session.id)
    req.done = None   # the event's value is req: break the cycle so both are freed at once, not by the GC
    if req.pin_id is not None:
        state["pins"].append((replica, req.pin_id))
        if ctx.kv_retention == "ttl":
            env.process(_expire(env, ctx.kv_retention_ttl_s, replica, req.pin_id, state))
    dropped = req.finish_s is None
    if dropped:
        state["dropped"] = True
        ctx.calls_dropped += 1
    else:
        ctx.calls_finished += 1
    state["energy"] += req.energy_j if ctx.energy_available else float("nan")
    state["prompt"] += req.prompt_len
    state["output"] += req.num_generated
    nan = float("nan")
    ctx.rec.call(session_id=session.id, node_id=call.id, agent=session.agent, replica=replica.index,
                 submit_s=req.submit_s, start_s=req.start_s if req.start_s is not None else nan,
                 first_token_s=req.first_token_s if req.first_token_s is not None else nan,
                 finish_s=req.finish_s if req.finish_s is not None else nan,
                 prompt_tokens=req.prompt_len,
                 cached_tokens=req.cached_tokens if req.cached_tokens is not None else 0,
                 prefill_computed_tokens=req.prefill_computed, output_tokens=req.num_generated,
                 output_tokens_requested=req.output_len,
                 preemptions=req.preemptions,
                 energy_j=req.energy_j if ctx.energy_available else nan,
                 status="dropped" if dropped else "finished")
