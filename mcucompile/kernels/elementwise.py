"""ADD and MUL (int8, with broadcasting) onto templates/kernels/mcc_elementwise.{c,h}.

Bit-exact with TFLM's reference kernels (tflite-micro add_common.cc /
mul_common.cc with reference_integer_ops::AddFunc / MulElementwise):

* ADD brings both inputs to a common scale 2 * max(s1, s2) with 20 bits of
  headroom (`left_shift`), adds, and rescales to the output. The three
  multipliers are computed here in double, as TFLM's Prepare does.
* MUL multiplies the zero-point-corrected inputs in int32 and rescales once by
  s1 * s2 / s_out.
* Both clamp to the fused activation's range.
* A large ADD (ADD_TABLE_MIN_ELEMENTS or more outputs) reads each input's
  rescaled value from a 256-entry int32 table computed here with TFLite's
  exact arithmetic, and requantizes the sum in the fast form of mcc_conv.h
  (SMMLAR) where `add_tables` proves the conditions of that form hold for
  every possible sum; 2 KB of flash per layer for ~8x fewer instructions.
  A smaller one computes the same values per element, each input's rescale
  in the fast form too, where `add_fast_inputs` finds it equal to TFLite's
  for all 256 values of that input: no tables, ~5x fewer instructions.

Broadcasting only changes which input elements meet, never the arithmetic.
The compiler reduces any numpy-style broadcast to at most BCAST_DIMS loops:
size-1 output dims are dropped and neighbouring dims where each input either
spans or is broadcast in the same way are merged (e.g. [1,H,W,C] + [1,1,1,C]
becomes 2 loops: H*W rows of C). Each input gets a stride per loop, 0 where it
is broadcast.

A constant operand (x + bias-like tensor from the converter) is emitted to
flash and the `_const` kernel reads it from the params; both ops are
commutative, so the constant always plays input 2.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import UnsupportedModelError
from ..ir import DType, ElementwiseAttrs, Graph, Op, OpKind, Tensor
from ..quant import activation_range, fast_requant, quantize_multiplier
from . import ArrayRef, ConstArray, Field, KernelCall, KernelTarget, TensorArg, lowering

LIBRARY = "mcc_elementwise"

# Loop depth of the broadcasting kernels (MCC_BCAST_DIMS in mcc_elementwise.h).
BCAST_DIMS = 4

# ADD's headroom: inputs are shifted left this much before rescaling (TFLM, int8 output).
ADD_LEFT_SHIFT = 20
# Outputs from which an ADD takes the tables (2 KB of flash): below this the
# per-element arithmetic costs less than the tables' flash is worth.
ADD_TABLE_MIN_ELEMENTS = 1024


@dataclass(frozen=True)
class Broadcast:
    """The loops of a broadcasting call, outermost first, padded to BCAST_DIMS."""
    shape: tuple[int, ...]
    input1_strides: tuple[int, ...]
    input2_strides: tuple[int, ...]


def broadcast_loops(shape1: tuple[int, ...], shape2: tuple[int, ...],
                    out_shape: tuple[int, ...], where: str = "") -> Broadcast | None:
    """How to walk a numpy-style broadcast of shape1 and shape2 into out_shape.

    None when no broadcast is needed: both inputs hold the output's elements in
    the output's order, so one flat loop does.
    """
    rank = max(len(shape1), len(shape2), len(out_shape))

    def padded(s: tuple[int, ...]) -> tuple[int, ...]:
        return (1,) * (rank - len(s)) + tuple(s)

    a, b, out = padded(shape1), padded(shape2), padded(out_shape)
    for da, db, do in zip(a, b, out):
        if do != max(da, db) or da not in (1, do) or db not in (1, do):
            raise UnsupportedModelError(
                f"{where}input shapes {shape1} and {shape2} do not broadcast to {out_shape}")

    # (extent, input1 spans it, input2 spans it) per output dim of extent > 1,
    # merging neighbours with the same pattern (they are contiguous in memory).
    loops: list[list] = []
    for da, db, do in zip(a, b, out):
        if do == 1:
            continue
        pattern = (da == do, db == do)
        if loops and (loops[-1][1], loops[-1][2]) == pattern:
            loops[-1][0] *= do
        else:
            loops.append([do, *pattern])
    if all(spans1 and spans2 for _, spans1, spans2 in loops):
        return None
    if len(loops) > BCAST_DIMS:
        raise UnsupportedModelError(
            f"{where}broadcasting {shape1} with {shape2} needs {len(loops)} nested loops; "
            f"the kernel supports {BCAST_DIMS}")

    def strides(which: int) -> tuple[int, ...]:
        out_strides, step = [], 1
        for loop in reversed(loops):
            extent, spans = loop[0], loop[which]
            out_strides.append(step if spans else 0)
            step *= extent if spans else 1
        return tuple(reversed(out_strides))

    pad = BCAST_DIMS - len(loops)
    return Broadcast(shape=(1,) * pad + tuple(loop[0] for loop in loops),
                     input1_strides=(0,) * pad + strides(1),
                     input2_strides=(0,) * pad + strides(2))


@dataclass(frozen=True)
class _Operands:
    input1: Tensor              # always an activation (arena) tensor
    input2: Tensor              # an activation, or a constant when `constant` is set
    output: Tensor
    constant: bool


def _operands(op: Op, graph: Graph) -> _Operands:
    where = f"op {op.index} ({op.kind.value})"
    if len(op.inputs) != 2 or len(op.outputs) != 1 or min(op.inputs) < 0:
        raise UnsupportedModelError(f"{where}: needs two inputs and one output")
    t1, t2 = graph.tensor(op.inputs[0]), graph.tensor(op.inputs[1])
    out = graph.tensor(op.outputs[0])
    for role, t in (("input 1", t1), ("input 2", t2), ("output", out)):
        if t.dtype != DType.INT8:
            raise UnsupportedModelError(
                f"{where}: {role} {t.name!r} is {t.dtype.value}; only int8 is supported")
        if t.quant is None or t.quant.per_channel:
            raise UnsupportedModelError(
                f"{where}: {role} {t.name!r} needs one (per-tensor) scale and zero point")
    if t1.is_const and t2.is_const:
        raise UnsupportedModelError(f"{where}: both inputs are constants (fold them before compiling)")
    if t1.is_const:
        t1, t2 = t2, t1  # ADD and MUL are commutative: the constant plays input 2
    return _Operands(t1, t2, out, constant=t2.is_const)


def _call(op: Op, graph: Graph, name: str, operands: _Operands,
          arithmetic: tuple[Field, ...]) -> KernelCall:
    """The KernelCall shared by ADD and MUL: sizes, broadcast loops, constant operand."""
    x1, x2, out = operands.input1, operands.input2, operands.output
    where = f"op {op.index} ({op.kind.value}): "
    bcast = broadcast_loops(x1.shape, x2.shape, out.shape, where)
    if bcast is None and not (x1.num_elements == x2.num_elements == out.num_elements):
        raise UnsupportedModelError(f"{where}input and output sizes differ")
    fields = [Field("size", out.num_elements)]
    arrays = []
    if bcast is not None:
        fields += [Field("shape", ArrayRef("shape")),
                   Field("input1_strides", ArrayRef("input1_strides")),
                   Field("input2_strides", ArrayRef("input2_strides"))]
        arrays += [ConstArray("shape", "int32_t", np.array(bcast.shape, dtype=np.int32)),
                   ConstArray("input1_strides", "int32_t", np.array(bcast.input1_strides, dtype=np.int32)),
                   ConstArray("input2_strides", "int32_t", np.array(bcast.input2_strides, dtype=np.int32))]
    if operands.constant:
        assert x2.data is not None
        fields.append(Field("constant", ArrayRef("constant")))
        arrays.append(ConstArray("constant", "int8_t", np.asarray(x2.data, dtype=np.int8).reshape(-1)))
        function, args = f"mcc_{name}_const_s8", (TensorArg(x1.id), TensorArg(out.id))
    else:
        function, args = f"mcc_{name}_s8", (TensorArg(x1.id), TensorArg(x2.id), TensorArg(out.id))
    assert isinstance(op.attrs, ElementwiseAttrs)
    act_min, act_max = activation_range(op.attrs.activation, out)
    fields += [*arithmetic, Field("act_min", act_min), Field("act_max", act_max)]
    return KernelCall(function=function, library=LIBRARY, params_type=f"mcc_{name}_params",
                      fields=tuple(fields), args=args, arrays=tuple(arrays))


def _smaller_than_one(real: float, what: str, where: str) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp (checks 0 < real < 1)."""
    if not 0.0 < real < 1.0:
        raise UnsupportedModelError(f"{where}: the {what} rescaling factor {real:g} is outside (0, 1) "
                                    "(TFLM rejects these quantization parameters)")
    return quantize_multiplier(real)


def _add_multipliers(s1: float, s2: float, so: float, where: str) -> tuple[int, ...]:
    """ADD's three (multiplier, shift) pairs, as TFLM's Prepare computes them."""
    twice_max_input_scale = 2.0 * max(s1, s2)
    m1, sh1 = _smaller_than_one(s1 / twice_max_input_scale, "input 1", where)
    m2, sh2 = _smaller_than_one(s2 / twice_max_input_scale, "input 2", where)
    mo, sho = _smaller_than_one(twice_max_input_scale / ((1 << ADD_LEFT_SHIFT) * so), "output", where)
    return m1, sh1, m2, sh2, mo, sho


@dataclass(frozen=True, eq=False)
class ResidualTables:
    """A residual ADD fused into a convolution (mcc_conv.h, mcc_residual)."""
    x_scaled: np.ndarray        # int32[256], doubled
    z_scaled: np.ndarray        # int32[256], doubled, the convolution's activation folded in
    mult: int
    hib: int
    post: int
    act_min: int
    act_max: int


def residual_tables(x: Tensor, z_scale: float, z_zero_point: int, z_range: tuple[int, int],
                    out: Tensor, activation, where: str) -> ResidualTables | None:
    """The fused form of ADD(x, z) for z, the int8 result of a convolution
    clamped to `z_range`, or None where ADD's table form is not provably exact.
    The two inputs swap freely: each is rescaled on its own and the sum is exact."""
    m1, sh1, m2, sh2, mo, sho = _add_multipliers(float(x.scale), z_scale, float(out.scale), where)
    tables = add_tables(-x.zero_point, m1, sh1, -z_zero_point, m2, sh2, out.zero_point, mo, sho)
    if tables is None:
        return None
    tx, tz, hib, post = tables
    lo, hi = z_range
    tz = tz[np.clip(np.arange(-128, 128), lo, hi) + 128]
    act_min, act_max = activation_range(activation, out)
    return ResidualTables(2 * tx, 2 * tz, mo, hib, post, act_min, act_max)


@lowering(OpKind.ADD)
def lower_add(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    ops = _operands(op, graph)
    where = f"op {op.index} (ADD)"
    s1, s2, so = float(ops.input1.scale), float(ops.input2.scale), float(ops.output.scale)
    m1, sh1, m2, sh2, mo, sho = _add_multipliers(s1, s2, so, where)
    arithmetic = (
        Field("input1_offset", -ops.input1.zero_point), Field("input1_multiplier", m1),
        Field("input1_shift", sh1),
        Field("input2_offset", -ops.input2.zero_point), Field("input2_multiplier", m2),
        Field("input2_shift", sh2),
        Field("left_shift", ADD_LEFT_SHIFT),
        Field("output_offset", ops.output.zero_point), Field("output_multiplier", mo),
        Field("output_shift", sho))
    call = _call(op, graph, "add", ops, arithmetic)
    tables = add_tables(-ops.input1.zero_point, m1, sh1, -ops.input2.zero_point, m2, sh2,
                        ops.output.zero_point, mo, sho)
    if tables is None:
        return call
    t1, t2, hib, post = tables
    if ops.output.num_elements < ADD_TABLE_MIN_ELEMENTS:
        fast = add_fast_inputs(t1, -ops.input1.zero_point, m1, sh1, t2, -ops.input2.zero_point, m2, sh2)
        if fast is None:
            return call
        (hib1, post1, left1), (hib2, post2, left2) = fast
        return replace(call, cost_variant="fast", fields=call.fields + (
            Field("output_hib", hib), Field("output_post", post),
            Field("input1_hib", hib1), Field("input1_post", post1), Field("input1_left", left1),
            Field("input2_hib", hib2), Field("input2_post", post2), Field("input2_left", left2)))
    # Doubled in flash (|a + b| < 2^30, so 2a + 2b fits): the kernel's output
    # stage takes the doubled sum, as fast_requant_doubled does.
    t1, t2 = 2 * t1, 2 * t2
    return replace(call, cost_variant="tables", fields=call.fields + (
        Field("input1_scaled", ArrayRef("input1_scaled")), Field("input2_scaled", ArrayRef("input2_scaled")),
        Field("output_hib", hib), Field("output_post", post)),
        arrays=call.arrays + (ConstArray("input1_scaled", "int32_t", t1),
                              ConstArray("input2_scaled", "int32_t", t2)))


def add_fast_inputs(t1: np.ndarray, offset1: int, mult1: int, shift1: int,
                    t2: np.ndarray, offset2: int, mult2: int, shift2: int):
    """Each input's (hi_base, post, left shift) for ADD's per-element fast form
    (mcc_add_params input1_hib), or None: the rescale of (x + offset) << left in
    the fast form must give the input's table value (add_tables, TFLite's
    arithmetic) for every int8 x. TFLite's right shift is the post; the input
    with the larger scale has a multiplier of exactly 0.5 (shift 0), which the
    fast form takes as post 1 over a doubled left shift."""
    stages = []
    for table, offset, mult, shift in ((t1, offset1, mult1, shift1), (t2, offset2, mult2, shift2)):
        post, left = (-shift, ADD_LEFT_SHIFT) if shift < 0 else (1, ADD_LEFT_SHIFT + 1)
        if post > 31:
            return None
        hib = 1 << (post - 1)
        if any(fast_requant((x + offset) << left, mult, hib, post) != int(table[x + 128])
               for x in range(-128, 128)):
            return None
        stages.append((hib, post, left))
    return stages


def add_tables(offset1: int, mult1: int, shift1: int, offset2: int, mult2: int, shift2: int,
               out_offset: int, out_mult: int, out_shift: int):
    """ADD's two input tables (int32[256], index x + 128) and the output stage's
    (hi_base, post), or None when the fast form is not provably exact: it needs
    post = -out_shift in [1, 31], every sum |a + b| < 2^30 and |hi_base| + 1 < 2^30
    (the conditions of conv.py's fast_channel_table)."""
    from .activation import multiply_by_quantized_multiplier
    post = -out_shift
    if not 1 <= post <= 31:
        return None
    xs = range(-128, 128)
    t1 = [multiply_by_quantized_multiplier((x + offset1) << ADD_LEFT_SHIFT, mult1, shift1) for x in xs]
    t2 = [multiply_by_quantized_multiplier((x + offset2) << ADD_LEFT_SHIFT, mult2, shift2) for x in xs]
    if max(map(abs, t1)) + max(map(abs, t2)) >= 2**30:
        return None
    hib = (1 << (post - 1)) + out_offset * (1 << post)
    if abs(hib) + 1 >= 2**30:
        return None
    return np.array(t1, np.int32), np.array(t2, np.int32), hib, post


@lowering(OpKind.MUL)
def lower_mul(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    ops = _operands(op, graph)
    real = float(ops.input1.scale) * float(ops.input2.scale) / float(ops.output.scale)
    multiplier, shift = quantize_multiplier(real)
    arithmetic = (
        Field("input1_offset", -ops.input1.zero_point),
        Field("input2_offset", -ops.input2.zero_point),
        Field("output_offset", ops.output.zero_point),
        Field("output_multiplier", multiplier), Field("output_shift", shift))
    return _call(op, graph, "mul", ops, arithmetic)
