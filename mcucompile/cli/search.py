"""`mcucompile search`: the most accurate int8 model for a dataset that fits a board (TinyNAS)."""
from __future__ import annotations

from pathlib import Path

from ..errors import McuCompileError
from ._common import add_board_argument, load_board


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise McuCompileError(f"expected comma-separated numbers, not {text!r}") from None
    if not vals or min(vals) <= 0:
        raise McuCompileError(f"expected positive numbers, not {text!r}")
    return vals


def add_parser(sub) -> None:
    p = sub.add_parser("search", help="search the most accurate int8 network that fits a board "
                                      "(TinyNAS: once-for-all supernet + evolution)")
    add_board_argument(p)
    p.add_argument("--data", required=True,
                   help="digits, synthetic, an image folder (one sub-folder per class) or a .npz with x, y")
    p.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    p.add_argument("--budget", choices=("tiny", "small", "full"), default="small",
                   help="epochs, candidate spaces and population (default: small, minutes on 2 CPU cores)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same result (default: 0)")
    p.add_argument("--latency-ms", type=float, default=None,
                   help="latency budget per inference (the static speed model's estimate)")
    p.add_argument("--energy-uj", type=float, default=None,
                   help="energy budget per inference in microjoules (needs the board's `power` field)")
    p.add_argument("--memory", choices=("layer", "inplace", "auto", "patch"), default="inplace",
                   help="memory strategy the search plans peak SRAM with (default inplace; auto and "
                        "patch add patch-based inference, ~15x slower per candidate)")
    p.add_argument("--widths", default=None, help="candidate width multipliers, e.g. 0.35,0.5,0.75")
    p.add_argument("--resolutions", default=None, help="candidate input resolutions, e.g. 24,32")
    p.add_argument("--compare-random", action="store_true",
                   help="also run random search with the same number of scored subnets, for the report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..nas.search import search
    board = load_board(args.board)
    widths = _floats(args.widths) if args.widths else None
    resolutions = tuple(int(r) for r in _floats(args.resolutions)) if args.resolutions else None
    for name, v in (("--latency-ms", args.latency_ms), ("--energy-uj", args.energy_uj)):
        if v is not None and v <= 0:
            raise McuCompileError(f"{name} must be positive, not {v}")
    result = search(board, args.data, args.out, budget=args.budget, seed=args.seed,
                    latency_ms=args.latency_ms, energy_uj=args.energy_uj, widths=widths,
                    resolutions=resolutions, compare_random=args.compare_random, memory=args.memory,
                    verbose=not args.quiet)
    r = result.report["best"]
    p, c = r["predicted"], r["compiled"]
    print(f"\nbest subnet   {r['name']}  (space w{result.space.width:g}, {result.space.resolution}x"
          f"{result.space.resolution}x{result.space.in_channels} input)")
    print(f"accuracy      test float {r['test_accuracy_float']:.3f}, int8 (TFLM) {r['test_accuracy_int8']:.3f}")
    print(f"peak SRAM     {c['arena_bytes']:,} B arena (predicted {p['peak_sram_bytes']:,} B) of "
          f"{result.report['constraints']['arena_sram_bytes']:,} B available")
    speed = f", ~{p['latency_ms']:.1f} ms (static estimate)" if p["latency_ms"] is not None else ""
    print(f"flash         {c['weights_bytes']:,} B weights + code allowance; {c['macs']:,} MACs{speed}")
    print(f"wall time     {result.report['time']['total']['wall_seconds']:.0f} s")
    print(f"wrote         {', '.join(str(result.out / f) for f in result.report['files'].values())}")
    return 0
