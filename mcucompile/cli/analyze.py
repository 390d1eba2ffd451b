"""`mcucompile analyze`: the build's figures and whether the model fits, without writing code."""
from __future__ import annotations

from pathlib import Path

from ._common import (add_board_argument, add_memory_arguments, compile_options, format_report,
                      load_board)


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="report memory, MACs and fit for a board; writes nothing")
    p.add_argument("model", type=Path, help="fully int8 .tflite model")
    add_board_argument(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="draw the memory timeline (live bytes per layer, arena, bound, SRAM)")
    add_memory_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import compile_model, read_model
    board = load_board(args.board)
    compiled = compile_model(read_model(args.model), board, compile_options(args), model_name=args.model.stem)
    r = compiled.report
    print(r.to_json() if args.json else format_report(r))
    if args.plot:
        from ..plot import memory_timeline
        memory_timeline(compiled, args.plot, r.sram_bytes)
        print(f"wrote {args.plot}")
    fits = r.fits_sram is not False and r.fits_flash is not False
    return 0 if fits else 2
