"""The fast kernels (convolutions, pooling, MEAN) on Arm cores, under QEMU, against TFLM.

The host tests (test_kernels_conv.py, test_kernels_pixel.py) run the portable
inner loops of mcc_gemm_s8, mcc_conv2d_im2col_s8, mcc_depthwise_conv2d_planar[_3x3]_s8
and mcc_depthwise_conv2d_pixel_s8; the DSP inner loops (SMLAD, SXTB16, SMMLAR) only exist in Cortex-M4/M7 builds. Here
each single-op model is built into the real firmware for qemu-m7 and qemu-m4
(__ARM_FEATURE_DSP: the DSP loops) and qemu-m3 (ARMv7-M without DSP: the
portable loops, compiled for Arm), run on random inputs, and every output byte
is compared with TFLM.

The shapes are drawn from a seeded generator: odd channel counts, odd and
non-square images, kernels 1, 3, 5 and 7, both strides and both paddings, so
each variant meets its odd-column, leftover-row, partial-depth-group and
border paths. Each case also checks which kernel the compiler picked, so a
change of choice cannot silently stop testing a variant.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.arm_gcc, pytest.mark.reference, pytest.mark.tf]

BOARDS = ("qemu-m7", "qemu-m4", "qemu-m3")
BAND = "mcc_conv2d_band_s8"



def _add_clamped(**kwargs) -> bytes:
    """modelgen.add with the output's zero point moved to 0 (scale kept): its
    fused ReLU then clamps inside int8's range, which the converter never emits."""
    import modelgen as mg
    from mcucompile.frontend import tflite
    from test_kernels_activation import requantized
    model = mg.add(**kwargs)
    graph = tflite.load(model)
    return requantized(model, output=(graph.tensor(graph.outputs[0]).scale, 0))

def _residual_clamped(**kwargs) -> bytes:
    """modelgen.conv_residual with the zero points of the convolutions' and the
    ADD's outputs moved to 0 (scales kept): their ReLUs then clamp inside
    int8's range, so the convolution's clamp folded into the fused ADD's table
    and the ADD's own clamp both act."""
    import modelgen as mg

    def edit(m) -> None:
        sg = m.subgraphs[0]
        for op in sg.operators:
            q = sg.tensors[op.outputs[0]].quantization
            q.zeroPoint = [0]

    return mg._edit_flatbuffer(mg.conv_residual(**kwargs), edit)


def _cases() -> dict[str, tuple[str | Callable[..., bytes], dict, str]]:
    """name -> (modelgen factory, arguments, the kernel the compiler must pick)."""
    rng = np.random.default_rng(2026)

    def odd(lo: int, hi: int) -> int:
        return int(rng.integers(lo // 2, hi // 2 + 1)) * 2 + 1

    def image(channels: int) -> tuple[int, int, int, int]:
        return (1, int(rng.integers(7, 13)), int(rng.integers(7, 13)), channels)

    cases: dict[str, tuple[str, dict, str]] = {}
    for k, s, p in [(1, 1, "valid"), (3, 2, "same"), (5, 1, "same"), (7, 2, "valid"),
                    (3, 1, "valid"), (1, 2, "same")]:
        kernel = "mcc_gemm_s8" if (k, s) == (1, 1) else "mcc_conv2d_im2col_s8"
        cases[f"conv_k{k}_s{s}_{p}"] = ("conv2d", dict(
            input_shape=image(odd(1, 7)), filters=odd(3, 11), kernel=k, stride=s, padding=p,
            activation=str(rng.choice(["relu", "relu6"])), seed=int(rng.integers(100))), kernel)
    for k, s, p, m in [(3, 1, "same", 1), (3, 2, "valid", 2), (5, 1, "valid", 1),
                       (5, 2, "same", 1), (7, 1, "same", 2), (7, 2, "valid", 1)]:
        cases[f"depthwise_k{k}_s{s}_{p}_m{m}"] = ("depthwise_conv2d", dict(
            input_shape=image(odd(3, 13)), kernel=k, stride=s, padding=p, depth_multiplier=m,
            activation=str(rng.choice(["relu", "relu6"])), seed=int(rng.integers(100))),
            "mcc_depthwise_conv2d_planar_3x3_s8" if k == 3 else "mcc_depthwise_conv2d_planar_s8")
    # One input channel: the planar kernel, but for fours of 3x3 filters,
    # which DSP cores run through the one-channel kernel's assembly (ON_M3).
    cases["depthwise_one_channel_m6"] = ("depthwise_conv2d", dict(
        input_shape=(1, 15, 13, 1), kernel=3, stride=2, depth_multiplier=6),
        "mcc_depthwise_conv2d_planar_3x3_s8")
    cases["depthwise_one_channel_m8"] = ("depthwise_conv2d", dict(
        input_shape=(1, 15, 13, 1), kernel=3, stride=2, depth_multiplier=8),
        "mcc_depthwise_conv2d_1ch_s8")
    cases["depthwise_one_channel_10x8"] = ("depthwise_conv2d", dict(
        input_shape=(1, 19, 16, 1), kernel=(10, 8), stride=2, depth_multiplier=3),
        "mcc_conv2d_im2col_s8")
    # Whole depth groups (depth % 4 == 0) take the assembly tiles on the M4/M7:
    # 4x2 blocks with an odd and an even number of groups (at the memory peak,
    # COMPACT below, with the block on the stack), 2x2 leftover and lone rows,
    # and an odd last channel run against its zero-padded twin.
    cases["conv_k1_depth12_compact"] = ("conv2d", dict(
        input_shape=(1, 7, 9, 12), filters=odd(3, 9), kernel=1, padding="valid",
        seed=int(rng.integers(100))), "mcc_gemm_s8")
    cases["conv_k1_depth8_odd_c"] = ("conv2d", dict(
        input_shape=(1, 9, 7, 8), filters=odd(3, 9), kernel=1, padding="valid",
        activation="relu6", seed=int(rng.integers(100))), "mcc_gemm_s8")
    cases["conv_k1_depth12_rows25"] = ("conv2d", dict(
        input_shape=(1, 5, 5, 12), filters=6, kernel=1, padding="valid",
        seed=int(rng.integers(100))), "mcc_gemm_s8")
    cases["dense_rows1_depth32"] = ("dense", dict(input_shape=(1, 32), units=odd(3, 9)),
                                    "mcc_gemm_s8")
    cases["depthwise_k3_s1_even_w"] = ("depthwise_conv2d", dict(
        input_shape=(1, 9, 10, odd(3, 9)), kernel=3, stride=1, padding="valid",
        seed=int(rng.integers(100))), "mcc_depthwise_conv2d_planar_3x3_s8")
    cases["dense_rows5"] = ("dense", dict(input_shape=(5, odd(17, 41)), units=odd(3, 9),
                                          activation="relu"), "mcc_gemm_s8")
    cases["dense_rows1"] = ("dense", dict(input_shape=(1, odd(17, 41)), units=odd(3, 9)),
                            "mcc_gemm_s8")
    # One input channel at the memory peak (COMPACT): mcc_depthwise_conv2d_1ch_s8,
    # four channels per pass and the out_c % 4 left over, one- and two-word
    # filter rows, border pixels through its stack window.
    # Three one-word rows (3x3, 3x2) take the unrolled path, its channels four
    # at a time and then out_c % 4 through the general loop.
    for k, s, p, m in [(3, 2, "same", 8), (5, 1, "valid", 3), (7, 2, "same", 1),
                       ((10, 8), 2, "same", 7), ((3, 2), 1, "same", 6)]:
        kh, kw = (k, k) if isinstance(k, int) else k
        cases[f"depthwise_1ch_k{kh}x{kw}_s{s}_{p}_m{m}_compact"] = ("depthwise_conv2d", dict(
            input_shape=(1, odd(11, 21), odd(9, 19), 1), kernel=k, stride=s, padding=p,
            depth_multiplier=m, activation=str(rng.choice(["relu", "relu6"])),
            seed=int(rng.integers(100))), "mcc_depthwise_conv2d_1ch_s8")
    # Whole fours of channels: each row's pixels inside the image in one
    # assembly call (mcc_dw1ch_s8_3rows_dsp's pixel loop), three quads each.
    cases["depthwise_1ch_k3x3_s1_valid_m12_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 9, 14, 1), kernel=3, stride=1, padding="valid", depth_multiplier=12,
        activation="relu6", seed=11), "mcc_depthwise_conv2d_1ch_s8")
    # Three rows of four taps (the unrolled path's widest filter: every lane of
    # its weight words in use), borders included.
    cases["depthwise_1ch_k3x4_s1_same_m8_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 10, 13, 1), kernel=(3, 4), stride=1, padding="same", depth_multiplier=8,
        activation="relu", seed=12), "mcc_depthwise_conv2d_1ch_s8")
    # Other windows' quads (mcc_dw1ch_s8_rows_dsp): rows of one word (not
    # three of them), two quads of two-word rows with a tail, and whole
    # quads of two-word rows a row segment of pixels at a time.
    cases["depthwise_1ch_k5x3_s1_same_m4_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 11, 10, 1), kernel=(5, 3), stride=1, padding="same", depth_multiplier=4,
        activation="relu", seed=5), "mcc_depthwise_conv2d_1ch_s8")
    cases["depthwise_1ch_k4x7_s2_valid_m9_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 13, 17, 1), kernel=(4, 7), stride=2, padding="valid", depth_multiplier=9,
        seed=6), "mcc_depthwise_conv2d_1ch_s8")
    cases["depthwise_1ch_k6x5_s1_same_m8_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 12, 15, 1), kernel=(6, 5), stride=1, padding="same", depth_multiplier=8,
        activation="relu6", seed=7), "mcc_depthwise_conv2d_1ch_s8")
    # A 3x3 convolution at the memory peak (COMPACT): im2col with two patches
    # on the stack, whole depth groups (the 2x2 assembly tile) and a partial one,
    # an odd number of output pixels (a lone last patch).
    cases["conv_k3_s1_same_depth16_compact"] = ("conv2d", dict(
        input_shape=(1, 9, 7, 16), filters=odd(3, 9), kernel=3, stride=(2, 1), padding="same",
        activation="relu", seed=int(rng.integers(100))), "mcc_conv2d_im2col_s8")
    cases["conv_k3_s2_same_c5_compact"] = ("conv2d", dict(
        input_shape=(1, 11, 9, 5), filters=odd(3, 9), kernel=3, stride=2, padding="same",
        seed=int(rng.integers(100))), "mcc_conv2d_im2col_s8")
    # int8 patches at the peak: blocks of four on the stack (a first layer's
    # three channels, interior blocks gathered run by run) or, deeper than the
    # stack bound (99 values), two patches at a time.
    cases["conv_k3_s1_valid_c3_compact"] = ("conv2d", dict(
        input_shape=(1, 9, 14, 3), filters=odd(3, 9), kernel=3, padding="valid",
        activation="relu", seed=int(rng.integers(100))), "mcc_conv2d_im2col_s8")
    cases["conv_k3_s1_same_c11_compact"] = ("conv2d", dict(
        input_shape=(1, 7, 6, 11), filters=odd(3, 9), kernel=3, padding="same",
        seed=int(rng.integers(100))), "mcc_conv2d_im2col_s8")
    # in_c a multiple of 4: patches widened straight into the int16 block, with
    # padding (a partial tap at the border), dilation (taps one by one) and
    # the last pixels one by one; at the peak the block on the stack (depth
    # 108, an odd number of groups) or, too deep for it (180), two patches.
    # Wide enough at stride 2 for blocks of four wholly inside the image.
    # (Strides of 2 by 1 and 1 by 2: mcc_conv2d_band_s8 takes the other 3x3 ones.)
    cases["conv_k3_s2_same_c8"] = ("conv2d", dict(
        input_shape=(1, odd(9, 13), odd(19, 23), 8), filters=odd(3, 9), kernel=3, stride=(1, 2),
        padding="same", activation="relu", seed=int(rng.integers(100))), "mcc_conv2d_im2col_s8")
    cases["conv_k3_d2_same_c4"] = ("conv2d", dict(
        input_shape=(1, odd(9, 13), odd(9, 13), 4), filters=odd(3, 9), kernel=3, dilation=2,
        padding="same", seed=int(rng.integers(100))), "mcc_conv2d_im2col_s8")
    cases["conv_k3_s1_same_c12_compact"] = ("conv2d", dict(
        input_shape=(1, 7, 9, 12), filters=odd(3, 9), kernel=3, stride=(2, 1), padding="same",
        seed=int(rng.integers(100))), "mcc_conv2d_im2col_s8")
    cases["conv_k3_s1_valid_c20_compact"] = ("conv2d", dict(
        input_shape=(1, 7, 8, 20), filters=odd(3, 9), kernel=3, stride=(1, 2), padding="valid",
        seed=int(rng.integers(100))), "mcc_conv2d_im2col_s8")
    # 3x3 convolutions in bands of four rows (mcc_conv2d_band_s8, DSP cores;
    # the M3 takes im2col): stride 1 and 2, SAME and VALID, an odd last
    # channel, out_h % 4 (the last band moved up), a buffer that fills up
    # (columns moved to its start), at the peak on the stack, and 6 input
    # channels padded to 8.
    cases["band_k3_s1_same_c16"] = ("conv2d", dict(
        input_shape=(1, 11, odd(25, 31), 16), filters=odd(3, 9), kernel=3, padding="same",
        activation="relu", seed=int(rng.integers(100))), BAND)
    cases["band_k3_s2_valid_c12"] = ("conv2d", dict(
        input_shape=(1, odd(13, 17), odd(11, 15), 12), filters=odd(3, 9), kernel=3, stride=2,
        padding="valid", seed=int(rng.integers(100))), BAND)
    cases["band_k3_s2_same_c8_compact"] = ("conv2d", dict(
        input_shape=(1, 9, odd(11, 15), 8), filters=odd(3, 9), kernel=3, stride=2,
        padding="same", activation="relu6", seed=int(rng.integers(100))), BAND)
    cases["band_k3_s1_valid_c16_compact"] = ("conv2d", dict(
        input_shape=(1, 8, odd(9, 13), 16), filters=odd(3, 9), kernel=3, padding="valid",
        seed=int(rng.integers(100))), BAND)
    cases["band_k3_s1_same_c6_padded"] = ("conv2d", dict(
        input_shape=(1, 10, odd(9, 13), 6), filters=17, kernel=3, padding="same",
        activation="relu", seed=int(rng.integers(100))), BAND)
    # Depthwise at the peak: the planar kernel's planes on the stack, as many
    # as fit (eight here: four channels transposed at a time), then the rest
    # of the channels (four, and one copied byte by byte).
    cases["depthwise_k3_s2_same_c13_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 9, 10, 13), kernel=3, stride=2, padding="same", activation="relu6",
        seed=int(rng.integers(100))), "mcc_depthwise_conv2d_planar_3x3_s8")
    cases["depthwise_k5_s1_same_c10_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 7, 9, 10), kernel=5, stride=1, padding="same",
        seed=int(rng.integers(100))), "mcc_depthwise_conv2d_planar_s8")
    # Planes too big for the stack: strips of output rows, each over the input
    # rows it reads. Four channels at a time (3 output rows a strip, the last
    # one 2, then two channels one by one), and one channel at a time at
    # stride 1 with a 5x5 filter (24 rows, then 6 with the bottom padding).
    cases["depthwise_k3_s2_same_c6_strips_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 40, 37, 6), kernel=3, stride=2, padding="same", activation="relu6",
        seed=int(rng.integers(100))), "mcc_depthwise_conv2d_planar_3x3_s8")
    cases["depthwise_k5_s1_same_c3_strips_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 30, 33, 3), kernel=5, stride=1, padding="same",
        seed=int(rng.integers(100))), "mcc_depthwise_conv2d_planar_s8")
    # 3x3 at stride 1 runs pairs of output rows in 2x2 blocks, then an odd
    # last column (both rows) and an odd last row (the pair loop): even and
    # odd out_h and out_w (and two batches), one column, one, two and three
    # rows, and strips of output rows (five a strip here, so each ends on a
    # lone row); stride 2 in one direction only (2x1 takes the pair loop row
    # by row).
    for name, (n, h, w), max_c, stride, padding, extra in [
            ("s1_same_even_h_odd_w_m2", (1, 8, 11), 7, 1, "same",
             dict(depth_multiplier=2, activation="relu6")),
            ("s1_valid_one_column", (1, 10, 3), 9, 1, "valid", {}),
            ("s1_valid_two_rows", (1, 4, 9), 9, 1, "valid", {}),
            ("s1_valid_one_row", (1, 3, 8), 9, 1, "valid", {}),
            ("s1_same_even_hw_batch2", (2, 6, 8), 7, 1, "same", {}),
            ("s1_valid_three_rows", (1, 5, 7), 7, 1, "valid", {}),
            ("s2x1_same", (1, 11, 9), 9, (2, 1), "same", {}),
            ("s1x2_valid", (1, 10, 11), 9, (1, 2), "valid", {})]:
        cases[f"depthwise_k3_{name}"] = ("depthwise_conv2d", dict(
            input_shape=(n, h, w, odd(3, max_c)), kernel=3, stride=stride, padding=padding,
            seed=int(rng.integers(100)), **extra), "mcc_depthwise_conv2d_planar_3x3_s8")
    # Filters up to 7 wide (mcc_depthwise_conv2d_planar_s8): at stride 1 four
    # outputs a step, then a pair and an odd column (up to 5 wide and 7 wide);
    # at stride 2 pairs (up to 5 wide without t8); filters of 5x3, 3x5 and
    # 7x5, strides of 2 by 1 and 1 by 2, rows of fewer than four outputs, two
    # batches.
    for name, (n, h, w), max_c, kernel, stride, padding, extra in [
            ("k5_s1_same_w15", (1, 9, 15), 9, 5, 1, "same", dict(activation="relu6")),
            ("k5_s1_valid_w3_m2", (1, 8, 7), 7, 5, 1, "valid", dict(depth_multiplier=2)),
            ("k5x3_s1_valid_w8", (1, 8, 10), 7, (5, 3), 1, "valid", {}),
            ("k3x5_s2_same_w7", (1, 11, 13), 9, (3, 5), 2, "same", {}),
            ("k7x5_s2x1_same", (1, 12, 14), 7, (7, 5), (2, 1), "same", {}),
            ("k7_s1x2_valid", (1, 10, 17), 9, 7, (1, 2), "valid", dict(activation="relu")),
            ("k7_s1_same_batch2", (2, 7, 9), 7, 7, 1, "same", {}),
            ("k7_s1_valid_w14", (1, 9, 20), 7, 7, 1, "valid", dict(activation="relu6")),
            ("k5_s2_valid_batch2", (2, 9, 13), 7, 5, 2, "valid", {})]:
        cases[f"depthwise_{name}"] = ("depthwise_conv2d", dict(
            input_shape=(n, h, w, odd(3, max_c)), kernel=kernel, stride=stride, padding=padding,
            seed=int(rng.integers(100)), **extra), "mcc_depthwise_conv2d_planar_s8")
    cases["depthwise_k3_s1_same_c5_strips_compact"] = ("depthwise_conv2d", dict(
        input_shape=(1, 40, 37, 5), kernel=3, stride=1, padding="same", activation="relu",
        seed=int(rng.integers(100))), "mcc_depthwise_conv2d_planar_3x3_s8")
    # Depthwise pixel by pixel (mcc_depthwise_conv2d_pixel_s8): 3x3 in assembly
    # on DSP cores, a row's pixels inside the image in one call, the border
    # pixels one by one through the stack's pad row; stride 2, a small plane,
    # channels above the pad row (runs of 256), dilation, stride 3, at the
    # peak, and a 4x4 filter (its C loop).
    for name, kwargs in [
            ("k3_s2_same_c64", dict(input_shape=(1, odd(9, 11), odd(9, 11), 64), stride=2,
                                    activation="relu6")),
            ("k3_s1_same_c32_small", dict(input_shape=(1, 3, 3, 32), activation="relu")),
            ("k3_s1_valid_c264", dict(input_shape=(1, 5, 4, 264), padding="valid")),
            ("k3_s1_same_c264", dict(input_shape=(1, 3, 3, 264))),
            ("k3_d2_same_c8", dict(input_shape=(1, 9, 10, 8), dilation=2)),
            ("k3_s3_valid_c4", dict(input_shape=(1, 10, 11, 4), stride=3, padding="valid")),
            ("k3_s2_same_c64_compact", dict(input_shape=(1, 12, 11, 64), stride=2)),
            ("k4_s1_same_c8", dict(input_shape=(1, 7, 6, 8), kernel=4))]:
        cases[f"pixel_{name}"] = ("depthwise_conv2d", dict(kwargs, seed=int(rng.integers(100))),
                                  "mcc_depthwise_conv2d_pixel_s8")
    # A 1x1 convolution at the peak too deep for the stack block (72 > 64):
    # rows read where they lie (the 2x2 assembly tiles).
    cases["conv_k1_depth72_compact"] = ("conv2d", dict(
        input_shape=(1, 5, 7, 72), filters=odd(3, 9), kernel=1, padding="valid",
        seed=int(rng.integers(100))), "mcc_gemm_s8")
    # ADD through its tables and the fast output stage (SMMLAR on the M4/M7).
    cases["add_tables"] = ("add", dict(shape_a=(1, 16, 16, 8), shape_b=(1, 16, 16, 8),
                                       activation="relu"), "mcc_add_s8")
    # The word-wide DSP loop, its last n % 4 elements, and the per-lane clamp:
    # a ReLU that clamps inside int8's range (the output zero point moved to 0).
    cases["add_tables_clamped"] = (_add_clamped, dict(shape_a=(1, 11, 13, 9),
                                                      shape_b=(1, 11, 13, 9), activation="relu"),
                                   "mcc_add_s8")
    # A small ADD (under ADD_TABLE_MIN_ELEMENTS) computes the tables' values
    # per element in the same fast form; broadcast, and clamped.
    cases["add_small_fast"] = (_add_clamped, dict(shape_a=(1, 5, 7, 9), shape_b=(1, 1, 7, 9),
                                                  activation="relu"), "mcc_add_s8")
    # RGB first layers (3 channels, 3x3): blocks of four pixels inside the
    # image widened straight from the input (widen_rgb3x3_block on DSP cores),
    # the border pixels through int8 patches. Stride 2 with SAME padding, 17
    # filters at stride 1 (which the band kernel took before), and rows
    # dilated by 2 (the pitch between a patch's rows).
    cases["conv_rgb3x3_s2_same"] = ("conv2d", dict(
        input_shape=(1, 15, 37, 3), filters=9, kernel=3, stride=2, padding="same",
        activation="relu6", seed=5), "mcc_conv2d_im2col_s8")
    cases["conv_rgb3x3_s1_same_f17"] = ("conv2d", dict(
        input_shape=(1, 10, 13, 3), filters=17, kernel=3, padding="same", activation="relu",
        seed=6), "mcc_conv2d_im2col_s8")
    cases["conv_rgb3x3_s1_valid_dh2"] = ("conv2d", dict(
        input_shape=(1, 13, 17, 3), filters=8, kernel=3, dilation=(2, 1), padding="valid",
        seed=7), "mcc_conv2d_im2col_s8")
    # A residual ADD fused into the convolution before it (CONV_2D+ADD,
    # mcc_residual): each kernel's ways with the ADD in their epilogue. The
    # band's last band moved up (out_h 10, 9, 5) must not add its rows twice; odd
    # channel counts leave runs of n % 4 values; the "_compact" forms are the
    # stack ones (band columns, the GEMM's block or rows read where they lie,
    # im2col's blocks or pairs). Outputs of 1,024 values or more: smaller ADDs
    # stay apart (their tables would cost more flash than they save).
    for name, kwargs, kernel in [
            ("band_s1_c17", dict(input_shape=(1, 10, 7, 8), filters=17), BAND),
            ("band_s2_c16_compact", dict(input_shape=(1, 18, 17, 8), filters=16, stride=2), BAND),
            # 64 channels: the tile holds 4 columns, so 9 are added in as 4, 4 and 1.
            ("band_s1_c64_w9", dict(input_shape=(1, 5, 9, 8), filters=64), BAND),
            ("gemm_c21", dict(input_shape=(1, 9, 7, 12), filters=21, kernel=1), "mcc_gemm_s8"),
            # At the peak: the block on the stack up to a depth of 144, rows read where they lie above.
            ("gemm_depth72_compact", dict(input_shape=(1, 9, 12, 72), filters=10, kernel=1),
             "mcc_gemm_s8"),
            ("gemm_depth160_compact", dict(input_shape=(1, 9, 12, 160), filters=10, kernel=1),
             "mcc_gemm_s8"),
            ("gemm_c12_compact", dict(input_shape=(1, 10, 9, 12), filters=12, kernel=1),
             "mcc_gemm_s8"),
            ("im2col_k1_s2_c20", dict(input_shape=(1, 17, 15, 12), filters=20, kernel=1, stride=2),
             "mcc_conv2d_im2col_s8"),
            ("im2col_k5_c3_relu6", dict(input_shape=(1, 11, 11, 3), filters=10, kernel=5,
                                         activation="relu6", add_activation=None),
             "mcc_conv2d_im2col_s8"),
            ("im2col_k5_c8_pairs_compact", dict(input_shape=(1, 14, 13, 8), filters=6, kernel=5),
             "mcc_conv2d_im2col_s8")]:
        cases[f"residual_{name}"] = ("conv_residual", dict(kwargs, seed=int(rng.integers(100))),
                                     kernel)
    cases["residual_band_s1_c9_clamped"] = (_residual_clamped, dict(
        input_shape=(1, 10, 13, 8), filters=9, seed=3), BAND)
    # Pooling and MEAN: four channels a word (SXTAB16 lanes, SSUB8/SEL maxima on
    # DSP cores; unsigned lanes through masks on the M3) and leftover channels;
    # windows clipped at the edges, rows laid end to end, lanes added out past
    # 256 taps (in segments of a long row, or in chunks of rows), a fused
    # activation narrower than int8.
    cases["avgpool_k3_s2_same_c13"] = ("avg_pool2d", dict(
        input_shape=(1, 11, 9, 13), pool_size=3, stride=2, padding="same"), "mcc_avgpool_s8")
    cases["avgpool_global_c64"] = ("avg_pool2d", dict(
        input_shape=(1, 25, 5, 64), pool_size=(25, 5), padding="valid"), "mcc_avgpool_s8")
    cases["avgpool_global_340_taps_c12"] = ("avg_pool2d", dict(
        input_shape=(1, 20, 17, 12), pool_size=(20, 17), padding="valid"), "mcc_avgpool_s8")
    cases["avgpool_300_rows_c6"] = ("avg_pool2d", dict(
        input_shape=(1, 300, 3, 6), pool_size=(300, 2), stride=1, padding="valid"), "mcc_avgpool_s8")
    cases["maxpool_k3_s2_same_c13"] = ("max_pool2d", dict(
        input_shape=(1, 11, 9, 13), pool_size=3, stride=2, padding="same"), "mcc_maxpool_s8")
    cases["maxpool_k5x7_s1_same_c8_relu6"] = ("max_pool2d", dict(
        input_shape=(1, 6, 9, 8), pool_size=(5, 7), stride=1, padding="same", activation="relu6"),
        "mcc_maxpool_s8")
    cases["mean_hw_340_taps_c6"] = ("mean", dict(
        input_shape=(2, 20, 17, 6), axes=(1, 2), keepdims=False), "mcc_mean_s8")
    cases["mean_last_axis_13"] = ("mean", dict(
        input_shape=(2, 5, 7, 13), axes=(-1,), keepdims=False), "mcc_mean_s8")
    # The 4x2 tile's step counts: one depth group (its first step only, the
    # loop skipped) and five (the first, then one pass of four).
    cases["conv_k1_depth4_one_step"] = ("conv2d", dict(
        input_shape=(1, 6, 7, 4), filters=7, kernel=1, padding="valid", activation="relu",
        seed=5), "mcc_gemm_s8")
    cases["conv_k1_depth20_five_steps"] = ("conv2d", dict(
        input_shape=(1, 5, 6, 20), filters=10, kernel=1, padding="valid", seed=6), "mcc_gemm_s8")
    # im2col blocks of four pixels across an output row's end, every patch
    # inside the image (VALID, out_w % 4 != 0): RGB widened straight from the
    # input, in_c % 4 == 0 widened directly, and int8 patches.
    cases["conv_k3_s1_valid_c3_rows_of_13"] = ("conv2d", dict(
        input_shape=(1, 9, 15, 3), filters=9, kernel=3, padding="valid", seed=7),
        "mcc_conv2d_im2col_s8")
    cases["conv_k5_s1_valid_c8_rows_of_7"] = ("conv2d", dict(
        input_shape=(1, 9, 11, 8), filters=6, kernel=5, padding="valid", seed=8),
        "mcc_conv2d_im2col_s8")
    cases["conv_k3_s1_valid_c5_rows_of_7"] = ("conv2d", dict(
        input_shape=(1, 8, 9, 5), filters=5, kernel=3, padding="valid", activation="relu",
        seed=9), "mcc_conv2d_im2col_s8")
    return cases


CASES = _cases()
# Cases whose kernel the portable build (the M3) chooses otherwise: the
# one-channel kernel beats the planar one only in its assembly.
ON_M3 = {"depthwise_one_channel_m8": "mcc_depthwise_conv2d_planar_3x3_s8"}
# Built with compact_at_peak: the one layer is the memory peak, so it gets the
# scratch-free form (checked: no scratch).
COMPACT = {name for name in CASES if name.endswith("_compact")}
# The filters up to 7 wide: every loop of dw_wide_channel.
WIDE = {name for name, case in CASES.items() if case[2] == "mcc_depthwise_conv2d_planar_s8"}
# A run of the default tests covers every variant on the M7 and the two most
# common on the M4 (the same DSP code) and the M3 (the portable loops); the
# slow tests run every case on every core (~6 s each).
DEFAULT = {"qemu-m7": {"conv_k1_s1_valid", "conv_k3_s2_same", "depthwise_k3_s1_same_m1",
                       "depthwise_k5_s2_same_m1", "depthwise_one_channel_m6", "depthwise_one_channel_m8",
                       "dense_rows5",
                       "conv_k1_depth12_compact", "conv_k1_depth8_odd_c",
                       "conv_k1_depth12_rows25", "dense_rows1_depth32",
                       "depthwise_k3_s1_even_w", "depthwise_1ch_k3x3_s2_same_m8_compact",
                       "depthwise_1ch_k10x8_s2_same_m7_compact",
                       "depthwise_1ch_k3x2_s1_same_m6_compact",
                       "conv_k3_s1_same_depth16_compact", "conv_k3_s2_same_c5_compact",
                       "add_tables", "add_tables_clamped", "add_small_fast", "conv_k1_depth72_compact",
                       "conv_k3_s2_same_c8",
                       "conv_k3_s1_same_c12_compact", "conv_k3_s1_valid_c3_compact",
                       "conv_k3_s1_same_c11_compact", "band_k3_s1_same_c16", "band_k3_s2_valid_c12",
                       "band_k3_s2_same_c8_compact", "band_k3_s1_valid_c16_compact",
                       "band_k3_s1_same_c6_padded", "depthwise_k3_s2_same_c13_compact",
                       "depthwise_1ch_k3x3_s1_valid_m12_compact",
                       "depthwise_1ch_k3x4_s1_same_m8_compact",
                       "depthwise_1ch_k5x3_s1_same_m4_compact",
                       "depthwise_1ch_k4x7_s2_valid_m9_compact",
                       "depthwise_1ch_k6x5_s1_same_m8_compact",
                       "depthwise_k5_s1_same_c10_compact", "depthwise_k3_s2_same_c6_strips_compact",
                       "depthwise_k5_s1_same_c3_strips_compact",
                       "depthwise_k3_s1_same_even_h_odd_w_m2", "depthwise_k3_s1_valid_one_column",
                       "depthwise_k3_s1_valid_two_rows", "depthwise_k3_s1_valid_one_row",
                       "depthwise_k3_s2x1_same", "depthwise_k3_s1x2_valid",
                       "depthwise_k3_s1_same_even_hw_batch2", "depthwise_k3_s1_valid_three_rows",
                       "depthwise_k3_s1_same_c5_strips_compact", "conv_rgb3x3_s2_same",
                       "conv_rgb3x3_s1_same_f17", "conv_rgb3x3_s1_valid_dh2",
                       *(n for n in CASES if n.startswith(("residual_", "pixel_", "avgpool_",
                                                           "maxpool_", "mean_"))),
                       *WIDE},
           "qemu-m4": {"pixel_k3_s2_same_c64", "pixel_k3_s1_same_c264", "residual_band_s1_c17", "residual_gemm_depth72_compact",
                       "residual_gemm_depth160_compact",
                       "residual_band_s1_c9_clamped", "conv_rgb3x3_s2_same", "conv_rgb3x3_s1_valid_dh2", "conv_k3_s2_same", "depthwise_k3_s1_same_m1", "conv_k1_depth12_compact",
                       "depthwise_1ch_k5x5_s1_valid_m3_compact", "conv_k3_s1_same_depth16_compact",
                       "add_tables", "add_tables_clamped", "conv_k1_depth72_compact",
                       "band_k3_s1_same_c16", "band_k3_s2_same_c8_compact",
                       "depthwise_1ch_k3x2_s1_same_m6_compact",
                       "depthwise_1ch_k3x3_s1_valid_m12_compact", "depthwise_k3_s2_same_c6_strips_compact",
                       "depthwise_k3_s1_same_even_h_odd_w_m2", "depthwise_k3_s1_same_c5_strips_compact",
                       "avgpool_global_340_taps_c12", "maxpool_k3_s2_same_c13",
                       "depthwise_k5_s1_same_w15", "depthwise_k5_s2_valid_batch2"},
           "qemu-m3": {"pixel_k3_s2_same_c64", "pixel_k3_s1_valid_c264", "depthwise_one_channel_m8", "conv_k3_s2_same", "depthwise_k3_s1_same_m1", "conv_k3_s2_same_c8",
                       "depthwise_1ch_k3x4_s1_same_m8_compact",
                       "depthwise_1ch_k10x8_s2_same_m7_compact",
                       "depthwise_1ch_k3x3_s2_same_m8_compact", "conv_k3_s1_same_depth16_compact",
                       "depthwise_1ch_k3x2_s1_same_m6_compact", "conv_k3_s1_valid_c3_compact",
                       "add_tables", "depthwise_k5_s1_same_c3_strips_compact",
                       "conv_rgb3x3_s2_same", "residual_band_s1_c17",
                       "residual_im2col_k5_c8_pairs_compact", "residual_band_s1_c9_clamped",
                       "avgpool_k3_s2_same_c13", "maxpool_k5x7_s1_same_c8_relu6", "mean_hw_340_taps_c6",
                       "avgpool_300_rows_c6", "depthwise_k5_s1_same_w15", "add_small_fast"}}


def _params():
    for name in CASES:
        for board in BOARDS:
            slow = name not in DEFAULT[board]
            yield pytest.param(name, board, id=f"{name}-{board}",
                               marks=[pytest.mark.slow] if slow else [])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dsp_models")


def _run_on_qemu(model_path: Path, board_name: str, out: Path, runs: int = 2,
                 compact: bool = False, defines: tuple[str, ...] = ()):
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions

    # Layer by layer: the in-place and patch strategies would swap in other kernels.
    # A one-layer model's layer is its memory peak: keep the fast kernel's scratch
    # there, unless the case is about the scratch-free form.
    return run_on_qemu(model_path, board_name, out, runs=runs, defines=defines,
                       options=CompileOptions(memory="layer", compact_at_peak=compact))


def _model(name: str, model_dir: Path) -> Path:
    import modelgen as mg
    factory, kwargs, _ = CASES[name]
    path = model_dir / f"{name}.tflite"
    if not path.exists():
        make = factory if callable(factory) else getattr(mg, factory)
        path.write_bytes(make(**kwargs))
    return path


@pytest.mark.parametrize("name,board", list(_params()))
def test_fast_kernel_is_bit_exact_on_qemu(name, board, model_dir, tmp_path):
    kernel = CASES[name][2]
    path = _model(name, model_dir)
    compiled, report = _run_on_qemu(path, board, tmp_path / "build", compact=name in COMPACT)
    kernels = [layer.kernel for layer in compiled.report.layers]
    if kernel == BAND and board == "qemu-m3":
        kernel = "mcc_conv2d_im2col_s8"             # the band kernel needs SMLAD to pay off
    if board == "qemu-m3":
        kernel = ON_M3.get(name, kernel)
    assert kernel in kernels, kernels
    layer = compiled.report.layers[kernels.index(kernel)]
    if name.startswith("residual_"):
        # The second convolution took the ADD, in its kernel's epilogue.
        assert [x.op for x in compiled.report.layers] == ["CONV_2D", "CONV_2D+ADD"]
        assert compiled.report.layers[1].kernel == kernel
        layer = compiled.report.layers[1]
        call = compiled.calls[compiled.graph.ops[1].index]
        if "pairs" in name:
            assert "IM2COL_STACK_PAIRS" in call.paths, call.paths
    if name.startswith("add_"):
        (call,) = [c for c in compiled.calls.values() if c is not None]
        fields = {f.name for f in call.fields}
        assert ("input1_scaled" in fields) == ("tables" in name), fields
        assert ("input1_hib" in fields) == (name == "add_small_fast"), fields
    if name in COMPACT:
        assert layer.scratch_bytes == 0, layer      # no arena scratch at the peak
        if kernel == "mcc_gemm_s8":                 # the block on the stack, or rows in place
            call = compiled.calls[compiled.graph.ops[-1].index]
            row_block = {f.name: f.value for f in call.fields}["row_block"]
            deep = "depth160" in name or (name == "conv_k1_depth72_compact")
            assert row_block == (1 if deep else 2), row_block
    elif name.startswith("conv_k1_depth"):
        assert layer.scratch_bytes > 0, layer       # blocks of four rows in scratch
    if kernel == "mcc_gemm_s8":
        # The C loop of a partial last depth group is linked only for a
        # depth that has one (dense_rows*: odd depths); without it the kernel
        # would refuse the call, so running bit-exact shows it was kept.
        call = compiled.calls[compiled.graph.ops[-1].index]
        depth = {f.name: f.value for f in call.fields}["depth"]
        assert ("GEMM_PARTIAL" in call.paths) == (depth % 4 != 0), (depth, call.paths)
        assert ("#define MCC_OMIT_GEMM_PARTIAL 1" in compiled.files["mcc_config.h"]) == (depth % 4 == 0)
    elif name == "conv_k3_s2_same_c8":
        assert layer.scratch_bytes == 32 * 18, layer  # the block alone, no int8 patches
    elif name == "band_k3_s1_same_c16" and kernel == BAND:
        assert layer.scratch_bytes == 4096 // 192 * 192, layer  # fewer columns than the band reads
    if name.startswith("conv_rgb3x3") or name in ("conv_k3_s2_same_c5_compact", "conv_k3_s1_same_c11_compact"):
        # Only an RGB layer keeps the direct widening compiled in, and has its own cost.
        rgb = name.startswith("conv_rgb3x3")
        (call,) = [c for c in compiled.calls.values() if c is not None]
        assert ("#define MCC_OMIT_IM2COL_RGB 1" in compiled.files["mcc_config.h"]) == (not rgb)
        way = "pairs" if "IM2COL_STACK_PAIRS" in call.paths else "int8"
        assert call.cost_variant == ("rgb3x3" if rgb else way)
    assert report.compared and report.samples == 2
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


def test_gemm_without_its_partial_path_refuses_on_qemu(model_dir, tmp_path):
    # A GEMM whose depth is not whole groups of four needs gemm_rows2's C loop
    # (GEMM_PARTIAL). Built without it, the model does not link; and were the
    # generator's guard wrong (here: removed), the Arm kernel reports an error
    # to the host, never wrong bytes.
    from mcucompile import boards, emulator, hil
    from mcucompile.build import compile_firmware
    from mcucompile.errors import DeviceError, ToolchainError
    from mcucompile.pipeline import CompileOptions, build
    path = _model("dense_rows5", model_dir)
    board = boards.load("qemu-m7")
    out = tmp_path / "build"
    compiled = build(path, board, out, options=CompileOptions(memory="layer"))
    (call,) = [c for c in compiled.calls.values() if c is not None]
    assert call.function == "mcc_gemm_s8" and "GEMM_PARTIAL" in call.paths
    config, model_c = out / "model" / "mcc_config.h", out / "model" / "model.c"
    end = "#endif /* MCC_CONFIG_H */"
    config.write_text(config.read_text().replace(end, "#define MCC_OMIT_GEMM_PARTIAL 1\n" + end))
    with pytest.raises(ToolchainError, match="undefined reference to .mcc_has_path_GEMM_PARTIAL"):
        compile_firmware(out, board, "qemu")
    text = model_c.read_text()
    assert "!mcc_has_path_GEMM_PARTIAL" in text
    model_c.write_text(text.replace("!mcc_has_path_GEMM_PARTIAL", "0").replace(
        "extern const uint8_t mcc_has_path_GEMM_PARTIAL;", ""))
    firmware = compile_firmware(out, board, "qemu")
    with emulator.boot(firmware.elf, firmware.qemu_machine, "tcp") as qemu:
        with hil.Device(qemu.connect(), timeout=20) as device:
            with pytest.raises(DeviceError, match="Inference failed: status 1"):
                hil.evaluate(device, model=path.read_bytes(), random=1, seed=3)


# The DSP loops in C that -DMCC_NO_ASM takes instead of the assembly (a
# compiler or core the assembly does not suit): the 4x2 GEMM and band tiles,
# the 3x3 depthwise pairs and blocks, the one-channel and pixel depthwise
# loops, and the filters up to 7 wide at both strides.
NO_ASM = ("conv_k1_depth12_compact", "conv_k1_depth8_odd_c", "band_k3_s1_same_c16",
          "depthwise_k3_s1_same_even_h_odd_w_m2", "depthwise_k3_s2x1_same",
          "depthwise_1ch_k3x3_s1_valid_m12_compact", "pixel_k3_s2_same_c64",
          "depthwise_k5_s1_same_w15", "depthwise_k7_s1x2_valid", "depthwise_k3x5_s2_same_w7")


@pytest.mark.parametrize("name", NO_ASM)
def test_dsp_loops_in_c_are_bit_exact_on_qemu(name, model_dir, tmp_path):
    import subprocess

    from mcucompile.build import toolchain
    kernel = CASES[name][2]
    out = tmp_path / "build"
    compiled, report = _run_on_qemu(_model(name, model_dir), "qemu-m7", out,
                                    compact=name in COMPACT, defines=("MCC_NO_ASM",))
    assert kernel in [layer.kernel for layer in compiled.report.layers]
    assert report.compared and report.samples == 2
    # No assembly function was linked: the C loops ran.
    (elf,) = (out / "build" / "qemu").glob("*.elf")
    symbols = subprocess.run([toolchain("nm"), str(elf)], capture_output=True, text=True,
                             check=True).stdout
    assert f" T {kernel}\n" in symbols
    assert not [line for line in symbols.splitlines() if line.endswith("_dsp")]


@pytest.mark.parametrize("board", ["qemu-m7", pytest.param("qemu-m4", marks=pytest.mark.slow),
                                   pytest.param("qemu-m3", marks=pytest.mark.slow)])
def test_small_mobilenet_v2_is_bit_exact_on_qemu(board, model_dir, tmp_path):
    # Every fast variant in one network: the first 3x3 stride-2 convolution
    # (im2col), 1x1 expand/project layers (GEMM in blocks of four rows),
    # 3x3 depthwise at stride 1 and 2 (planar) and the classifier (GEMM, one row).
    import modelgen as mg
    path = model_dir / "mobilenet_v2_32.tflite"
    if not path.exists():
        path.write_bytes(mg.mobilenet_v2(resolution=32, num_classes=5, head_channels=32))
    compiled, report = _run_on_qemu(path, board, tmp_path / "build", runs=1)
    kernels = {layer.kernel for layer in compiled.report.layers}
    assert {"mcc_conv2d_im2col_s8", "mcc_gemm_s8", "mcc_depthwise_conv2d_planar_3x3_s8"} <= kernels
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


@pytest.mark.parametrize("board", ["qemu-m7", pytest.param("qemu-m4", marks=pytest.mark.slow),
                                   pytest.param("qemu-m3", marks=pytest.mark.slow)])
def test_resnet8_default_build_is_bit_exact_on_qemu(board, model_dir, tmp_path):
    # MLPerf Tiny's IC network at a small resolution, built as `build` builds it
    # (the smallest arena): 3x3 convolutions in bands (im2col on the M3), at the
    # memory peak with their buffer on the stack, residual ADDs inside the
    # convolutions before them, through their tables.
    import modelgen as mg
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    path = model_dir / "resnet8_16.tflite"
    if not path.exists():
        path.write_bytes(mg.resnet8(resolution=16))
    compiled, report = run_on_qemu(path, board, tmp_path / "build", runs=1, options=CompileOptions())
    fields = {c.function: {f.name: f.value for f in c.fields} for c in compiled.calls.values() if c}
    conv, on_stack = (("mcc_conv2d_im2col_s8", ("row_block", 2)) if board == "qemu-m3"
                      else (BAND, ("on_stack", 1)))
    assert conv in fields and "mcc_add_s8" not in fields
    fused = [op for op in compiled.graph.ops if op.label == "CONV_2D+ADD"]
    assert len(fused) == 3
    assert all(any(f.name == "residual.x_scaled" for f in compiled.calls[op.index].fields)
               for op in fused)
    stack = [c for c in compiled.calls.values() if c and c.function == conv
             and {f.name: f.value for f in c.fields}[on_stack[0]] == on_stack[1]]
    assert stack, f"no {conv} layer at the peak"
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


@pytest.mark.parametrize("board", ["qemu-m7", pytest.param("qemu-m4", marks=pytest.mark.slow),
                                   pytest.param("qemu-m3", marks=pytest.mark.slow)])
def test_ds_cnn_default_build_is_bit_exact_on_qemu(board, model_dir, tmp_path):
    # MLPerf Tiny's KWS network, fewer frames, built as `build` builds it: its
    # 64-channel 1x1 layers run in place at the memory peak, as the GEMM with
    # its block and leftover outputs on the stack (MCC_GEMM_INPLACE_STACK_BLOCK),
    # the 10x4 first layer through im2col's int8 patches.
    import modelgen as mg
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    path = model_dir / "ds_cnn_25.tflite"
    if not path.exists():
        path.write_bytes(mg.ds_cnn(input_shape=(1, 25, 10, 1)))
    compiled, report = run_on_qemu(path, board, tmp_path / "build", runs=1, options=CompileOptions())
    inplace = [{f.name: f.value for f in c.fields} for c in compiled.calls.values()
               if c and c.function == "mcc_gemm_inplace_s8"]
    assert inplace and all(f["row_block"] == 2 and f["depth"] == 64 for f in inplace), inplace
    assert "mcc_conv2d_im2col_s8" in {c.function for c in compiled.calls.values() if c}
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


@pytest.mark.parametrize("board", ["qemu-m7", pytest.param("qemu-m4", marks=pytest.mark.slow),
                                   pytest.param("qemu-m3", marks=pytest.mark.slow)])
def test_tinynas_style_default_build_is_bit_exact_on_qemu(board, model_dir, tmp_path):
    # Inverted residual blocks with 5x5 and 7x7 depthwise filters at stride 1
    # and 2, as TinyNAS picks them, built as `build` builds it (its plan's
    # patches, in-place layers and stack planes at the peak included).
    import modelgen as mg
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    path = model_dir / "tinynas_style_40.tflite"
    if not path.exists():
        path.write_bytes(mg.mobilenet_v2(
            resolution=40, alpha=0.5, num_classes=5, head_channels=32,
            blocks=((1, 16, 1, 1, 3), (4, 24, 2, 2, 7), (4, 32, 2, 2, 5), (6, 48, 1, 1, 5))))
    compiled, report = run_on_qemu(path, board, tmp_path / "build", runs=1, options=CompileOptions())
    wide = [{f.name: f.value for f in c.fields} for c in compiled.calls.values()
            if c and c.function == "mcc_depthwise_conv2d_planar_s8"]
    # (The M3's plan differs: its costs move some of these layers in place.)
    taken = {(f["filter_w"], f["stride_w"]) for f in wide}
    assert taken == {(7, 1), (7, 2), (5, 1), (5, 2)} or (board == "qemu-m3" and taken), taken
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


@pytest.mark.parametrize("board", ["qemu-m7", "qemu-m3"])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_pool_over_its_own_input_is_bit_exact_on_qemu(kind, board, model_dir, tmp_path):
    # Windows that read only pixels at or after their own output pixel: the
    # plain kernel runs in place (four channels a word, then the odd two).
    import modelgen as mg
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    path = model_dir / f"{kind}pool_in_place.tflite"
    if not path.exists():
        factory = mg.avg_pool2d if kind == "avg" else mg.max_pool2d
        path.write_bytes(factory(input_shape=(1, 11, 13, 14), pool_size=3, stride=2, padding="same"))
    compiled, report = run_on_qemu(path, board, tmp_path / "build", options=CompileOptions(memory="inplace"))
    (call,) = [c for c in compiled.calls.values() if c is not None]
    assert call.function == f"mcc_{kind}pool_s8" and call.inplace_input is not None
    assert report.compared and report.bit_exact, "\n".join(m.describe() for m in report.mismatches)
