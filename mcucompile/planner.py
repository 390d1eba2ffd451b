"""Static memory planning: every activation tensor and kernel scratch buffer
gets an offset in one arena.

The planner is split the way TVM's USMP splits it:
  1. `buffers_of()` turns a graph into Buffers with lifetimes (execution steps);
     RESHAPE/SQUEEZE outputs share their input's buffer.
  2. A placement algorithm maps Buffers to offsets. Algorithms are plain
     functions `list[Buffer] -> dict[key, offset]`, registered in PLACERS;
     `plan()` runs each and keeps the smallest arena.
  3. `check_placement()` proves that no two buffers live at the same step
     overlap. The compiler runs it on every plan it emits.
The lower bound is the largest total size of buffers alive at one step; no
placement of whole buffers can beat it.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, Hashable

import numpy as np

from .errors import GraphError
from .ir import ALIAS_KINDS, Graph

ALIGN = 4  # byte alignment of every buffer; float tensors and word loads need it


@dataclass(frozen=True)
class Buffer:
    key: Hashable          # ("t", tensor id) or ("scratch", op index)
    size: int
    first: int             # first step at which it is live
    last: int              # last step at which it is live (inclusive)
    name: str = ""
    # Per-step sizes from `first` to `last` for an in-place group, whose bytes
    # change as its members are born and die (a "staircase"); empty = `size` throughout.
    steps: tuple[int, ...] = ()

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last

    def size_at(self, step: int) -> int:
        return self.steps[step - self.first] if self.steps else self.size

    def extent_with(self, other: "Buffer") -> int:
        """Bytes this buffer needs while `other` is alive too (its largest step in common)."""
        if not self.steps:
            return self.size
        lo, hi = max(self.first, other.first), min(self.last, other.last)
        return max(self.steps[lo - self.first:hi - self.first + 1], default=0)


@dataclass(frozen=True)
class MemoryPlan:
    arena_bytes: int
    lower_bound: int                      # layer-wise liveness bound, whole tensors
    tensor_offsets: dict[int, int]        # tensor id -> arena offset
    scratch_offsets: dict[int, int]       # op index -> offset of its scratch buffer
    buffers: tuple[Buffer, ...]
    live_bytes: tuple[int, ...]           # bytes alive at each step
    algorithm: str


def _align(x: int, a: int = ALIGN) -> int:
    return (x + a - 1) // a * a


def alias_roots(graph: Graph, inplace: dict[int, int] | None = None) -> dict[int, int]:
    """Map each tensor that shares another's buffer to the group's first tensor.

    RESHAPE/SQUEEZE outputs always share their input's bytes. `inplace` maps
    the output of an op that runs in place to the input it overwrites."""
    root: dict[int, int] = {}
    inplace = inplace or {}
    for op in graph.ops:
        if op.kind in ALIAS_KINDS:
            src = op.inputs[0]
            root[op.outputs[0]] = root.get(src, src)
        for out in op.outputs:
            if out in inplace:
                src = inplace[out]
                root[out] = root.get(src, src)
    return root


def check_inplace(graph: Graph, inplace: dict[int, int]) -> None:
    """An op may overwrite an input only if nothing reads that input's buffer afterwards."""
    root = alias_roots(graph, inplace)
    step_of = {t: i for i, op in enumerate(graph.ops) for t in op.outputs}
    groups: dict[int, set[int]] = {}
    for t in range(len(graph.tensors)):
        groups.setdefault(root.get(t, t), set()).add(t)
    for out, src in inplace.items():
        s = step_of[out]
        group = groups[root.get(src, src)]
        held = _descendants_in(graph, out, group)
        for later in graph.ops[s + 1:]:
            if any(t in group and t not in held for t in later.inputs):
                raise GraphError(f"op {graph.ops[s].index} ({graph.ops[s].kind.value}) cannot run in place: "
                                 f"op {later.index} still reads its input afterwards")
        if src in graph.outputs:
            raise GraphError(f"op {graph.ops[s].index} cannot overwrite graph output "
                             f"{graph.tensor(src).name!r}")


def _descendants_in(graph: Graph, tid: int, group: set[int]) -> set[int]:
    """Tensors of the group that hold the op's result: `tid` and what aliases it later."""
    out = {tid}
    for op in graph.ops:
        if any(t in out for t in op.inputs):
            out.update(t for t in op.outputs if t in group)
    return out


@dataclass(frozen=True)
class _Steps:
    """Each activation tensor's steps in one graph: touched first and last (any
    use), born (produced) and dies (last read)."""
    seen: dict[int, int]
    used: dict[int, int]
    born: dict[int, int]
    dies: dict[int, int]
    activations: tuple[int, ...]     # ids of the tensors that are not constants
    # (root, members, first, last) -> the Buffer of a group of tensors sharing bytes
    groups: dict[tuple[int, tuple[int, ...], int, int], Buffer] = field(default_factory=dict)


# Per graph (frozen, so it cannot go stale): the trial plans of one compile ask
# for a graph's buffers hundreds of times with different in-place choices.
_STEPS: weakref.WeakKeyDictionary[Graph, _Steps] = weakref.WeakKeyDictionary()


def _steps_of(graph: Graph) -> _Steps:
    cached = _STEPS.get(graph)
    if cached is not None:
        return cached
    last_step = max(len(graph.ops) - 1, 0)
    seen: dict[int, int] = {t: 0 for t in graph.inputs}
    used: dict[int, int] = dict(seen)
    born: dict[int, int] = dict(seen)
    dies: dict[int, int] = {}
    for step, op in enumerate(graph.ops):
        for t in op.inputs:
            if t >= 0:
                seen.setdefault(t, step)
                used[t] = dies[t] = step
        for t in op.outputs:
            seen.setdefault(t, step)
            born.setdefault(t, step)
            used[t] = step
    for t in graph.outputs:
        seen.setdefault(t, last_step)
        used[t] = dies[t] = last_step
    activations = tuple(t.id for t in graph.tensors if not t.is_const)
    _STEPS[graph] = cached = _Steps(seen, used, born, dies, activations)
    return cached


def buffers_of(graph: Graph, scratch: dict[int, int] | None = None,
               inplace: dict[int, int] | None = None) -> list[Buffer]:
    """Buffers with lifetimes. Step i is the i-th op; graph inputs are live from
    step 0 and graph outputs until the last step. `scratch` maps op index -> bytes;
    `inplace` (output -> input) merges an in-place op's output into its input's buffer."""
    root = alias_roots(graph, inplace)
    st = _steps_of(graph)
    # Groups of tensors sharing a buffer: live from their first member's first
    # use to their last member's last.
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for t, step in st.seen.items():
        r = root.get(t, t)
        if graph.tensors[r].is_const:
            continue
        first[r] = min(first.get(r, step), step)
        last[r] = max(last.get(r, st.used[t]), st.used[t])
    for t in st.activations:
        r = root.get(t, t)
        if r in first:
            members.setdefault(r, []).append(t)
    bufs = []
    for r in sorted(first):
        key = (r, tuple(members[r]), first[r], last[r])
        buf = st.groups.get(key)
        if buf is None:
            buf = st.groups[key] = _group_buffer(graph, r, members[r], first[r], last[r],
                                                 st.born, st.dies)
        bufs.append(buf)
    for step, op in enumerate(graph.ops):
        size = (scratch or {}).get(op.index, 0)
        if size:
            bufs.append(Buffer(("scratch", op.index), _align(size), step, step, f"{op.name} scratch"))
    return bufs


def _group_buffer(graph: Graph, root: int, members: list[int], first: int, last: int,
                  born: dict[int, int], dies: dict[int, int]) -> Buffer:
    """One buffer for a group of tensors that share bytes. A member occupies the
    group from its producer (born) to its last reader (dies); at each step the
    group is as large as its largest member alive then."""
    name = graph.tensor(root).name
    if len(members) == 1 or len({graph.tensors[m].nbytes for m in members}) == 1:
        return Buffer(("t", root), _align(graph.tensor(root).nbytes), first, last, name)
    steps = [0] * (last - first + 1)
    for m in members:
        b, d = born.get(m, first), dies.get(m, born.get(m, first))
        for s in range(max(b, first), min(d, last) + 1):
            steps[s - first] = max(steps[s - first], _align(graph.tensor(m).nbytes))
    return Buffer(("t", root), max(steps), first, last, name, tuple(steps))


def live_bytes(buffers: list[Buffer], steps: int) -> list[int]:
    live = [0] * max(steps, 1)
    for b in buffers:
        for s in range(b.first, b.last + 1):
            live[s] += b.size_at(s)
    return live


def lower_bound(graph: Graph, inplace: dict[int, int] | None = None) -> int:
    """The layer-wise liveness lower bound over tensors (scratch excluded).
    With `inplace`, ops that overwrite their input count their output only once."""
    return max(live_bytes(buffers_of(graph, inplace=inplace), len(graph.ops)), default=0)


# --- placement algorithms -----------------------------------------------------

def _first_fit(order: list[Buffer]) -> dict[Hashable, int]:
    """Place each buffer at the lowest offset where it overlaps no placed buffer
    that is live at the same time."""
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[Hashable, int] = {}
    # The placed buffers' lifetimes as arrays: finding the ones alive with b is
    # the quadratic part, and patch plans have hundreds of buffers.
    firsts = np.empty(len(order), dtype=np.int64)
    lasts = np.empty(len(order), dtype=np.int64)
    for k, b in enumerate(order):
        near = np.flatnonzero((firsts[:k] <= b.last) & (lasts[:k] >= b.first))
        # Each placed neighbour in time blocks [lo, hi); b needs `need` bytes beside it.
        busy = sorted((off, off + p.extent_with(b), b.extent_with(p))
                      for p, off in (placed[i] for i in near))
        offsets[b.key] = _lowest_fit(busy)
        placed.append((b, offsets[b.key]))
        firsts[k], lasts[k] = b.first, b.last
    return offsets


def _lowest_fit(busy: list[tuple[int, int, int]]) -> int:
    """The lowest aligned offset o with o + need <= lo or o >= hi for every (lo, hi, need)."""
    candidates = sorted({0} | {_align(hi) for _, hi, _ in busy})
    for o in candidates:
        if all(o + need <= lo or o >= hi for lo, hi, need in busy):
            return o
    raise AssertionError("unreachable: the top of the busy intervals always fits")


def greedy_by_size(buffers: list[Buffer]) -> dict[Hashable, int]:
    """TFLM's and TVM's default: largest first, first fit."""
    return _first_fit(sorted(buffers, key=lambda b: (-b.size, b.first, str(b.key))))


def greedy_by_conflicts(buffers: list[Buffer]) -> dict[Hashable, int]:
    """Buffers that overlap the most others in time first, ties by size."""
    firsts = np.array([b.first for b in buffers], dtype=np.int64)
    lasts = np.array([b.last for b in buffers], dtype=np.int64)
    sizes = np.array([b.size for b in buffers], dtype=np.int64)

    def conflicts(b: Buffer) -> int:
        # Every buffer alive with b, b itself included (it is subtracted).
        return int(sizes[(firsts <= b.last) & (lasts >= b.first)].sum()) - b.size
    return _first_fit(sorted(buffers, key=lambda b: (-(conflicts(b) + b.size), -b.size, str(b.key))))


def greedy_by_area(buffers: list[Buffer]) -> dict[Hashable, int]:
    """Largest size x lifetime first: long-lived big tensors go to the bottom."""
    return _first_fit(sorted(buffers, key=lambda b: (-b.size * (b.last - b.first + 1), str(b.key))))


def greedy_by_start(buffers: list[Buffer]) -> dict[Hashable, int]:
    """Execution order: what is born first is placed first."""
    return _first_fit(sorted(buffers, key=lambda b: (b.first, -b.size, str(b.key))))


PLACERS: dict[str, Callable[[list[Buffer]], dict[Hashable, int]]] = {
    "greedy_by_size": greedy_by_size,
    "greedy_by_conflicts": greedy_by_conflicts,
    "greedy_by_area": greedy_by_area,
    "greedy_by_start": greedy_by_start,
}


# --- improving on the heuristics ---------------------------------------------
#
# Every placement can be compacted into the first-fit placement of some order
# (place buffers in order of their offsets: each lands at or below where it
# was). So searching over orders of first-fit loses nothing, and an exhaustive
# search over orders is exact.

def _order_of(buffers: list[Buffer], offsets: dict[Hashable, int]) -> list[Buffer]:
    return sorted(buffers, key=lambda b: (offsets[b.key], -b.size, str(b.key)))


def local_search(buffers: list[Buffer], start: dict[Hashable, int], budget: int = 4000) -> dict[Hashable, int]:
    """Improve a placement by moving one buffer at a time earlier in the first-fit order,
    keeping any move that does not grow the arena. Deterministic; `budget` first-fit runs."""
    order = _order_of(buffers, start)
    best = _first_fit(order)
    best_size = arena_size(buffers, best)
    bound = max(live_bytes(buffers, 1 + max((b.last for b in buffers), default=0)), default=0)
    runs = 0
    improved = True
    while improved and runs < budget and best_size > bound:
        improved = False
        # Buffers that end at the top of the arena are the ones to move.
        top = [i for i, b in enumerate(order) if best[b.key] + b.size == best_size]
        for i in top:
            for j in range(i):
                trial = order[:j] + [order[i]] + order[j:i] + order[i + 1:]
                offsets = _first_fit(trial)
                runs += 1
                size = arena_size(buffers, offsets)
                if size < best_size:
                    order, best, best_size, improved = trial, offsets, size, True
                    break
                if runs >= budget:
                    break
            if improved or runs >= budget:
                break
    return best


def branch_and_bound(buffers: list[Buffer], incumbent: dict[Hashable, int],
                     node_limit: int = 200_000) -> tuple[dict[Hashable, int], bool]:
    """Exact search over first-fit orders, pruned by the incumbent and the liveness bound.
    Returns (placement, proven_optimal)."""
    n = len(buffers)
    best = dict(incumbent)
    best_size = arena_size(buffers, best)
    bound = max(live_bytes(buffers, 1 + max((b.last for b in buffers), default=0)), default=0)
    if best_size <= bound:
        return best, True
    conflicts = [[j for j in range(n) if j != i and buffers[i].overlaps_in_time(buffers[j])]
                 for i in range(n)]
    offsets: list[int | None] = [None] * n
    nodes = 0
    exhausted = True

    def place(i: int) -> int:
        b = buffers[i]
        return _lowest_fit([(offsets[j], offsets[j] + buffers[j].extent_with(b), b.extent_with(buffers[j]))
                            for j in conflicts[i] if offsets[j] is not None])

    def dfs(depth: int, top: int) -> None:
        nonlocal best, best_size, nodes, exhausted
        if best_size <= bound:
            return
        if nodes >= node_limit:
            exhausted = False
            return
        nodes += 1
        if depth == n:
            best = {buffers[i].key: offsets[i] for i in range(n)}
            best_size = top
            return
        seen_sizes = set()
        for i in sorted((i for i in range(n) if offsets[i] is None), key=lambda i: -buffers[i].size):
            off = place(i)
            end = off + buffers[i].size
            # Two unplaced buffers with equal size, lifetime and landing spot are interchangeable.
            sig = (buffers[i].size, buffers[i].first, buffers[i].last, off)
            if max(top, end) >= best_size or sig in seen_sizes:
                continue
            seen_sizes.add(sig)
            offsets[i] = off
            dfs(depth + 1, max(top, end))
            offsets[i] = None

    dfs(0, 0)
    return best, exhausted


EXACT_LIMIT = 14  # buffers; beyond this the exact search only refines within its node budget


def arena_size(buffers: list[Buffer], offsets: dict[Hashable, int]) -> int:
    return max((offsets[b.key] + b.size for b in buffers), default=0)


def check_placement(buffers: list[Buffer], offsets: dict[Hashable, int]) -> None:
    """Raise GraphError if two buffers that are live at the same step overlap in memory."""
    for b in buffers:
        if b.key not in offsets or offsets[b.key] < 0 or offsets[b.key] % ALIGN:
            raise GraphError(f"memory plan: buffer {b.name!r} has no valid aligned offset")
    by_start = sorted(buffers, key=lambda b: b.first)
    for i, a in enumerate(by_start):
        for b in by_start[i + 1:]:
            if b.first > a.last:
                break
            for step in range(max(a.first, b.first), min(a.last, b.last) + 1):
                lo = max(offsets[a.key], offsets[b.key])
                hi = min(offsets[a.key] + a.size_at(step), offsets[b.key] + b.size_at(step))
                if lo < hi:
                    raise GraphError(f"memory plan: {a.name!r} and {b.name!r} are live together "
                                     f"(step {step}) but share bytes {lo}-{hi}")


def place(bufs: list[Buffer], algorithms: tuple[str, ...] | None = None,
          refine: bool = True) -> tuple[dict[Hashable, int], str]:
    """Run every heuristic, keep the smallest; then local search and, for small
    problems, an exact branch and bound. Returns (offsets, how they were found)."""
    best: tuple[int, str, dict] | None = None
    for name in algorithms or tuple(PLACERS):
        offsets = PLACERS[name](bufs)
        size = arena_size(bufs, offsets)
        if best is None or size < best[0]:
            best = (size, name, offsets)
    assert best is not None
    size, name, offsets = best
    bound = max(live_bytes(bufs, 1 + max((b.last for b in bufs), default=0)), default=0)
    # First-fit is quadratic in the buffers: scale the search to the problem.
    n = max(len(bufs), 1)
    runs = max(20, min(4000, 4_000_000 // (n * n)))
    if refine and size > bound:
        improved = local_search(bufs, offsets, budget=runs)
        if arena_size(bufs, improved) < size:
            offsets, name = improved, f"{name}+local_search"
            size = arena_size(bufs, offsets)
        if size > bound:
            exact, proven = branch_and_bound(bufs, offsets,
                                             node_limit=200_000 if n <= EXACT_LIMIT else 50 * runs)
            if arena_size(bufs, exact) < size:
                offsets, name = exact, "branch_and_bound"
            if proven:
                name += " (optimal)"
    return offsets, name


def fits(graph: Graph, limit: int, scratch: dict[int, int] | None = None,
         inplace: dict[int, int] | None = None) -> bool:
    """Whether `plan(..., refine=False, check_pairs=False)` would find an arena
    of at most `limit` bytes: the placers in turn, until one does. For callers
    that try many variants and plan the one they keep in full."""
    bufs = buffers_of(graph, scratch, inplace)
    return any(arena_size(bufs, placer(bufs)) <= limit for placer in PLACERS.values())


def plan(graph: Graph, scratch: dict[int, int] | None = None,
         algorithms: tuple[str, ...] | None = None, refine: bool = True,
         inplace: dict[int, int] | None = None, check_pairs: bool = True) -> MemoryPlan:
    """Place every buffer, keep the smallest verified arena. `check_pairs=False`
    skips check_inplace, for callers that pass a subset of pairs already checked."""
    if inplace and check_pairs:
        check_inplace(graph, inplace)
    bufs = buffers_of(graph, scratch, inplace)
    offsets, name = place(bufs, algorithms, refine)
    size = arena_size(bufs, offsets)
    check_placement(bufs, offsets)
    root = alias_roots(graph, inplace)
    tensor_offsets = {}
    for t in graph.activations():
        r = root.get(t.id, t.id)
        if ("t", r) in offsets:
            tensor_offsets[t.id] = offsets[("t", r)]
    scratch_offsets = {k[1]: v for k, v in offsets.items() if k[0] == "scratch"}
    return MemoryPlan(arena_bytes=size, lower_bound=lower_bound(graph),
                      tensor_offsets=tensor_offsets, scratch_offsets=scratch_offsets,
                      buffers=tuple(bufs), live_bytes=tuple(live_bytes(bufs, len(graph.ops))),
                      algorithm=name)
