"""PAD, PADV2, CONCATENATION, TRANSPOSE and RESIZE_NEAREST_NEIGHBOR (int8) onto
templates/kernels/mcc_shape.{c,h}.

These ops only move bytes, so bit-exactness is about moving the right ones,
following TFLM (tflite-micro pad.cc/pad_common.cc, concatenation.cc,
transpose.cc, resize_nearest_neighbor.cc and their reference headers):

* PAD fills with the output zero point, PADV2 with its constant (which TFLM
  requires to share the output's quantization). TFLM copies the input bytes
  unchanged, whatever the input's quantization; so do we.
* CONCATENATION copies the inputs' bytes unchanged. TFLM never requantizes
  here: its Prepare rejects int8 inputs whose scale or zero point differs from
  the output's, and any fused activation; we refuse the same models.
* RESIZE_NEAREST_NEIGHBOR picks source rows and columns with float32 math
  (GetNearestNeighbor). The output size is a constant, so we run that math
  here in numpy float32 and give the kernel index tables: the device does no
  floating point at all.

Every op is reduced at compile time to the fewest loops: dims of size 1 are
dropped and adjacent dims that stay contiguous are merged, so the kernels
mostly copy long runs with memcpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from ..ir import (Activation, ConcatenationAttrs, DType, Graph, Op, OpKind, ResizeNearestAttrs,
                  Tensor)
from ..quant import f32, round_half_away
from . import ArrayRef, ConstArray, Field, KernelCall, KernelTarget, TensorArg, TensorPtrs, lowering

LIBRARY = "mcc_shape"
PAD_DIMS = 5          # TFLM's PadKernelMaxDimensionCount
TRANSPOSE_DIMS = 5    # TFLM rejects 6-D (transpose_common.cc: "1D-5D")


def _where(op: Op) -> str:
    return f"op {op.index} ({op.kind.value})"


def _int8(op: Op, t: Tensor, role: str) -> Tensor:
    if t.dtype != DType.INT8:
        raise UnsupportedModelError(
            f"{_where(op)}: {role} {t.name!r} is {t.dtype.value}; only int8 is supported")
    return t


def _const(op: Op, graph: Graph, index: int, role: str) -> np.ndarray:
    if len(op.inputs) <= index or op.inputs[index] < 0:
        raise UnsupportedModelError(f"{_where(op)}: the {role} input is missing")
    t = graph.tensor(op.inputs[index])
    if not t.is_const:
        raise UnsupportedModelError(
            f"{_where(op)}: the {role} tensor {t.name!r} must be a constant")
    return np.asarray(t.data)


def _i32(suffix: str, values) -> ConstArray:
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    assert arr.size == 0 or (arr.min() >= -2**31 and arr.max() < 2**31), suffix
    return ConstArray(suffix, "int32_t", arr.astype(np.int32))


def _array_fields(*names: str) -> tuple[Field, ...]:
    return tuple(Field(n, ArrayRef(n)) for n in names)


# --- PAD, PADV2 -------------------------------------------------------------

@dataclass(frozen=True)
class PadLoops:
    """PAD as the kernel runs it: PAD_DIMS dims, outer first."""
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    before: tuple[int, ...]


def pad_loops(in_shape: tuple[int, ...], paddings: list[tuple[int, int]]) -> PadLoops:
    """Drop unpadded size-1 dims and fold every unpadded dim into the dim
    before it: [a, b] with b unpadded is one dim of a*b elements, padded by
    before*b and after*b, because whole rows of b stay contiguous."""
    dims = [[s, lo, hi] for s, (lo, hi) in zip(in_shape, paddings) if not (s == 1 and lo == hi == 0)]
    merged: list[list[int]] = []
    for s, lo, hi in reversed(dims):             # innermost first
        if merged and merged[-1][1] == merged[-1][2] == 0:
            inner = merged.pop()[0]
            merged.append([s * inner, lo * inner, hi * inner])
        else:
            merged.append([s, lo, hi])
    merged.reverse()
    assert len(merged) <= PAD_DIMS
    merged = [[1, 0, 0]] * (PAD_DIMS - len(merged)) + merged
    return PadLoops(in_shape=tuple(s for s, _, _ in merged),
                    out_shape=tuple(s + lo + hi for s, lo, hi in merged),
                    before=tuple(lo for _, lo, _ in merged))


@lowering(OpKind.PAD, OpKind.PADV2)
def lower_pad(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    where = _where(op)
    n_in = 3 if op.kind == OpKind.PADV2 else 2
    if len(op.inputs) != n_in or len(op.outputs) != 1:
        raise UnsupportedModelError(f"{where}: expected {n_in} inputs and one output")
    inp = _int8(op, graph.tensor(op.inputs[0]), "input")
    out = _int8(op, graph.tensor(op.outputs[0]), "output")
    rank = len(inp.shape)
    if rank > PAD_DIMS:
        raise UnsupportedModelError(f"{where}: {rank}-D input; PAD supports up to {PAD_DIMS}-D")
    pads = _const(op, graph, 1, "paddings")
    if pads.size != 2 * rank or len(out.shape) != rank:
        raise UnsupportedModelError(
            f"{where}: paddings {pads.shape} do not fit a {rank}-D input and {len(out.shape)}-D output")
    pairs = [(int(lo), int(hi)) for lo, hi in pads.reshape(rank, 2).tolist()]
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise UnsupportedModelError(f"{where}: negative paddings {pairs} are not supported")
    expected = tuple(s + lo + hi for s, (lo, hi) in zip(inp.shape, pairs))
    if expected != out.shape:
        raise UnsupportedModelError(
            f"{where}: output shape {out.shape} is not input {inp.shape} padded by {pairs}")

    if op.kind == OpKind.PADV2:
        const_t = _int8(op, graph.tensor(op.inputs[2]), "constant")
        value = _const(op, graph, 2, "constant value")
        if value.size != 1:
            raise UnsupportedModelError(f"{where}: the constant value must be a scalar")
        # TFLM's PadPrepare: the constant must share the output's quantization.
        if (const_t.quant is None or out.quant is None or const_t.zero_point != out.zero_point
                or f32(const_t.scale) != f32(out.scale)):
            raise UnsupportedModelError(
                f"{where}: the constant value's quantization differs from the output's; "
                "TFLM requires them equal")
        pad_value = int(value.reshape(-1)[0])
    else:
        pad_value = out.zero_point if out.quant is not None else 0
    if not -128 <= pad_value <= 127:
        raise UnsupportedModelError(f"{where}: pad value {pad_value} is outside int8")

    loops = pad_loops(inp.shape, pairs)
    fields = (Field("pad_value", pad_value),) + _array_fields("in_shape", "out_shape", "before")
    arrays = (_i32("in_shape", loops.in_shape), _i32("out_shape", loops.out_shape),
              _i32("before", loops.before))
    return KernelCall("mcc_pad_s8", LIBRARY, "mcc_pad_params", fields,
                      (TensorArg(inp.id), TensorArg(out.id)), arrays)


# --- CONCATENATION ----------------------------------------------------------

@lowering(OpKind.CONCATENATION)
def lower_concatenation(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    attrs: ConcatenationAttrs = op.attrs
    where = _where(op)
    if not op.inputs or len(op.outputs) != 1 or any(t < 0 for t in op.inputs):
        raise UnsupportedModelError(f"{where}: expected one or more inputs and one output")
    if attrs.activation != Activation.NONE:
        raise UnsupportedModelError(
            f"{where}: fused activation {attrs.activation.value}; TFLM's CONCATENATION accepts none")
    out = _int8(op, graph.tensor(op.outputs[0]), "output")
    inputs = [_int8(op, graph.tensor(t), f"input {i}") for i, t in enumerate(op.inputs)]
    for i, t in enumerate(inputs):
        if (t.quant is None or out.quant is None or f32(t.scale) != f32(out.scale)
                or t.zero_point != out.zero_point):
            raise UnsupportedModelError(
                f"{where}: input {i} ({t.name!r}) is quantized differently from the output; "
                "TFLM's int8 CONCATENATION does not rescale and rejects this model")
        # The kernel's input list holds arena pointers; constants live in flash.
        if t.is_const:
            raise UnsupportedModelError(
                f"{where}: input {i} ({t.name!r}) is a constant; CONCATENATION of constants "
                "is not supported")
    rank = len(out.shape)
    axis = attrs.axis + rank if attrs.axis < 0 else attrs.axis
    if not 0 <= axis < rank:
        raise UnsupportedModelError(f"{where}: axis {attrs.axis} is out of range for {rank}-D tensors")
    for i, t in enumerate(inputs):
        if len(t.shape) != rank or any(t.shape[d] != out.shape[d] for d in range(rank) if d != axis):
            raise UnsupportedModelError(
                f"{where}: input {i} shape {t.shape} does not fit output {out.shape} on axis {axis}")
    if sum(t.shape[axis] for t in inputs) != out.shape[axis]:
        raise UnsupportedModelError(
            f"{where}: inputs add up to {sum(t.shape[axis] for t in inputs)} along axis {axis}, "
            f"output has {out.shape[axis]}")

    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    inner = int(np.prod(out.shape[axis + 1:], dtype=np.int64))
    # Bytes each input contributes per outer step.
    chunks = [t.shape[axis] * inner for t in inputs]
    fields = (Field("num_inputs", len(inputs)), Field("outer", outer),
              Field("chunk", ArrayRef("chunk")), Field("inputs", TensorPtrs(tuple(op.inputs))))
    return KernelCall("mcc_concat_s8", LIBRARY, "mcc_concat_params", fields,
                      (TensorArg(out.id),), (_i32("chunk", chunks),))


# --- TRANSPOSE --------------------------------------------------------------

@dataclass(frozen=True)
class TransposeLoops:
    """The output walked in order as TRANSPOSE_DIMS dims (outer first), with the
    input stride of each."""
    out_shape: tuple[int, ...]
    in_stride: tuple[int, ...]


def transpose_loops(in_shape: tuple[int, ...], perm: tuple[int, ...]) -> TransposeLoops:
    strides = [1] * len(in_shape)
    for d in range(len(in_shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * in_shape[d + 1]
    dims = [(in_shape[p], strides[p]) for p in perm if in_shape[p] != 1]
    # Output dims k, k+1 that are also adjacent in the input form one dim.
    merged: list[tuple[int, int]] = []
    for size, stride in reversed(dims):
        if merged and stride == merged[-1][1] * merged[-1][0]:
            inner_size, inner_stride = merged.pop()
            merged.append((size * inner_size, inner_stride))
        else:
            merged.append((size, stride))
    merged.reverse()
    assert len(merged) <= TRANSPOSE_DIMS
    merged = [(1, 0)] * (TRANSPOSE_DIMS - len(merged)) + merged
    return TransposeLoops(out_shape=tuple(s for s, _ in merged),
                          in_stride=tuple(st for _, st in merged))


@lowering(OpKind.TRANSPOSE)
def lower_transpose(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    where = _where(op)
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise UnsupportedModelError(f"{where}: expected an input, a permutation and one output")
    inp = _int8(op, graph.tensor(op.inputs[0]), "input")
    out = _int8(op, graph.tensor(op.outputs[0]), "output")
    rank = len(inp.shape)
    if rank > TRANSPOSE_DIMS:
        raise UnsupportedModelError(
            f"{where}: {rank}-D input; TRANSPOSE supports up to {TRANSPOSE_DIMS}-D")
    perm = tuple(int(p) for p in _const(op, graph, 1, "permutation").reshape(-1).tolist())
    if sorted(perm) != list(range(rank)):
        raise UnsupportedModelError(f"{where}: {perm} is not a permutation of {rank} dims")
    if out.shape != tuple(inp.shape[p] for p in perm):
        raise UnsupportedModelError(
            f"{where}: output shape {out.shape} is not input {inp.shape} permuted by {perm}")
    loops = transpose_loops(inp.shape, perm)
    return KernelCall("mcc_transpose_s8", LIBRARY, "mcc_transpose_params",
                      _array_fields("out_shape", "in_stride"),
                      (TensorArg(inp.id), TensorArg(out.id)),
                      (_i32("out_shape", loops.out_shape), _i32("in_stride", loops.in_stride)))


# --- RESIZE_NEAREST_NEIGHBOR ------------------------------------------------

def nearest_indices(in_size: int, out_size: int, align_corners: bool,
                    half_pixel_centers: bool) -> np.ndarray:
    """Source index of every output index: TFLM's GetNearestNeighbor, in float32.

    scale = (in - 1) / (out - 1) with align_corners (and out > 1), else in / out;
    src = round_half_away((i + offset) * scale) with align_corners, else floor;
    offset = 0.5 with half_pixel_centers; src clamped to [0, in - 1].
    """
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5 if half_pixel_centers else 0.0)
    pos = (np.arange(out_size).astype(np.float32) + offset) * scale   # float32 throughout
    assert pos.dtype == np.float32
    if align_corners:
        # Rounded in double, where x + 0.5 is exact for any float32 x.
        src = np.array([round_half_away(float(v)) for v in pos], dtype=np.int64)
    else:
        src = np.floor(pos).astype(np.int64)
    src = np.minimum(src, in_size - 1)
    if half_pixel_centers:
        src = np.maximum(src, 0)
    return src


@lowering(OpKind.RESIZE_NEAREST_NEIGHBOR)
def lower_resize_nearest(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    attrs: ResizeNearestAttrs = op.attrs
    where = _where(op)
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise UnsupportedModelError(f"{where}: expected an input, a size and one output")
    inp = _int8(op, graph.tensor(op.inputs[0]), "input")
    out = _int8(op, graph.tensor(op.outputs[0]), "output")
    if len(inp.shape) != 4:
        raise UnsupportedModelError(f"{where}: expected a 4-D NHWC input, got {inp.shape}")
    size = _const(op, graph, 1, "size").reshape(-1)
    if size.size != 2:
        raise UnsupportedModelError(f"{where}: the size tensor must hold 2 values, has {size.size}")
    n, in_h, in_w, c = inp.shape
    out_h, out_w = int(size[0]), int(size[1])
    if out.shape != (n, out_h, out_w, c):
        raise UnsupportedModelError(
            f"{where}: output shape {out.shape} does not match size {(out_h, out_w)} "
            f"for input {inp.shape}")
    rows = nearest_indices(in_h, out_h, attrs.align_corners, attrs.half_pixel_centers)
    cols = nearest_indices(in_w, out_w, attrs.align_corners, attrs.half_pixel_centers)
    # Tables hold byte offsets into one input image, so the kernel only adds.
    fields = (Field("batches", n), Field("out_h", out_h), Field("out_w", out_w),
              Field("channels", c), Field("in_image", in_h * in_w * c)) + \
        _array_fields("row_offset", "col_offset")
    arrays = (_i32("row_offset", rows * in_w * c), _i32("col_offset", cols * c))
    return KernelCall("mcc_resize_nearest_s8", LIBRARY, "mcc_resize_nearest_params", fields,
                      (TensorArg(inp.id), TensorArg(out.id)), arrays)
