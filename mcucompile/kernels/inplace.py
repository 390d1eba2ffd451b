"""In-place variants: kernels whose output overwrites their input's buffer.

When an op's input is read by no later op, the output can live where the
input was: one buffer of max(input, output) bytes instead of both. Each
lowering here returns a KernelCall with `inplace_input` set, or None when the
op cannot safely run in place. Every variant computes each output value with
exactly the arithmetic of the normal kernels (the normal lowering validates
the op; the constants come from the same conv.py helpers), so results stay
bit-exact; only the order in which values are read and written changes. The
proofs:

Window ops (DEPTHWISE_CONV_2D with depth multiplier 1, AVERAGE_POOL_2D,
MAX_POOL_2D; templates/kernels/mcc_inplace.c), batch 1, NHWC with C channels.
Output value (p, c) (pixel p in raster order) is stored at byte p*C + c, and
the only input value ever stored at a byte = c (mod C) is input channel c. So
computing channel c can destroy nothing but channel c's input, and the kernel
goes channel by channel (MCUNet's TinyEngine technique). Within channel c,
outputs are written in raster order, so when output pixel p is computed the
bytes of pixels 0..p-1 (channel c) hold outputs. Two cases:

* Direct (no scratch): if every output pixel p reads only input pixels q >= p
  (its window's top-left in-bounds tap has index >= p), nothing it reads has
  been overwritten. This holds for most stride-2 layers (3x3 SAME, even or
  odd input) and for VALID layers, whose output rows are shorter than the
  input's.
* Ring: otherwise the kernel first copies each input row (channel c, in_w
  bytes) into a ring of R rows before any output row reads or overwrites it,
  and reads only from the ring. Rows are copied in order; output row oy needs
  rows [max(0, y0), last(oy)] where y0 = oy*stride - pad and last(oy) is the
  larger of the last row its window reads and the last row whose slots it
  overwrites (pixels [oy*out_w, (oy+1)*out_w) -> rows up to
  ((oy+1)*out_w - 1) // in_w), clipped to the image. Both bounds grow with oy,
  so a row copied at step oy can only evict row r - R < max(0, y0(oy)),
  which no step from oy on reads, if R >= last(oy) - max(0, y0(oy)) + 1 for
  every oy. `ring_rows()` takes that maximum: filter_h rows for a stride-1
  SAME layer (336 B for 3x3 at 112 px instead of TinyEngine's full H*W plane).
* Pixel (no scratch, where every pixel reads ahead only): conv.py's pixel
  kernel goes pixel by pixel in raster order, and within a pixel four
  channels at a time, reading all its taps of those channels before it
  writes them. Output (p, c) lands on input (p, c), which pixel p no longer
  needs and no later pixel reads (they read q >= p + 1). The pooling kernels
  of mcc_pool.c go the same way (four channels, or one, at a time), so
  pooling layers that read ahead only run them in place too.
* Plane (the fast form, `depthwise_conv2d_inplace_planar`): conv.py's planar
  kernel copies channel c's whole padded plane into scratch (or the stack)
  before it writes any output of channel c, and reads only the plane. Faster than the ring
  (no per-row copies or border paths) for a plane of scratch instead of a few
  rows; the pipeline takes it where that plane does not raise the arena.

Pointwise ops (CONV_2D 1x1 without padding, FULLY_CONNECTED = 1x1 over rows):
output pixel o occupies bytes [o*out_c, (o+1)*out_c); it reads input pixel
q(o) at bytes [q(o)*in_c, (q(o)+1)*in_c), with q strictly increasing and
q(o) >= o (q(o) = o at stride 1 over the whole image). Each pixel's out_c
values go to an out_c-byte scratch first, so its own input may be overwritten
by its own output; what matters is the input of the pixels not yet computed.

* First to last: after writing pixels 0..o, bytes [0, (o+1)*out_c) are
  overwritten; the next pixels read from q(o+1)*in_c on. Safe iff
  (o+1)*out_c <= q(o+1)*in_c for every o; always when out_c <= in_c.
* Last to first: after writing pixels o..n-1, bytes [o*out_c, n*out_c) are
  overwritten; the pixels still to compute read below (q(o-1)+1)*in_c. Safe
  iff (q(o-1)+1)*in_c <= o*out_c for every o >= 1. With q(o) = o that is
  o*in_c <= o*out_c: out_c >= in_c.

So at stride 1 over the whole image one of the two orders always works;
otherwise `pointwise_order()` checks both exactly.

The fast form (`conv2d_1x1_inplace_gemm`, stride 1 over the whole image):
mcc_gemm_s8 widens four pixels into scratch before it writes their outputs,
so the same two orders hold a block of four pixels at a time.

Element-wise ops: the kernels listed in ELEMENTWISE_INPLACE_SAFE read element i
(of the operand being overwritten) and then write element i, in increasing
i, and never read an element below i afterwards, so output == input is safe.
That was checked by reading each kernel in mcc_activation.c and
mcc_elementwise.c; a kernel not in the list (e.g. a future DSP variant) is
never run in place. mcc_add_s8's DSP loop reads elements i..i+3 of both
operands, then writes those four: the same argument, four at a time (its
broadcast runs keep the element loop). SOFTMAX reads a whole row before
writing it, row by row, so it qualifies too. QUANTIZE float32 -> int8 writes byte i after reading
float i, below the floats i+1.. still to read (bytes 4i+4..), so it qualifies;
DEQUANTIZE (int8 -> float32) would write 4 bytes over int8 values not read
yet, so it does not.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace

import numpy as np

from ..ir import ALIAS_KINDS, DType, Graph, Op, OpKind, Pool2DAttrs
from ..quant import activation_range
from . import (LOWERINGS, SCRATCH, ArrayRef, ConstArray, Field, KernelCall, KernelTarget, TensorArg,
               fast_inplace_lowering, inplace_lowering)
from .conv import (GEMM_INPLACE_STACK_BLOCK, Variant, _prepare, choose, fast_channel_table,
                   gemm_weights, pixel_call, planar_one_plane, planar_weights, window)
from .pool import pool_geometry

LIBRARY = "mcc_inplace"


# --- liveness -----------------------------------------------------------------

def input_dies_at(graph: Graph, op: Op, tid: int) -> bool:
    """True if no op after `op` reads tensor `tid` (or a RESHAPE/SQUEEZE alias of
    it) and it is not a graph output: then `op` may overwrite it."""
    if tid < 0 or graph.tensor(tid).is_const:
        return False
    reads = _reads_of(graph)
    root = reads.root.get(tid, tid)
    if root in reads.output_roots:
        return False
    return reads.last_read.get(root, -1) <= reads.position[op.index]


@dataclass(frozen=True)
class _Reads:
    root: dict[int, int]            # tensor -> first tensor of its RESHAPE/SQUEEZE group
    last_read: dict[int, int]       # group root -> position of the last op reading it
    output_roots: frozenset[int]
    position: dict[int, int]        # op index -> position in graph.ops


# Per graph (frozen): lowering asks once per op and per trial plan.
_READS: weakref.WeakKeyDictionary[Graph, _Reads] = weakref.WeakKeyDictionary()


def _reads_of(graph: Graph) -> _Reads:
    cached = _READS.get(graph)
    if cached is None:
        root: dict[int, int] = {}
        for o in graph.ops:
            if o.kind in ALIAS_KINDS:
                root[o.outputs[0]] = root.get(o.inputs[0], o.inputs[0])
        last_read: dict[int, int] = {}
        for i, o in enumerate(graph.ops):
            for t in o.inputs:
                if t >= 0:
                    last_read[root.get(t, t)] = i
        cached = _READS[graph] = _Reads(
            root, last_read, frozenset(root.get(t, t) for t in graph.outputs),
            {o.index: i for i, o in enumerate(graph.ops)})
    return cached


def _ints(**values: int) -> tuple[Field, ...]:
    return tuple(Field(k, int(v)) for k, v in values.items())


_ARRAYS = (Field("weights", ArrayRef("weights")), Field("channel_table", ArrayRef("channels")))


def channel_table(op: Op, graph: Graph, rows: int) -> tuple[np.ndarray, bool]:
    """The [rows, 4] int32 requantization table of mcc_inplace.h and whether it
    has the fast form. conv.py's `fast_channel_table` decides (and proves) the
    fast form; otherwise rows are TFLite's (folded bias, multiplier, shift, 0).
    Rows past the op's channels (padding for four-channel passes) repeat the last."""
    layer = _prepare(op, graph)
    table, _ = fast_channel_table(layer)
    fast = table is not None
    if not fast:
        n = layer.out_c
        table = np.stack([layer.fold.astype(np.int64), np.broadcast_to(layer.mult, (n,)),
                          np.broadcast_to(layer.shift, (n,)), np.zeros(n, np.int64)], axis=1)
    table = np.concatenate([table, np.repeat(table[-1:], rows - len(table), axis=0)])
    return table.astype(np.int32), fast


def _constants(weights: np.ndarray, table: np.ndarray) -> tuple[ConstArray, ...]:
    return (ConstArray("weights", "int8_t", np.ascontiguousarray(weights, dtype=np.int8).reshape(-1)),
            ConstArray("channels", "int32_t", table.reshape(-1)))


def window_scratch_bytes(ring: int, in_w: int) -> int:
    """Mirror of mcc_depthwise_conv2d_inplace_s8_scratch_bytes and
    mcc_pool_inplace_s8_scratch_bytes: the ring of one channel's rows."""
    return ring * in_w


def pointwise_scratch_bytes(out_c: int) -> int:
    """Mirror of mcc_pointwise_inplace_s8_scratch_bytes: one output pixel."""
    return out_c


def gemm_inplace_scratch_bytes(depth: int, out_c: int, row_block: int = 4) -> int:
    """Mirror of mcc_gemm_s8_scratch_bytes in place: the int16 block of four
    rows, then four rows of outputs for the leftover rows; none in the arena
    when they are on the stack (row_block 2)."""
    return 0 if row_block == 2 else gemm_inplace_stack_bytes(depth, out_c)


def gemm_inplace_stack_bytes(depth: int, out_c: int) -> int:
    """What the in-place GEMM keeps in its scratch, wherever that is."""
    return 32 * ((depth + 3) // 4) + 4 * out_c


def _row_bytes(filter_w: int) -> int:
    """Weight bytes per depthwise filter row: whole words, so that SXTB16 reads them."""
    return 4 * ((filter_w + 3) // 4)


# --- window ops: depthwise convolution and pooling --------------------------

@dataclass(frozen=True)
class WindowGeometry:
    """One channel's sliding window, batch 1 (the fields of mcc_inplace.c's `window`)."""
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_h: int
    pad_w: int


def _first_tap_inside(out: int, stride: int, pad: int, filt: int, dilation: int,
                      size: int) -> np.ndarray:
    """Per output coordinate, the smallest in-bounds input coordinate its window
    reads along one axis, or -1 when every tap falls in the padding."""
    first = np.full(out, -1, dtype=np.int64)
    for k in reversed(range(filt)):       # the smallest k inside wins
        coord = np.arange(out, dtype=np.int64) * stride - pad + k * dilation
        inside = (coord >= 0) & (coord < size)
        first[inside] = coord[inside]
    return first


def reads_ahead_only(g: WindowGeometry) -> bool:
    """Every output pixel p reads only input pixels q >= p: raster order can
    then overwrite the input directly, without copying anything."""
    ys = _first_tap_inside(g.out_h, g.stride_h, g.pad_h, g.filter_h, g.dilation_h, g.in_h)
    xs = _first_tap_inside(g.out_w, g.stride_w, g.pad_w, g.filter_w, g.dilation_w, g.in_w)
    q = ys[:, None] * g.in_w + xs[None, :]
    p = np.arange(g.out_h * g.out_w, dtype=np.int64).reshape(g.out_h, g.out_w)
    reads = (ys[:, None] >= 0) & (xs[None, :] >= 0)
    return bool(np.all(~reads | (q >= p)))


def ring_rows(g: WindowGeometry) -> int:
    """Rows of the per-channel ring the kernel needs (0: none, read in place).
    Mirrors rows_prepare() in mcc_inplace.c; see the module docstring."""
    if reads_ahead_only(g):
        return 0
    rows = 1
    for oy in range(g.out_h):
        y0 = oy * g.stride_h - g.pad_h
        last_read = y0 + (g.filter_h - 1) * g.dilation_h
        last_overwritten = ((oy + 1) * g.out_w - 1) // g.in_w
        last = min(max(last_read, last_overwritten), g.in_h - 1)
        rows = max(rows, last - max(0, y0) + 1)
    return min(rows, g.in_h)


def _window_inplace(op: Op, base: KernelCall, geometry: WindowGeometry, function: str,
                    params_type: str, head: tuple[Field, ...], tail: tuple[Field, ...],
                    arrays: tuple[ConstArray, ...]) -> KernelCall:
    ring = ring_rows(geometry)
    g = geometry
    fields = head + _ints(out_h=g.out_h, out_w=g.out_w, filter_h=g.filter_h, filter_w=g.filter_w,
                          stride_h=g.stride_h, stride_w=g.stride_w)
    if params_type == "mcc_depthwise_conv2d_inplace_params":
        fields += _ints(dilation_h=g.dilation_h, dilation_w=g.dilation_w)
    fields += _ints(pad_h=g.pad_h, pad_w=g.pad_w, ring_rows=ring) + tail
    inp = op.inputs[0]
    return KernelCall(function, LIBRARY, params_type, fields,
                      (TensorArg(inp), TensorArg(op.outputs[0]), SCRATCH), arrays,
                      scratch_bytes=window_scratch_bytes(ring, g.in_w), macs=base.macs,
                      inplace_input=inp)


@inplace_lowering(OpKind.DEPTHWISE_CONV_2D)
def depthwise_conv2d_inplace(op: Op, graph: Graph, target: KernelTarget) -> KernelCall | None:
    base = LOWERINGS[OpKind.DEPTHWISE_CONV_2D](op, graph, target)   # validates the op
    inp, wts, out = (graph.tensor(t) for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    win = window(op, op.attrs, inp, wts, out)
    # A depth multiplier > 1 writes several output channels per input channel,
    # over bytes of other input channels; batches > 1 would shift batch b's
    # output over batch b-1's input slots. Neither occurs in MCU models.
    if win.out_c != win.in_c or win.batches != 1 or not input_dies_at(graph, op, inp.id):
        return None
    g = WindowGeometry(win.in_h, win.in_w, win.out_h, win.out_w, win.filter_h, win.filter_w,
                       win.stride_h, win.stride_w, win.dilation_h, win.dilation_w,
                       win.pad_h, win.pad_w)
    if reads_ahead_only(g):
        # The pixel kernel in place: no scratch, and faster than the channel loop.
        pixel = pixel_call(op, graph)
        if pixel is not None:
            return replace(pixel, inplace_input=inp.id)
    # [C, H, W] weights, each filter row padded to whole words.
    rb = _row_bytes(g.filter_w)
    weights = planar_weights(np.transpose(wts.data[0], (2, 0, 1)), rb)
    table, fast = channel_table(op, graph, win.in_c)
    act_min, act_max = activation_range(op.attrs.activation, out)
    head = _ints(in_h=g.in_h, in_w=g.in_w, channels=win.in_c)
    tail = _ints(row_bytes=rb, fast_table=fast, pad_value=inp.zero_point,
                 output_offset=out.zero_point, act_min=act_min, act_max=act_max) + _ARRAYS
    arrays = _constants(weights, table)
    call = _window_inplace(op, base, g, "mcc_depthwise_conv2d_inplace_s8",
                           "mcc_depthwise_conv2d_inplace_params", head, tail, arrays)
    # 3x3 filters take their own row loop (SMLAD pairs on DSP cores), several
    # times faster per MAC than the other filters': a cost of its own.
    three = (g.filter_h, g.filter_w) == (3, 3) and g.dilation_w == 1 and fast
    return replace(call, cost_variant="3x3") if three else call


@fast_inplace_lowering(OpKind.DEPTHWISE_CONV_2D)
def depthwise_conv2d_inplace_planar(op: Op, graph: Graph, target: KernelTarget) -> KernelCall | None:
    """The planar kernel of conv.py run with output == input and the least
    scratch it takes (planar_one_plane). It copies a group of channels'
    planes (padded) before writing any output of those channels, reads only
    the planes, and writes output channel c only at bytes p*C + c: as in the
    ring case, computing channel c destroys nothing but channel c's input,
    which it no longer reads. Faster than the ring kernel (no per-row copies
    or border paths), for a whole plane of scratch instead of a few rows."""
    lean = depthwise_conv2d_inplace(op, graph, target)     # the same conditions
    if lean is None:
        return None
    if lean.function == Variant.PIXEL.value and choose(op, graph, target).variant == Variant.PIXEL:
        return None     # the lean form is already the fast one
    call = planar_one_plane(op, graph)
    return None if call is None else replace(call, inplace_input=lean.inplace_input)


@inplace_lowering(OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D)
def pool_inplace(op: Op, graph: Graph, target: KernelTarget) -> KernelCall | None:
    base = LOWERINGS[op.kind](op, graph, target)   # validates the op
    inp, out = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    attrs: Pool2DAttrs = op.attrs
    pg = pool_geometry(op, attrs, inp, out)
    if pg.batches != 1 or not input_dies_at(graph, op, inp.id):
        return None
    g = WindowGeometry(pg.in_h, pg.in_w, pg.out_h, pg.out_w, attrs.filter_h, attrs.filter_w,
                       attrs.stride_h, attrs.stride_w, 1, 1, pg.pad_h, pg.pad_w)
    if reads_ahead_only(g):
        # The plain kernel over its own input (mcc_pool.c): output pixel p is
        # written after its window is read, its channels a group at a time,
        # and no later window reads pixel p. Three to five times faster than
        # the ring kernel's channel-by-channel walk, and no scratch.
        return replace(base, inplace_input=inp.id)
    function = ("mcc_avgpool_inplace_s8" if op.kind == OpKind.AVERAGE_POOL_2D
                else "mcc_maxpool_inplace_s8")
    act_min, act_max = activation_range(attrs.activation, out)
    head = _ints(in_h=g.in_h, in_w=g.in_w, channels=pg.channels)
    tail = _ints(act_min=act_min, act_max=act_max)
    return _window_inplace(op, base, g, function, "mcc_pool_inplace_params", head, tail, ())


# --- pointwise ops: 1x1 convolution and fully connected ----------------------

def pointwise_order(in_h: int, in_w: int, in_c: int, out_h: int, out_w: int, out_c: int,
                    stride_h: int, stride_w: int) -> bool | None:
    """False: first pixel to last; True: last to first; None: neither order is
    safe (see the module docstring). Exact, by enumerating the pixels."""
    oy, ox = np.divmod(np.arange(out_h * out_w, dtype=np.int64), out_w)
    q = oy * stride_h * in_w + ox * stride_w          # input pixel of each output pixel
    o = np.arange(1, out_h * out_w, dtype=np.int64)
    if np.all(o * out_c <= q[1:] * in_c):
        return False
    if np.all((q[:-1] + 1) * in_c <= o * out_c):
        return True
    return None


def _pointwise_call(op: Op, graph: Graph, base: KernelCall, function: str, weights: np.ndarray, *,
                    in_h: int, in_w: int, in_c: int, out_h: int, out_w: int, out_c: int,
                    stride_h: int, stride_w: int) -> KernelCall | None:
    reverse = pointwise_order(in_h, in_w, in_c, out_h, out_w, out_c, stride_h, stride_w)
    if reverse is None:
        return None
    # Four output channels per pass: weights and table padded to a multiple of 4.
    rows = (out_c + 3) // 4 * 4
    padded = np.zeros((rows, in_c), dtype=np.int8)
    padded[:out_c] = weights
    table, fast = channel_table(op, graph, rows)
    out = graph.tensor(op.outputs[0])
    act_min, act_max = activation_range(op.attrs.activation, out)
    fields = _ints(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
                   stride_h=stride_h, stride_w=stride_w, reverse=reverse, fast_table=fast,
                   output_offset=out.zero_point, act_min=act_min, act_max=act_max) + _ARRAYS
    inp = op.inputs[0]
    return KernelCall(function, LIBRARY, "mcc_pointwise_inplace_params", fields,
                      (TensorArg(inp), TensorArg(op.outputs[0]), SCRATCH),
                      _constants(gemm_weights(padded), table),
                      scratch_bytes=pointwise_scratch_bytes(out_c), macs=base.macs,
                      inplace_input=inp)


@inplace_lowering(OpKind.CONV_2D)
def conv2d_1x1_inplace(op: Op, graph: Graph, target: KernelTarget) -> KernelCall | None:
    if op.attrs.residual is not None:
        return None     # it writes over its residual input, not over its input
    base = LOWERINGS[OpKind.CONV_2D](op, graph, target)   # validates the op
    inp, wts, out = (graph.tensor(t) for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    win = window(op, op.attrs, inp, wts, out)
    pointwise = (win.filter_h == win.filter_w == 1 and win.pad_h == win.pad_w == 0
                 and wts.shape[3] == win.in_c)
    if not pointwise or not input_dies_at(graph, op, inp.id):
        return None
    weights = wts.data.reshape(win.out_c, win.in_c)
    in_h, out_h = win.in_h, win.out_h
    if win.batches != 1:
        # Batches are just more rows of pixels when every pixel maps to itself.
        if (win.stride_h, win.stride_w, win.out_h, win.out_w) != (1, 1, win.in_h, win.in_w):
            return None
        in_h = out_h = win.batches * win.in_h
    return _pointwise_call(op, graph, base, "mcc_conv2d_1x1_inplace_s8", weights,
                           in_h=in_h, in_w=win.in_w, in_c=win.in_c, out_h=out_h,
                           out_w=win.out_w, out_c=win.out_c, stride_h=win.stride_h,
                           stride_w=win.stride_w)


@fast_inplace_lowering(OpKind.CONV_2D)
def conv2d_1x1_inplace_gemm(op: Op, graph: Graph, target: KernelTarget) -> KernelCall | None:
    """mcc_gemm_s8 in blocks of four rows with output == input (its `inplace`
    order): each block's rows are widened into scratch before its outputs are
    written, so (as for the lean kernel's pixels, a block at a time) first to
    last is safe when out_c <= in_c and last to first when out_c >= in_c. The
    leftover rows go through the block too, their outputs via scratch (not
    mcc_gemm_s8's usual row pairs, which write a row's first channels before
    its other channels have read it). Stride 1 over the whole image only."""
    lean = conv2d_1x1_inplace(op, graph, target)     # the same conditions
    if lean is None:
        return None
    f = {x.name: x.value for x in lean.fields}
    if (f["stride_h"], f["stride_w"], f["out_h"], f["out_w"]) != (1, 1, f["in_h"], f["in_w"]):
        return None
    call = LOWERINGS[OpKind.CONV_2D](op, graph, target)
    g = {x.name: x.value for x in call.fields}
    if call.function != "mcc_gemm_s8" or g.get("row_block") != 4 or g["rows"] < 4:
        return None
    order = 2 if f["out_c"] > f["in_c"] else 1
    # Small enough, the block and the leftover outputs go on the stack (as
    # mcc_gemm_s8's at the peak): no arena scratch, so this form fits wherever
    # the lean one does, also at the memory peak.
    row_block = 2 if gemm_inplace_stack_bytes(g["depth"], g["out_c"]) <= GEMM_INPLACE_STACK_BLOCK else 4
    fields = tuple(Field("row_block", row_block) if x.name == "row_block" else x for x in call.fields)
    return replace(call, function="mcc_gemm_inplace_s8",
                   fields=fields + (Field("inplace", order),),
                   scratch_bytes=gemm_inplace_scratch_bytes(g["depth"], g["out_c"], row_block),
                   inplace_input=lean.inplace_input)


@inplace_lowering(OpKind.FULLY_CONNECTED)
def fully_connected_inplace(op: Op, graph: Graph, target: KernelTarget) -> KernelCall | None:
    base = LOWERINGS[OpKind.FULLY_CONNECTED](op, graph, target)   # validates the op
    if not input_dies_at(graph, op, op.inputs[0]):
        return None
    wts, out = graph.tensor(op.inputs[1]), graph.tensor(op.outputs[0])
    out_c, depth = wts.shape
    # TFLM: the output's last dimension is the channel count, the rest are rows.
    rows = out.num_elements // out_c
    return _pointwise_call(op, graph, base, "mcc_fully_connected_inplace_s8", wts.data,
                           in_h=rows, in_w=1, in_c=depth, out_h=rows, out_w=1, out_c=out_c,
                           stride_h=1, stride_w=1)


# --- element-wise ops: the normal kernel, with output == input ----------------

# Kernels read to be safe with output == input (see the module docstring).
ELEMENTWISE_INPLACE_SAFE = frozenset({
    "mcc_lut_s8", "mcc_clamp_s8", "mcc_softmax_s8", "mcc_quantize_f32_s8",
    "mcc_add_s8", "mcc_add_const_s8", "mcc_mul_s8", "mcc_mul_const_s8",
})


@inplace_lowering(OpKind.RELU, OpKind.RELU6, OpKind.LOGISTIC, OpKind.HARD_SWISH, OpKind.SOFTMAX,
                  OpKind.QUANTIZE)
def unary_inplace(op: Op, graph: Graph, target: KernelTarget) -> KernelCall | None:
    base = LOWERINGS[op.kind](op, graph, target)
    x, y = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
    same_layout = x.num_elements == y.num_elements and y.dtype.itemsize <= x.dtype.itemsize
    if (base.function not in ELEMENTWISE_INPLACE_SAFE or not same_layout
            or not input_dies_at(graph, op, x.id)):
        return None
    return replace(base, inplace_input=x.id)


@inplace_lowering(OpKind.ADD, OpKind.MUL)
def binary_inplace(op: Op, graph: Graph, target: KernelTarget) -> KernelCall | None:
    """Overwrite an operand of the output's full size (never a broadcast one):
    the broadcasting loops read it at the output's own index, in order."""
    base = LOWERINGS[op.kind](op, graph, target)
    if base.function not in ELEMENTWISE_INPLACE_SAFE:
        return None
    out = graph.tensor(op.outputs[0])
    for tid in op.inputs:
        t = graph.tensor(tid)
        if (t.dtype == out.dtype == DType.INT8 and t.num_elements == out.num_elements
                and input_dies_at(graph, op, tid)):
            return replace(base, inplace_input=tid)
    return None
