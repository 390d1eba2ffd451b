"""Graph-to-graph passes, run in the order of PIPELINE.

Each pass is `Graph -> Graph` and keeps the graph valid; `run_passes()`
re-verifies after each one when asked, and can hand the IR to a callback
after a named pass (the CLI's --dump-ir).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .ir import Graph, verify


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


Pass = Callable[[Graph], Graph]

# The lowering sequence, one line each.
PIPELINE: tuple[tuple[str, Pass], ...] = (
    ("remove_dead_ops", remove_dead_ops),     # unread results cost memory and time
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
