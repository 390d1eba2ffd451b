"""ADD and MUL (int8, broadcasting, fused activations, constant operands), bit-exact with TFLM.

The broadcast planner is checked in pure Python against numpy's broadcasting;
the generated C is checked by harness.assert_bit_exact, which compiles each
model with sanitizers and compares every output byte with TFLM.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import harness
import modelgen
from mcucompile.errors import UnsupportedModelError
from mcucompile.frontend import tflite
from mcucompile.kernels import lower
from mcucompile.kernels.elementwise import BCAST_DIMS, broadcast_loops
from test_kernels_activation import needs_tflm, requantized

# ----------------------------------------------------------------------------
# Broadcast planning (no TensorFlow needed)
# ----------------------------------------------------------------------------

BROADCASTS = [
    ((1, 6, 6, 8), (1, 1, 1, 8)),       # per-channel constant
    ((1, 6, 6, 8), (1, 6, 6, 1)),       # per-pixel gate
    ((1, 6, 6, 8), ()),                 # scalar
    ((1, 6, 6, 8), (1,)),
    ((1, 1, 6, 8), (1, 6, 1, 8)),       # both broadcast
    ((2, 1, 3, 1), (1, 4, 1, 5)),       # alternating, 4 loops
    ((3, 1, 4), (1, 6, 1)),
    ((5,), (2, 5)),
    ((1, 1, 1, 8), (1, 6, 6, 8)),       # input 1 is the small one
    ((2, 3, 1, 1, 5), (1, 1, 4, 7, 1)),  # 5-D, still 3 loops after merging
]


def _walk(b, x1: np.ndarray, x2: np.ndarray) -> list[tuple[int, int]]:
    """The (input 1, input 2) element pairs the C broadcast loop visits, in order."""
    f1, f2 = x1.reshape(-1), x2.reshape(-1)
    pairs = []
    for idx in itertools.product(*(range(n) for n in b.shape)):
        pairs.append((int(f1[np.dot(idx, b.input1_strides)]), int(f2[np.dot(idx, b.input2_strides)])))
    return pairs


@pytest.mark.parametrize("shape1,shape2", BROADCASTS)
def test_broadcast_loops_visit_numpy_pairs(shape1, shape2):
    out_shape = np.broadcast_shapes(shape1, shape2)
    b = broadcast_loops(shape1, shape2, out_shape)
    assert b is not None and len(b.shape) == BCAST_DIMS
    assert int(np.prod(b.shape)) == int(np.prod(out_shape))
    # Label every element by its flat index; numpy says which pairs meet where.
    x1 = np.arange(int(np.prod(shape1))).reshape(shape1)
    x2 = np.arange(int(np.prod(shape2))).reshape(shape2)
    want = list(zip(np.broadcast_to(x1, out_shape).reshape(-1).tolist(),
                    np.broadcast_to(x2, out_shape).reshape(-1).tolist()))
    assert _walk(b, x1, x2) == want


def test_broadcast_loops_merge_dims():
    b = broadcast_loops((1, 6, 6, 8), (1, 1, 1, 8), (1, 6, 6, 8))
    assert b.shape == (1, 1, 36, 8)
    assert b.input1_strides == (0, 0, 8, 1) and b.input2_strides == (0, 0, 0, 1)


@pytest.mark.parametrize("shape1,shape2", [((1, 6, 6, 8), (1, 6, 6, 8)), ((1, 4, 8), (4, 8)),
                                           ((1, 1, 10), (10,)), ((1,), ())])
def test_same_elements_need_no_broadcast(shape1, shape2):
    assert broadcast_loops(shape1, shape2, np.broadcast_shapes(shape1, shape2)) is None


def test_too_many_loops_or_bad_shapes_are_refused():
    with pytest.raises(UnsupportedModelError, match="nested loops"):
        broadcast_loops((2, 1, 2, 1, 2), (1, 2, 1, 2, 1), (2, 2, 2, 2, 2))
    with pytest.raises(UnsupportedModelError, match="do not broadcast"):
        broadcast_loops((1, 3), (1, 4), (1, 4))


# ----------------------------------------------------------------------------
# Generated C against TFLM
# ----------------------------------------------------------------------------

_slow = pytest.mark.slow
SHAPES = [
    ((1, 5, 7, 3), (1, 5, 7, 3)),       # same shape, odd sizes
    ((1, 6, 6, 8), (1, 1, 1, 8)),
    ((1, 1, 6, 8), (1, 6, 1, 8)),       # both broadcast
    pytest.param((1, 6, 6, 8), (1, 6, 6, 1), marks=_slow),
    pytest.param((1, 1, 1, 8), (1, 4, 4, 8), marks=_slow),
    pytest.param((2, 9), (1, 9), marks=_slow),
    pytest.param((1, 3, 1, 5), (1, 1, 4, 1), marks=_slow),
]


@needs_tflm
@pytest.mark.parametrize("factory", [modelgen.add, modelgen.mul], ids=["add", "mul"])
@pytest.mark.parametrize("shape_a,shape_b", SHAPES)
def test_c_shapes(factory, shape_a, shape_b):
    model = factory(shape_a=shape_a, shape_b=shape_b)
    assert modelgen.op_names(model) == [factory.__name__.upper()]
    harness.assert_bit_exact(model)


@needs_tflm
@pytest.mark.parametrize("factory", [modelgen.add, modelgen.mul], ids=["add", "mul"])
@pytest.mark.parametrize("activation", ["relu6", pytest.param("relu", marks=_slow),
                                        pytest.param("relu_n1_to_1", marks=_slow)])
def test_c_fused_activation(factory, activation):
    model = factory(shape_b=(1, 1, 1, 8), activation=activation)
    assert modelgen.op_names(model) == [factory.__name__.upper()]
    harness.assert_bit_exact(model)


@needs_tflm
@pytest.mark.parametrize("factory", [modelgen.add, modelgen.mul], ids=["add", "mul"])
@pytest.mark.parametrize("shape_b,swap", [((1, 1, 1, 8), False), ((1, 1, 1, 8), True),
                                          pytest.param((1, 6, 6, 8), False, marks=_slow),
                                          pytest.param((), False, marks=_slow)])
def test_c_constant_operand(factory, shape_b, swap):
    model = factory(shape_b=shape_b, constant_b=True)
    if swap:  # the constant as input 1
        model = requantized(model, swap_inputs=True)
    graph = tflite.load(model)
    (op,) = graph.ops
    assert any(graph.tensor(t).is_const for t in op.inputs)
    assert lower(op, graph).function.endswith("_const_s8")
    harness.assert_bit_exact(model)


# (input 1, input 2, output) quantizations: equal and very different scales,
# extreme zero points; for MUL a combined multiplier above 1.
QUANTS = [
    ((0.1, -128), (0.003, 127), (0.05, 10)),
    pytest.param((0.01, 0), (0.01, 0), (0.02, 0), marks=_slow),
    pytest.param((0.5, 20), (0.25, -7), (0.01, -100), marks=_slow),
]


@needs_tflm
@pytest.mark.parametrize("factory", [modelgen.add, modelgen.mul], ids=["add", "mul"])
@pytest.mark.parametrize("q1,q2,qo", QUANTS)
def test_c_quantizations(factory, q1, q2, qo):
    base = factory(shape_a=(1, 5, 5, 6), shape_b=(1, 1, 5, 6), activation="relu")
    harness.assert_bit_exact(requantized(base, inputs={0: q1, 1: q2}, output=qo))


@needs_tflm
def test_c_float_io_add():
    model = modelgen.float_io(modelgen.add, shape_b=(1, 1, 1, 8))
    names = modelgen.op_names(model)
    assert names.count("QUANTIZE") == 2 and names[-1] == "DEQUANTIZE" and "ADD" in names
    harness.assert_bit_exact(model)


# ----------------------------------------------------------------------------
# ADD's tables (ADD_TABLE_MIN_ELEMENTS outputs or more)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_add_tables_are_exact_for_every_input_pair(seed):
    """For random quantizations, every one of the 65,536 (x1, x2) pairs gives
    TFLite's output through the tables and the fast output stage; and each
    input's rescale in the fast form (the per-element form of small ADDs),
    where add_fast_inputs allows it, gives its table's value."""
    from mcucompile.kernels.activation import multiply_by_quantized_multiplier as mbqm
    from mcucompile.kernels.elementwise import ADD_LEFT_SHIFT, add_fast_inputs, add_tables
    from mcucompile.quant import fast_requant
    from mcucompile.quant import quantize_multiplier
    rng = np.random.default_rng(seed)
    s1, s2 = (float(10 ** rng.uniform(-3, 0)) for _ in range(2))
    so = float(10 ** rng.uniform(-3, 0)) * max(s1, s2) * 4
    z1, z2, zo = (int(rng.integers(-128, 128)) for _ in range(3))
    twice = 2 * max(s1, s2)
    (m1, h1), (m2, h2) = quantize_multiplier(s1 / twice), quantize_multiplier(s2 / twice)
    mo, ho = quantize_multiplier(twice / ((1 << ADD_LEFT_SHIFT) * so))
    tables = add_tables(-z1, m1, h1, -z2, m2, h2, zo, mo, ho)
    if tables is None:
        assert ho >= 0            # the one reason at these scales
        return
    t1, t2, hib, post = tables
    fast = add_fast_inputs(t1, -z1, m1, h1, t2, -z2, m2, h2)
    assert fast is not None       # the fast form holds at these scales
    (hib1, post1, left1), (hib2, post2, left2) = fast
    assert 0 in (h1, h2) and {left1, left2} <= {ADD_LEFT_SHIFT, ADD_LEFT_SHIFT + 1}
    for x1 in range(-128, 128):
        a = mbqm((x1 - z1) << ADD_LEFT_SHIFT, m1, h1)
        assert a == t1[x1 + 128] == fast_requant((x1 - z1) << left1, m1, hib1, post1)
        assert (mbqm((x1 - z2) << ADD_LEFT_SHIFT, m2, h2) == t2[x1 + 128]
                == fast_requant((x1 - z2) << left2, m2, hib2, post2))
        for x2 in range(-128, 128):
            want = mbqm(a + int(t2[x2 + 128]), mo, ho) + zo
            assert fast_requant(a + int(t2[x2 + 128]), mo, hib, post) == want, (x1, x2)


def test_add_fast_inputs_refuse_a_table_they_do_not_reproduce():
    """A table value the fast form does not give (here: one entry off by one)
    keeps that ADD on the exact per-element arithmetic."""
    from mcucompile.kernels.elementwise import ADD_LEFT_SHIFT, add_fast_inputs, add_tables
    from mcucompile.quant import quantize_multiplier
    (m1, h1), (m2, h2) = quantize_multiplier(0.37), quantize_multiplier(0.5)
    mo, ho = quantize_multiplier(0.9 / (1 << ADD_LEFT_SHIFT))
    t1, t2, _, _ = add_tables(3, m1, h1, -5, m2, h2, 0, mo, ho)
    assert add_fast_inputs(t1, 3, m1, h1, t2, -5, m2, h2) is not None
    t1 = t1.copy()
    t1[17] += 1
    assert add_fast_inputs(t1, 3, m1, h1, t2, -5, m2, h2) is None


def _add_kernel(model: bytes):
    graph = tflite.load(model)
    (op,) = [o for o in graph.ops if o.kind.value == "ADD"]
    return lower(op, graph)


@needs_tflm
@pytest.mark.parametrize("kw", [
    dict(shape_a=(1, 16, 16, 8), shape_b=(1, 16, 16, 8), activation="relu"),
    dict(shape_a=(1, 12, 12, 9), shape_b=(1, 1, 1, 9)),
    dict(shape_a=(1, 16, 10, 7), shape_b=(1, 1, 10, 7), constant_b=True, activation="relu6"),
], ids=["same_shape", "broadcast", "constant"])
def test_c_add_tables(kw):
    model = modelgen.add(**kw)
    fields = {f.name for f in _add_kernel(model).fields}
    assert {"input1_scaled", "input2_scaled", "output_hib", "output_post"} <= fields
    harness.assert_bit_exact(model)


@needs_tflm
def test_c_add_tables_with_far_apart_scales():
    base = modelgen.add(shape_a=(1, 16, 16, 6), shape_b=(1, 16, 16, 6), activation="relu")
    model = requantized(base, inputs={0: (0.1, -128), 1: (0.003, 127)}, output=(0.05, 10))
    assert any(f.name == "input1_scaled" for f in _add_kernel(model).fields)
    harness.assert_bit_exact(model)


@needs_tflm
@pytest.mark.parametrize("kw", [
    dict(shape_a=(1, 5, 7, 3), shape_b=(1, 5, 7, 3)),
    dict(shape_a=(1, 6, 6, 9), shape_b=(1, 1, 6, 9), activation="relu"),
    dict(shape_a=(1, 4, 5, 7), shape_b=(1, 1, 1, 7), constant_b=True, activation="relu6"),
], ids=["same_shape", "broadcast", "constant"])
def test_small_adds_compute_the_tables_values_per_element(kw):
    """Below ADD_TABLE_MIN_ELEMENTS the tables' 2 KB of flash is not worth it:
    the same values come per element, in the fast form."""
    model = modelgen.add(**kw)
    fields = {f.name: f.value for f in _add_kernel(model).fields}
    assert "input1_scaled" not in fields
    assert fields["input1_hib"] > 0 and fields["input2_hib"] > 0 and fields["output_post"] >= 1
    assert fields["input1_shift"] == 0 or fields["input2_shift"] == 0   # the larger scale's 0.5
    harness.assert_bit_exact(model)


@needs_tflm
def test_small_add_with_far_apart_scales_and_clamped_output():
    base = modelgen.add(shape_a=(1, 5, 5, 6), shape_b=(1, 5, 5, 6), activation="relu")
    model = requantized(base, inputs={0: (0.1, -128), 1: (0.003, 127)}, output=(0.05, 0))
    assert "input1_hib" in {f.name for f in _add_kernel(model).fields}
    harness.assert_bit_exact(model)
