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
    labels = [f"{i}:{op.label.replace('_2D', '').replace('DEPTHWISE_CONV', 'DW').lower()}"
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


# Bar colours by kind of layer, so the convolutions that dominate stand out.
_KIND_COLOURS = {"CONV_2D": "#4C72B0", "DEPTHWISE_CONV_2D": "#55A868", "FULLY_CONNECTED": "#C44E52"}
_OTHER_COLOUR = "#8C8C8C"


def latency_per_layer(estimate, path: Path, unit: str = "auto") -> Path:
    """The cost of each layer as bars: instructions, or milliseconds at the board's clock.

    `estimate` is an energy.Estimate (static or measured). unit "auto" draws
    milliseconds when the estimate has a latency, else instructions.
    """
    if unit not in ("auto", "ms", "instructions"):
        raise ValueError(f"unit must be auto, ms or instructions, not {unit!r}")
    layers = estimate.layers
    if unit == "auto":
        unit = "ms" if layers and all(layer.latency_ms is not None for layer in layers) else "instructions"
    if unit == "ms":
        values = [layer.latency_ms or 0.0 for layer in layers]
        ylabel = f"ms at {estimate.clock_hz / 1e6:g} MHz"
        total = f"{sum(values):.2f} ms"
    else:
        values = [(layer.instructions or 0) / 1e6 for layer in layers]
        ylabel = "million instructions"
        total = f"{sum(values):.2f} M instructions"
    plt = _pyplot()
    labels = [f"{layer.index}:{layer.op.replace('_2D', '').replace('DEPTHWISE_CONV', 'DW')}"
              .replace("FULLY_CONNECTED", "FC").lower() for layer in layers]
    colours = [_KIND_COLOURS.get(layer.op, _OTHER_COLOUR) for layer in layers]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(labels) + 2), 4.2), dpi=110)
    ax.bar(range(len(values)), values, color=colours)
    for kind, colour in [*_KIND_COLOURS.items(), ("other", _OTHER_COLOUR)]:
        if any((layer.op == kind) if kind != "other" else layer.op not in _KIND_COLOURS for layer in layers):
            ax.bar([0], [0], color=colour, label=kind.lower())  # legend entry only
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel(ylabel)
    how = "measured in QEMU" if estimate.source == "qemu" else "estimated"
    ax.set_title(f"{estimate.model} on {estimate.board}: cost per layer\n({how}; total {total})", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
