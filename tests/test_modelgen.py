"""The test-model factories: which TFLite ops they produce, full int8, caching."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelgen as mg
from mcucompile import errors

# factory, kwargs, the ops the converter actually emits (in execution order).
# This table is the documentation of what each factory builds: the converter
# fuses activations, turns SQUEEZE into RESHAPE, Flatten into RESHAPE, etc.
CASES = {
    "conv2d": (mg.conv2d, {}, ["CONV_2D"]),
    "conv2d_relu_fused": (mg.conv2d, dict(activation="relu"), ["CONV_2D"]),
    "conv2d_strided_dilated": (mg.conv2d, dict(kernel=(3, 2), stride=1, dilation=2, padding="valid",
                                               use_bias=False, activation="relu6"), ["CONV_2D"]),
    "conv2d_stride2": (mg.conv2d, dict(stride=2, kernel=5, filters=4), ["CONV_2D"]),
    "depthwise": (mg.depthwise_conv2d, {}, ["DEPTHWISE_CONV_2D"]),
    "depthwise_mult2": (mg.depthwise_conv2d, dict(depth_multiplier=2, input_shape=(1, 9, 9, 3), stride=2,
                                                   activation="relu_n1_to_1"), ["DEPTHWISE_CONV_2D"]),
    "dense": (mg.dense, {}, ["FULLY_CONNECTED"]),
    "dense_batch3": (mg.dense, dict(input_shape=(3, 16)), ["FULLY_CONNECTED"]),
    "dense_keep_num_dims": (mg.dense, dict(input_shape=(1, 4, 16)), ["FULLY_CONNECTED"]),
    "dense_relu": (mg.dense, dict(activation="relu"), ["FULLY_CONNECTED"]),
    "dense_per_tensor": (mg.dense, dict(per_channel=False), ["FULLY_CONNECTED"]),
    "conv2d_per_tensor": (mg.conv2d, dict(per_channel=False), ["CONV_2D"]),
    "add": (mg.add, {}, ["ADD"]),
    "add_broadcast_relu": (mg.add, dict(shape_b=(1, 1, 1, 8), activation="relu"), ["ADD"]),
    "add_constant": (mg.add, dict(shape_b=(8,), constant_b=True), ["ADD"]),
    "mul": (mg.mul, {}, ["MUL"]),
    "mul_broadcast": (mg.mul, dict(shape_a=(1, 6, 1, 8), shape_b=(1, 1, 6, 1)), ["MUL"]),
    "sub": (mg.sub, {}, ["SUB"]),
    "avg_pool": (mg.avg_pool2d, {}, ["AVERAGE_POOL_2D"]),
    "avg_pool_same": (mg.avg_pool2d, dict(pool_size=3, stride=2, padding="same"), ["AVERAGE_POOL_2D"]),
    "max_pool": (mg.max_pool2d, {}, ["MAX_POOL_2D"]),
    "max_pool_relu": (mg.max_pool2d, dict(activation="relu"), ["MAX_POOL_2D"]),
    "mean": (mg.mean, {}, ["MEAN"]),
    "mean_axis3": (mg.mean, dict(axes=(3,), keepdims=False), ["MEAN"]),
    "pad": (mg.pad, {}, ["PAD"]),
    "concat": (mg.concat, {}, ["CONCATENATION"]),
    "concat3_axis1": (mg.concat, dict(input_shapes=((1, 2, 4, 3),) * 3, axis=1), ["CONCATENATION"]),
    "transpose": (mg.transpose, {}, ["TRANSPOSE"]),
    "resize_nearest": (mg.resize_nearest, {}, ["RESIZE_NEAREST_NEIGHBOR"]),
    "resize_nearest_hpc": (mg.resize_nearest, dict(half_pixel_centers=True), ["RESIZE_NEAREST_NEIGHBOR"]),
    "resize_nearest_ac": (mg.resize_nearest, dict(align_corners=True, size=(7, 9)),
                          ["RESIZE_NEAREST_NEIGHBOR"]),
    "softmax": (mg.softmax, {}, ["SOFTMAX"]),
    "softmax_beta": (mg.softmax, dict(beta=0.5), ["SOFTMAX"]),
    "relu": (mg.relu, {}, ["RELU"]),
    "relu6": (mg.relu6, {}, ["RELU6"]),
    "logistic": (mg.logistic, {}, ["LOGISTIC"]),
    "hard_swish": (mg.hard_swish, {}, ["HARD_SWISH"]),
    "tanh": (mg.tanh, {}, ["TANH"]),
    "relu_n1_to_1": (mg.activation, dict(kind="relu_n1_to_1"), ["RELU_N1_TO_1"]),
    "leaky_relu": (mg.activation, dict(kind="leaky_relu"), ["LEAKY_RELU"]),
    "conv2d_sigmoid": (mg.conv2d, dict(activation="sigmoid"), ["CONV_2D", "LOGISTIC"]),
    "reshape": (mg.reshape, {}, ["RESHAPE"]),
    "squeeze": (mg.squeeze, {}, ["RESHAPE"]),
    "float_io_conv2d": (mg.conv2d, dict(float_io=True), ["QUANTIZE", "CONV_2D", "DEQUANTIZE"]),
    "branchy_cnn": (mg.branchy_cnn, {}, ["CONV_2D", "CONV_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D",
                                         "CONCATENATION", "CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE",
                                         "FULLY_CONNECTED"]),
    "mobilenet_v2": (mg.mobilenet_v2, {}, None),  # checked separately below
    "ds_cnn": (mg.ds_cnn, dict(input_shape=(1, 13, 10, 1), blocks=2),
               ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
                "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"]),
    "conv_mix": (mg.conv_mix, dict(input_shape=(1, 16, 16, 1)),
                 ["CONV_2D"] * 6 + ["AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"]),
    "depthwise_mix": (mg.depthwise_mix, dict(),
                      ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D",
                       "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D",
                       "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                       "FULLY_CONNECTED", "SOFTMAX"]),
    "residual_mix": (mg.residual_mix, dict(input_shape=(1, 8, 8, 8)),
                     ["CONV_2D"] * 3 + ["ADD"] + ["CONV_2D"] * 3 + ["ADD"] + ["CONV_2D"] * 2
                     + ["ADD"] + ["CONV_2D"] * 3 + ["ADD", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
                                                        "SOFTMAX"]),
}


def _model(case: str) -> bytes:
    factory, kwargs, _ = CASES[case]
    return factory(**kwargs)


def _schema():
    pytest.importorskip("tflite_micro", reason="modelgen.op_names reads the schema bundled in tflite-micro")
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    return fb


def _model_t(model: bytes):
    fb = _schema()
    return fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(model, 0))


# ---------------------------------------------------------------------------
# Fast: no TensorFlow
# ---------------------------------------------------------------------------

def test_cache_key_depends_on_every_argument():
    base = dict(kernel=3, stride=1, float_io=False, seed=0)
    k = mg.cache_key("conv2d", base)
    assert k == mg.cache_key("conv2d", dict(reversed(list(base.items()))))
    assert k != mg.cache_key("conv2d", {**base, "stride": 2})
    assert k != mg.cache_key("conv2d", {**base, "float_io": True})
    assert k != mg.cache_key("conv2d", {**base, "seed": 1})
    assert k != mg.cache_key("depthwise_conv2d", base)


def test_cache_hit_does_not_convert(tmp_path, monkeypatch):
    monkeypatch.setenv("MCUCOMPILE_MODEL_CACHE", str(tmp_path))
    cfg = dict(input_shape=(1, 4), float_io=False, seed=0)
    (tmp_path / f"fake-{mg.cache_key('fake', cfg)}.tflite").write_bytes(b"cached bytes")

    def build(tf):
        raise AssertionError("a cache hit must not build the model")

    assert mg._cached("fake", cfg, build) == b"cached bytes"


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MCUCOMPILE_MODEL_CACHE", str(tmp_path / "models"))
    assert mg.cache_dir() == tmp_path / "models" and (tmp_path / "models").is_dir()
    monkeypatch.delenv("MCUCOMPILE_MODEL_CACHE")
    assert mg.cache_dir() == Path.home() / ".cache" / "mcucompile" / "models"


# ---------------------------------------------------------------------------
# TensorFlow: conversion results (cached on disk after the first run)
# ---------------------------------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][2] is not None])
def test_factory_produces_ops(case):
    assert mg.op_names(_model(case)) == CASES[case][2]


@pytest.mark.tf
@pytest.mark.parametrize("case", list(CASES))
def test_factory_is_full_int8(case):
    """int8 activations, per-channel int8 weights, int32 biases; float only at float_io edges."""
    m = _model_t(_model(case))
    sg = m.subgraphs[0]
    float_io = CASES[case][1].get("float_io", False)
    edges = set(sg.inputs) | set(sg.outputs)
    INT8, INT32, FLOAT32 = 9, 2, 0
    for i, t in enumerate(sg.tensors):
        constant = m.buffers[t.buffer].data is not None
        if float_io and i in edges:
            assert t.type == FLOAT32, t.name
        elif not constant:
            assert t.type == INT8, t.name
            assert len(t.quantization.scale) == 1, t.name
    names = {v: k for k, v in vars(_schema().BuiltinOperator).items() if not k.startswith("_")}
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = sg.tensors[op.inputs[1]]
            assert w.type == INT8
            out_channels = w.shape[0] if name != "DEPTHWISE_CONV_2D" else w.shape[3]
            # Per output channel (FC too, since TF 2.18) unless per_channel=False.
            expected = out_channels if CASES[case][1].get("per_channel", True) else 1
            assert len(w.quantization.scale) == expected, (name, w.shape)
            assert all(z == 0 for z in w.quantization.zeroPoint)
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                assert sg.tensors[op.inputs[2]].type == INT32


@pytest.mark.tf
def test_fused_and_rewritten_options():
    fb = _schema()
    ops = lambda case: _model_t(_model(case)).subgraphs[0].operators  # noqa: E731
    assert ops("conv2d_relu_fused")[0].builtinOptions.fusedActivationFunction == fb.ActivationFunctionType.RELU
    dil = ops("conv2d_strided_dilated")[0].builtinOptions
    assert (dil.dilationHFactor, dil.dilationWFactor, dil.padding) == (2, 2, fb.Padding.VALID)
    assert dil.fusedActivationFunction == fb.ActivationFunctionType.RELU6
    dw = ops("depthwise_mult2")[0].builtinOptions
    assert (dw.depthMultiplier, dw.strideH) == (2, 2)
    assert dw.fusedActivationFunction == fb.ActivationFunctionType.RELU_N1_TO_1
    assert ops("dense_keep_num_dims")[0].builtinOptions.keepNumDims is True
    assert ops("dense")[0].builtinOptions.keepNumDims is False
    assert ops("add_broadcast_relu")[0].builtinOptions.fusedActivationFunction == fb.ActivationFunctionType.RELU
    assert ops("max_pool_relu")[0].builtinOptions.fusedActivationFunction == fb.ActivationFunctionType.RELU
    assert ops("softmax_beta")[0].builtinOptions.beta == 0.5
    r = ops("resize_nearest_hpc")[0].builtinOptions
    assert (r.alignCorners, r.halfPixelCenters) == (False, True)
    r = ops("resize_nearest_ac")[0].builtinOptions
    assert (r.alignCorners, r.halfPixelCenters) == (True, False)
    assert ops("concat3_axis1")[0].builtinOptions.axis == 1


@pytest.mark.tf
def test_mobilenet_v2_structure():
    names = mg.op_names(_model("mobilenet_v2"))
    # Default blocks: 1+2+2+2+1 inverted residuals, 3 of them with a residual ADD.
    assert names.count("DEPTHWISE_CONV_2D") == 8
    assert names.count("ADD") == 3
    assert names[0] == "CONV_2D" and names[-3:] == ["MEAN", "FULLY_CONNECTED", "SOFTMAX"]
    m = _model_t(_model("mobilenet_v2"))
    assert list(m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].shape) == [1, 96, 96, 3]
    wide = mg.mobilenet_v2(resolution=128, alpha=0.5)
    mw = _model_t(wide)
    assert list(mw.subgraphs[0].tensors[mw.subgraphs[0].inputs[0]].shape) == [1, 128, 128, 3]


# Where TFLM itself disagrees with LiteRT's reference kernels. We are bit-exact
# with TFLM, so these are facts our kernels must reproduce, not bugs to fix.
TFLM_DIFFERS_FROM_LITERT = {
    # TFLM's int8 RELU6 clamps in the *input's* quantization, to [input zero point,
    # quantized 6.0], and copies the value without rescaling to the output's scale
    # and zero point (activations_common.cc, Relu6Prepare). LiteRT requantizes.
    "relu6": "RELU6 ignores the output quantization in TFLM",
}


# Valid int8 models TFLM has no kernel for.
TFLM_UNSUPPORTED = {"relu_n1_to_1"}


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("case", sorted(TFLM_UNSUPPORTED))
def test_tflm_refusal_is_a_clear_error(case):
    from mcucompile import reference as R
    with pytest.raises(errors.UnsupportedModelError, match="TFLM cannot prepare this model: Didn't find op"):
        R.run(_model(case), R.random_inputs(_model(case)))


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("case", [c for c in CASES if c not in TFLM_UNSUPPORTED])
def test_factory_runs_on_tflm_like_litert(case):
    """Every generated model runs on TFLM, and every tensor (inputs, weights,
    intermediates, outputs) equals LiteRT's reference kernels bit for bit,
    except the documented TFLM quirks, which must still show."""
    pytest.importorskip("ai_edge_litert", reason="LiteRT: pip install ai-edge-litert")
    from mcucompile import reference as R
    model = _model(case)
    info = R.model_info(model)
    x = R.random_inputs(model, seed=7)
    ours = R.run_all_tensors(model, x)
    theirs = R.litert_run_all_tensors(model, x)
    differing = [i for i, v in ours.items() if not np.array_equal(v, theirs[i])]
    if case in TFLM_DIFFERS_FROM_LITERT:
        # If this starts failing, TFLM changed: update the kernel and this table.
        assert set(differing) == set(info.outputs), TFLM_DIFFERS_FROM_LITERT[case]
    else:
        assert differing == [], [info.tensors[i].name for i in differing]
    outputs = R.run(model, x)
    for k, idx in enumerate(info.outputs):
        np.testing.assert_array_equal(outputs[k], ours[idx])
    # The output depends on the input. Inputs of another amplitude, because iid
    # noise of one amplitude averages out to the same logits in a deep net.
    quiet = [v // 4 if np.issubdtype(v.dtype, np.integer) else v / 4 for v in R.random_inputs(model, seed=8)]
    other = R.run(model, quiet)
    assert any(not np.array_equal(a, b) for a, b in zip(outputs, other))


@pytest.mark.tf
@pytest.mark.slow
def test_conversion_is_reproducible_across_processes(tmp_path):
    """Two fresh processes, empty caches: byte-identical models."""
    code = ("import sys; sys.path.insert(0, %r); import modelgen\n"
            "open(sys.argv[1], 'wb').write(modelgen.branchy_cnn(seed=3))") % str(Path(__file__).parent)
    outs = []
    for n in range(2):
        env = {**os.environ, "MCUCOMPILE_MODEL_CACHE": str(tmp_path / f"c{n}")}
        dest = tmp_path / f"m{n}.tflite"
        subprocess.run([sys.executable, "-c", code, str(dest)], env=env, capture_output=True, check=True)
        outs.append(dest.read_bytes())
    assert len(outs[0]) > 1000 and outs[0] == outs[1]
