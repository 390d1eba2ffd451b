"""Pictures of a compiled model: where the memory goes, layer by layer.

matplotlib is optional (pip install mcucompile[plot]) and imported only here,
with the non-interactive Agg backend so it works on headless machines.
"""
from __future__ import annotations

from pathlib import Path

from .errors import MissingDependencyError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("plotting is unavailable: pip install mcucompile[plot]") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def memory_timeline(compiled, path: Path, sram_bytes: int | None = None) -> Path:
    """Live activation bytes per layer as bars, with the arena, the lower bound and the board's SRAM."""
    plt = _pyplot()
    g, plan = compiled.graph, compiled.plan
    labels = [f"{i}:{op.kind.value.replace('_2D', '').replace('DEPTHWISE_CONV', 'DW').lower()}"
              for i, op in enumerate(g.ops)]
    live_kb = [b / 1024 for b in plan.live_bytes]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(labels) + 2), 4.2), dpi=110)
    ax.bar(range(len(live_kb)), live_kb, color="#4C72B0", label="live tensors (KB)")
    ax.axhline(plan.arena_bytes / 1024, color="#C44E52", lw=1.6,
               label=f"arena {plan.arena_bytes / 1024:.1f} KB")
    ax.axhline(plan.lower_bound / 1024, color="#55A868", lw=1.2, ls="--",
               label=f"liveness lower bound {plan.lower_bound / 1024:.1f} KB")
    if sram_bytes:
        ax.axhline(sram_bytes / 1024, color="black", lw=1.2, ls=":",
                   label=f"board SRAM {sram_bytes / 1024:.0f} KB")
        top = max(max(live_kb, default=0), plan.arena_bytes / 1024)
        ax.set_ylim(0, max(top, sram_bytes / 1024) * 1.1)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel("KB")
    ax.set_title(f"{compiled.report.model}: activation memory per layer")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
