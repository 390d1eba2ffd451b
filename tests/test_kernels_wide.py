"""Flash for speed: int16 weights for the GEMM's and band's 4x2 tiles (--flash-slack).

conv.widen turns a call's int8 weights into the int16 words SXTB16 would have
made of them (mcc_conv.h, wide_weights), and pipeline._flash_for_speed gives
them to the layers with the most MACs per weight byte, within the slack.
Here: the layout, which layers the budget buys, that nothing changes without
slack or on a core without SMLAD, and every way through the kernels with
int16 weights bit-exact against TFLM, on the host (the C loops) and under
QEMU (the assembly).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

BAND = "mcc_conv2d_band_s8"
GEMM = "mcc_gemm_s8"


def _compile(model: bytes, board: str = "qemu-m7", **options):
    from mcucompile import boards
    from mcucompile.pipeline import CompileOptions, compile_model
    return compile_model(model, boards.load(board), CompileOptions(**options))


def _wide(compiled) -> list[int]:
    return [op.index for op in compiled.graph.ops
            if compiled.calls[op.index] is not None and "WIDE_WEIGHTS" in compiled.calls[op.index].paths]


def test_wide_weights_are_what_sxtb16_makes_of_the_int8_words():
    from mcucompile.kernels.conv import band_weights, gemm_weights, wide_weights
    rng = np.random.default_rng(1)
    for int8 in (gemm_weights(rng.integers(-128, 128, (5, 10), dtype=np.int8)),
                 band_weights(rng.integers(-128, 128, (3, 3, 3, 6), dtype=np.int8))):
        wide = wide_weights(int8)
        assert wide.dtype == np.int32 and wide.size == int8.size // 2
        for i, word in enumerate(int8.view(np.uint32)):
            # SXTB16 of the word: bytes 0 and 2 as int16 lanes (low first); of
            # the word rotated by 8: bytes 1 and 3.
            b = [((int(word) >> (8 * k)) & 0xFF) for k in range(4)]
            sxtb16 = (b[0] | (0xFF00 if b[0] & 0x80 else 0)) | (b[2] | (0xFF00 if b[2] & 0x80 else 0)) << 16
            ror8 = (b[1] | (0xFF00 if b[1] & 0x80 else 0)) | (b[3] | (0xFF00 if b[3] & 0x80 else 0)) << 16
            assert [int(x) & 0xFFFFFFFF for x in wide[2 * i:2 * i + 2]] == [sxtb16, ror8]


def _gemm_call(rows: int, depth: int, out_c: int, row_block: int = 4, seed: int = 0):
    from mcucompile.kernels import ArrayRef, ConstArray, Field, KernelCall
    from mcucompile.kernels.conv import gemm_weights
    w = np.random.default_rng(seed).integers(-128, 128, (out_c, depth), dtype=np.int8)
    fields = (Field("rows", rows), Field("depth", depth), Field("out_c", out_c),
              Field("row_block", row_block), Field("weights", ArrayRef("weights")))
    return KernelCall("mcc_gemm_s8", "mcc_conv", "mcc_gemm_params", fields, (),
                      (ConstArray("weights", "int8_t", gemm_weights(w)),), macs=rows * depth * out_c)


def test_flash_goes_to_the_most_macs_per_byte_first_and_within_the_board():
    """Synthetic GEMM calls: MACs per weight byte is their row count, so a big
    layer over many rows comes before a small one over few; the budget also pays
    the int16 tile's code once, and never goes past the board's flash."""
    from mcucompile.kernels.conv import WIDE_TILE_CODE_BYTES, wide_extra_bytes, widens
    from mcucompile.kernels import KernelTarget
    from mcucompile.pipeline import Planned, _flash_for_speed
    calls = {0: _gemm_call(rows=4, depth=16, out_c=16, seed=0),   # 256 B, 4 MACs per byte
             1: _gemm_call(rows=64, depth=32, out_c=64, seed=1),  # 2,048 B, 64 per byte
             2: _gemm_call(rows=16, depth=64, out_c=32, seed=2),  # 2,048 B, 16 per byte
             3: _gemm_call(rows=9, depth=16, out_c=8, seed=3),    # 9 rows: its leftover costs more
             4: _gemm_call(rows=1, depth=16, out_c=8, seed=4)}    # one row: no block
    assert [widens(c) for c in calls.values()] == [True, True, True, False, False]
    plan = Planned("layer", None, calls, None, {})
    dsp = KernelTarget(dsp=True)

    def wide(slack, flash=None, target=dsp):
        out = _flash_for_speed(plan, target, slack, flash)
        return [i for i, c in out.calls.items() if "WIDE_WEIGHTS" in c.paths]

    constants = sum(wide_extra_bytes(c) for c in calls.values())     # 4,608 B
    code = WIDE_TILE_CODE_BYTES["gemm"]
    assert wide(0.0) == [] and wide(10.0, target=KernelTarget()) == []
    # The smallest array alone would fit; the budget goes to the most MACs per byte.
    assert wide((2048 + code + 0.5) / constants) == [1]
    assert wide((2048 + code - 1) / constants) == [0]
    assert wide((4096 + 256 + code + 0.5) / constants) == [0, 1, 2]
    # The board's flash caps it: the constants plus what widening adds.
    assert wide(10.0, flash=constants + 2048 + code) == [1]


@pytest.mark.tf
def test_the_budget_bounds_what_the_build_adds():
    import modelgen as mg
    from mcucompile import codegen
    from mcucompile.kernels.conv import wide_extra_bytes, widens
    model = mg.resnet8(resolution=16)
    plain = _compile(model)
    assert _wide(plain) == [] and "MCC_OMIT_WIDE_WEIGHTS" in plain.files["mcc_config.h"]
    base = codegen.flash_constant_bytes(plain.calls)
    for slack in (0.1, 0.3, 10.0):
        compiled = _compile(model, flash_slack=slack)
        wide = _wide(compiled)
        extra = sum(wide_extra_bytes(plain.calls[i]) for i in wide)
        assert codegen.flash_constant_bytes(compiled.calls) == base + extra <= base * (1 + slack)
        assert compiled.report.weights_bytes == base + extra
        assert [layer.index for layer in compiled.report.layers if layer.wide_weights] == wide
        assert ("MCC_OMIT_WIDE_WEIGHTS" in compiled.files["mcc_config.h"]) == (not wide)
    # All of them: the six 3x3 convolutions in bands (not the RGB stem's and
    # stride-2 shortcuts' im2col, nor the classifier's single row).
    eligible = [i for i, c in plain.calls.items() if widens(c)]
    assert _wide(_compile(model, flash_slack=10.0)) == eligible and len(eligible) == 6
    # The estimate counts the SXTB16s saved, in every candidate plan alike.
    fast = _compile(model, flash_slack=10.0).report
    assert fast.estimate["instructions"] < plain.report.estimate["instructions"]
    assert all(f.estimated_instructions < p.estimated_instructions
               for f, p in zip(fast.strategies, plain.report.strategies))
    # No SMLAD, nothing to save: the M3 keeps int8 weights.
    assert _wide(_compile(model, board="qemu-m3", flash_slack=10.0)) == []


@pytest.mark.tf
def test_a_layers_patches_share_their_wide_weights():
    """Patch by patch, each pass of a layer is a call of its own over the same
    weights: they widen together, paid for once."""
    import modelgen as mg
    from mcucompile import codegen
    model = mg.mobilenet_v2(resolution=48, num_classes=3, head_channels=32)
    plain = _compile(model, memory="patch")
    compiled = _compile(model, memory="patch", flash_slack=0.05)
    wide = set(_wide(compiled))
    by_weights: dict[bytes, list[int]] = {}
    for i, call in plain.calls.items():
        if call is not None and call.function in (GEMM, "mcc_gemm_inplace_s8", BAND):
            key = next(a for a in call.arrays if a.suffix == "weights").values.tobytes()
            by_weights.setdefault(key, []).append(i)
    assert all(set(ops) <= wide or not set(ops) & wide for ops in by_weights.values())
    # The patch stage's layers (one call per pass) have the most MACs per byte.
    assert any(len(ops) > 1 and set(ops) <= wide for ops in by_weights.values())
    assert codegen.flash_constant_bytes(compiled.calls) <= codegen.flash_constant_bytes(plain.calls) * 1.05


def test_a_negative_flash_slack_is_refused(tmp_path, shared_models):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "mcucompile", "build",
                        str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m7",
                        "--flash-slack", "-5", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "--flash-slack must be 0 or more" in r.stderr
    assert not (tmp_path / "out").exists()


# Every way through the kernels with int16 weights: the GEMM's blocks with the
# last one moved up (25 rows), an odd last channel, the block on the stack at
# the peak, the residual GEMM's leftover rows repeated to a block; the band at
# stride 1 and 2, on the stack, with a residual; the in-place GEMM (both
# orders, the block on the stack and in scratch, leftover rows via scratch),
# and a band over 6 channels padded to 8. (Fewer than four rows in place take
# mcc_conv2d_1x1_inplace_s8.)
CASES = {
    "gemm_rows25": ("conv2d", dict(input_shape=(1, 5, 5, 12), filters=6, kernel=1,
                                   padding="valid", seed=3), {}),
    "gemm_odd_c": ("conv2d", dict(input_shape=(1, 9, 7, 8), filters=7, kernel=1,
                                  padding="valid", activation="relu6", seed=4), {}),
    "gemm_compact": ("conv2d", dict(input_shape=(1, 7, 9, 12), filters=5, kernel=1,
                                    padding="valid", seed=5), dict(compact_at_peak=True)),
    "band_s1": ("conv2d", dict(input_shape=(1, 11, 27, 16), filters=7, kernel=3,
                               padding="same", activation="relu", seed=6), {}),
    "band_s2": ("conv2d", dict(input_shape=(1, 15, 13, 12), filters=9, kernel=3, stride=2,
                               padding="valid", seed=7), {}),
    "band_s2_compact": ("conv2d", dict(input_shape=(1, 9, 13, 8), filters=5, kernel=3, stride=2,
                                       padding="same", activation="relu6", seed=8),
                        dict(compact_at_peak=True)),
    "residual_band_s1": ("conv_residual", dict(input_shape=(1, 10, 7, 8), filters=17, seed=9), {}),
    "residual_gemm_c21": ("conv_residual", dict(input_shape=(1, 9, 7, 12), filters=21, kernel=1,
                                                seed=10), {}),
    "band_s1_c6_padded": ("conv2d", dict(input_shape=(1, 10, 11, 6), filters=17, kernel=3,
                                         padding="same", activation="relu", seed=11), {}),
    "gemm_inplace": ("conv_chain", dict(input_shape=(1, 5, 7, 4),
                                        layers=(("pw", 13, 1, "relu6"), ("pw", 6, 1, None),
                                                ("pw", 200, 1, None), ("pw", 5, 1, "relu")),
                                        seed=9),
                     dict(memory="inplace", inplace_everywhere=True, inplace_fast_form=True)),
}


def _options(name: str):
    from mcucompile.pipeline import CompileOptions
    extra = dict(CASES[name][2])
    extra.setdefault("memory", "layer")
    extra.setdefault("compact_at_peak", False)
    return CompileOptions(flash_slack=100.0, **extra)


def _model(name: str, model_dir: Path) -> Path:
    import modelgen as mg
    factory, kwargs, _ = CASES[name]
    path = model_dir / f"{name}.tflite"
    if not path.exists():
        path.write_bytes(getattr(mg, factory)(**kwargs))
    return path


def _check_wide(compiled, name: str) -> None:
    """Every convolution of the case took int16 weights, by the way the case is about."""
    calls = [c for c in compiled.calls.values() if c is not None]
    assert calls and all("WIDE_WEIGHTS" in c.paths for c in calls), [(c.function, c.paths) for c in calls]
    fields = [{f.name: f.value for f in c.fields} for c in calls]
    assert all("wide_weights" in f and "weights" not in f for f in fields)
    functions = {c.function for c in calls}
    if name == "gemm_inplace":
        assert functions == {"mcc_gemm_inplace_s8"}
        assert [(f["inplace"], f["row_block"]) for f in fields] == [(2, 2), (1, 2), (2, 2), (1, 4)]
    else:
        assert functions == {BAND if "band" in name else GEMM}
    if name.endswith("_compact"):
        assert all(c.scratch_bytes == 0 for c in calls)
    if name.startswith("residual_"):
        assert compiled.calls[compiled.graph.ops[1].index].cost_variant == "residual+wide"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wide_models")


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("name", list(CASES))
def test_wide_weights_bit_exact_on_the_host(name, model_dir):
    """The C loops (the host's): what `verify` runs of a build for a DSP core."""
    from harness import assert_bit_exact
    from mcucompile import boards
    from mcucompile.pipeline import compile_model
    path = _model(name, model_dir)
    compiled = compile_model(path.read_bytes(), boards.load("qemu-m7"), _options(name))
    _check_wide(compiled, name)
    assert_bit_exact(path.read_bytes(), options=_options(name), board=boards.load("qemu-m7"))


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
@pytest.mark.tf
@pytest.mark.parametrize("name,board", [
    *((name, "qemu-m7") for name in CASES),
    # The M4 runs the same Thumb-2 assembly: the three tile functions once each.
    *(pytest.param(name, "qemu-m4", marks=pytest.mark.slow)
      for name in ("gemm_rows25", "band_s1", "residual_band_s1", "band_s2"))])
def test_wide_weights_bit_exact_on_qemu(name, board, model_dir, tmp_path):
    """The assembly tiles (mcc_gemm_s8w_4x2_dsp, mcc_band_s8w_4x2_s1/s2_dsp)."""
    from harness import run_on_qemu
    compiled, report = run_on_qemu(_model(name, model_dir), board, tmp_path / "build",
                                   options=_options(name))
    _check_wide(compiled, name)
    assert report.compared and report.bit_exact, "\n".join(m.describe() for m in report.mismatches)


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
@pytest.mark.tf
def test_resnet8_with_flash_slack_is_bit_exact_on_qemu(model_dir, tmp_path):
    """A whole network as `build --flash-slack` builds it (the smallest arena,
    stack forms and fused residual ADDs included)."""
    import modelgen as mg
    from harness import run_on_qemu
    from mcucompile.pipeline import CompileOptions
    path = model_dir / "resnet8_16.tflite"
    if not path.exists():
        path.write_bytes(mg.resnet8(resolution=16))
    compiled, report = run_on_qemu(path, "qemu-m7", tmp_path / "build", runs=1,
                                   options=CompileOptions(flash_slack=0.5))
    assert _wide(compiled)
    assert report.compared and report.bit_exact, "\n".join(m.describe() for m in report.mismatches)
