"""The compiler from end to end: .tflite bytes -> IR -> passes -> kernels -> plan -> C.

`compile_model()` does all the work in memory and raises before anything is
written; `build()` then writes OUT/ atomically (a temporary sibling directory
renamed into place), so a failed build leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import codegen, energy, passes, patching, planner
from .errors import McuCompileError
from .frontend import tflite
from .frontend.tflite import read_model  # noqa: F401  (re-exported for the CLI verbs)
from .ir import Graph
from .kernels import KernelCall, KernelTarget, conv, lower, lower_compact, lower_inplace, lower_inplace_fast


MEMORY_STRATEGIES = ("auto", "layer", "inplace", "patch")


@dataclass(frozen=True)
class CompileOptions:
    name: str = "model"          # C prefix of the generated API
    check_ir: bool = False       # verify the IR after every pass
    memory: str = "auto"         # auto (smallest arena of the rest), layer, inplace or patch
    max_recompute: float = 0.15  # patch-based inference: extra MACs allowed, as a fraction
    memory_slack: float = 0.0    # arena above the smallest allowed for a faster plan, as a fraction
    flash_slack: float = 0.0     # constants' flash above the smallest allowed for int16 weights
                                 # (faster on DSP cores), as a fraction
    patch_stage_ops: int | None = None        # force the split: ops run per patch
    patch_grid: tuple[int, int] | None = None  # force the patch grid (rows, columns)
    compare_tflm: bool = False   # measure TFLM's arena for the report (tflite-micro, in a subprocess)
    inplace_everywhere: bool = False  # every eligible op in place, even where it saves nothing (slower)
    inplace_fast_form: bool = False   # with inplace_everywhere: each op's fast in-place form where it
                                      # has one (more scratch), not the lean one (tests)
    compact_at_peak: bool = True  # scratch-free kernels where scratch would raise the peak (slower there)
    fuse_residuals: bool = True   # residual ADDs run inside the convolution before them (passes.py)


@dataclass(frozen=True)
class StrategyReport:
    strategy: str
    arena_bytes: int
    macs: int
    recompute: float             # extra MACs over layer-by-layer, as a fraction
    inplace_ops: int             # ops that overwrite their input
    patch_stage_ops: int | None = None
    patch_grid: list | None = None
    split_tensor: str | None = None
    chosen: bool = False         # the plan the build uses
    estimated_instructions: int | None = None  # static estimate (energy.KERNEL_COSTS), the core's table


@dataclass(frozen=True)
class LayerReport:
    index: int
    op: str
    input_shapes: list
    output_shapes: list
    macs: int
    kernel: str
    input_offsets: list
    output_offsets: list
    scratch_bytes: int
    scratch_offset: int | None
    wide_weights: bool = False   # int16 weights (--flash-slack)


@dataclass(frozen=True)
class Report:
    model: str
    model_sha256: str
    board: str
    arena_bytes: int
    liveness_lower_bound_bytes: int
    weights_bytes: int
    macs: int
    planner: str
    memory_strategy: str
    strategies: list[StrategyReport]
    tflm_arena_bytes: int | None     # the tflite-micro interpreter's arena, when it is installed
    estimate: dict | None            # static latency/energy estimate (mcucompile.energy), assumptions included
    sram_bytes: int | None
    flash_bytes: int | None
    fits_sram: bool | None
    fits_flash: bool | None
    layers: list[LayerReport] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


@dataclass(frozen=True, eq=False)
class Compiled:
    graph: Graph
    calls: dict[int, KernelCall | None]
    plan: planner.MemoryPlan
    files: dict[str, str]
    report: Report


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(name: str) -> None:
    if not _IDENT.match(name) or name.lower().startswith("mcc_"):
        raise McuCompileError(f"--name {name!r} is not usable as a C prefix: use letters, digits "
                              "and underscores, not starting with a digit or 'mcc_'")


def target_of(board) -> KernelTarget:
    return KernelTarget(dsp=bool(board.dsp), fpu=bool(board.fpu))


@dataclass(frozen=True, eq=False)
class Planned:
    """One memory strategy, lowered and planned: what codegen needs besides names."""
    strategy: str
    graph: Graph
    calls: dict[int, KernelCall | None]
    plan: planner.MemoryPlan
    inplace: dict[int, int]
    patch: patching.PatchConfig | None = None


def _last_reads(graph: Graph) -> dict[int, int]:
    """For each tensor, the last step at which it or a RESHAPE/SQUEEZE alias of it is read."""
    root = planner.alias_roots(graph)
    last: dict[int, int] = {}
    for step, op in enumerate(graph.ops):
        for t in op.inputs:
            if t >= 0:
                r = root.get(t, t)
                last[r] = step
    return {t.id: last.get(root.get(t.id, t.id), -1) for t in graph.tensors}


def _lower_and_plan(graph: Graph, target: KernelTarget, strategy: str, use_inplace: bool,
                    inplace: dict[int, int] | None = None, patch=None,
                    everywhere: bool = False, compact: bool = True,
                    fast_form: bool = False, fuse: bool = True) -> Planned:
    """Lower every op (in place where allowed and worth it) and plan the arena."""
    if fuse:
        graph = _fuse_residuals(graph, target)
    inplace = dict(inplace or {})
    eligible = _inplace_calls(graph, target) if use_inplace else {}
    calls: dict[int, KernelCall | None] = {}
    for op in graph.ops:
        call = eligible.get(op.index)
        if call is not None and everywhere and fast_form:
            call = lower_inplace_fast(op, graph, target) or call
        if call is None:
            call = lower(op, graph, target)
        if call is not None and call.inplace_input is not None:
            inplace[op.outputs[0]] = call.inplace_input
        calls[op.index] = call
    if use_inplace and not everywhere:
        return _keep_inplace_where_it_pays(graph, target, calls, inplace, strategy, patch, compact)
    if compact:
        _compact_at_peak(graph, target, calls, inplace)
    plan = planner.plan(graph, _scratch(calls), inplace=inplace)
    return Planned(strategy, graph, calls, plan, inplace, patch)


def _fuse_residuals(graph: Graph, target: KernelTarget) -> Graph:
    """Residual ADDs into the convolutions before them, where the kernel can (passes.py)."""
    from .kernels.conv import residual_fusable
    return passes.fuse_residual_adds(
        graph, lambda conv, g, x, out, shared: residual_fusable(conv, g, target, x, out, shared))


def _layerwise_bound(graph: Graph, target: KernelTarget, fuse: bool) -> int:
    """The liveness bound of the layer-by-layer graph, its fused residuals written over x."""
    if fuse:
        graph = _fuse_residuals(graph, target)
    fused = {op.outputs[0]: op.inputs[3] for op in graph.ops
             if getattr(op.attrs, "residual", None) is not None}
    return planner.lower_bound(graph, fused)


def _inplace_calls(graph: Graph, target: KernelTarget) -> dict[int, KernelCall]:
    """Op index -> its lean in-place call, for every op that has one and whose
    input is read last by it (and is not a graph output)."""
    root = planner.alias_roots(graph)
    outputs = {root.get(t, t) for t in graph.outputs}
    last = _last_reads(graph)
    eligible = {}
    for step, op in enumerate(graph.ops):
        call = lower_inplace(op, graph, target)
        if call is not None:
            src = call.inplace_input
            if last[src] == step and root.get(src, src) not in outputs:
                eligible[op.index] = call
    return eligible


def _inplace_bound(graph: Graph, target: KernelTarget, fuse: bool = True) -> int:
    """The liveness bound of a patched graph with every op that can run in
    place in place: what ranks patch configurations. Without the in-place ops
    it ranked person_detect's split after op 8 (3x3 patches, 22,288 B, +11%
    MACs) first, while the split after op 4 plans to 19,444 B (8x8, +4.5%)."""
    inplace = patching.paste_inplace(graph)
    if fuse:
        graph = _fuse_residuals(graph, target)
    eligible = _inplace_calls(graph, target)
    for op in graph.ops:
        if op.index in eligible:
            inplace[op.outputs[0]] = eligible[op.index].inplace_input
        elif getattr(op.attrs, "residual", None) is not None:
            inplace[op.outputs[0]] = op.inputs[3]
    return planner.lower_bound(graph, inplace)


def _scratch(calls: dict[int, KernelCall | None]) -> dict[int, int]:
    return {i: c.scratch_bytes for i, c in calls.items() if c is not None and c.scratch_bytes}


def _step_bytes(graph: Graph, calls, inplace: dict[int, int]) -> list[int]:
    """Bytes alive at each step: tensors (in-place groups per step) plus the step's scratch."""
    live = planner.live_bytes(planner.buffers_of(graph, inplace=inplace), len(graph.ops))
    for step, op in enumerate(graph.ops):
        c = calls[op.index]
        live[step] += planner._align(c.scratch_bytes) if c is not None and c.scratch_bytes else 0
    return live


def _keep_inplace_where_it_pays(graph: Graph, target: KernelTarget, calls, inplace: dict[int, int],
                                strategy: str, patch, compact: bool = True) -> Planned:
    """In-place kernels are the memory-lean ones, not the fast ones: keep one only
    where running it out of place would raise the peak; elsewhere use the fast kernel.

    The liveness bound says which steps have room, but placement can fragment, so
    the margin below the peak shrinks until the arena is no larger than with
    every eligible op in place; then `_fast_one_by_one` revisits the ops left in
    place one at a time."""
    lean_calls, lean_inplace = dict(calls), dict(inplace)
    if compact:
        _compact_at_peak(graph, target, lean_calls, lean_inplace)
    # Trials compare first-fit plans; only the plan kept is refined (it can only shrink).
    lean = planner.plan(graph, _scratch(lean_calls), inplace=lean_inplace, refine=False)
    # PASTE_2D and a fused residual have no form out of place.
    fast = {op.index: lower(op, graph, target) for op in graph.ops
            if calls[op.index] is not None and calls[op.index].inplace_input is not None
            and op.kind.value != "PASTE_2D" and getattr(op.attrs, "residual", None) is None}
    if not fast:
        return Planned(strategy, graph, lean_calls,
                        planner.plan(graph, _scratch(lean_calls), inplace=lean_inplace), lean_inplace, patch)
    for margin in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5):
        trial_calls, trial_inplace = dict(calls), dict(inplace)
        live = _step_bytes(graph, trial_calls, trial_inplace)
        peak = max(live, default=0)
        for step, op in enumerate(graph.ops):
            if op.index not in fast:
                continue
            c, f = trial_calls[op.index], fast[op.index]
            src, out = graph.tensor(c.inplace_input), graph.tensor(op.outputs[0])
            change = (planner._align(src.nbytes) + planner._align(out.nbytes)
                      - planner._align(max(src.nbytes, out.nbytes))
                      + planner._align(f.scratch_bytes) - planner._align(c.scratch_bytes))
            if live[step] + change <= margin * peak:
                trial_calls[op.index] = f
                del trial_inplace[op.outputs[0]]
                live[step] += change
        if compact:
            _compact_at_peak(graph, target, trial_calls, trial_inplace)
        plan = planner.plan(graph, _scratch(trial_calls), inplace=trial_inplace, refine=False)
        if plan.arena_bytes <= lean.arena_bytes:
            break
    else:
        trial_calls, trial_inplace = lean_calls, lean_inplace
    trial_calls, trial_inplace = _fast_one_by_one(graph, target, calls, trial_calls, trial_inplace,
                                                  fast, lean.arena_bytes, compact)
    return Planned(strategy, graph, trial_calls,
                   planner.plan(graph, _scratch(trial_calls), inplace=trial_inplace),
                   trial_inplace, patch)


def _fast_one_by_one(graph: Graph, target: KernelTarget, eligible, calls, inplace: dict[int, int],
                     fast: dict[int, KernelCall], limit: int, compact: bool):
    """The margins above decide for all ops at once, and fragmentation can make
    them keep an op in place that had room. Go through the ops still in place,
    the largest estimated saving first, and give each the fastest kernel whose
    first-fit arena stays within `limit`: out of place, else a fast in-place
    form (more scratch than the lean one), else the lean one."""
    core = "cortex-m4" if target.dsp else "cortex-m3"

    def cost(op, call) -> float:
        return _call_instructions(graph, op, call, core)

    step_of = {op.index: step for step, op in enumerate(graph.ops)}
    todo = []
    for op in graph.ops:
        if op.index not in fast or op.outputs[0] not in inplace:
            continue
        lean = eligible[op.index]
        options = [f for f in (fast[op.index], lower_inplace_fast(op, graph, target))
                   if f is not None and cost(op, f) < cost(op, lean)]
        if options:
            todo.append((cost(op, options[-1]) - cost(op, lean), op.index, op, options))
    live = _step_bytes(graph, calls, inplace)
    for _, _, op, options in sorted(todo, key=lambda t: t[:2]):
        for f in options:
            c = calls[op.index]
            src, out = graph.tensor(c.inplace_input), graph.tensor(op.outputs[0])
            change = planner._align(f.scratch_bytes) - planner._align(c.scratch_bytes)
            if f.inplace_input is None:
                change += (planner._align(src.nbytes) + planner._align(out.nbytes)
                           - planner._align(max(src.nbytes, out.nbytes)))
            if live[step_of[op.index]] + change > limit:
                continue  # no placement can fit it
            trial_calls, trial_inplace = dict(calls), dict(inplace)
            trial_calls[op.index] = f
            if f.inplace_input is None:
                del trial_inplace[op.outputs[0]]
            if compact:
                _compact_at_peak(graph, target, trial_calls, trial_inplace)
            # The pairs are a subset of ones already checked, and the plan kept
            # is made and checked in full by the caller: the arena is enough.
            if planner.fits(graph, limit, _scratch(trial_calls), trial_inplace):
                calls, inplace = trial_calls, trial_inplace
                live = _step_bytes(graph, calls, inplace)
                break
    return calls, inplace


def _compact_at_peak(graph: Graph, target: KernelTarget, calls: dict[int, KernelCall | None],
                     inplace: dict[int, int]) -> None:
    """Scratch must not raise the peak: where a fast kernel's scratch would lift its
    step above the tensors' own peak, use the kernel's scratch-free form there."""
    live = planner.live_bytes(planner.buffers_of(graph, inplace=inplace), len(graph.ops))
    peak = max(live, default=0)
    for step, op in enumerate(graph.ops):
        c = calls[op.index]
        if c is None or not c.scratch_bytes:
            continue
        if live[step] + planner._align(c.scratch_bytes) > peak:
            compact = lower_compact(op, graph, target)
            # An in-place call keeps its form unless the compact one writes over the same input.
            if compact is not None and compact.inplace_input == c.inplace_input:
                calls[op.index] = compact


def _strategies(graph: Graph, target: KernelTarget, options: CompileOptions) -> list[Planned]:
    if options.memory not in MEMORY_STRATEGIES:
        raise McuCompileError(f"--memory {options.memory!r}: choose one of {', '.join(MEMORY_STRATEGIES)}")
    want = ("layer", "inplace", "patch") if options.memory == "auto" else (options.memory,)
    out = []
    if "layer" in want:
        out.append(_lower_and_plan(graph, target, "layer", use_inplace=False,
                                   compact=options.compact_at_peak, fuse=options.fuse_residuals))
    if "inplace" in want:
        out.append(_lower_and_plan(graph, target, "inplace", use_inplace=True,
                                   everywhere=options.inplace_everywhere,
                                   fast_form=options.inplace_fast_form,
                                   compact=options.compact_at_peak, fuse=options.fuse_residuals))
    if "patch" in want:
        if options.patch_stage_ops or options.patch_grid:
            stage = options.patch_stage_ops or _default_stage(graph)
            config = patching.PatchConfig(stage, tuple(options.patch_grid or (2, 2)))
            patched = [(config, patching.apply(graph, config))]
        else:
            patched = [(c.config, c.graph) for c in patching.search(
                graph, options.max_recompute,
                bound=lambda g: _inplace_bound(g, target, options.fuse_residuals),
                slack=options.memory_slack)]
            if not patched and options.memory == "patch":
                raise McuCompileError(
                    f"patch-based inference finds no split within --max-recompute "
                    f"{options.max_recompute:.0%} for this model: allow more, or use --memory inplace")
        for config, g in patched:
            out.append(_lower_and_plan(g, target, "patch", use_inplace=True,
                                       inplace=patching.paste_inplace(g), patch=config,
                                       everywhere=options.inplace_everywhere,
                                   fast_form=options.inplace_fast_form,
                                   compact=options.compact_at_peak, fuse=options.fuse_residuals))
    return out


def _pick(candidates: list[Planned], board, slack: float = 0.0) -> Planned:
    """The smallest arena; on a tie, fewer MACs, then the simpler strategy (listed first).
    With `slack`, the fastest plan by the static estimate among those whose arena is
    within that fraction of the smallest (person_detect: 2.5% more arena for 3.9% fewer
    instructions, README)."""
    smallest = min(candidates, key=lambda c: (c.plan.arena_bytes, patching.conv_macs(c.graph)))
    if not slack > 0:
        return smallest
    core = _estimate_core(board)
    limit = smallest.plan.arena_bytes * (1.0 + slack)
    if not board.is_host and board.sram_bytes is not None:
        limit = min(limit, board.sram_bytes)     # never trade the fit away
    near = [c for c in candidates if c.plan.arena_bytes <= limit] or [smallest]
    return min(near, key=lambda c: (_estimated_instructions(c, core), c.plan.arena_bytes))


def _estimate_core(board) -> str:
    """The KERNEL_COSTS table that ranks plans: the board's core (its portable
    kernels' table when built without DSP), else (the host) the table of the
    kernels' instruction set."""
    if board.core is None:
        return "cortex-m4" if board.dsp else "cortex-m3"
    return energy.cost_core(board.core.mcpu, bool(board.dsp))


def _call_instructions(graph: Graph, op, call: KernelCall, core: str) -> float:
    """The static estimate of one kernel call (energy.KERNEL_COSTS)."""
    inputs, outputs = energy.activation_elements(op, graph)
    return energy.kernel_cost(core, call.cost_name)[0].instructions(call.macs, inputs, outputs)


def _estimated_instructions(c: Planned, core: str) -> float:
    return sum(_call_instructions(c.graph, op, c.calls[op.index], core)
               for op in c.graph.ops if c.calls.get(op.index) is not None)


def _flash_for_speed(c: Planned, target: KernelTarget, slack: float, flash_bytes: int | None) -> Planned:
    """int16 weights (conv.widen) for the layers that save the most instructions per
    extra byte (MACs per weight byte: their output pixels), within `slack` times the
    constants' bytes and the board's flash; on DSP cores only, where they save
    SXTB16s. A tile function's code is charged with the first layer that links it.
    The calls that share one weights array (a layer's patches) widen together."""
    if not (slack > 0 and target.dsp):
        return c
    constants = codegen.flash_constant_bytes(c.calls)
    budget = slack * constants
    if flash_bytes is not None:
        budget = min(budget, flash_bytes - constants)
    shared: dict[bytes, list[int]] = {}
    for index, call in c.calls.items():
        if call is not None and call.function in conv.WIDE_FUNCTIONS:
            shared.setdefault(conv.weights_array(call).values.tobytes(), []).append(index)
    groups = [ops for ops in shared.values() if all(conv.widens(c.calls[i]) for i in ops)]
    # Most MACs per byte first; ties in the graph's order, so builds are reproducible.
    groups.sort(key=lambda ops: (-sum(c.calls[i].macs for i in ops)
                                 / conv.wide_extra_bytes(c.calls[ops[0]]), ops[0]))
    calls = dict(c.calls)
    linked: set[str] = set()
    for ops in groups:
        tiles = {conv.wide_tile(calls[i]) for i in ops} - linked
        extra = (conv.wide_extra_bytes(calls[ops[0]])
                 + sum(conv.WIDE_TILE_CODE_BYTES[t] for t in tiles))
        if extra <= budget:
            budget -= extra
            linked |= tiles
            for i in ops:
                calls[i] = conv.widen(calls[i])
    return replace(c, calls=calls)


def _widened_strategies(graph: Graph, board, options: CompileOptions) -> list[Planned]:
    """Every candidate plan with its int16 weights (--flash-slack), so that their
    static estimates, which rank them under --memory-slack, count them alike."""
    target = target_of(board)
    flash = None if board.is_host else board.flash_bytes
    return [_flash_for_speed(c, target, options.flash_slack, flash)
            for c in _strategies(graph, target, options)]


def plan_graph(graph: Graph, board, options: CompileOptions = CompileOptions()) -> Planned:
    """Lower and plan an imported graph as `compile_model` does, without generating code.

    For tools that ask "what would this network need on this board" many times (the
    architecture search): the arena is exactly the one `build` would report."""
    graph = passes.run_passes(graph, check=options.check_ir)
    return _pick(_widened_strategies(graph, board, options), board, options.memory_slack)


def _default_stage(graph: Graph) -> int:
    cands = patching.stage_candidates(graph)
    if not cands:
        raise patching.PatchError("no prefix of this model can run patch by patch: its first op is "
                                  "not a convolution, pooling or element-wise op on 4-D tensors")
    return cands[-1]


def compile_model(model: bytes, board, options: CompileOptions = CompileOptions(),
                  model_name: str = "model") -> Compiled:
    """Everything but writing files. Raises McuCompileError on any user mistake."""
    _check_name(options.name)
    graph = tflite.load(model, name=model_name)
    graph = passes.run_passes(graph, check=options.check_ir)
    candidates = _widened_strategies(graph, board, options)
    base_macs = patching.conv_macs(graph)
    chosen = _pick(candidates, board, options.memory_slack)
    sha = hashlib.sha256(model).hexdigest()
    header_options = {"name": options.name, "memory": f"{options.memory} -> {chosen.strategy}",
                      "max_recompute": f"{options.max_recompute:g}"}
    if options.memory_slack:
        header_options["memory_slack"] = f"{options.memory_slack:g}"
    if options.flash_slack:
        header_options["flash_slack"] = f"{options.flash_slack:g}"
    header = codegen.header_lines(sha, board.name, header_options)
    files = codegen.generate(chosen.graph, chosen.plan, chosen.calls, options.name, header)
    core = _estimate_core(board)
    strategies = [_strategy_report(c, base_macs, c is chosen, round(_estimated_instructions(c, core)))
                  for c in candidates]
    tflm = _tflm_arena(model) if options.compare_tflm else None
    report = _report(chosen, board, model_name, sha, strategies, tflm,
                     layerwise_bound=_layerwise_bound(graph, target_of(board), options.fuse_residuals))
    compiled = Compiled(chosen.graph, chosen.calls, chosen.plan, files, report)
    from .energy import estimate_static
    estimate = estimate_static(compiled, board)
    return Compiled(compiled.graph, compiled.calls, compiled.plan, files,
                    replace(report, estimate=estimate.to_dict()))


def _strategy_report(c: Planned, base_macs: int, chosen: bool, instructions: int) -> StrategyReport:
    macs = patching.conv_macs(c.graph)
    split = None
    if c.patch:
        split = c.graph.tensor(c.graph.ops[0].outputs[0]).name.split("@")[0]
        split = next(op for op in c.graph.ops if op.kind.value == "PASTE_2D")
        split = c.graph.tensor(split.outputs[0]).name.split("@")[0]
    return StrategyReport(
        strategy=c.strategy, arena_bytes=c.plan.arena_bytes, macs=macs,
        recompute=round(macs / base_macs - 1.0, 4) if base_macs else 0.0,
        inplace_ops=len(c.inplace) - (len(patching.paste_inplace(c.graph)) if c.patch else 0),
        patch_stage_ops=c.patch.stage_ops if c.patch else None,
        patch_grid=list(c.patch.grid) if c.patch else None, split_tensor=split, chosen=chosen,
        estimated_instructions=instructions)


_TFLM_ARENA = ("import sys; from mcucompile.reference import tflm_arena_bytes; "
               "print(tflm_arena_bytes(sys.stdin.buffer.read()))")


def _tflm_arena(model: bytes) -> int | None:
    """TFLM's arena for the same model, when the reference package is installed.

    It runs in a child process: TFLM crashes on some valid models (a depthwise
    convolution without bias), and an optional figure must not take the compiler down."""
    import importlib.util
    import subprocess
    import sys
    if importlib.util.find_spec("tflite_micro") is None:
        return None
    try:
        proc = subprocess.run([sys.executable, "-c", _TFLM_ARENA], input=model, capture_output=True,
                              timeout=120)
        return int(proc.stdout.decode().strip().splitlines()[-1]) if proc.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def _report(chosen: Planned, board, model_name: str, sha: str,
            strategies: list[StrategyReport], tflm_arena: int | None, layerwise_bound: int) -> Report:
    graph, calls, plan = chosen.graph, chosen.calls, chosen.plan
    layers = []
    for op in graph.ops:
        c = calls[op.index]
        layers.append(LayerReport(
            index=op.index, op=op.label,
            input_shapes=[list(graph.tensor(t).shape) for t in op.inputs
                          if t >= 0 and not graph.tensor(t).is_const],
            output_shapes=[list(graph.tensor(t).shape) for t in op.outputs],
            macs=c.macs if c else 0, kernel=c.function if c else "(alias: no code)",
            input_offsets=[plan.tensor_offsets[t] for t in op.inputs if t in plan.tensor_offsets],
            output_offsets=[plan.tensor_offsets[t] for t in op.outputs if t in plan.tensor_offsets],
            scratch_bytes=c.scratch_bytes if c else 0,
            scratch_offset=plan.scratch_offsets.get(op.index),
            wide_weights=bool(c and "WIDE_WEIGHTS" in c.paths)))
    weights = codegen.flash_constant_bytes(calls)
    sram = None if board.is_host else board.sram_bytes
    flash = None if board.is_host else board.flash_bytes
    return Report(model=model_name, model_sha256=sha, board=board.name,
                  arena_bytes=plan.arena_bytes, liveness_lower_bound_bytes=layerwise_bound,
                  weights_bytes=weights, macs=sum(layer.macs for layer in layers),
                  planner=plan.algorithm, memory_strategy=chosen.strategy, strategies=strategies,
                  tflm_arena_bytes=tflm_arena, estimate=None, sram_bytes=sram, flash_bytes=flash,
                  fits_sram=None if sram is None else plan.arena_bytes <= sram,
                  fits_flash=None if flash is None else weights <= flash,
                  layers=layers)


KERAS_SUFFIXES = (".keras", ".h5")


def build(model_path: Path, board, out: Path, name: str = "model",
          options: CompileOptions | None = None, calib=None) -> Compiled:
    """Compile and write OUT/model/, OUT/report.json and, for a device board, OUT/firmware/.

    A Keras model is quantized first (full int8, calibrated on `calib`: a data spec
    as `mcucompile quantize` takes it) and its .tflite kept as OUT/<model>_int8.tflite."""
    options = options or CompileOptions(name=name)
    model_path = Path(model_path)
    model = _model_bytes(model_path, calib)
    compiled = compile_model(model, board, options, model_name=model_path.stem)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if model_path.suffix in KERAS_SUFFIXES:
            (tmp / f"{model_path.stem}_int8.tflite").write_bytes(model)
        codegen.write_files(tmp / "model", compiled.files)
        (tmp / "report.json").write_text(compiled.report.to_json())
        if not board.is_host:
            from .firmware import write_firmware
            write_firmware(tmp, board, options.name)
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return compiled


def _model_bytes(model_path: Path, calib) -> bytes:
    if model_path.suffix not in KERAS_SUFFIXES:
        if calib is not None:
            raise McuCompileError(f"--calib quantizes a Keras model; {model_path} is not one "
                                  f"({', '.join(KERAS_SUFFIXES)}): drop --calib for a .tflite")
        return read_model(model_path)
    if calib is None:
        raise McuCompileError(f"{model_path} is a Keras model: give --calib DATA (digits, synthetic, "
                              "an image folder or a .npz) to quantize it to int8 on the way, or "
                              "quantize it first with `mcucompile quantize`")
    if not model_path.is_file():        # before the seconds TensorFlow takes to import
        read_model(model_path)
    from .nas.quantize import quantize_keras
    return quantize_keras(model_path, calib)


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace what this build owns in OUT; leave anything else the user put there."""
    if not out.exists():
        os.replace(tmp, out)
        return
    for entry in sorted(tmp.iterdir()):
        dest = out / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(entry, dest)
