"""Memory strategies: every one is bit-exact, patches cut the peak, and bad requests are refused."""
from __future__ import annotations

import pytest

from harness import assert_bit_exact, host_board
from mcucompile import patching, pipeline, planner
from mcucompile.errors import McuCompileError
from mcucompile.frontend import tflite
from mcucompile.pipeline import CompileOptions


def _shared(shared_models, name: str) -> bytes:
    return (shared_models / f"{name}.tflite").read_bytes()


@pytest.mark.reference
@pytest.mark.parametrize("memory", ["layer", "inplace", "patch"])
def test_person_detect_is_bit_exact_with_every_strategy(shared_models, memory):
    assert_bit_exact(_shared(shared_models, "person_detect"), runs=2, options=CompileOptions(memory=memory))


@pytest.mark.reference
@pytest.mark.parametrize("name", ["micro_speech_quantized", "hello_world_int8"])
@pytest.mark.parametrize("memory", ["layer", "inplace"])
def test_small_shared_models_are_bit_exact_with_every_strategy(shared_models, name, memory):
    assert_bit_exact(_shared(shared_models, name), runs=2, options=CompileOptions(memory=memory))


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("memory", ["layer", "inplace", "patch"])
def test_mobilenet_v2_is_bit_exact_with_every_strategy(memory):
    import modelgen
    assert_bit_exact(modelgen.mobilenet_v2(resolution=48), runs=2, options=CompileOptions(memory=memory))


@pytest.mark.tf
@pytest.mark.reference
@pytest.mark.parametrize("grid", [(2, 3), (4, 4)])
def test_forced_splits_and_grids_are_bit_exact(grid):
    import modelgen
    model = modelgen.mobilenet_v2(resolution=48)
    g = tflite.load(model)
    fits = [k for k in patching.stage_candidates(g)
             if min(g.tensor(g.ops[k - 1].outputs[0]).shape[1:3]) >= max(grid)]
    assert len(fits) >= 3
    for stage in fits[:: 3]:
        assert_bit_exact(model, runs=1, sanitize=False,
                         options=CompileOptions(memory="patch", patch_stage_ops=stage, patch_grid=grid))


@pytest.mark.tf
@pytest.mark.reference
def test_branchy_cnn_is_bit_exact_with_every_strategy():
    import modelgen
    model = modelgen.branchy_cnn()
    for memory in ("layer", "inplace", "auto"):
        assert_bit_exact(model, runs=2, options=CompileOptions(memory=memory))


def test_person_detect_patches_halve_the_layerwise_bound(shared_models):
    """The issue's goal: at most 27,648 B (half of 55,296 B) with at most 15% extra MACs."""
    c = pipeline.compile_model(_shared(shared_models, "person_detect"), host_board(),
                               CompileOptions(compare_tflm=True))
    r = c.report
    assert r.liveness_lower_bound_bytes == 55296
    assert r.arena_bytes <= 27648
    chosen = min(r.strategies, key=lambda s: s.arena_bytes)
    assert chosen.strategy == r.memory_strategy == "patch" and chosen.recompute <= 0.15
    assert r.tflm_arena_bytes in (None, 85264)


@pytest.mark.tf
@pytest.mark.parametrize("resolution", [96, 160])
def test_patches_cut_mobilenet_v2_peak_threefold(resolution):
    import modelgen
    r = pipeline.compile_model(modelgen.mobilenet_v2(resolution=resolution), host_board()).report
    layer = next(s for s in r.strategies if s.strategy == "layer")
    assert layer.arena_bytes >= 3 * r.arena_bytes, [(s.strategy, s.arena_bytes) for s in r.strategies]
    assert max(s.recompute for s in r.strategies) <= 0.15


def test_patch_regions_cover_the_split_tensor_exactly(shared_models):
    g = tflite.load(_shared(shared_models, "person_detect"))
    k = [k for k in patching.stage_candidates(g) if g.tensor(g.ops[k - 1].outputs[0]).shape[1] >= 12][-1]
    p = patching.apply(g, patching.PatchConfig(k, (3, 4)))
    split = g.ops[k - 1].outputs[0]
    shape = g.tensor(split).shape
    covered = [[0] * shape[2] for _ in range(shape[1])]
    for op in p.ops:
        if op.kind.value == "PASTE_2D":
            patch = p.tensor(op.inputs[0]).shape
            for y in range(op.attrs.y, op.attrs.y + patch[1]):
                for x in range(op.attrs.x, op.attrs.x + patch[2]):
                    covered[y][x] += 1
    assert all(c == 1 for row in covered for c in row)
    # Pastes write one buffer in place; the plan must keep them in one place.
    plan = planner.plan(p, inplace=patching.paste_inplace(p))
    offsets = {plan.tensor_offsets[op.outputs[0]] for op in p.ops if op.kind.value == "PASTE_2D"}
    assert len(offsets) == 1


def test_a_split_crossed_by_a_residual_edge_is_refused():
    """A tensor read after the split (a skip connection) would need the whole tensor."""
    from mcucompile import ir
    from mcucompile.ir import Activation, DType, OpKind, Padding
    q = ir.Quant((0.1,), (0,))
    import numpy as np
    t = [ir.Tensor(0, "in", (1, 8, 8, 4), DType.INT8, q),
         ir.Tensor(1, "w", (4, 1, 1, 4), DType.INT8, ir.Quant((0.1,) * 4, (0,) * 4),
                   np.ones((4, 1, 1, 4), np.int8)),
         ir.Tensor(2, "a", (1, 8, 8, 4), DType.INT8, q),
         ir.Tensor(3, "b", (1, 8, 8, 4), DType.INT8, q),
         ir.Tensor(4, "c", (1, 8, 8, 4), DType.INT8, q)]
    conv = ir.Conv2DAttrs(Padding.SAME, 1, 1, 1, 1, Activation.NONE)
    ops = (ir.Op(0, OpKind.CONV_2D, (0, 1, -1), (2,), conv),
           ir.Op(1, OpKind.CONV_2D, (2, 1, -1), (3,), conv),
           ir.Op(2, OpKind.ADD, (2, 3), (4,), ir.ElementwiseAttrs(Activation.NONE)))
    g = ir.Graph("res", tuple(t), ops, (0,), (4,))
    assert 2 not in patching.stage_candidates(g)   # tensor "a" is read again by the ADD
    with pytest.raises(McuCompileError, match="cannot run patch by patch"):
        patching.apply(g, patching.PatchConfig(2, (2, 2)))


def test_bad_patch_requests_get_clear_errors(shared_models):
    model = _shared(shared_models, "person_detect")
    with pytest.raises(McuCompileError, match="grid does not fit"):
        pipeline.compile_model(model, host_board(), CompileOptions(memory="patch", patch_stage_ops=8,
                                                                   patch_grid=(40, 40)))
    with pytest.raises(McuCompileError, match="--memory"):
        pipeline.compile_model(model, host_board(), CompileOptions(memory="tiles"))
    with pytest.raises(McuCompileError, match="no prefix|no split"):
        pipeline.compile_model(_shared(shared_models, "hello_world_int8"), host_board(),
                               CompileOptions(memory="patch"))


@pytest.mark.parametrize("memory", ["inplace", "patch"])
def test_fast_kernels_come_back_where_in_place_saves_nothing(shared_models, memory):
    """The default keeps an in-place (slower) kernel only where it lowers the peak:
    never more memory than with every eligible op in place, and fewer in-place ops."""
    model = _shared(shared_models, "person_detect")
    lean = pipeline.compile_model(model, host_board(), CompileOptions(memory=memory, inplace_everywhere=True))
    fast = pipeline.compile_model(model, host_board(), CompileOptions(memory=memory))
    assert fast.report.arena_bytes <= lean.report.arena_bytes
    count = lambda c: sum(1 for k in c.calls.values() if k is not None and k.inplace_input is not None)  # noqa: E731
    assert count(fast) < count(lean)
    # Where out of place does not fit, the planar kernel in place (a plane of
    # scratch) replaces the ring kernel wherever that plane fits and is faster:
    # on a DSP core (the cost model's choice; on the M3 the ring often wins).
    from mcucompile import boards
    fast = pipeline.compile_model(model, boards.load("qemu-m7"), CompileOptions(memory=memory))
    kinds = [(k.function, k.inplace_input is not None) for k in fast.calls.values() if k is not None]
    assert kinds.count(("mcc_depthwise_conv2d_planar_3x3_s8", True)) >= 2
    assert kinds.count(("mcc_depthwise_conv2d_planar_3x3_s8", True)) > kinds.count(
        ("mcc_depthwise_conv2d_inplace_s8", True))
