"""The in-place kernels on Arm cores, under QEMU, against TFLM.

tests/test_inplace.py runs mcc_depthwise_conv2d_inplace_s8 and
mcc_conv2d_1x1_inplace_s8 on the host: their portable loops. Their DSP loops
(SMLAD pairs over the ring rows of a 3x3 stride-1 depthwise layer; four-channel
SMLAD passes of the 1x1 convolution, a partial last depth group read with
load_partial, and with whole depth groups every whole pass of a pixel in one
assembly loop; SMLAD pairs read straight from the buffer for direct-read 3x3
rows at stride 2; narrow rows with border columns through one stack copy;
stack copies of border windows and of direct-read rows for the pairs) exist only in Cortex-M4/M7 builds. Here small chains of 1x1 and
depthwise convolutions (modelgen.conv_chain: MobileNet blocks and their parts),
compiled with every eligible op in place, are built into the real firmware for
qemu-m7 and qemu-m4 (__ARM_FEATURE_DSP) and qemu-m3 (ARMv7-M: the portable
loops, compiled for Arm), run on random inputs, and every output byte is
compared with TFLM.

Each case names the layers it is about and what the compiler must have chosen
for them (the in-place kernel, with the ring or direct reads, the fast or
TFLite-form requantization table, the pixel order), so a change of choice
cannot silently stop testing a path. The depthwise layer under test is the
model's last, so its output bytes are compared directly.

Not covered: a depth multiplier > 1, which never runs in place (its output
channels would overwrite other input channels).
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.arm_gcc, pytest.mark.reference, pytest.mark.tf]

BOARDS = ("qemu-m7", "qemu-m4", "qemu-m3")
RUNS = 3

DW = "mcc_depthwise_conv2d_inplace_s8"
PW = "mcc_conv2d_1x1_inplace_s8"

# The 3x3 depthwise rows that the M4/M7 compute in SMLAD pairs: ring reads
# (one byte between pixels), stride_w 1, the fast table.
PAIRS = dict(ring=True, stride_w=1, fast_table=1)


def _dw_case(shape, expand, kernel, stride, padding, act, **want):
    """A 1x1 expansion (in place over the model input) and the depthwise layer under test."""
    layers = (("pw", expand, 1, "relu6"), ("dw", kernel, stride, padding, act))
    return dict(input_shape=shape, layers=layers), {1: (DW, want)}


# name -> (modelgen.conv_chain arguments, {layer: (in-place kernel, fields it must have)}).
# `ring` stands for ring_rows > 0; other fields must be equal.
CASES: dict[str, tuple[dict, dict[int, tuple[str, dict]]]] = {
    # 3x3 stride 1 SAME: the SMLAD pairs, an even and an odd number of inner columns
    # (a lone last one), top and bottom rows with a filter row in the padding.
    "dw_k3_s1_same": _dw_case((1, 9, 12, 3), 7, 3, 1, "same", "relu6", **PAIRS),
    "dw_k3_s1_same_odd_w": _dw_case((1, 8, 13, 5), 9, 3, 1, "same", None, **PAIRS),
    # Rows at most MCC_DW3_RING_WHOLE (16) outputs wide with border columns
    # (above: 12 and 13) go through one stack copy of the whole row; wider ones
    # read the ring, their border columns over copies.
    "dw_k3_s1_same_wide_ring": _dw_case((1, 6, 19, 3), 5, 3, 1, "same", "relu6", out_w=19,
                                        pad_w=1, **PAIRS),
    "dw_k3_s1_valid": _dw_case((1, 10, 9, 5), 7, 3, 1, "valid", "relu6", ring=False),
    # Direct reads at stride 1: the SMLAD pairs over stack copies of the rows, in
    # chunks of 38 columns (here 38 and a last 5, odd: the last pair recomputed).
    "dw_k3_s1_valid_wide": _dw_case((1, 5, 45, 3), 5, 3, 1, "valid", "relu6", ring=False,
                                    stride_w=1, fast_table=1),
    "dw_k3_s2_same_even": _dw_case((1, 10, 12, 3), 5, 3, 2, "same", "relu6", stride_w=2),
    "dw_k3_s2_same_odd": _dw_case((1, 11, 9, 5), 7, 3, 2, "same", None, stride_w=2),
    "dw_k3_s2_valid": _dw_case((1, 11, 10, 3), 9, 3, 2, "valid", "relu", ring=False),
    # Direct reads at stride 2 (3x3, the fast table): SMLAD pairs straight from
    # the buffer, an odd number of columns (a lone last one in C), with and
    # without border columns over stack copies.
    "dw_k3_s2_valid_direct_odd_w": _dw_case((1, 10, 11, 3), 6, 3, 2, "valid", "relu6",
                                            ring=False, stride_w=2, fast_table=1, out_w=5),
    "dw_k3_s2_same_direct": _dw_case((1, 12, 13, 5), 7, 3, 2, "same", None,
                                     ring=False, stride_w=2, fast_table=1, out_w=7, pad_w=1),
    # Stride 2 down, 1 across: the SMLAD pairs on every other row.
    "dw_k3_s2x1_same": _dw_case((1, 9, 11, 3), 5, 3, (2, 1), "same", "relu6", **PAIRS),
    "dw_k3_s1x2_same": _dw_case((1, 8, 11, 5), 7, 3, (1, 2), "same", None, ring=True, stride_w=2),
    "dw_k5_s1_same": _dw_case((1, 9, 10, 5), 7, 5, 1, "same", "relu6", ring=True),
    "dw_k5_s2_valid": _dw_case((1, 12, 11, 3), 5, 5, 2, "valid", None, stride_w=2),
    "dw_k7_s1_same": _dw_case((1, 9, 8, 3), 5, 7, 1, "same", "relu6", ring=True),
    "dw_k7_s2_same": _dw_case((1, 13, 11, 5), 7, 7, 2, "same", None, stride_w=2),
    # Filters 5 and 7 wide on DSP cores: every column in SMLAD passes of up to
    # 24 outputs over stack copies of the taps (pad_value outside the image);
    # rows of 30 and 26 outputs take two passes, from the ring and direct.
    "dw_k5_s1_same_two_passes": _dw_case((1, 6, 30, 3), 5, 5, 1, "same", "relu6", ring=True,
                                         out_w=30),
    "dw_k7_s2_valid_two_passes": _dw_case((1, 9, 57, 3), 5, 7, 2, "valid", None, ring=False,
                                          out_w=26),
    # Output multiplier >= 0.5: TFLite's (multiplier, shift) table, border path everywhere.
    "dw_k3_s1_same_tflite_form": (
        dict(input_shape=(1, 9, 10, 3), layers=(("pw", 5, 1, "relu6"), ("dw", 3, 1, "same", None)),
             wide=(1,)),
        {1: (DW, dict(ring=True, fast_table=0))}),
    # A whole MobileNet block: 1x1 expansion last pixel to first (5 -> 13 channels:
    # one whole depth group and a partial one), 3x3 depthwise, 1x1 projection
    # first to last (13 -> 7: three whole groups, one byte left, a partial
    # four-channel pass).
    "pw_mobilenet_block": (
        dict(input_shape=(1, 7, 9, 5),
             layers=(("pw", 13, 1, "relu6"), ("dw", 3, 1, "same", "relu6"), ("pw", 7, 1, None))),
        {0: (PW, dict(reverse=1, fast_table=1, in_c=5, out_c=13)),
         1: (DW, PAIRS),
         2: (PW, dict(reverse=0, fast_table=1, in_c=13, out_c=7))}),
    # Fewer than four input channels (only a partial depth group) and one pass of three.
    "pw_narrow": (
        dict(input_shape=(1, 6, 11, 3), layers=(("pw", 11, 1, "relu"), ("pw", 3, 1, None))),
        {0: (PW, dict(reverse=1, in_c=3, out_c=11)), 1: (PW, dict(reverse=0, in_c=11, out_c=3))}),
    # Whole depth groups (in_c % 4 == 0) with the fast table: every whole
    # four-channel pass of a pixel in mcc_pw_inplace_1x4_dsp (8 -> 22: five
    # passes and a partial one in C, last pixel to first; 22 -> 12: in C, a
    # partial depth group; 12 -> 20 -> 6: three odd-group passes, then one pass
    # and a partial one, first to last).
    "pw_quads": (
        dict(input_shape=(1, 5, 7, 8),
             layers=(("pw", 22, 1, "relu6"), ("pw", 12, 1, None), ("pw", 20, 1, "relu"),
                     ("pw", 6, 1, "relu6"))),
        {0: (PW, dict(reverse=1, fast_table=1, in_c=8, out_c=22)),
         1: (PW, dict(reverse=0, fast_table=1, in_c=22, out_c=12)),
         2: (PW, dict(reverse=1, fast_table=1, in_c=12, out_c=20)),
         3: (PW, dict(reverse=0, fast_table=1, in_c=20, out_c=6))}),
    "pw_quads_stride2": (
        dict(input_shape=(1, 9, 7, 4), layers=(("pw", 8, 2, "relu6"), ("pw", 5, 1, None))),
        {0: (PW, dict(stride_h=2, stride_w=2, fast_table=1, in_c=4, out_c=8, out_h=5, out_w=4)),
         1: (PW, dict(fast_table=1, in_c=8, out_c=5))}),
    "pw_stride2": (
        dict(input_shape=(1, 9, 11, 7), layers=(("pw", 9, 2, "relu6"), ("pw", 5, 1, None))),
        {0: (PW, dict(stride_h=2, stride_w=2, in_c=7, out_c=9, out_h=5, out_w=6))}),
    # Output multipliers >= 0.5 in both 1x1 layers: TFLite's form after the SMLAD sums.
    "pw_tflite_form": (
        dict(input_shape=(1, 7, 9, 5), layers=(("pw", 11, 1, "relu6"), ("pw", 7, 1, None)),
             wide=(0, 1)),
        {0: (PW, dict(reverse=1, fast_table=0)), 1: (PW, dict(reverse=0, fast_table=0))}),
}

SEEDS = {name: 11 + 7 * i for i, name in enumerate(CASES)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inplace_dsp_models")


def _model(model_dir: Path, name: str) -> Path:
    """The case's .tflite, shared by the three boards (and cached by modelgen)."""
    import modelgen as mg
    path = model_dir / f"{name}.tflite"
    if not path.exists():
        path.write_bytes(mg.conv_chain(**CASES[name][0], seed=SEEDS[name]))
    return path


def _check_choice(compiled, name: str) -> None:
    """Every layer runs in place, over its input's own bytes; the layers the case
    is about with the kernel and path it means to test."""
    ops = [op for op in compiled.graph.ops if compiled.calls[op.index] is not None]
    assert len(ops) == len(CASES[name][0]["layers"]), [op.kind for op in ops]
    offsets = compiled.plan.tensor_offsets
    for op in ops:
        call = compiled.calls[op.index]
        assert call.inplace_input == op.inputs[0], (op.index, call.function)
        assert offsets[op.inputs[0]] == offsets[op.outputs[0]], (op.index, call.function)
    for layer, (function, want) in CASES[name][1].items():
        call = compiled.calls[ops[layer].index]
        assert call.function == function, (layer, call.function)
        fields = {f.name: f.value for f in call.fields}
        got = {k: (fields["ring_rows"] > 0 if k == "ring" else fields[k]) for k in want}
        assert got == want, (layer, fields)


# Cases that expose a real kernel bug: name -> (boards, reason). None so far.
KNOWN_BUGS: dict[str, tuple[tuple[str, ...], str]] = {}


def _params():
    for name in CASES:
        for board in BOARDS:
            bug = KNOWN_BUGS.get(name)
            marks = ([pytest.mark.xfail(strict=True, reason=bug[1])]
                     if bug and board in bug[0] else [])
            yield pytest.param(name, board, id=f"{name}-{board}", marks=marks)


@pytest.mark.parametrize("name,board", list(_params()))
def test_inplace_kernel_is_bit_exact_on_qemu(name, board, model_dir, tmp_path):
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    # Every eligible op in place (the default keeps an in-place kernel only where
    # it lowers the peak), so each layer above runs the in-place kernel.
    options = CompileOptions(memory="inplace", inplace_everywhere=True)
    compiled, report = run_on_qemu(_model(model_dir, name), board, tmp_path / "build",
                                   options=options, runs=RUNS)
    _check_choice(compiled, name)
    assert report.compared and report.samples == RUNS
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


# The fast in-place form: the planar kernel (its SMLAD rows on the M4/M7) with
# output == input and one channel plane at a time, on the stack (group 0) or,
# too big for it, in scratch (group 1). Layer 1 is the depthwise layer.
PLANAR_CASES = {
    "planar_k3_s1_same": (dict(input_shape=(1, 9, 12, 3),
                               layers=(("pw", 7, 1, "relu6"), ("dw", 3, 1, "same", "relu6"))), 0),
    "planar_k3_s2_same": (dict(input_shape=(1, 11, 9, 5),
                               layers=(("pw", 6, 1, "relu6"), ("dw", 3, 2, "same", None))), 0),
    "planar_k5_s1_same": (dict(input_shape=(1, 9, 10, 5),
                               layers=(("pw", 7, 1, "relu6"), ("dw", 5, 1, "same", "relu6"))), 0),
    "planar_k3_s2_same_scratch": (dict(input_shape=(1, 44, 26, 3),
                                       layers=(("pw", 2, 1, "relu6"), ("dw", 3, 2, "same", None))), 1),
}


@pytest.mark.parametrize("name,board", [(n, b) for n in PLANAR_CASES for b in BOARDS],
                         ids=[f"{n}-{b}" for n in PLANAR_CASES for b in BOARDS])
def test_planar_depthwise_in_place_is_bit_exact_on_qemu(name, board, model_dir, tmp_path):
    import modelgen as mg
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    path = model_dir / f"{name}.tflite"
    if not path.exists():
        path.write_bytes(mg.conv_chain(**PLANAR_CASES[name][0], seed=5))
    options = CompileOptions(memory="inplace", inplace_everywhere=True, inplace_fast_form=True)
    compiled, report = run_on_qemu(path, board, tmp_path / "build", options=options, runs=RUNS)
    ops = [op for op in compiled.graph.ops if compiled.calls[op.index] is not None]
    dw = compiled.calls[ops[1].index]
    assert dw.function.startswith("mcc_depthwise_conv2d_planar") and dw.inplace_input == ops[1].inputs[0]
    assert {f.name: f.value for f in dw.fields}["group"] == PLANAR_CASES[name][1]
    offsets = compiled.plan.tensor_offsets
    assert offsets[ops[1].inputs[0]] == offsets[ops[1].outputs[0]]
    assert report.compared and report.samples == RUNS
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


# The fast in-place form of 1x1 convolutions: mcc_gemm_s8 (its 4x2 assembly
# tiles on the M4/M7) over blocks of four pixels, last to first for an
# expansion, first to last for a projection; 35 pixels: three left over. The
# first three keep their block on the stack; the deep projection (200 -> 5)
# does not fit it (MCC_GEMM_INPLACE_STACK_BLOCK) and takes arena scratch.
GEMM_CASE = dict(input_shape=(1, 5, 7, 4), layers=(("pw", 13, 1, "relu6"), ("pw", 6, 1, None),
                                                   ("pw", 200, 1, None), ("pw", 5, 1, "relu")))


@pytest.mark.parametrize("board", BOARDS)
def test_gemm_1x1_in_place_is_bit_exact_on_qemu(board, model_dir, tmp_path):
    import modelgen as mg
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    path = model_dir / "gemm_inplace_stack.tflite"
    if not path.exists():
        path.write_bytes(mg.conv_chain(**GEMM_CASE, seed=9))
    options = CompileOptions(memory="inplace", inplace_everywhere=True, inplace_fast_form=True)
    compiled, report = run_on_qemu(path, board, tmp_path / "build", options=options, runs=RUNS)
    ops = [op for op in compiled.graph.ops if compiled.calls[op.index] is not None]
    forms = []
    for op in ops:
        call = compiled.calls[op.index]
        assert call.function == "mcc_gemm_inplace_s8" and call.inplace_input == op.inputs[0]
        fields = {f.name: f.value for f in call.fields}
        forms.append((fields["inplace"], fields["row_block"]))
    assert forms == [(2, 2), (1, 2), (2, 2), (1, 4)]
    assert report.compared and report.samples == RUNS
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)
