"""Residual ADDs fused into the convolution before them (passes.fuse_residual_adds).

The kernels' epilogues are checked bit for bit under QEMU in
test_kernels_dsp.py (the residual_* cases); here: which ADDs the pass takes
and which it must leave, what it does to the arena, and whole networks
against TFLM on the host.
"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.tf]


def _graph_model(name: str, build) -> bytes:
    """A small Keras network of our own, converted like modelgen's."""
    import modelgen as mg
    return mg._cached(f"fusion_{name}", {"float_io": False, "seed": 0}, build)


def _conv(tf, x, filters=8, kernel=3, act="relu", seed=0):
    return tf.keras.layers.Conv2D(filters, kernel, padding="same", activation=act,
                                  kernel_initializer=tf.keras.initializers.GlorotUniform(seed))(x)


def _compile(model: bytes, board: str = "qemu-m7", **options):
    from mcucompile import boards
    from mcucompile.pipeline import CompileOptions, compile_model
    return compile_model(model, boards.load(board), CompileOptions(**options))


def _labels(compiled) -> list[str]:
    return [op.label for op in compiled.graph.ops]


def test_resnet8_adds_run_inside_convolutions_and_the_arena_loses_a_tensor():
    import modelgen as mg
    model = mg.resnet8()
    fused = _compile(model, memory="layer")
    plain = _compile(model, memory="layer", fuse_residuals=False)
    assert _labels(fused).count("CONV_2D+ADD") == 3 and "ADD" not in _labels(fused)
    assert _labels(plain).count("ADD") == 3
    # The first block held x, the convolution's input and its output (3 x 16 KB);
    # now the output is written over x.
    assert plain.plan.arena_bytes == 49_152
    assert fused.plan.arena_bytes == 32_768
    # The report and the C name the fused layer after both ops.
    names = [layer.op for layer in fused.report.layers]
    assert names.count("CONV_2D+ADD") == 3
    assert ".residual.x_scaled = conv_2d_2_add_3_residual_x," in fused.files["model.c"]
    # Its call writes over the ADD's other operand.
    (op,) = [o for o in fused.graph.ops if o.name == "conv_2d_2_add_3"]
    assert fused.calls[op.index].inplace_input == op.inputs[3]
    assert fused.plan.tensor_offsets[op.outputs[0]] == fused.plan.tensor_offsets[op.inputs[3]]
    # The kernels' residual epilogue is compiled in only where a layer takes it (~1.1 KB).
    assert "RESIDUAL" in fused.calls[op.index].paths
    assert "#define MCC_OMIT_RESIDUAL 1" not in fused.files["mcc_config.h"]
    assert "#define MCC_OMIT_RESIDUAL 1" in plain.files["mcc_config.h"]


def test_the_default_build_of_resnet8_no_longer_needs_patches():
    import modelgen as mg
    compiled = _compile(mg.resnet8())
    chosen = [s for s in compiled.report.strategies if s.chosen]
    assert compiled.report.arena_bytes == 32_768
    assert chosen[0].recompute == 0.0 and chosen[0].patch_grid is None


@pytest.mark.reference
@pytest.mark.parametrize("board,memory", [("host", "auto"), ("qemu-m7", "layer"),
                                          ("qemu-m7", "patch")])
def test_resnet8_with_fused_adds_is_bit_exact_on_the_host(board, memory):
    """Every tensor against TFLM, ASan and UBSan on: im2col and the GEMM on the
    host's choice, the band kernel on the M7's (its portable loops here), and
    fused ADDs inside patches."""
    import modelgen as mg
    from harness import assert_bit_exact
    from mcucompile import boards
    from mcucompile.pipeline import CompileOptions
    options = CompileOptions(memory=memory)
    assert "CONV_2D+ADD" in _labels(_compile(mg.resnet8(), board, memory=memory))
    assert_bit_exact(mg.resnet8(), runs=2, options=options, board=boards.load(board))


def test_an_operand_read_after_the_add_is_not_overwritten():
    """a = conv(in); b = conv(in); c = a + b; out = c + a: `a` is read again
    after the first ADD, so that ADD cannot write over it; the second ADD's
    convolution operand has another reader."""
    def build(tf):
        inp = tf.keras.Input((8, 8, 8), batch_size=1)
        a = _conv(tf, inp, seed=1)
        b = _conv(tf, inp, seed=2)
        c = tf.keras.layers.Add()([a, b])
        return tf.keras.Model(inp, tf.keras.layers.Add()([c, a]))

    compiled = _compile(_graph_model("reread", build), memory="layer")
    # The first ADD may write over b (made after a, dead at the ADD); never over a.
    for op in compiled.graph.ops:
        if op.label == "CONV_2D+ADD":
            a = compiled.graph.ops[0].outputs[0]
            assert op.inputs[3] != a
    assert _labels(compiled).count("ADD") >= 1


def test_depthwise_and_graph_outputs_are_left_alone():
    def build(tf):
        inp = tf.keras.Input((8, 8, 8), batch_size=1)
        a = tf.keras.layers.DepthwiseConv2D(3, padding="same")(inp)
        b = tf.keras.layers.DepthwiseConv2D(3, padding="same")(inp)
        return tf.keras.Model(inp, [tf.keras.layers.Add()([a, b]), a])

    compiled = _compile(_graph_model("depthwise", build), memory="layer")
    assert "CONV_2D+ADD" not in _labels(compiled) and "ADD" in _labels(compiled)


def test_more_channels_than_the_stack_tile_keeps_the_add():
    import modelgen as mg
    from mcucompile.kernels.conv import RESIDUAL_MAX_C
    model = mg.conv_residual(input_shape=(1, 4, 4, 8), filters=RESIDUAL_MAX_C + 4, kernel=1)
    assert "ADD" in _labels(_compile(model, memory="layer"))
    model = mg.conv_residual(input_shape=(1, 4, 4, 8), filters=RESIDUAL_MAX_C, kernel=1)
    assert "CONV_2D+ADD" in _labels(_compile(model, memory="layer"))


def test_the_static_estimate_and_the_cli_know_the_fused_op(tmp_path):
    import json

    import modelgen as mg
    from mcucompile.cli import main
    compiled = _compile(mg.conv_residual(), memory="layer")
    layers = compiled.report.estimate["layers"]
    assert [x["op"] for x in layers] == ["CONV_2D", "CONV_2D+ADD"]
    assert all(x["instructions"] > 0 for x in layers)
    path = tmp_path / "m.tflite"
    path.write_bytes(mg.conv_residual())
    bounds = []
    for flag, ops in (([], ["CONV_2D", "CONV_2D+ADD"]),
                      (["--no-fuse-residuals"], ["CONV_2D", "CONV_2D", "ADD"])):
        out = tmp_path / f"out{len(flag)}"
        assert main(["build", str(path), "--board", "qemu-m7", "--out", str(out),
                     "--memory", "layer", *flag]) == 0
        report = json.loads((out / "report.json").read_text())
        assert [x["op"] for x in report["layers"]] == ops
        bounds.append(report["liveness_lower_bound_bytes"])
    # The layer-wise bound is the fused graph's when the build fuses: the
    # input and x (10x7x8 + 10x7x17 bytes, each aligned); without, the ADD's
    # two operands and its output.
    assert bounds == [560 + 1192, 3 * 1192]


def test_an_add_too_small_for_its_tables_stays_apart():
    """The fused ADD reads 2 KB of tables; an ADD of fewer than
    ADD_TABLE_MIN_ELEMENTS outputs computes each one instead and needs none."""
    import modelgen as mg
    from mcucompile.kernels.elementwise import ADD_TABLE_MIN_ELEMENTS
    per_pixel = ADD_TABLE_MIN_ELEMENTS // 16
    small = mg.conv_residual(input_shape=(1, 4, 4, 8), filters=per_pixel - 1, kernel=1)
    assert "ADD" in _labels(_compile(small, memory="layer"))
    big = mg.conv_residual(input_shape=(1, 4, 4, 8), filters=per_pixel, kernel=1)
    assert "CONV_2D+ADD" in _labels(_compile(big, memory="layer"))


@pytest.mark.reference
def test_the_copies_of_an_add_in_patches_share_one_set_of_tables():
    """Run per patch, one ADD of 1,024 outputs becomes four of 256 (plus
    halos): together they take the tables (one copy in flash), as the ADD
    whole would."""
    from harness import assert_bit_exact
    from mcucompile import boards
    from mcucompile.pipeline import CompileOptions

    def build(tf):
        inp = tf.keras.Input((8, 8, 8), batch_size=1)
        x = _conv(tf, inp, 16, seed=1)
        y = _conv(tf, _conv(tf, x, 16, seed=2), 16, act=None, seed=3)
        return tf.keras.Model(inp, _conv(tf, tf.keras.layers.Add()([x, y]), 4, kernel=1, seed=4))

    model = _graph_model("patches", build)
    compiled = _compile(model, memory="patch", patch_stage_ops=4, patch_grid=(2, 2))
    assert _labels(compiled).count("CONV_2D+ADD") == 4
    assert compiled.files["model.c"].count("_residual_x[256] = {") == 1
    options = CompileOptions(memory="patch", patch_stage_ops=4, patch_grid=(2, 2))
    assert_bit_exact(model, runs=2, options=options, board=boards.load("qemu-m7"))


def test_a_fused_kernel_never_measured_costs_its_way_plus_the_add_epilogue():
    from mcucompile.energy import RESIDUAL_ADD_PER_OUTPUT, kernel_cost
    for core, isa in (("cortex-m7", "dsp"), ("cortex-m3", "portable")):
        # A variant no fit has seen: its way's cost (here the function's), plus the epilogue.
        fused, origin = kernel_cost(core, "mcc_conv2d_band_s8:nowhere+residual")
        base, _ = kernel_cost(core, "mcc_conv2d_band_s8:nowhere")
        assert origin.startswith("not measured fused")
        assert fused.per_output == base.per_output + RESIDUAL_ADD_PER_OUTPUT[isa]
