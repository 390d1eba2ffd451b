"""Fit the static estimate's per-kernel instruction costs to QEMU measurements.

    python benchmarks/speed_models.py --json /tmp/speed.json
    python benchmarks/speed_fit.py /tmp/speed.json [--write]

For every (core, kernel function) it fits
    instructions = per_mac x MACs + per_input x input elements
                   + per_output x output elements + per_call
over the measured layers (energy.KernelCost), with non-negative coefficients.
Each layer's squared error is weighted by 1/instructions, a compromise between
absolute error (the big layers that make up the total) and relative error (the
small ones).
--write replaces the KERNEL_COSTS block of mcucompile/energy.py, with the
measurements' provenance. Then it prints how far the static estimate is from
each measured model.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ENERGY_PY = Path(__file__).resolve().parents[1] / "mcucompile" / "energy.py"
_BLOCK = re.compile(r"# BEGIN KERNEL_COSTS\n.*?# END KERNEL_COSTS\n", re.S)


TERMS = 4   # MACs, input elements, output elements, 1


# Fewer distinct layer shapes than this: fit two terms at most (say per MAC
# and per call). Two or three shapes pinned three or four terms to whatever
# the samples happened to be (a fixed cost of 99 K instructions per call).
FEW_SHAPES = 4


def fit(samples: list[tuple[int, int, int, int]]) -> tuple[float, ...]:
    """Non-negative (per_mac, per_input, per_output, per_call) for samples (macs, inputs, outputs, y),
    minimising sum((estimate - y)^2 / y): least squares over every subset of the
    terms (15 small solves), keeping the best whose coefficients are all >= 0;
    at most two terms for a kernel measured on fewer than FEW_SHAPES shapes."""
    X = np.array([[m, i, o, 1.0] for m, i, o, _ in samples], dtype=float)
    y = np.array([max(s[3], 1) for s in samples], dtype=float)
    w = 1.0 / np.sqrt(y)
    A, t = X * w[:, None], y * w
    best, best_err = (0.0, 0.0, 0.0, float(np.median(y))), np.inf
    shapes = len({s[:3] for s in samples})
    for mask in range(1, 1 << TERMS):
        cols = [i for i in range(TERMS) if mask >> i & 1]
        if shapes < FEW_SHAPES and len(cols) > 2:
            continue
        if np.linalg.matrix_rank(A[:, cols]) < len(cols):
            continue   # terms proportional across all samples: a smaller subset covers it
        coef, *_ = np.linalg.lstsq(A[:, cols], t, rcond=None)
        if np.any(coef < 0):
            continue
        full = np.zeros(TERMS)
        full[cols] = coef
        err = float(np.sum((A @ full - t) ** 2))
        if err < best_err * (1 - 1e-9):
            best, best_err = tuple(float(c) for c in full), err
    return best


def kernel_costs(rows: list[dict]) -> dict[str, dict[str, tuple]]:
    samples: dict[tuple[str, str], list[tuple[int, int, int, int]]] = defaultdict(list)
    for row in rows:
        if not row.get("native", True):
            continue   # a --portable build on a DSP core: not what that core normally runs
        for layer in row["layers"]:
            samples[(row["core"], layer["kernel"])].append(
                (layer["macs"], layer["input_elements"], layer["output_elements"], layer["instructions"]))
    table: dict[str, dict[str, tuple]] = defaultdict(dict)
    for (core, function), s in sorted(samples.items()):
        table[core][function] = (*fit(s), len(s))
    return table


def estimate(cost: tuple, layer: dict) -> float:
    a, b, c, d, _ = cost
    return a * layer["macs"] + b * layer["input_elements"] + c * layer["output_elements"] + d


def render(table, provenance: str, models: list[str]) -> str:
    lines = ["# BEGIN KERNEL_COSTS",
             f"KERNEL_COSTS_PROVENANCE = {(provenance + '; models ' + ', '.join(models))!r}",
             "KERNEL_COSTS: dict[str, dict[str, KernelCost]] = {"]
    for core in sorted(table):
        lines.append(f"    {core!r}: {{")
        for function, (a, b, c, d, n) in sorted(table[core].items()):
            lines.append(f"        {function!r}: KernelCost({a:.4g}, {b:.4g}, {c:.4g}, {d:.4g}, {n}),")
        lines.append("    },")
    lines += ["}", "# END KERNEL_COSTS", ""]
    return "\n".join(lines)


def check(rows: list[dict], table) -> list[str]:
    """Static estimate against measurement, per model and configuration."""
    out = ["| model | board | DSP | build | measured | static estimate | error |",
           "|---|---|---|---|---|---|---|"]
    for row in rows:
        if not row.get("native", True):
            continue
        costs = table[row["core"]]
        est = sum(estimate(costs[x["kernel"]], x) for x in row["layers"])
        measured = sum(x["instructions"] for x in row["layers"])
        build = "all in place (fit only)" if row.get("fit_only") else "default"
        out.append(f"| {row['model']} | {row['board']} | {'yes' if row['dsp'] else 'no'} | {build} | {measured:,} | "
                   f"{est:,.0f} | {100 * (est / measured - 1):+.1f}% |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="JSON written by speed_models.py --json")
    ap.add_argument("--write", action="store_true", help="update KERNEL_COSTS in mcucompile/energy.py")
    args = ap.parse_args()
    data = json.loads(args.results.read_text())
    rows = data["rows"]
    table = kernel_costs(rows)
    block = render(table, data["provenance"], sorted({r["model"] for r in rows}))
    if args.write:
        text = ENERGY_PY.read_text()
        if not _BLOCK.search(text):
            sys.exit(f"{ENERGY_PY} has no KERNEL_COSTS block between its BEGIN/END markers")
        ENERGY_PY.write_text(_BLOCK.sub(lambda _: block, text, count=1))
        print(f"updated {ENERGY_PY}", file=sys.stderr)
    else:
        print(block)
    print("\n".join(check(rows, table)))


if __name__ == "__main__":
    main()
