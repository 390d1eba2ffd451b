"""PAD, PADV2, CONCATENATION, TRANSPOSE and RESIZE_NEAREST_NEIGHBOR: compile-time
loop shapes and index tables, and bit-exactness with TFLM."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen
from harness import assert_bit_exact
from mcucompile.errors import UnsupportedModelError
from mcucompile.ir import (Activation, ConcatenationAttrs, DType, Graph, NoAttrs, Op, OpKind,
                           Quant, Tensor)
from mcucompile.kernels import lower
from mcucompile.kernels.shape import nearest_indices, pad_loops, transpose_loops
from test_kernels_pool import config_id, io_quant, with_quant


def _int8(tid: int, shape: tuple[int, ...], zp: int = 0) -> Tensor:
    return Tensor(tid, f"t{tid}", shape, DType.INT8, Quant((0.1,), (zp,)))


def _i32(tid: int, values) -> Tensor:
    data = np.array(values, dtype=np.int32)
    return Tensor(tid, f"c{tid}", data.shape, DType.INT32, data=data)


def padv2(input_shape, paddings, value: float) -> bytes:
    """PADV2: tf.pad with a nonzero constant (modelgen has no factory for it yet)."""
    paddings = tuple(tuple(p) for p in paddings)
    return modelgen._unary(
        "padv2", input_shape,
        lambda tf, t: tf.pad(t, [list(p) for p in paddings], constant_values=value),
        False, 0, dict(paddings=paddings, value=value))


# --- PAD loops --------------------------------------------------------------

def test_pad_loops_fold_unpadded_dims_into_the_dim_before():
    # NHWC padded in H and W: C folds into W (rows of C stay contiguous).
    loops = pad_loops((1, 6, 6, 4), [(0, 0), (1, 2), (2, 1), (0, 0)])
    assert loops.in_shape == (1, 1, 1, 6, 24)
    assert loops.out_shape == (1, 1, 1, 9, 36)
    assert loops.before == (0, 0, 0, 1, 8)
    # Padding only the batch: everything after it is one contiguous row.
    loops = pad_loops((2, 3, 4), [(1, 1), (0, 0), (0, 0)])
    assert (loops.in_shape[-1], loops.out_shape[-1], loops.before[-1]) == (24, 48, 12)
    # No padding at all: a single copy.
    assert pad_loops((2, 3), [(0, 0), (0, 0)]).in_shape == (1, 1, 1, 1, 6)


def test_pad_lowering_uses_output_zero_point_and_rejects_negative_paddings():
    tensors = (_int8(0, (1, 2, 2, 1)), _i32(1, [[0, 0], [1, 0], [0, 1], [0, 0]]),
               _int8(2, (1, 3, 3, 1), zp=-9))
    g = Graph("g", tensors, (Op(0, OpKind.PAD, (0, 1), (2,), NoAttrs()),), (0,), (2,))
    call = lower(g.ops[0], g)
    assert {f.name: f.value for f in call.fields}["pad_value"] == -9

    tensors = (_int8(0, (1, 4)), _i32(1, [[0, 0], [-1, 0]]), _int8(2, (1, 3)))
    g = Graph("g", tensors, (Op(0, OpKind.PAD, (0, 1), (2,), NoAttrs()),), (0,), (2,))
    with pytest.raises(UnsupportedModelError, match="negative"):
        lower(g.ops[0], g)


# --- TRANSPOSE loops --------------------------------------------------------

def test_transpose_loops_merge_dims_adjacent_in_both_tensors():
    # [N,H,W,C] -> [N,W,H,C]: C stays contiguous.
    loops = transpose_loops((1, 3, 4, 5), (0, 2, 1, 3))
    assert loops.out_shape == (1, 1, 4, 3, 5)
    assert loops.in_stride == (0, 0, 5, 20, 1)
    # (0, 3, 1, 2) moves C first; H and W stay adjacent and merge.
    loops = transpose_loops((2, 3, 4, 5), (0, 3, 1, 2))
    assert loops.out_shape == (1, 1, 2, 5, 12)
    assert loops.in_stride == (0, 0, 60, 1, 5)
    # A permutation that only moves size-1 dims is a plain copy.
    loops = transpose_loops((1, 4, 1, 5), (2, 1, 0, 3))
    assert loops.out_shape == (1, 1, 1, 1, 20)
    assert loops.in_stride[-1] == 1


def test_transpose_refuses_six_dims_like_tflm():
    shape = (2, 1, 2, 1, 2, 1)
    tensors = (_int8(0, shape), _i32(1, [5, 4, 3, 2, 1, 0]), _int8(2, shape[::-1]))
    g = Graph("g", tensors, (Op(0, OpKind.TRANSPOSE, (0, 1), (2,), NoAttrs()),), (0,), (2,))
    with pytest.raises(UnsupportedModelError, match="up to 5-D"):
        lower(g.ops[0], g)


# --- CONCATENATION ----------------------------------------------------------

def test_concat_lowering_chunks_and_activation():
    tensors = (_int8(0, (2, 3, 4)), _int8(1, (2, 1, 4)), _int8(2, (2, 4, 4)))
    op = Op(0, OpKind.CONCATENATION, (0, 1), (2,), ConcatenationAttrs(-2, Activation.NONE))
    g = Graph("g", tensors, (op,), (0, 1), (2,))
    call = lower(op, g)
    fields = {f.name: f.value for f in call.fields}
    assert fields["outer"] == 2 and fields["num_inputs"] == 2
    assert call.arrays[0].values.tolist() == [12, 4]

    op = Op(0, OpKind.CONCATENATION, (0, 1), (2,), ConcatenationAttrs(1, Activation.RELU))
    g = Graph("g", tensors, (op,), (0, 1), (2,))
    with pytest.raises(UnsupportedModelError, match="activation"):
        lower(op, g)


# --- RESIZE_NEAREST_NEIGHBOR index tables -----------------------------------

def test_nearest_indices_plain_cases():
    assert nearest_indices(4, 8, False, False).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert nearest_indices(5, 2, False, False).tolist() == [0, 2]
    # align_corners maps the corners onto each other and rounds.
    assert nearest_indices(3, 5, True, False).tolist() == [0, 1, 1, 2, 2]
    # half_pixel_centers samples at pixel centres: (i + 0.5) * in / out.
    assert nearest_indices(3, 4, False, True).tolist() == [0, 1, 1, 2]
    # A single output with align_corners falls back to in / out.
    assert nearest_indices(5, 1, True, False).tolist() == [0]


def test_nearest_indices_follow_float32_not_exact_arithmetic():
    # TFLM computes in float32. Exactly, 11 * 26/22 = 13, but float32 gives
    # 12.999999: TFLM (and we) read row 12.
    assert nearest_indices(26, 22, False, False)[11] == 12
    # align_corners: 11 * 13/22 = 6.5 would round to 7; float32 has 6.4999995.
    assert nearest_indices(14, 23, True, False)[11] == 6
    # half_pixel_centers: 20.5 * 2/41 = 1 exactly; float32 has 0.99999994.
    assert nearest_indices(2, 41, False, True)[20] == 0


# --- bit-exact against TFLM -------------------------------------------------

PADS = [
    dict(input_shape=(1, 6, 6, 4), paddings=((0, 0), (1, 2), (2, 1), (0, 0))),
    dict(input_shape=(2, 3, 5, 4), paddings=((1, 0), (0, 2), (0, 0), (3, 1))),
    dict(input_shape=(3, 7), paddings=((0, 1), (2, 0))),
    dict(input_shape=(2, 3, 2, 4, 3), paddings=((0, 1), (1, 0), (0, 0), (2, 1), (1, 1))),
]


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("config", PADS, ids=config_id)
def test_pad_bit_exact(config):
    model = modelgen.pad(**config)
    assert modelgen.op_names(model) == ["PAD"]
    assert_bit_exact(model)


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("shape,paddings,value", [
    ((1, 5, 6, 3), ((0, 0), (2, 1), (0, 3), (0, 0)), 0.5),
    ((2, 5, 3), ((1, 1), (0, 2), (1, 0)), -0.7),
], ids=["nhwc", "3d"])
def test_padv2_bit_exact(shape, paddings, value):
    model = padv2(shape, paddings, value)
    assert modelgen.op_names(model) == ["PADV2"]
    assert_bit_exact(model)


CONCATS = [
    dict(input_shapes=((1, 4, 4, 3), (1, 4, 4, 5)), axis=-1),
    dict(input_shapes=((1, 2, 4, 3), (1, 3, 4, 3), (1, 1, 4, 3)), axis=1),
    dict(input_shapes=((1, 4, 2, 3), (1, 4, 1, 3), (1, 4, 3, 3), (1, 4, 2, 3)), axis=2),
    dict(input_shapes=((1, 4, 3), (2, 4, 3)), axis=0),
    dict(input_shapes=((2, 3), (2, 5), (2, 1)), axis=-1),
]


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("config", CONCATS, ids=config_id)
def test_concat_bit_exact(config):
    model = modelgen.concat(**config)
    assert modelgen.op_names(model) == ["CONCATENATION"]
    assert_bit_exact(model)


@pytest.mark.tf
@pytest.mark.reference
def test_concat_with_differing_input_quantization_is_refused_like_tflm():
    # TFLM's int8 CONCATENATION never rescales: its Prepare rejects an input
    # whose scale or zero point differs from the output's. So do we.
    from mcucompile import reference
    from mcucompile.pipeline import compile_model
    from harness import host_board

    model = modelgen.concat(input_shapes=((1, 3, 4), (1, 3, 2)), axis=-1)
    scale, zp = io_quant(model, "input", 1)
    for changed in (with_quant(model, io="input", index=1, scale=scale * 3),
                    with_quant(model, io="input", index=1, zero_point=zp + 1)):
        with pytest.raises(UnsupportedModelError, match="TFLM"):
            reference.run(changed, [np.zeros((1, 3, 4), np.int8), np.zeros((1, 3, 2), np.int8)])
        with pytest.raises(UnsupportedModelError, match="quantized differently"):
            compile_model(changed, host_board())


TRANSPOSES = [
    dict(input_shape=(1, 3, 4, 5), perm=(0, 2, 1, 3)),
    dict(input_shape=(2, 3, 4, 5), perm=(3, 1, 0, 2)),
    dict(input_shape=(1, 1, 4, 5), perm=(0, 3, 1, 2)),
    dict(input_shape=(6, 7), perm=(1, 0)),
    dict(input_shape=(2, 3, 4, 5, 6), perm=(4, 2, 0, 3, 1)),
]


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("config", TRANSPOSES, ids=config_id)
def test_transpose_bit_exact(config):
    model = modelgen.transpose(**config)
    assert modelgen.op_names(model) == ["TRANSPOSE"]
    assert_bit_exact(model)


RESIZES = [
    dict(input_shape=(1, 4, 5, 3), size=(8, 10)),
    dict(input_shape=(2, 5, 3, 2), size=(9, 4), half_pixel_centers=True),
    dict(input_shape=(1, 7, 9, 2), size=(3, 5), align_corners=True),
    dict(input_shape=(1, 4, 5, 3), size=(1, 1), align_corners=True),
    # The float32 corner cases pinned in test_nearest_indices_follow_float32_*.
    dict(input_shape=(1, 26, 3, 2), size=(22, 5)),
    dict(input_shape=(1, 14, 3, 2), size=(23, 5), align_corners=True),
    dict(input_shape=(1, 2, 3, 2), size=(41, 5), half_pixel_centers=True),
]


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("config", RESIZES, ids=config_id)
def test_resize_nearest_bit_exact(config):
    model = modelgen.resize_nearest(**config)
    assert modelgen.op_names(model) == ["RESIZE_NEAREST_NEIGHBOR"]
    assert_bit_exact(model)


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("shape,axes,after_relu", [
    ((1, 1, 1, 10), (1, 2), False),
    ((1, 5, 1, 7), (2,), True),
    ((1, 1, 3, 1), (), True),           # no squeeze_dims: every size-1 dim goes
])
def test_native_squeeze_is_an_alias_and_bit_exact(shape, axes, after_relu):
    """A real SQUEEZE op (the converter writes RESHAPE; other exporters write SQUEEZE)."""
    from mcucompile.frontend import tflite
    from mcucompile.pipeline import compile_model
    from harness import host_board
    model = modelgen.squeeze(input_shape=shape, axes=axes, native=True, after_relu=after_relu)
    graph = tflite.load(model)
    (sq,) = [op for op in graph.ops if op.kind == OpKind.SQUEEZE]
    assert graph.tensor(sq.outputs[0]).shape == tuple(d for i, d in enumerate(shape)
                                                    if not (d == 1 and (i in axes or not axes)))
    compiled = compile_model(model, host_board())
    assert all(call is None for i, call in compiled.calls.items()
               if compiled.graph.ops[i].kind == OpKind.SQUEEZE)     # an alias: no code
    if after_relu:
        assert_bit_exact(model)
    else:                               # the model is one alias: no intermediate to compare
        from mcucompile.verify import verify
        result = verify(model, runs=2, board=host_board())
        assert result.bit_exact and result.output_bytes == 2 * 10     # two runs
