"""`mcucompile build`: compile a model to C (and firmware for a device board)."""
from __future__ import annotations

from pathlib import Path

from ._common import (add_board_argument, add_memory_arguments, compile_options, format_report,
                      load_board)


def add_parser(sub) -> None:
    p = sub.add_parser("build", help="compile a .tflite model to C for a board")
    p.add_argument("model", type=Path, help="fully int8 .tflite model, or a Keras model with --calib")
    p.add_argument("--calib", default=None,
                   help="quantize a Keras model (.keras, .h5) first, calibrated on this data: "
                        "digits, synthetic, an image folder or a .npz (x[, y])")
    add_board_argument(p)
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output directory (default: ./<model>-<board>)")
    p.add_argument("--name", default="model", help="C prefix of the generated API (default: model)")
    p.add_argument("--check-ir", action="store_true", help="verify the IR after every pass")
    add_memory_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline import build
    board = load_board(args.board)
    out = args.out or Path(f"{args.model.stem}-{board.name}")
    compiled = build(args.model, board, out, options=compile_options(args), calib=args.calib)
    print(format_report(compiled.report))
    print(f"\nwrote {out}/model/ ({len(compiled.files)} files) and {out}/report.json")
    return 0
