"""SOFTMAX, LOGISTIC, HARD_SWISH, RELU, RELU6, QUANTIZE and DEQUANTIZE, bit-exact with TFLM.

Two kinds of checks:

* The compile-time arithmetic. Most int8 activations lower to a 256-entry table
  (or a clamp) that Python fills by replaying TFLM's integer code. We run the
  lowering's table on all 256 int8 values and compare with TFLM, over many
  quantizations. Rather than converting a model per quantization, we rewrite
  the scales and zero points of one converted single-op model (`requantized`).
  SOFTMAX is checked the same way through a Python copy of its C row loop, on
  hand-picked rows (ties, the diff_min cut-off, long rows).
* The generated C: harness.assert_bit_exact compiles the model with sanitizers
  and compares every output byte with TFLM on random inputs; and, through
  ctypes, the C kernels on hand-picked values (rounding halves in QUANTIZE,
  SOFTMAX rows against the Python copy, the rows where TFLM aborts).
"""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

import harness
import modelgen
from mcucompile import reference
from mcucompile.errors import UnsupportedModelError
from mcucompile.frontend import tflite
from mcucompile.ir import OpKind
from mcucompile.kernels import FloatValue, KernelCall, lower
from mcucompile.kernels import activation as act
from mcucompile.resources import data_dir
from mcucompile.verify import host_compiler


def needs_tflm(test):
    """The test builds models with TensorFlow (cached on disk) and runs TFLM."""
    return pytest.mark.tf(pytest.mark.reference(test))


ALL_INT8 = np.arange(-128, 128, dtype=np.int8)


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------

def requantized(model: bytes, inputs: dict[int, tuple[float, int]] | None = None,
                output: tuple[float, int] | None = None, op: str | None = None,
                beta: float | None = None, swap_inputs: bool = False) -> bytes:
    """A single-op model with new quantization for some of its op's tensors.

    inputs maps the op's input position to (scale, zero_point); `op` renames the
    operator (e.g. "QUANTIZE" turns an int8 RELU model into an int8 -> int8
    requantization); `beta` rewrites a SOFTMAX's beta; `swap_inputs` reverses a
    binary op's operands (after requantizing them).
    """
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(model, 0)
    sg = m.subgraphs[0]
    assert len(sg.operators) == 1, "requantized() edits single-op models"
    operator = sg.operators[0]

    def set_quant(tensor_index: int, scale: float, zero_point: int) -> None:
        q = fb.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(np.float32(scale))], [int(zero_point)]
        sg.tensors[tensor_index].quantization = q

    for position, (scale, zp) in (inputs or {}).items():
        set_quant(operator.inputs[position], scale, zp)
    if output is not None:
        set_quant(operator.outputs[0], *output)
    if op is not None:
        code = getattr(fb.BuiltinOperator, op)
        m.operatorCodes[operator.opcodeIndex].builtinCode = code
        m.operatorCodes[operator.opcodeIndex].deprecatedBuiltinCode = min(code, 127)
        operator.builtinOptionsType, operator.builtinOptions = 0, None
    if beta is not None:
        operator.builtinOptions.beta = float(beta)
    if swap_inputs:
        operator.inputs = list(reversed(operator.inputs))
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def single_call(model: bytes) -> tuple[KernelCall, object]:
    """The lowering of a single-op model's op, and its graph."""
    graph = tflite.load(model)
    (op,) = graph.ops
    return lower(op, graph), graph


def run_unary_call(call: KernelCall, x: np.ndarray) -> np.ndarray:
    """What the C kernel of a table or clamp lowering computes, in numpy."""
    fields = {f.name: f.value for f in call.fields}
    if call.function == "mcc_lut_s8":
        (table,) = [a.values for a in call.arrays if a.suffix == fields["table"].suffix]
        return table[x.astype(np.int32) + 128]
    if call.function == "mcc_clamp_s8":
        return np.clip(x, fields["lo"], fields["hi"]).astype(np.int8)
    raise AssertionError(f"not a table or clamp kernel: {call.function}")


def assert_table_matches_tflm(model: bytes) -> KernelCall:
    call, graph = single_call(model)
    shape = graph.tensor(graph.inputs[0]).shape
    x = np.resize(ALL_INT8, shape)            # every int8 value (shape holds >= 256)
    (want,) = reference.run(model, [x])
    got = run_unary_call(call, x)
    bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
    assert bad.size == 0, (f"{bad.size} of 256 inputs differ, first x={x.reshape(-1)[bad[0]]}: "
                           f"ours {got.reshape(-1)[bad[0]]}, TFLM {want.reshape(-1)[bad[0]]}")
    return call


# Quantizations a converter can plausibly produce: small to large scales,
# zero points across the int8 range.
IN_QUANTS = [(0.0005, 0), (0.002, -128), (0.0078431, 0), (0.0078431, -1), (0.02, 37),
             (0.05, -100), (0.1, 127), (0.37, 5), (1.5, -20)]
OUT_QUANTS = [(0.004, -128), (0.0078431, 0), (0.03, 12), (0.2, -90), (2.0, 100)]


# ----------------------------------------------------------------------------
# Lookup tables against TFLM, all 256 inputs
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("in_q", IN_QUANTS)
@needs_tflm
def test_logistic_table(in_q):
    base = modelgen.logistic(input_shape=(1, 256))
    call = assert_table_matches_tflm(requantized(base, inputs={0: in_q}))
    assert call.function == "mcc_lut_s8"


@pytest.mark.slow
@pytest.mark.parametrize("in_q", IN_QUANTS)
@pytest.mark.parametrize("out_q", OUT_QUANTS)
@needs_tflm
def test_hard_swish_table(in_q, out_q):
    base = modelgen.hard_swish(input_shape=(1, 256))
    model = requantized(base, inputs={0: in_q}, output=out_q)
    if out_q[0] < in_q[0] / 128:
        # TFLM's Prepare rejects an output multiplier >= 1; so do we.
        with pytest.raises(UnsupportedModelError, match="HARD_SWISH"):
            single_call(model)
    else:
        assert_table_matches_tflm(model)


@pytest.mark.parametrize("in_q", IN_QUANTS)
@pytest.mark.parametrize("out_q", OUT_QUANTS[:3])
@needs_tflm
def test_relu_table(in_q, out_q):
    base = modelgen.relu(input_shape=(1, 256))
    assert_table_matches_tflm(requantized(base, inputs={0: in_q}, output=out_q))


@pytest.mark.parametrize("in_q,out_q", [((0.0078431, 0), (0.0078431, -43)), ((0.1, 127), (0.2, -90))])
@needs_tflm
def test_hard_swish_table_quick(in_q, out_q):
    assert_table_matches_tflm(requantized(modelgen.hard_swish(input_shape=(1, 256)),
                                          inputs={0: in_q}, output=out_q))


@needs_tflm
def test_relu_with_equal_quantization_is_a_clamp():
    base = modelgen.relu(input_shape=(1, 256))
    call = assert_table_matches_tflm(requantized(base, inputs={0: (0.05, -7)}, output=(0.05, -7)))
    assert call.function == "mcc_clamp_s8"


@pytest.mark.parametrize("in_q", IN_QUANTS)
@needs_tflm
def test_relu6_clamps_in_the_input_scale(in_q):
    # TFLM ignores RELU6's output quantization; a different one must not matter.
    base = modelgen.relu6(input_shape=(1, 256))
    call = assert_table_matches_tflm(requantized(base, inputs={0: in_q}, output=(0.0235, -128)))
    assert call.function == "mcc_clamp_s8"


@pytest.mark.slow
@pytest.mark.parametrize("in_q", IN_QUANTS)
@pytest.mark.parametrize("out_q", OUT_QUANTS)
@needs_tflm
def test_quantize_int8_to_int8_table(in_q, out_q):
    base = modelgen.relu(input_shape=(1, 256))
    model = requantized(base, inputs={0: in_q}, output=out_q, op="QUANTIZE")
    assert modelgen.op_names(model) == ["QUANTIZE"]
    assert_table_matches_tflm(model)


# ----------------------------------------------------------------------------
# SOFTMAX: the exp table and a Python copy of the C row loop, against TFLM
# ----------------------------------------------------------------------------

def _clz32(x: int) -> int:
    return 32 - x.bit_length()


def softmax_like_the_c_kernel(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """mcc_softmax_s8 on rows x[..., depth], step for step (templates/kernels/mcc_activation.c).
    None where the kernel returns MCC_ERROR (TFLM aborts)."""
    table = [int(v) for v in table]
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    out = np.empty(rows.shape, np.int8)
    for r, row in enumerate(rows):
        d = int(row.max()) - row
        total = sum(act.rdbp32(table[k], 12) for k in d if k < len(table)) & 0xFFFFFFFF
        headroom = _clz32(total)
        exponent = 12 - headroom + 31 - 8
        if total == 0 or exponent > 31:
            return None
        scale = act.one_over_one_plus_x_for_x_in_0_1(
            act.wrap32(((total << headroom) & 0xFFFFFFFF) - (1 << 31)))
        for c, k in enumerate(d):
            v = -128
            if k < len(table):
                v = act.rdbp32(act.srdhm32(scale, table[k]), exponent) - 128
            out[r, c] = max(-128, min(127, v))
    return out.reshape(x.shape)


def _exp_table(call: KernelCall) -> np.ndarray:
    (table,) = [a.values for a in call.arrays if a.suffix == "exp"]
    assert {f.name: f.value for f in call.fields}["exp_table_size"] == len(table)
    return table


def _softmax_rows(depth: int, diff_min: int, rng: np.random.Generator) -> np.ndarray:
    """Rows that exercise ties, the cut-off and the full range."""
    rows = [rng.integers(-128, 128, depth),                 # random
            np.full(depth, 17),                             # all equal
            rng.integers(100, 128, depth),                  # small differences
            np.where(rng.random(depth) < 0.5, 127, -128)]   # two levels, far apart
    edge = np.full(depth, 127 + max(diff_min, -255))        # right at TFLM's diff_min cut-off
    edge[0] = 127
    edge[1::3] = np.clip(edge[1::3] - 1, -128, 127)         # and just past it
    rows.append(edge)
    return np.clip(np.stack(rows), -128, 127).astype(np.int8)


@pytest.mark.parametrize("in_q", [(0.0005, 0), (0.01, 3), (0.0625, -128), (0.2, 50), (1.0, 0)])
@pytest.mark.parametrize("beta", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("depth", [1, 10, 33, pytest.param(300, marks=pytest.mark.slow)])
@needs_tflm
def test_softmax_rows(in_q, beta, depth):
    base = modelgen.softmax(input_shape=(5, depth))
    model = requantized(base, inputs={0: in_q}, beta=beta)
    call, graph = single_call(model)
    params = act.SoftmaxParams.of(float(np.float32(beta)), float(np.float32(in_q[0])))
    x = _softmax_rows(depth, params.diff_min, np.random.default_rng(depth))
    (want,) = reference.run(model, [x])
    np.testing.assert_array_equal(softmax_like_the_c_kernel(_exp_table(call), x), want)


def test_softmax_refuses_what_tflm_refuses():
    with pytest.raises(UnsupportedModelError, match="beta"):
        act.SoftmaxParams.of(1e-9, 0.01)  # beta * scale * 2^26 <= 1


def test_softmax_exp_table_drops_only_zeros():
    params = act.SoftmaxParams.of(1.0, 0.1)
    table = params.exp_table()
    assert table[0] == act.INT32_MAX and 0 < len(table) < 256 and table[-1] > 0
    assert all(params.exp_of_diff(-d) == 0 for d in range(len(table), 256))
    assert np.all(np.diff(table) <= 0)  # exp is monotonic


# ----------------------------------------------------------------------------
# The fixed-point helpers against their real-valued meaning
# ----------------------------------------------------------------------------

def test_gemmlowp_exp_and_reciprocal_are_accurate():
    for raw in range(0, 1 << 31, 1 << 22):
        a = -raw  # Q5.26, [-32, 0]
        assert abs(act.exp_on_negative_values(a, 5) / 2**31 - np.exp(a / 2**26)) < 2e-6
        assert abs(act.one_over_one_plus_x_for_x_in_0_1(raw) / 2**31 - 1 / (1 + raw / 2**31)) < 1e-8
    for raw in range(-(1 << 31), 1 << 31, 1 << 23):  # Q4.27, [-16, 16)
        assert abs(act.gemmlowp_logistic(raw, 4) / 2**31 - 1 / (1 + np.exp(-raw / 2**27))) < 2e-6


# ----------------------------------------------------------------------------
# Generated C against TFLM
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["logistic", "hard_swish", "relu", "relu6"])
@needs_tflm
def test_c_unary(kind):
    harness.assert_bit_exact(modelgen.activation(kind=kind, input_shape=(1, 5, 7, 9)))


@pytest.mark.parametrize("kind,in_q,out_q", [
    ("hard_swish", (0.1, 20), (0.05, -30)),        # reluish multiplier needs a left shift
    ("relu", (0.02, -10), (0.01, -128)),           # requantizing RELU
    ("relu", (0.03, 4), (0.03, 4)),                # same scale: a clamp
    ("relu6", (0.05, 3), (0.05, -128)),
    ("logistic", (0.25, -50), None),
])
@needs_tflm
def test_c_unary_requantized(kind, in_q, out_q):
    base = modelgen.activation(kind=kind, input_shape=(1, 300))
    harness.assert_bit_exact(requantized(base, inputs={0: in_q}, output=out_q))


@needs_tflm
def test_c_quantize_int8_to_int8():
    base = modelgen.relu(input_shape=(1, 3, 100))
    harness.assert_bit_exact(requantized(base, inputs={0: (0.03, 9)}, output=(0.011, -3), op="QUANTIZE"))


@pytest.mark.parametrize("shape,beta,in_q", [
    ((1, 10), 1.0, None),                  # classifier head
    ((1, 1), 1.0, None),                   # a single class: always 127
    ((2, 3, 17), 0.5, None),               # several rows
    ((4, 257), 2.0, (0.002, 10)),          # long rows, small differences
    ((3, 40), 1.0, (0.3, -5)),             # large scale: most exps vanish
])
@needs_tflm
def test_c_softmax(shape, beta, in_q):
    model = modelgen.softmax(input_shape=shape, beta=beta)
    if in_q is not None:
        model = requantized(model, inputs={0: in_q})
    harness.assert_bit_exact(model)


@pytest.mark.parametrize("factory,kw", [
    (modelgen.logistic, {}),
    (modelgen.softmax, {"input_shape": (2, 12)}),
    (modelgen.hard_swish, {"input_shape": (1, 4, 4, 3)}),
])
@needs_tflm
def test_c_float_io(factory, kw):
    model = modelgen.float_io(factory, **kw)
    names = modelgen.op_names(model)
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE"
    harness.assert_bit_exact(model)


# ----------------------------------------------------------------------------
# C kernels on hand-picked values, called through ctypes
# ----------------------------------------------------------------------------

class _QuantizeParams(ctypes.Structure):
    _fields_ = [("size", ctypes.c_int32), ("scale", ctypes.c_float), ("zero_point", ctypes.c_int32)]


@pytest.fixture(scope="module")
def activation_lib(tmp_path_factory):
    kernels = data_dir("templates") / "kernels"
    so = tmp_path_factory.mktemp("mcc_activation") / "libmcc_activation.so"
    subprocess.run([host_compiler(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared",
                    "-fPIC", "-I", str(kernels), str(kernels / "mcc_activation.c"), "-o", str(so)],
                   check=True, capture_output=True)
    return ctypes.CDLL(str(so))


def _affine_quantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """TFLM's AffineQuantize: TfLiteRound(x / (float)scale) + zp, clamped, in float32.
    (Past the int32 range TFLM's float-to-int conversion is undefined; we saturate.)"""
    q = (x.astype(np.float32) / np.float32(scale)).astype(np.float64)  # exact widening
    rounded = np.sign(q) * np.floor(np.abs(q) + 0.5)                   # halves away from zero
    return np.clip(rounded + zp, -128, 127).astype(np.int8)


@pytest.mark.parametrize("scale,zp", [(0.1, 0), (0.0078431, -128), (0.37, 17)])
def test_quantize_f32_rounds_halves_away_from_zero(activation_lib, scale, zp):
    s = np.float32(scale)
    k = np.arange(-300, 301, dtype=np.float32)
    x = np.concatenate([
        k * s, (k + np.float32(0.5)) * s,                     # on and between the steps
        np.nextafter((k + np.float32(0.5)) * s, np.float32(np.inf)),
        np.nextafter((k + np.float32(0.5)) * s, np.float32(-np.inf)),
        np.float32([0.49999997, -0.49999997, 1e30, -1e30, 0.0, -0.0]) * s,
    ]).astype(np.float32)
    out = np.zeros(x.size, np.int8)
    params = _QuantizeParams(x.size, s, zp)
    rc = activation_lib.mcc_quantize_f32_s8(ctypes.byref(params), x.ctypes.data_as(ctypes.c_void_p),
                                            out.ctypes.data_as(ctypes.c_void_p))
    assert rc == 0
    np.testing.assert_array_equal(out, _affine_quantize(x, s, zp))


class _SoftmaxParams(ctypes.Structure):
    _fields_ = [("rows", ctypes.c_int32), ("depth", ctypes.c_int32),
                ("exp_table", ctypes.POINTER(ctypes.c_int32)), ("exp_table_size", ctypes.c_int32)]


def _c_softmax(lib, table: np.ndarray, x: np.ndarray) -> tuple[int, np.ndarray]:
    table = np.ascontiguousarray(table, dtype=np.int32)
    x = np.ascontiguousarray(x, dtype=np.int8)
    out = np.zeros_like(x)
    params = _SoftmaxParams(x.size // x.shape[-1], x.shape[-1],
                            table.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), table.size)
    rc = lib.mcc_softmax_s8(ctypes.byref(params), x.ctypes.data_as(ctypes.c_void_p),
                            out.ctypes.data_as(ctypes.c_void_p))
    return rc, out


@pytest.mark.parametrize("beta,scale", [(1.0, 0.0005), (1.0, 0.0625), (2.5, 0.01), (0.3, 1.0)])
def test_c_softmax_matches_its_python_copy(activation_lib, beta, scale):
    params = act.SoftmaxParams.of(beta, scale)
    table = params.exp_table()
    rng = np.random.default_rng(7)
    for depth in (1, 2, 37, 511):
        x = _softmax_rows(depth, params.diff_min, rng)
        rc, out = _c_softmax(activation_lib, table, x)
        assert rc == 0
        np.testing.assert_array_equal(out, softmax_like_the_c_kernel(table, x))


def test_c_softmax_fails_where_tflm_aborts(activation_lib):
    # 512 ties at the maximum make the exp sum 2^28: TFLM's exponent check fails.
    table = act.SoftmaxParams.of(1.0, 0.05).exp_table()
    x = np.full((1, 512), 3, np.int8)
    assert softmax_like_the_c_kernel(table, x) is None
    assert _c_softmax(activation_lib, table, x)[0] == 1
    assert _c_softmax(activation_lib, table, x[:, :511])[0] == 0


def test_dequantize_s8_f32_is_a_float32_product(activation_lib):
    s, zp = np.float32(0.0123), -7
    x = ALL_INT8.copy()
    out = np.zeros(x.size, np.float32)
    params = _QuantizeParams(x.size, s, zp)
    activation_lib.mcc_dequantize_s8_f32(ctypes.byref(params), x.ctypes.data_as(ctypes.c_void_p),
                                         out.ctypes.data_as(ctypes.c_void_p))
    np.testing.assert_array_equal(out.view(np.uint32),
                                  (s * (x.astype(np.int32) - zp).astype(np.float32)).view(np.uint32))


# ----------------------------------------------------------------------------
# Lowerings
# ----------------------------------------------------------------------------

@needs_tflm
def test_float_boundaries_carry_float32_scales():
    model = modelgen.float_io(modelgen.logistic)
    graph = tflite.load(model)
    calls = {op.kind: lower(op, graph) for op in graph.ops}
    q, dq = calls[OpKind.QUANTIZE], calls[OpKind.DEQUANTIZE]
    assert (q.function, dq.function) == ("mcc_quantize_f32_s8", "mcc_dequantize_s8_f32")
    for call, tensor in ((q, graph.tensor(graph.ops[0].outputs[0])),
                         (dq, graph.tensor(graph.ops[-1].inputs[0]))):
        scale = {f.name: f.value for f in call.fields}["scale"]
        assert isinstance(scale, FloatValue) and scale.value == float(np.float32(tensor.scale))


@needs_tflm
def test_logistic_output_quantization_as_tflm_checks_it():
    base = modelgen.logistic(input_shape=(1, 256))
    # TFLM ignores the output scale (the kernel assumes 1/256) but needs zero point -128.
    assert_table_matches_tflm(requantized(base, output=(0.01, -128)))
    with pytest.raises(UnsupportedModelError, match="LOGISTIC.*-128"):
        single_call(requantized(base, output=(1 / 256, 0)))
