"""Graph-to-graph passes, run in the order of PIPELINE.

Each pass is `Graph -> Graph` and keeps the graph valid; `run_passes()`
re-verifies after each one when asked, and can hand the IR to a callback
after a named pass (the CLI's --dump-ir).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .ir import Graph, Op, OpKind, ResidualAdd, verify


def remove_dead_ops(graph: Graph) -> Graph:
    """Drop ops whose outputs nothing reads (converters leave some behind)."""
    needed = set(graph.outputs)
    keep = []
    for op in reversed(graph.ops):
        if any(t in needed for t in op.outputs):
            keep.append(op)
            needed.update(t for t in op.inputs if t >= 0)
    if len(keep) == len(graph.ops):
        return graph
    return replace(graph, ops=tuple(reversed(keep)))


def schedule_for_memory(graph: Graph, state_limit: int = 50_000) -> Graph:
    """Reorder ops (keeping dependencies) to minimise the peak of live tensor bytes.

    For a chain there is one order. With branches (residual blocks,
    concatenations) the order decides which tensors are alive together; this
    searches all orders exactly by dynamic programming over the sets of
    executed ops, and keeps the file order when the graph has too many.
    """
    from .planner import alias_roots, _align
    ops = graph.ops
    n = len(ops)
    if n < 3:
        return graph
    root = alias_roots(graph)

    def r(t: int) -> int:
        return root.get(t, t)

    size = {}
    producer: dict[int, int] = {}
    consumers: dict[int, int] = {}      # root tensor -> bitmask of ops that read it
    for i, op in enumerate(ops):
        for t in op.outputs:
            if r(t) == t:
                producer[t] = i
        for t in op.inputs:
            if t >= 0 and not graph.tensor(r(t)).is_const:
                consumers[r(t)] = consumers.get(r(t), 0) | (1 << i)
        for t in op.outputs:            # an alias keeps its root alive until it runs
            if r(t) != t:
                consumers[r(t)] = consumers.get(r(t), 0) | (1 << i)
    for t in {*producer, *consumers}:
        size[t] = _align(graph.tensor(t).nbytes)
    outputs = {r(t) for t in graph.outputs}
    inputs = {r(t) for t in graph.inputs}
    deps = []
    for i, op in enumerate(ops):
        m = 0
        for t in op.inputs:
            if t >= 0 and r(t) in producer:
                m |= 1 << producer[r(t)]
        for t in op.inputs:
            if t >= 0 and t != r(t):  # reading an alias needs the alias op to have run
                for j, o in enumerate(ops):
                    if t in o.outputs:
                        m |= 1 << j
        deps.append(m & ~(1 << i))

    def live_after(done: int) -> int:
        total = 0
        for t, sz in size.items():
            made = t in inputs or (t in producer and done >> producer[t] & 1)
            needed = t in outputs or (consumers.get(t, 0) & ~done) != 0
            if made and needed:
                total += sz
        return total

    full = (1 << n) - 1
    memo: dict[int, tuple[int, int]] = {}

    def best(done: int) -> tuple[int, int]:
        """(peak from here on, next op) for the set of executed ops `done`."""
        if done == full:
            return 0, -1
        hit = memo.get(done)
        if hit is not None:
            return hit
        if len(memo) > state_limit:
            raise OverflowError
        base = live_after(done)
        result = (1 << 62, -1)
        for i in range(n):
            if not done >> i & 1 and deps[i] & ~done == 0:
                new = sum(size[t] for t in ops[i].outputs if r(t) == t and t in size and t not in inputs)
                step = base + new
                rest = best(done | (1 << i))[0]
                cand = (max(step, rest), i)
                if cand[0] < result[0]:
                    result = cand
        memo[done] = result
        return result

    import sys
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * n + 100))
    try:
        best(0)
    except OverflowError:
        return graph
    finally:
        sys.setrecursionlimit(limit)
    order, done = [], 0
    while done != full:
        i = memo[done][1] if done in memo else best(done)[1]
        order.append(ops[i])
        done |= 1 << i
    if [o.index for o in order] == [o.index for o in ops]:
        return graph
    return replace(graph, ops=tuple(order))


def fuse_residual_adds(graph: Graph, fusable: Callable[[Op, Graph, int, int, int], bool]) -> Graph:
    """Run each residual ADD inside the convolution that computes one of its operands.

    ADD(x, conv(y)) becomes one CONV_2D reading (y, weights, bias, x) whose
    result is written over x as it is computed (Conv2DAttrs.residual): the
    convolution's own output tensor is never stored, which takes a whole
    activation off the peak of a residual block (ResNet-8's first block: x,
    y and the convolution's output were alive together). It applies where x
    dies at the ADD, nothing reads x between the convolution and the ADD, x
    exists before the convolution runs (a CROP_2D that makes it after the
    convolution, as patches do, moves before it), and the kernel can
    (`fusable(conv, graph, x, out, shared)`: kernels.conv.residual_fusable;
    `shared` counts the outputs of every ADD with the same arithmetic, which
    would read the same tables: the copies of one ADD in the patches). Of two
    convolution operands the later one takes the ADD, the other being made
    before it. Target-dependent (the kernel choice), so the pipeline runs it
    per memory strategy, after patching, not in PIPELINE."""
    from .planner import alias_roots
    root = alias_roots(graph)

    def r(t: int) -> int:
        return root.get(t, t)

    def arithmetic(add: Op):
        return (frozenset(graph.tensor(t).quant for t in add.inputs),
                graph.tensor(add.outputs[0]).quant, add.attrs)

    shared: dict = {}
    for add in graph.ops:
        if add.kind == OpKind.ADD:
            key = arithmetic(add)
            shared[key] = shared.get(key, 0) + graph.tensor(add.outputs[0]).num_elements
    outputs = {r(t) for t in graph.outputs}

    def one_fusion(ops: list[Op]) -> list[Op] | None:
        """The ops with the first ADD that can be fused fused, or None."""
        readers: dict[int, list[int]] = {}
        for i, op in enumerate(ops):
            for t in op.inputs:
                if t >= 0:
                    readers.setdefault(r(t), []).append(i)
        producer = {t: i for i, op in enumerate(ops) for t in op.outputs}

        def made_before(t: int, step: int) -> bool:
            return t < 0 or graph.tensor(t).is_const or t in graph.inputs or producer[t] < step

        for a, add in enumerate(ops):
            if (add.kind != OpKind.ADD or len(add.inputs) != 2
                    or any(t < 0 or graph.tensor(t).is_const for t in add.inputs)):
                continue
            best = None
            for z, x in ((add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])):
                c = producer.get(z)
                if c is None or ops[c].kind != OpKind.CONV_2D or ops[c].attrs.residual is not None:
                    continue
                if r(z) != z or z in outputs or readers.get(z) != [a]:
                    continue                    # the ADD alone reads the convolution's result
                xr = r(x)
                if xr in outputs or max(readers[xr]) != a or any(c < j < a for j in readers[xr]):
                    continue                    # x dies at the ADD, untouched since the convolution
                hoist = None
                if not made_before(x, c):       # x exists when the convolution runs
                    p = producer[x]
                    if (ops[p].kind != OpKind.CROP_2D or xr != x
                            or not all(made_before(t, c) for t in ops[p].inputs)):
                        continue
                    hoist = p
                if xr == r(ops[c].inputs[0]) or not fusable(ops[c], graph, x, add.outputs[0],
                                                             shared[arithmetic(add)]):
                    continue
                if best is None or c > best[0]:
                    best = (c, z, x, hoist)
            if best is None:
                continue
            c, z, x, hoist = best
            conv = ops[c]
            inputs = tuple(conv.inputs) + (-1,) * (3 - len(conv.inputs)) + (x,)
            residual = ResidualAdd(graph.tensor(z).quant, add.attrs.activation, add.index)
            fused = replace(conv, inputs=inputs, outputs=add.outputs,
                            attrs=replace(conv.attrs, residual=residual))
            before = [ops[hoist]] if hoist is not None else []
            return (ops[:c] + before + [fused]
                    + [op for i, op in enumerate(ops) if c < i and i not in (a, hoist)])
        return None

    ops, changed = list(graph.ops), False
    while (step := one_fusion(ops)) is not None:
        ops, changed = step, True
    return replace(graph, ops=tuple(ops)) if changed else graph


Pass = Callable[[Graph], Graph]

# The lowering sequence, one line each.
PIPELINE: tuple[tuple[str, Pass], ...] = (
    ("remove_dead_ops", remove_dead_ops),            # unread results cost memory and time
    ("schedule_for_memory", schedule_for_memory),    # branch order decides what is alive together
)


def run_passes(graph: Graph, check: bool = False,
               dump: Callable[[str, Graph], None] | None = None) -> Graph:
    for name, fn in PIPELINE:
        graph = fn(graph)
        if check:
            verify(graph)
        if dump is not None:
            dump(name, graph)
    return graph
