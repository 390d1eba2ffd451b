"""Patch-based inference (MCUNetV2): run the memory-heavy first stage of a
network one spatial patch at a time.

The stage is a prefix of the op sequence made of spatially local ops
(convolutions, pooling, element-wise). Its last tensor, the split tensor, is
cut into a grid of patches. For each patch, the region every stage tensor
must cover is found by walking the stage backwards (a window of stride s,
size k, dilation d and top padding P needs input rows
[y0*s - P, (y1-1)*s - P + (k-1)*d + 1), clipped to the tensor). The stage is
then emitted once per patch on patch-sized tensors, with explicit padding
where a patch touches the border and none inside, so every output value is
computed exactly as layer by layer. PASTE_2D writes each patch of the split
tensor into the full tensor, in place.

Only one patch's activations are alive at a time; the price is the
recomputation of the overlapping halos, reported as extra MACs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from .errors import McuCompileError
from .ir import ALIAS_KINDS, DType, ExplicitPadding, Graph, Op, OpKind, RegionAttrs, Tensor, verify

WINDOW_KINDS = {OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D}
POINTWISE_KINDS = {OpKind.ADD, OpKind.MUL, OpKind.RELU, OpKind.RELU6, OpKind.LOGISTIC,
                   OpKind.HARD_SWISH, OpKind.QUANTIZE}


@dataclass(frozen=True)
class Region:
    """Rows [y0, y1) and columns [x0, x1) of an NHWC tensor."""
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    def union(self, o: "Region") -> "Region":
        return Region(min(self.y0, o.y0), max(self.y1, o.y1), min(self.x0, o.x0), max(self.x1, o.x1))


@dataclass(frozen=True)
class PatchConfig:
    stage_ops: int          # the first `stage_ops` ops run per patch
    grid: tuple[int, int]   # patches along H and W of the split tensor


@dataclass(frozen=True)
class PatchResult:
    graph: Graph
    config: PatchConfig
    macs_before: int
    macs_after: int

    @property
    def recompute(self) -> float:
        """Extra MACs as a fraction of the layer-by-layer network's."""
        return self.macs_after / self.macs_before - 1.0 if self.macs_before else 0.0


class PatchError(McuCompileError):
    """A forced split point or grid that patch-based inference cannot use."""


# --- geometry -----------------------------------------------------------------

def _pads(op: Op, graph: Graph) -> tuple[int, int]:
    """Top/left padding of a window op over its full input, as TFLite computes it."""
    from .kernels.conv import out_size, pad_before
    a = op.attrs
    inp, out = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    kh, kw = _kernel(op, graph)
    dh, dw = getattr(a, "dilation_h", 1), getattr(a, "dilation_w", 1)
    if isinstance(a.padding, ExplicitPadding):
        return a.padding.top, a.padding.left
    assert out.shape[1] == out_size(a.padding, inp.shape[1], kh, a.stride_h, dh)
    return (pad_before(inp.shape[1], kh, a.stride_h, dh, out.shape[1]),
            pad_before(inp.shape[2], kw, a.stride_w, dw, out.shape[2]))


def _kernel(op: Op, graph: Graph) -> tuple[int, int]:
    if op.kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
        return op.attrs.filter_h, op.attrs.filter_w
    f = graph.tensor(op.inputs[1])
    return f.shape[1], f.shape[2]


def input_region(op: Op, graph: Graph, out: Region) -> Region:
    """The input rows/columns an op reads to produce the output region `out`."""
    if op.kind in POINTWISE_KINDS:
        return out
    a = op.attrs
    inp = graph.tensor(op.inputs[0])
    kh, kw = _kernel(op, graph)
    dh, dw = getattr(a, "dilation_h", 1), getattr(a, "dilation_w", 1)
    ph, pw = _pads(op, graph)
    y0 = out.y0 * a.stride_h - ph
    y1 = (out.y1 - 1) * a.stride_h - ph + (kh - 1) * dh + 1
    x0 = out.x0 * a.stride_w - pw
    x1 = (out.x1 - 1) * a.stride_w - pw + (kw - 1) * dw + 1
    return Region(max(0, y0), min(inp.shape[1], y1), max(0, x0), min(inp.shape[2], x1))


def _splits(n: int, parts: int) -> list[tuple[int, int]]:
    """Cut n into `parts` near-equal ranges."""
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts)]


# --- which prefixes can run per patch -------------------------------------------

def _is_spatial(op: Op, graph: Graph) -> bool:
    if op.kind not in WINDOW_KINDS | POINTWISE_KINDS:
        return False
    tensors = [graph.tensor(t) for t in (*op.inputs, *op.outputs) if t >= 0 and not graph.tensor(t).is_const]
    if any(len(t.shape) != 4 or t.shape[0] != 1 or t.dtype != DType.INT8 for t in tensors):
        return False  # CROP/PASTE move int8 NHWC tensors (a float QUANTIZE input stays whole)
    if op.kind in POINTWISE_KINDS:
        # Broadcasting operands would need their own regions; keep to same-shape operands.
        out = graph.tensor(op.outputs[0]).shape
        return all(graph.tensor(t).shape == out for t in op.inputs if t >= 0)
    return True


def stage_candidates(graph: Graph) -> list[int]:
    """Prefix lengths k such that the first k ops can run per patch: all spatial, and
    only the k-th op's output is read after the stage (a residual edge across the
    split would need the whole tensor)."""
    out = []
    for k in range(1, len(graph.ops) + 1):
        op = graph.ops[k - 1]
        if not _is_spatial(op, graph):
            break
        stage = graph.ops[:k]
        produced = {t for o in stage for t in o.outputs}
        split = op.outputs[0]
        later_reads = {t for o in graph.ops[k:] for t in o.inputs}
        if (produced & later_reads) - {split} or (produced & set(graph.outputs)) - {split}:
            continue
        if split in graph.outputs:
            continue
        out.append(k)
    return out


# --- the transformation -----------------------------------------------------------

def apply(graph: Graph, config: PatchConfig) -> Graph:
    """The graph with its first `config.stage_ops` ops run patch by patch."""
    k = config.stage_ops
    if k not in stage_candidates(graph):
        raise PatchError(f"the first {k} ops cannot run patch by patch: they must all be "
                         "convolutions, pooling or same-shape element-wise ops, and no tensor "
                         "but the last may be read after them")
    stage = graph.ops[:k]
    split = stage[-1].outputs[0]
    st = graph.tensor(split)
    gy, gx = config.grid
    if gy > st.shape[1] or gx > st.shape[2] or gy < 1 or gx < 1:
        raise PatchError(f"a {gy}x{gx} grid does not fit the {st.shape[1]}x{st.shape[2]} split tensor "
                         f"{st.name!r}")
    tensors = list(graph.tensors)
    new_ops: list[Op] = []
    producer = {t: o for o in stage for t in o.outputs}
    next_index = max(o.index for o in graph.ops) + 1
    full_version = None  # the split tensor as pasted so far

    def new_tensor(like: Tensor, region: Region, tag: str) -> int:
        tid = len(tensors)
        tensors.append(Tensor(tid, f"{like.name}@{tag}", (1, region.h, region.w, like.shape[3]),
                              like.dtype, like.quant))
        return tid

    def new_op(kind: OpKind, inputs, outputs, attrs) -> None:
        nonlocal next_index
        new_ops.append(Op(next_index, kind, tuple(inputs), tuple(outputs), attrs))
        next_index += 1

    patches = [(py, px, Region(y0, y1, x0, x1)) for py, (y0, y1) in enumerate(_splits(st.shape[1], gy))
               for px, (x0, x1) in enumerate(_splits(st.shape[2], gx))]
    for n, (py, px, out_region) in enumerate(patches):
        tag = f"p{py}_{px}"
        # Backwards: the region each stage tensor must cover for this patch.
        need: dict[int, Region] = {split: out_region}
        for op in reversed(stage):
            r = input_region(op, graph, need[op.outputs[0]])
            for t in op.inputs:
                if t >= 0 and not graph.tensor(t).is_const:
                    need[t] = need[t].union(r) if t in need else r
        # Forwards: emit the stage on patch tensors.
        local: dict[int, int] = {}
        for t, r in need.items():
            if t not in producer:  # a stage input (a graph input): crop it
                local[t] = new_tensor(graph.tensor(t), r, tag)
                new_op(OpKind.CROP_2D, [t], [local[t]], RegionAttrs(r.y0, r.x0))
        for op in stage:
            out_t = op.outputs[0]
            out_r = need[out_t]
            in_r = input_region(op, graph, out_r)
            inputs = []
            for t in op.inputs:
                if t < 0 or graph.tensor(t).is_const:
                    inputs.append(t)
                    continue
                src, have = local[t], need[t]
                if have != in_r:  # another consumer needed more: cut out this op's part
                    sub = new_tensor(graph.tensor(t), in_r, f"{tag}_for{op.index}")
                    new_op(OpKind.CROP_2D, [src], [sub], RegionAttrs(in_r.y0 - have.y0, in_r.x0 - have.x0))
                    src = sub
                inputs.append(src)
            attrs = op.attrs
            if op.kind in WINDOW_KINDS:
                ph, pw = _pads(op, graph)
                attrs = replace(attrs, padding=ExplicitPadding(
                    top=in_r.y0 - (out_r.y0 * attrs.stride_h - ph),
                    left=in_r.x0 - (out_r.x0 * attrs.stride_w - pw)))
            local[out_t] = new_tensor(graph.tensor(out_t), out_r, tag)
            new_op(op.kind, inputs, [local[out_t]], attrs)
        # Paste the patch of the split tensor into the full tensor, in place.
        last = n == len(patches) - 1
        target = split if last else len(tensors)
        if not last:
            tensors.append(Tensor(target, f"{st.name}@pasted{n}", st.shape, st.dtype, st.quant))
        new_op(OpKind.PASTE_2D, [local[split]] + ([full_version] if full_version is not None else []),
               [target], RegionAttrs(out_region.y0, out_region.x0))
        full_version = target
    g = replace(graph, tensors=tuple(tensors), ops=tuple(new_ops) + graph.ops[k:])
    verify(g)
    return g


def paste_inplace(graph: Graph) -> dict[int, int]:
    """PASTE_2D writes into the full tensor it was given: output -> that input."""
    return {op.outputs[0]: op.inputs[1] for op in graph.ops
            if op.kind == OpKind.PASTE_2D and len(op.inputs) > 1}


def macs(graph: Graph) -> int:
    from .kernels import macs_of
    return sum(macs_of(op, graph) for op in graph.ops if op.kind not in ALIAS_KINDS)



def conv_macs(graph: Graph) -> int:
    """MACs of convolutions and dense layers from shapes alone (no lowering), for the search."""
    total = 0
    for op in graph.ops:
        if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D):
            out = graph.tensor(op.outputs[0])
            f = graph.tensor(op.inputs[1]).shape
            per_out = f[1] * f[2] * (f[3] if op.kind == OpKind.CONV_2D else 1)
            total += out.num_elements * per_out
        elif op.kind == OpKind.FULLY_CONNECTED:
            total += graph.tensor(op.outputs[0]).num_elements * graph.tensor(op.inputs[1]).shape[-1]
    return total


@dataclass(frozen=True)
class Candidate:
    config: PatchConfig
    graph: Graph
    bound: int          # liveness lower bound of the patched graph, pastes in place
    macs: int


def search(graph: Graph, max_recompute: float, max_grid: int = 8, keep: int = 3,
           bound: Callable[[Graph], int] | None = None, slack: float = 0.0) -> list[Candidate]:
    """Patched graphs within the recompute budget, smallest liveness bound first.

    The bound ranks candidates cheaply; the caller lowers and plans the best
    few for real, since scratch and placement change the final arena. The
    caller's `bound` should count the ops its kernels can run in place (the
    pipeline's does); without one, only the pastes are in place. With `slack`
    (the arena the caller may give up for speed, as a fraction), up to
    SLACK_EXTRA more, the next by bound within it of the best (coarser grids
    among them: fewer, bigger patches that recompute less)."""
    from .planner import lower_bound
    if bound is None:
        bound = lambda g: lower_bound(g, paste_inplace(g))  # noqa: E731
    base = conv_macs(graph)
    found: list[Candidate] = []
    for k in stage_candidates(graph):
        split = graph.tensor(graph.ops[k - 1].outputs[0])
        for n in range(2, min(max_grid, split.shape[1], split.shape[2]) + 1):
            g = apply(graph, PatchConfig(k, (n, n)))
            m = conv_macs(g)
            if base and m / base - 1.0 > max_recompute:
                break  # finer grids only recompute more
            found.append(Candidate(PatchConfig(k, (n, n)), g, bound(g), m))
    found.sort(key=lambda c: (c.bound, c.macs, c.config.stage_ops))
    near = [c for c in found[keep:] if c.bound <= found[0].bound * (1.0 + slack)] if slack > 0 else []
    return found[:keep] + near[:SLACK_EXTRA]


SLACK_EXTRA = 5
