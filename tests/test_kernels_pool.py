"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN: compile-time math and bit-exactness with TFLM.

The unit tests pin the numbers the lowering computes (loop shapes, the MEAN
multiplier TFLM derives in QuantizedMeanOrSum). The bit-exact tests compile
single-op models for the host and compare every byte with TFLM, across
window shapes, strides, padding, fused activations, axes, keep_dims and
quantization.
"""
from __future__ import annotations

import numpy as np
import pytest

import modelgen
from harness import assert_bit_exact
from mcucompile.errors import UnsupportedModelError
from mcucompile.ir import (Activation, DType, Graph, Op, OpKind, Padding, Pool2DAttrs, Quant,
                           ReducerAttrs, Tensor)
from mcucompile.kernels import lower
from mcucompile.kernels.pool import mean_multiplier, reduce_loops, resolve_axes


# --- helpers ----------------------------------------------------------------

def with_quant(model: bytes, *, io: str, index: int = 0, scale: float | None = None,
               zero_point: int | None = None) -> bytes:
    """`model` with the quantization of graph input/output `index` replaced.

    Lets a test reach quantizations the converter never emits (equal input
    and output parameters, large input zero points), which TFLM must still
    handle; the flatbuffer is rewritten with the schema bundled in tflite_micro.
    """
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(model, 0))
    sg = m.subgraphs[0]
    tensor = sg.tensors[(sg.inputs if io == "input" else sg.outputs)[index]]
    if scale is not None:
        tensor.quantization.scale = [float(np.float32(scale))]
    if zero_point is not None:
        tensor.quantization.zeroPoint = [int(zero_point)]
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def io_quant(model: bytes, io: str, index: int = 0) -> tuple[float, int]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.Model.GetRootAsModel(model, 0)
    sg = m.Subgraphs(0)
    t = sg.Tensors(sg.Inputs(index) if io == "input" else sg.Outputs(index))
    return float(t.Quantization().Scale(0)), int(t.Quantization().ZeroPoint(0))


def _int8(tid: int, shape: tuple[int, ...], scale: float = 0.05, zp: int = 3) -> Tensor:
    return Tensor(tid, f"t{tid}", shape, DType.INT8, Quant((scale,), (zp,)))


def config_id(config: dict) -> str:
    """A short pytest id: the config's values, without spaces."""
    return "-".join(str(v).replace(" ", "") for v in config.values())


def _pool_graph(kind: OpKind, attrs: Pool2DAttrs, in_shape, out_shape, out_scale=0.05) -> Graph:
    tensors = (_int8(0, in_shape), _int8(1, out_shape, scale=out_scale))
    return Graph("g", tensors, (Op(0, kind, (0,), (1,), attrs),), (0,), (1,))


# --- compile-time math ------------------------------------------------------

def test_resolve_axes_wraps_negatives_and_drops_duplicates():
    assert resolve_axes(np.array([-1, 1, 3, -3], dtype=np.int32), 4, "op") == (3, 1)
    with pytest.raises(UnsupportedModelError, match="axis 4"):
        resolve_axes(np.array([4]), 4, "op")


def test_reduce_loops_merge_and_pad_to_five_dims():
    # Global average pool: [N, H*W reduced, C kept].
    loops = reduce_loops((1, 6, 7, 8), (1, 2))
    assert loops.shape == (1, 1, 1, 42, 8)
    assert loops.out_stride == (0, 0, 0, 0, 1)
    assert (loops.count, loops.outputs) == (42, 8)
    # Alternating kept/reduced dims keep their own loops.
    loops = reduce_loops((2, 3, 1, 5, 4), (1, 4))
    assert loops.shape == (1, 2, 3, 5, 4)
    assert loops.out_stride == (0, 5, 0, 1, 0)
    assert (loops.count, loops.outputs) == (12, 10)
    # Size-1 dims vanish, so reduced dims on either side of one merge.
    loops = reduce_loops((2, 3, 1, 5, 4), (1, 3, 4))
    assert loops.shape == (1, 1, 1, 2, 60)
    assert loops.out_stride == (0, 0, 0, 1, 0)
    assert (loops.count, loops.outputs) == (60, 2)
    loops = reduce_loops((2, 3, 4, 5), (0, 2))
    assert loops.shape == (1, 2, 3, 4, 5)
    assert loops.out_stride == (0, 0, 5, 0, 1)
    assert (loops.count, loops.outputs) == (8, 15)


def test_mean_multiplier_folds_one_over_n_like_tflm():
    # QuantizeMultiplier(1.0) = (2**30, 1); shift = floor(log2 7) = 2;
    # (2**30 << 2) // 7, shift 1 - 2.
    assert mean_multiplier(1.0, 1.0, 7) == (2**32 // 7, -1)
    # n = 1 leaves the plain rescale untouched.
    assert mean_multiplier(0.5, 0.25, 1) == (2**30, 2)
    # A tiny scale ratio: the 1/n shift is clamped to 31 + shift (here 4, not 6).
    assert mean_multiplier(2.0**-28, 1.0, 64) == ((2**30 << 4) // 64, -31)


def test_avgpool_refuses_differing_quantization():
    attrs = Pool2DAttrs(Padding.VALID, 2, 2, 2, 2, Activation.NONE)
    g = _pool_graph(OpKind.AVERAGE_POOL_2D, attrs, (1, 4, 4, 3), (1, 2, 2, 3), out_scale=0.1)
    with pytest.raises(UnsupportedModelError, match="quantization differ"):
        lower(g.ops[0], g)


def test_pool_lowering_computes_same_padding_and_clamp():
    attrs = Pool2DAttrs(Padding.SAME, 2, 3, 3, 4, Activation.RELU)
    g = _pool_graph(OpKind.MAX_POOL_2D, attrs, (1, 7, 8, 5), (1, 4, 3, 5))
    call = lower(g.ops[0], g)
    fields = {f.name: f.value for f in call.fields}
    # Height: out 4, total pad (4-1)*2 + 3 - 7 = 2 -> top 1; width: (3-1)*3 + 4 - 8 = 2 -> left 1.
    assert (fields["pad_h"], fields["pad_w"]) == (1, 1)
    # RELU on zero point 3: [3, 127].
    assert (fields["act_min"], fields["act_max"]) == (3, 127)
    assert call.function == "mcc_maxpool_s8" and call.scratch_bytes == 0


def test_sums_past_256_taps_take_the_chunked_path():
    # int16 lanes hold 256 taps; longer sums keep POOL_CHUNKS compiled in.
    big = Pool2DAttrs(Padding.VALID, 1, 1, 20, 17, Activation.NONE)
    small = Pool2DAttrs(Padding.VALID, 1, 1, 16, 16, Activation.NONE)
    for attrs, out, paths in ((big, (1, 1, 1, 4), {"POOL_CHUNKS"}), (small, (1, 5, 2, 4), set())):
        for kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
            g = _pool_graph(kind, attrs, (1, 20, 17, 4), out)
            expect = paths if kind == OpKind.AVERAGE_POOL_2D else set()   # maxima never overflow
            assert lower(g.ops[0], g).paths == expect


def test_pool_lowering_refuses_wrong_output_shape():
    attrs = Pool2DAttrs(Padding.VALID, 2, 2, 2, 2, Activation.NONE)
    g = _pool_graph(OpKind.AVERAGE_POOL_2D, attrs, (1, 5, 5, 3), (1, 3, 3, 3))
    with pytest.raises(UnsupportedModelError, match="does not match"):
        lower(g.ops[0], g)


def test_mean_lowering_fields():
    tensors = (_int8(0, (1, 4, 5, 6), scale=0.1, zp=-7), _int8(1, (1, 1, 1, 6), scale=0.04, zp=9),
               Tensor(2, "axes", (2,), DType.INT32, data=np.array([2, 1], dtype=np.int32)))
    g = Graph("g", tensors, (Op(0, OpKind.MEAN, (0, 2), (1,), ReducerAttrs(keep_dims=True)),),
              (0,), (1,))
    call = lower(g.ops[0], g)
    fields = {f.name: f.value for f in call.fields}
    assert fields["input_offset_n"] == 7 * 20
    assert (fields["multiplier"], fields["shift"]) == mean_multiplier(0.1, 0.04, 20)
    assert fields["output_offset"] == 9 and fields["outputs"] == 6
    assert call.scratch_bytes == 4 * 6
    arrays = {a.suffix: a.values.tolist() for a in call.arrays}
    assert arrays == {"shape": [1, 1, 1, 20, 6], "out_stride": [0, 0, 0, 0, 1]}
    assert call.paths == frozenset()    # 20 taps: one pass of the int16 lanes


# --- bit-exact against TFLM -------------------------------------------------

POOLS = [
    dict(input_shape=(1, 9, 10, 5), pool_size=3, stride=2, padding="same"),
    dict(input_shape=(1, 9, 10, 5), pool_size=3, stride=2, padding="valid"),
    dict(input_shape=(2, 7, 11, 3), pool_size=(2, 4), stride=(1, 3), padding="same", activation="relu"),
    dict(input_shape=(1, 6, 9, 7), pool_size=(5, 7), stride=1, padding="same", activation="relu6"),
    dict(input_shape=(1, 8, 8, 1), pool_size=8, padding="valid"),
    dict(input_shape=(1, 5, 5, 3), pool_size=1, stride=2, padding="same"),
    # Four channels to a word and a leftover one; windows clipped at every edge.
    dict(input_shape=(1, 11, 9, 13), pool_size=3, stride=1, padding="same"),
    # DS-CNN's global pool: 125 taps over 64 channels, the rows laid end to end.
    dict(input_shape=(1, 25, 5, 64), pool_size=(25, 5), padding="valid"),
    # Past 256 taps the lanes are added out (POOL_CHUNKS): a whole-image window is
    # one row of 340 taps, in segments of 256 and 84; a narrower one goes in
    # chunks of 15 rows of 17 taps; rows of 299 taps in segments; 300 rows of 2
    # taps in chunks of 128 rows.
    dict(input_shape=(1, 20, 17, 12), pool_size=(20, 17), padding="valid"),
    dict(input_shape=(1, 20, 18, 12), pool_size=(20, 17), stride=1, padding="valid"),
    dict(input_shape=(1, 2, 300, 4), pool_size=(2, 299), stride=1, padding="valid"),
    dict(input_shape=(1, 300, 3, 6), pool_size=(300, 2), stride=1, padding="valid"),
]


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("memory", ["layer", "auto"])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("config", POOLS, ids=config_id)
def test_pool_bit_exact(kind, config, memory):
    # Layer by layer: mcc_avgpool_s8 / mcc_maxpool_s8 (checked). The default plan
    # puts a one-op model's pool in place where it can (test_inplace.py's kernels).
    from harness import host_board
    from mcucompile.pipeline import CompileOptions, compile_model
    factory = modelgen.avg_pool2d if kind == "avg" else modelgen.max_pool2d
    model = factory(**config)
    assert modelgen.op_names(model) == ["AVERAGE_POOL_2D" if kind == "avg" else "MAX_POOL_2D"]
    options = CompileOptions(memory=memory)
    if memory == "layer":
        (layer,) = compile_model(model, host_board(), options).report.layers
        assert layer.kernel == f"mcc_{kind}pool_s8"
    assert_bit_exact(model, options=options)


MEANS = [
    dict(input_shape=(1, 6, 6, 8), axes=(1, 2), keepdims=True),
    dict(input_shape=(1, 6, 6, 8), axes=(1, 2), keepdims=False),
    dict(input_shape=(2, 5, 7, 3), axes=(2,), keepdims=False),
    dict(input_shape=(2, 5, 7, 3), axes=(1, 3), keepdims=True),
    dict(input_shape=(2, 5, 7, 3), axes=(-1,), keepdims=True),
    dict(input_shape=(3, 4, 5), axes=(0,), keepdims=False),
    dict(input_shape=(1, 5, 7, 3), axes=(0, 1, 2, 3), keepdims=False),
    dict(input_shape=(2, 3, 4, 5, 6), axes=(1, 3), keepdims=False),
    dict(input_shape=(1, 32, 32, 4), axes=(1, 2), keepdims=True),
    # 340 taps over 6 channels (a word and two leftovers); runs of 13 and 91 bytes.
    dict(input_shape=(2, 20, 17, 6), axes=(1, 2), keepdims=False),
    dict(input_shape=(2, 5, 7, 13), axes=(-1,), keepdims=False),
    dict(input_shape=(2, 5, 7, 13), axes=(2, 3), keepdims=True),
]


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("config", MEANS, ids=config_id)
def test_mean_bit_exact(config):
    model = modelgen.mean(**config)
    assert modelgen.op_names(model) == ["MEAN"]
    assert_bit_exact(model)


@pytest.mark.tf
@pytest.mark.reference
def test_mean_with_identical_input_and_output_quantization():
    # Older TFLM took a truncating shortcut for this case; the current one
    # rescales like any other MEAN, and so must we.
    model = modelgen.mean(input_shape=(2, 5, 7, 3), axes=(2,), keepdims=False)
    scale, _ = io_quant(model, "input")
    model = with_quant(model, io="input", zero_point=5)
    model = with_quant(model, io="output", scale=scale, zero_point=5)
    assert_bit_exact(model)


@pytest.mark.tf
@pytest.mark.reference
def test_mean_with_input_zero_point_and_upscaling():
    # Scale ratio 3 over 2 values: a positive shift survives the 1/n fold,
    # and the input offset (-zero_point * n) is far from zero.
    model = modelgen.mean(input_shape=(1, 4, 2, 3), axes=(2,), keepdims=True)
    scale, _ = io_quant(model, "input")
    model = with_quant(model, io="input", zero_point=-100)
    model = with_quant(model, io="output", scale=scale / 3, zero_point=20)
    assert_bit_exact(model)


@pytest.mark.tf
@pytest.mark.reference
def test_mean_with_clamped_shift():
    # Output scale 2**28 times the input's: TFLM clamps the 1/n shift to 31 + shift.
    model = modelgen.mean(input_shape=(1, 8, 8, 2), axes=(1, 2), keepdims=True)
    scale, _ = io_quant(model, "input")
    model = with_quant(model, io="output", scale=scale * 2.0**28, zero_point=-3)
    assert_bit_exact(model)


def test_kernels_built_without_the_chunked_path_refuse_long_sums(tmp_path):
    # A library built with MCC_OMIT_POOL_CHUNKS (what mcc_config.h says for
    # models without such sums) returns MCC_ERROR for a longer one rather than
    # overflow its int16 lanes; the model would not link with it anyway
    # (mcc_has_path_POOL_CHUNKS), this is the kernel's own guard.
    import shutil
    import subprocess
    from mcucompile.resources import data_dir
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    main = tmp_path / "main.c"
    main.write_text(r"""
#include <stdio.h>
#include "mcc_pool.h"
static int8_t in[20 * 17 * 4], out[2 * 4];
static int32_t acc[4];
static int pool(int32_t fh, int32_t fw)
{
    const mcc_pool_params p = {1, 20, 17, 4, 1, 1, 1, 1, fh, fw, 0, 0, -128, 127};
    return mcc_avgpool_s8(&p, in, out);
}
static int mean(int32_t taps)
{
    const int32_t shape[5] = {1, 1, 1, taps, 4}, stride[5] = {0, 0, 0, 0, 1};
    const mcc_mean_params p = {4, 0, 1 << 30, 0, 0, shape, stride};
    return mcc_mean_s8(&p, in, out, acc);
}
int main(void)
{
    printf("%d %d %d %d\n", pool(20, 17), pool(16, 16), mean(300), mean(256));
    return 0;
}
""")
    kernels = data_dir("templates") / "kernels"
    exe = tmp_path / "refuse"
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-DMCC_OMIT_POOL_CHUNKS",
                        "-I", str(kernels), str(main), str(kernels / "mcc_pool.c"), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # MCC_ERROR (1) past 256 taps, MCC_OK (0) at or under.
    assert subprocess.run([str(exe)], capture_output=True, text=True).stdout.split() == ["1", "0", "1", "0"]
