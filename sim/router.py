"""Routers: which replica gets an LLM call. One dict of policies; unknown names list the valid ones.

With ``session_affinity`` a session's later calls go to the replica that served its previous
call, so its grown context can hit that replica's prefix cache (the first call uses the policy).
"""
from __future__ import annotations

from typing import Sequence

from agentwatt.core.errors import InputError


class RoundRobin:
    def __init__(self, replicas: Sequence) -> None:
        self.replicas = replicas
        self._next = 0

    def pick(self):
        r = self.replicas[self._next]
        self._next = (self._next + 1) % len(self.replicas)
        return r


class LeastLoaded:
    """Fewest outstanding (running + waiting) requests; ties go to the lowest index.

    Replicas report each change of their load (``Replica.on_load``); the loads sit in a min-tree
    keyed ``load·2^bits + index``, so a pick is O(1) and an update O(log R) instead of a scan of
    all R replicas per pick (1,000 replicas: the scan took ~0.15 ms a session)."""

    def __init__(self, replicas: Sequence) -> None:
        self.replicas = replicas
        size = 1
        while size < len(replicas):
            size *= 2
        self._size = size
        self._bits = size.bit_length()
        self._mask = (1 << self._bits) - 1
        self._tree = [1 << 62] * (2 * size)
        for r in replicas:
            self._tree[size + r.index] = (r.outstanding << self._bits) | r.index
            r.on_load = self.update
        for i in range(size - 1, 0, -1):
            a, b = self._tree[2 * i], self._tree[2 * i + 1]
            self._tree[i] = a if a < b else b

    def update(self, index: int, load: int) -> None:
        tree = self._tree
        i = self._size + index
        tree[i] = (load << self._bits) | index
        while i > 1:
            i >>= 1
            a, b = tree[2 * i], tree[2 * i + 1]
            m = a if a < b else b
            if tree[i] == m:
                break
            tree[i] = m

    def pick(self):
        return self.replicas[self._tree[1] & self._mask]


class FewestQueued:
    """Fewest requests still waiting to be admitted (running ones not counted); ties go to the
    lowest index. Under light load almost everything lands on replica 0. This is what Vidur 0.0.26's
    ``lor`` global scheduler does; it is here to compare against Vidur like for like."""

    def __init__(self, replicas: Sequence) -> None:
        self.replicas = replicas

    def pick(self):
        return min(self.replicas, key=lambda r: (len(r.state.waiting), r.index))


ROUTERS = {"round_robin": RoundRobin, "least_loaded": LeastLoaded, "fewest_queued": FewestQueued}


class Router:
    def __init__(self, replicas: Sequence, policy: str, session_affinity: bool) -> None:
        if policy not in ROUTERS:
            raise InputError(f"router policy {policy!r}: expected one of {', '.join(ROUTERS)}")
        self.policy = ROUTERS[policy](replicas)
        self.session_affinity = session_affinity
        self._home: dict[int, object] = {}

    def route(self, session_id: int):
        if self.session_affinity:
            r = self._home.get(session_id)
            if r is None:
                r = self._home[session_id] = self.policy.pick()
            return r
        return self.policy.pick()

    def forget(self, session_id: int) -> None:
        self._home.pop(session_id, None)
