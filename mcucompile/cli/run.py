"""`mcucompile run`: build a model for a board, run it on the board's emulator, check it against TFLM."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from ..errors import BoardError, McuCompileError, ToolchainError
from ._common import add_board_argument, add_memory_arguments, compile_options, load_board


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="build for a board, run random inputs in its emulator, "
                                   "compare every output byte with TFLM")
    p.add_argument("model", type=Path, help="fully int8 .tflite model")
    add_board_argument(p)
    p.add_argument("--emulator", choices=("qemu", "renode"), default="qemu",
                   help="qemu: the board's core on a QEMU MPS2 machine, counts instructions (default); "
                        "renode: the real chip's Renode platform (when Renode is installed)")
    p.add_argument("--runs", type=int, default=3, help="random inputs to run (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="keep the build here (default: a temporary directory, removed afterwards)")
    p.add_argument("--name", default="model", help="C prefix of the generated API (default: model)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for each reply of the emulated board (default: 10)")
    add_memory_arguments(p)
    p.set_defaults(func=run, compare_tflm=False)


def _check_emulator(name: str, board) -> None:
    """Fail before a long build, not after."""
    if name == "qemu":
        from ..emulator import qemu_binary
        qemu_binary()
        if not board.qemu_machine:
            raise BoardError(f"board {board.name!r} has no QEMU stand-in machine (qemu_machine): "
                             "it cannot be emulated in QEMU")
    else:
        from .. import renode
        if shutil.which(renode.RENODE) is None:
            raise ToolchainError("Renode is not installed (no `renode` on PATH): install it from "
                                 "its release packages, or use --emulator qemu")
        renode.script_path(board)  # the board must name a Renode platform


@contextlib.contextmanager
def _out_dir(out: Path | None):
    if out is not None:
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="mcucompile-run-") as tmp:
        yield Path(tmp) / "build"


def run(args) -> int:
    from .. import emulator, hil
    from ..build import compile_firmware
    from ..pipeline import build, read_model

    if args.runs < 1:
        raise McuCompileError(f"--runs {args.runs}: run at least one input")
    board = load_board(args.board)
    if board.is_host:
        raise BoardError(f"`run` needs a microcontroller board, not {board.name!r}; "
                         "`mcucompile verify` checks host builds")
    _check_emulator(args.emulator, board)
    model = read_model(args.model)
    timeout = args.timeout if args.timeout is not None else hil.DEFAULT_TIMEOUT_S

    with _out_dir(args.out) as out:
        build(args.model, board, out, options=compile_options(args))
        variant = "qemu" if args.emulator == "qemu" else "board"
        firmware = compile_firmware(out, board, variant)
        print(firmware.summary().splitlines()[0])
        with _boot(args.emulator, firmware, board) as (port, where):
            print(f"running {args.runs} random input(s) on {where}")
            with hil.Device(port, timeout=timeout) as device:
                report = hil.evaluate(device, model=model, random=args.runs, seed=args.seed,
                                      clock_hz=board.clock_hz, progress=_progress(args.runs))
    print(report.summary())
    hil.require_bit_exact(report)
    return 0


@contextlib.contextmanager
def _boot(emulator_name: str, firmware, board):
    """(serial port, description) of the booted emulator; stopped on exit."""
    if emulator_name == "qemu":
        from .. import emulator
        machine = firmware.qemu_machine or board.qemu_machine
        with emulator.boot(firmware.elf, machine, "tcp") as qemu:
            yield qemu.connect(), f"QEMU {machine}"
    else:
        from .. import renode
        with renode.boot(firmware.elf, board) as r:
            yield r.connect(), f"Renode ({renode.script_path(board).name})"


def _progress(total: int):
    def show(k: int, sample) -> None:
        print(f"  input {k + 1}/{total}: {sample.count:,} instructions")
    return show
