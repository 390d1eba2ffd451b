"""`mcucompile flash`: build a board's firmware with PlatformIO and flash it (`pio run -t upload`)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import BoardError, McuCompileError


def add_parser(sub) -> None:
    p = sub.add_parser("flash", help="flash the firmware of a build onto its board with PlatformIO",
                       description="Runs `pio run -t upload` on the PlatformIO project that "
                                   "`mcucompile build --board BOARD` wrote into OUT (platformio.ini): "
                                   "PlatformIO builds the board firmware and flashes it through the "
                                   "board's debug probe. Then `mcucompile test --port PORT` talks to it.")
    p.add_argument("out", type=Path, help="output directory of `mcucompile build` for a real board")
    p.add_argument("--board", default=None,
                   help="board name or file (default: the board OUT was built for)")
    p.add_argument("--port", default=None,
                   help="upload port, for boards that flash over a serial port or a mass-storage drive "
                        "(default: PlatformIO finds it)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not show PlatformIO's output")
    p.set_defaults(func=run)


def _board_of(out: Path) -> str:
    try:
        return json.loads((out / "report.json").read_text())["board"]
    except (OSError, ValueError, KeyError):
        raise McuCompileError(f"{out} has no readable report.json naming its board: is it the output "
                              "directory of `mcucompile build`? (or pass --board)") from None


def run(args) -> int:
    from .. import platformio
    from ._common import load_board

    board = load_board(args.board or _board_of(args.out))
    if board.is_host or board.platformio is None:
        raise BoardError(f"board {board.name!r} cannot be flashed: it has no PlatformIO ids "
                         f"(field 'platformio' of {board.source})")
    platformio.pio_binary()  # say that PlatformIO is missing before anything else
    print(f"flashing {args.out} onto {board.name} ({board.description}) with PlatformIO "
          f"({board.platformio.platform} / {board.platformio.board})", flush=True)
    platformio.flash(args.out, board, port=args.port,
                              echo=None if args.quiet else (lambda line: print(line, flush=True)))
    print(f"flashed {board.name}: its serial port now speaks the mcucompile protocol at "
          f"{board.uart.baud} baud, e.g. `mcucompile test --port /dev/ttyACM0 --board {board.name}`")
    return 0
