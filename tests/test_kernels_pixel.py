"""mcc_depthwise_conv2d_pixel_s8: depthwise convolution pixel by pixel, four
channels to a word, taps read where they lie (no scratch).

Here: where the compiler picks it (over the planar kernel on small planes and
at stride 2, and where the planar kernel does not apply at all), its weight
and table layout, and its portable loop on the host against TFLM: interior
runs, every border, channel counts above the stack's pad row (256), dilation,
a filter outside the assembly (4x4), stride 3, two batches, and in place over
its input. Its DSP assembly runs under QEMU in test_kernels_dsp.py and below
(in place).
"""
from __future__ import annotations

import numpy as np
import pytest

from mcucompile.ir import OpKind, Padding
from mcucompile.kernels import KernelTarget, lower
from mcucompile.kernels.conv import Variant, choose, fast_channel_table, pixel_weights
from test_kernels_conv import _array, _dw, _single_op

PIXEL = "mcc_depthwise_conv2d_pixel_s8"
DSP = KernelTarget(dsp=True, fpu=True)


P, Q, G = Variant.PIXEL, Variant.PLANAR_3X3, Variant.PLANAR


@pytest.mark.parametrize("attrs,shapes,variants", [
    # Stride 2 over 32 channels: the planar kernel's pairs are slower on DSP
    # cores at any plane; the M3's portable loop wants smaller planes.
    (_dw(stride=2), ((1, 16, 16, 32), (1, 3, 3, 32), (1, 8, 8, 32)), (Q, P)),
    (_dw(stride=2), ((1, 12, 12, 64), (1, 3, 3, 64), (1, 6, 6, 64)), (P, P)),
    (_dw(stride=2), ((1, 12, 12, 16), (1, 3, 3, 16), (1, 6, 6, 16)), (Q, Q)),
    # A 3x3 plane at stride 1 over 16 channels, and over 32.
    (_dw(), ((1, 3, 3, 16), (1, 3, 3, 16), (1, 3, 3, 16)), (Q, Q)),
    (_dw(), ((1, 3, 3, 32), (1, 3, 3, 32), (1, 3, 3, 32)), (P, P)),
    # 4x4 and 6x6 at stride 1 over 8 channels, stride 2 over 8: planar.
    (_dw(), ((1, 4, 4, 8), (1, 3, 3, 8), (1, 4, 4, 8)), (Q, Q)),
    (_dw(), ((1, 6, 6, 8), (1, 3, 3, 8), (1, 6, 6, 8)), (Q, Q)),
    (_dw(stride=2), ((1, 12, 12, 8), (1, 3, 3, 8), (1, 6, 6, 8)), (Q, Q)),
    # Filters the planar kernel does not take (it left them to the general kernel):
    # dilated 3x3 (assembly), 4 wide and stride 3 (the C loop).
    (_dw(dilation=2), ((1, 9, 8, 4), (1, 3, 3, 4), (1, 9, 8, 4)), (P, P)),
    (_dw(), ((1, 9, 8, 4), (1, 4, 4, 4), (1, 9, 8, 4)), (P, P)),
    (_dw(stride=3), ((1, 9, 9, 8), (1, 3, 3, 8), (1, 3, 3, 8)), (P, P)),
    # 5x5 and 7x7 stay planar: the pixel kernel's loop for them is C.
    (_dw(stride=2), ((1, 12, 12, 16), (1, 5, 5, 16), (1, 6, 6, 16)), (G, G)),
    (_dw(), ((1, 12, 12, 16), (1, 7, 7, 16), (1, 12, 12, 16)), (G, G)),
    # Channels not in fours, or a depth multiplier: not the pixel kernel.
    (_dw(stride=2), ((1, 12, 12, 18), (1, 3, 3, 18), (1, 6, 6, 18)), (Q, Q)),
    (_dw(stride=2, mult=2), ((1, 12, 12, 8), (1, 3, 3, 16), (1, 6, 6, 16)), (Q, Q)),
])
def test_pixel_kernel_choice(attrs, shapes, variants):
    """variants: the choice for a portable target, then for a DSP one. Each
    call lists the optional path it takes: the pixel kernel's C loop for
    filters other than 3x3, the planar kernels' stride-2 paths."""
    from mcucompile.kernels.conv import _prepare
    in_shape, w_shape, out_shape = shapes
    g = _single_op(OpKind.DEPTHWISE_CONV_2D, attrs, in_shape, w_shape, out_shape,
                   w_scales=(0.02,) * w_shape[3], w_axis=3)
    three, strided = w_shape[1:3] == (3, 3), attrs.stride_w != 1
    paths = {P: set() if three else {"DW_PIXEL_GENERAL"}, Q: {"PLANAR_S2"} if strided else set(),
             G: ({"PLANAR_WIDE_S2"} if strided else set()) | ({"PLANAR_WIDE7"} if w_shape[2] > 5 else set())}
    for target, variant in zip((KernelTarget(), DSP), variants):
        call = lower(g.ops[0], g, target)
        assert choose(g.ops[0], g, target).variant == variant, target
        assert call.function == variant.value and set(call.paths) == paths[variant], call.paths
        if variant == P:
            assert call.scratch_bytes == 0
            table, _ = fast_channel_table(_prepare(g.ops[0], g))
            assert (_array(call, "channels").reshape(-1, 4) == table).all()
            assert _array(call, "weights").dtype == np.int8


def test_pixel_kernel_at_the_peak_needs_no_scratch():
    from mcucompile.kernels import lower_compact
    g = _single_op(OpKind.DEPTHWISE_CONV_2D, _dw(stride=2), (1, 40, 36, 32), (1, 3, 3, 32),
                   (1, 20, 18, 32), w_scales=(0.02,) * 32, w_axis=3)
    call = lower_compact(g.ops[0], g, DSP)
    assert call.function == PIXEL and call.scratch_bytes == 0


def test_pixel_weights_hold_four_channels_per_tap_in_a_word():
    # 8 channels (two fours), a 2x3 filter (six taps).
    w = (np.arange(48) - 24).astype(np.int8).reshape(8, 2, 3)
    got = pixel_weights(w).reshape(2, 6, 4)     # [four][tap][channel]
    assert got.dtype == np.int8
    taps = w.reshape(8, 6)
    for q in range(2):
        for k in range(6):
            assert got[q, k].tolist() == taps[4 * q:4 * q + 4, k].tolist()


# Host runs (the portable loop, under ASan and UBSan) with the kernels an M7
# would take: each case must pick the pixel kernel.
HOST_CASES = {
    "k3_s2_same_c32_relu6": dict(input_shape=(1, 11, 13, 32), stride=2, activation="relu6"),
    "k3_s1_same_c32_small": dict(input_shape=(1, 3, 3, 32)),
    # Above the pad row: channels in runs of 256 (interior pixels and borders).
    "k3_s1_valid_c264": dict(input_shape=(1, 5, 4, 264), padding="valid"),
    "k3_s1_same_c264": dict(input_shape=(1, 3, 3, 264), activation="relu"),
    "k3_d2_same_c8": dict(input_shape=(1, 9, 10, 8), dilation=2),
    "k4_s1_same_c8": dict(input_shape=(1, 7, 6, 8), kernel=4),
    "k3_s3_valid_c4": dict(input_shape=(1, 10, 11, 4), stride=3, padding="valid"),
    "k3_s2_same_c32_batch2_no_bias": dict(input_shape=(2, 7, 8, 32), stride=2, use_bias=False),
}


def _compiled(model: bytes, memory: str):
    from mcucompile import boards
    from mcucompile.pipeline import CompileOptions, compile_model
    return compile_model(model, boards.load("qemu-m7"), CompileOptions(memory=memory))


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("name", list(HOST_CASES))
def test_pixel_kernel_bit_exact_on_the_host(name):
    import modelgen as mg
    from harness import assert_bit_exact
    from mcucompile import boards
    from mcucompile.pipeline import CompileOptions
    model = mg.depthwise_conv2d(**HOST_CASES[name], seed=3)
    compiled = _compiled(model, "layer")
    assert [layer.kernel for layer in compiled.report.layers] == [PIXEL]
    assert_bit_exact(model, options=CompileOptions(memory="layer"), board=boards.load("qemu-m7"))


@pytest.mark.tf
@pytest.mark.reference
def test_pixel_kernel_runs_in_place_where_every_pixel_reads_ahead():
    """Stride 2 (each output pixel reads input pixels at or after its own
    index): the lean in-place form is the pixel kernel, no ring scratch. At
    stride 1 SAME it is not (the row above is read), so the ring kernel stays."""
    import modelgen as mg
    from harness import assert_bit_exact
    from mcucompile import boards
    from mcucompile.kernels import lower_inplace
    from mcucompile.pipeline import CompileOptions
    model = mg.depthwise_conv2d(input_shape=(1, 12, 10, 32), stride=2, activation="relu6", seed=4)
    compiled = _compiled(model, "inplace")
    (call,) = [c for c in compiled.calls.values() if c is not None]
    assert call.function == PIXEL and call.inplace_input is not None and call.scratch_bytes == 0
    assert compiled.plan.arena_bytes == 12 * 10 * 32
    assert_bit_exact(model, options=CompileOptions(memory="inplace"), board=boards.load("qemu-m7"))

    from mcucompile.frontend import tflite
    g = tflite.load(mg.depthwise_conv2d(input_shape=(1, 6, 6, 16), seed=4))
    assert lower_inplace(g.ops[0], g, DSP).function == "mcc_depthwise_conv2d_inplace_s8"


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
@pytest.mark.tf
@pytest.mark.parametrize("board", ["qemu-m7", pytest.param("qemu-m4", marks=pytest.mark.slow)])
def test_pixel_kernel_in_place_is_bit_exact_on_qemu(board, tmp_path):
    """The assembly's runs and border pixels writing over their own input."""
    import modelgen as mg
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    path = tmp_path / "dw.tflite"
    path.write_bytes(mg.depthwise_conv2d(input_shape=(1, 13, 11, 32), stride=2, seed=6))
    compiled, report = run_on_qemu(path, board, tmp_path / "build",
                                   options=CompileOptions(memory="inplace"))
    (call,) = [c for c in compiled.calls.values() if c is not None]
    assert call.function == PIXEL and call.inplace_input is not None
    assert report.compared and report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


def test_person_detect_on_the_m7_compiles_out_the_paths_it_no_longer_takes(shared_models):
    """Its stride-2 depthwise layers go pixel by pixel (or, over one input
    channel, through the one-channel kernel), all 3x3: the planar kernel's
    stride-2 path and the pixel kernel's C loop compile out, and so do the
    pooling sums in chunks (its average pool has 9 taps), which keeps its
    code beyond the weights under 20 KB (README)."""
    compiled = _compiled((shared_models / "person_detect.tflite").read_bytes(), "auto")
    config = compiled.files["mcc_config.h"]
    assert "#define MCC_OMIT_PLANAR_S2 1" in config
    assert "#define MCC_OMIT_DW_PIXEL_GENERAL 1" in config
    assert "#define MCC_OMIT_POOL_CHUNKS 1" in config
    assert PIXEL in {layer.kernel for layer in compiled.report.layers}
