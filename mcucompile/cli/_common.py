"""Helpers shared by the verb modules: board lookup and the summary table."""
from __future__ import annotations

import argparse

from ..pipeline import Report


def add_board_argument(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--board", required=required, default=None if required else "host",
                   help="board name (see `mcucompile boards`) or path to a board file")


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
                     f"{layer.macs:,}", layer.kernel))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    pct = 100.0 * r.arena_bytes / r.liveness_lower_bound_bytes if r.liveness_lower_bound_bytes else 100.0
    lines += [
        "",
        f"model            {r.model}  (sha256 {r.model_sha256[:12]})",
        f"board            {r.board}",
        f"MACs             {r.macs:,}",
        f"arena            {_kb(r.arena_bytes)}  ({pct:.1f}% of the liveness lower bound "
        f"{_kb(r.liveness_lower_bound_bytes)}; planner {r.planner})",
        f"weights (flash)  {_kb(r.weights_bytes)}",
    ]
    if r.sram_bytes is not None:
        lines.append(f"fits SRAM        {'yes' if r.fits_sram else 'NO'}: arena {_kb(r.arena_bytes)} "
                     f"of {_kb(r.sram_bytes)}")
        lines.append(f"fits flash       {'yes' if r.fits_flash else 'NO'}: weights {_kb(r.weights_bytes)} "
                     f"of {_kb(r.flash_bytes)} (code not counted)")
    return "\n".join(lines)
