"""Helpers shared by the verb modules: board lookup and the summary table."""
from __future__ import annotations

import argparse

from ..pipeline import Report


def add_board_argument(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--board", required=required, default=None if required else "host",
                   help="board name (see `mcucompile boards`) or path to a board file")


def add_memory_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("memory")
    g.add_argument("--memory", choices=("auto", "layer", "inplace", "patch"), default="auto",
                   help="activation memory strategy (default: auto, the smallest arena, or the "
                        "fastest within --memory-slack of it)")
    g.add_argument("--max-recompute", type=float, default=15.0, metavar="PERCENT",
                   help="patch-based inference: extra MACs allowed, in percent (default: 15)")
    g.add_argument("--memory-slack", type=float, default=0.0, metavar="PERCENT",
                   help="accept up to PERCENT more arena than the smallest for a faster plan, by the "
                        "static estimate (default: 0, the smallest arena)")
    g.add_argument("--flash-slack", type=float, default=0.0, metavar="PERCENT",
                   help="accept up to PERCENT more flash for the model's constants to run faster "
                        "on DSP cores: int16 weights for the convolutions that gain most per byte "
                        "(default: 0, int8 weights)")
    g.add_argument("--patch-split", type=int, default=None, metavar="OPS",
                   help="force the split: run the first OPS ops patch by patch")
    g.add_argument("--patches", default=None, metavar="RxC",
                   help="force the patch grid, e.g. 3x3")
    g.add_argument("--fast-at-peak", action="store_true",
                   help="keep fast kernels' scratch at the memory peak (a larger arena, faster code)")
    g.add_argument("--no-fuse-residuals", action="store_true",
                   help="run residual ADDs as ops of their own, not inside the convolution before "
                        "them (for comparison; a fused ADD takes no more arena, and its tables only "
                        "where the ADD would take them too)")


def compile_options(args):
    from ..errors import McuCompileError
    from ..pipeline import CompileOptions
    grid = None
    if args.patches:
        try:
            r, c = (int(x) for x in args.patches.lower().split("x"))
            grid = (r, c)
        except ValueError:
            raise McuCompileError(f"--patches {args.patches!r}: write rows x columns, e.g. 3x3") from None
    # `not x >= 0`: NaN is refused too.
    if not args.max_recompute >= 0:
        raise McuCompileError("--max-recompute must be 0 or more (percent)")
    if not args.memory_slack >= 0:
        raise McuCompileError("--memory-slack must be 0 or more (percent)")
    if not args.flash_slack >= 0:
        raise McuCompileError("--flash-slack must be 0 or more (percent)")
    memory = args.memory
    if (grid or args.patch_split) and memory == "auto":
        memory = "patch"
    return CompileOptions(name=getattr(args, "name", "model"), check_ir=getattr(args, "check_ir", False),
                          memory=memory, max_recompute=args.max_recompute / 100.0,
                          memory_slack=args.memory_slack / 100.0,
                          flash_slack=args.flash_slack / 100.0,
                          patch_stage_ops=args.patch_split, patch_grid=grid,
                          compare_tflm=getattr(args, "compare_tflm", True),
                          compact_at_peak=not args.fast_at_peak,
                          fuse_residuals=not args.no_fuse_residuals)


def load_board(name: str):
    from .. import boards
    return boards.load(name)


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B"


def format_report(r: Report) -> str:
    rows = [("#", "op", "output", "MACs", "kernel")]
    for layer in r.layers:
        rows.append((str(layer.index), layer.op,
                     " ".join("x".join(map(str, s)) for s in layer.output_shapes),
                     f"{layer.macs:,}", layer.kernel + (" (int16 weights)" if layer.wide_weights else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    pct = 100.0 * r.arena_bytes / r.liveness_lower_bound_bytes if r.liveness_lower_bound_bytes else 100.0
    lines += [
        "",
        f"model            {r.model}  (sha256 {r.model_sha256[:12]})",
        f"board            {r.board}",
        f"MACs             {r.macs:,}",
        f"arena            {_kb(r.arena_bytes)}  ({pct:.1f}% of the layer-wise liveness lower bound "
        f"{_kb(r.liveness_lower_bound_bytes)}; planner {r.planner})",
        f"weights (flash)  {_kb(r.weights_bytes)}"
        + (f"  (int16 weights in {sum(x.wide_weights for x in r.layers)} kernel calls, --flash-slack)"
           if any(x.wide_weights for x in r.layers) else ""),
        f"TFLM arena       {_kb(r.tflm_arena_bytes)}" if r.tflm_arena_bytes else
        "TFLM arena       - (pip install tflite-micro to compare)",
        "",
        "memory strategies (* = used; ~instructions: the static estimate, see --memory-slack):",
    ]
    for s in r.strategies:
        mark = "*" if s.chosen else " "
        extra = ""
        if s.patch_grid:
            extra = (f"  first {s.patch_stage_ops} ops in {s.patch_grid[0]}x{s.patch_grid[1]} patches "
                     f"(split at {s.split_tensor}), +{100 * s.recompute:.1f}% MACs")
        elif s.inplace_ops:
            extra = f"  {s.inplace_ops} ops in place"
        speed = f"  ~{s.estimated_instructions / 1e6:.2f} M instructions" if s.estimated_instructions else ""
        lines.append(f"  {mark} {s.strategy:<8} {_kb(s.arena_bytes):>12}{speed}{extra}")
    e = r.estimate or {}
    if e.get("instructions"):
        lines.append(f"estimate         {e['instructions']:,} instructions ({e['instructions_per_mac']:.2f} per MAC)"
                     + (f", {e['latency_ms']:.2f} ms at {e['clock_hz'] / 1e6:g} MHz" if e.get("latency_ms") else "")
                     + (f", {e['energy_uj']:,.0f} uJ per inference" if e.get("energy_uj") else
                        " (no power figure for this board: no energy)"))
    if r.sram_bytes is not None:
        lines.append(f"fits SRAM        {'yes' if r.fits_sram else 'NO'}: arena {_kb(r.arena_bytes)} "
                     f"of {_kb(r.sram_bytes)}")
        lines.append(f"fits flash       {'yes' if r.fits_flash else 'NO'}: weights {_kb(r.weights_bytes)} "
                     f"of {_kb(r.flash_bytes)} (code not counted)")
    return "\n".join(lines)
