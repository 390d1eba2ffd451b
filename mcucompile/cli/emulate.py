"""`mcucompile emulate`: boot a build's firmware in QEMU and keep it running for a serial client."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import BoardError, DeviceError, McuCompileError
from ._common import load_board


def add_parser(sub) -> None:
    p = sub.add_parser("emulate", help="boot built firmware in QEMU and serve its UART until Ctrl-C")
    p.add_argument("out", type=Path, help="output directory of `mcucompile build` for a device board")
    p.add_argument("--board", default=None, help="board name or file (default: the board OUT was built for)")
    p.add_argument("--serial", default="pty",
                   help="pty: a pseudo-terminal (default); tcp: a free TCP port on 127.0.0.1; "
                        "tcp:PORT: that port")
    p.set_defaults(func=run)


def _board_of(out: Path) -> str:
    try:
        return json.loads((out / "report.json").read_text())["board"]
    except (OSError, ValueError, KeyError) as e:
        raise McuCompileError(f"{out} has no readable report.json naming its board: "
                              "is it the output directory of `mcucompile build`? (or pass --board)") from e


def run(args) -> int:
    from .. import emulator
    from ..build import compile_firmware

    spec = emulator.SerialSpec.parse(args.serial)
    board = load_board(args.board or _board_of(args.out))
    if board.is_host or not board.qemu_machine:
        raise BoardError(f"board {board.name!r} has no QEMU stand-in machine (qemu_machine): "
                         "it cannot be emulated")
    emulator.qemu_binary()
    firmware = compile_firmware(args.out, board, "qemu")
    machine = firmware.qemu_machine or board.qemu_machine
    with emulator.boot(firmware.elf, machine, spec) as qemu:
        where = qemu.endpoint if spec.kind == "pty" else qemu.url
        print(f"{board.name} firmware running on QEMU {machine}; its serial port is:\n"
              f"  {where}\n"
              f"e.g. `mcucompile test --port {where} --model MODEL`. Ctrl-C stops it.", flush=True)
        try:
            while qemu.alive():
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("stopping QEMU")
            return 0
        stopped = qemu.status()
    raise DeviceError(f"the emulator stopped: {stopped}")
