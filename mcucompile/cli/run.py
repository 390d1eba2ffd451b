"""`mcucompile run`: build a model for a board, run it on the board's emulator, check it against TFLM."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from ..errors import BoardError, McuCompileError, ToolchainError
from ._common import add_board_argument, load_board


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="build for a board, run random inputs in its emulator, "
                                   "compare every output byte with TFLM")
    p.add_argument("model", type=Path, help="fully int8 .tflite model")
    add_board_argument(p)
    p.add_argument("--emulator", choices=("qemu", "renode"), default="qemu",
                   help="qemu: the board's core on a QEMU MPS2 machine, counts instructions (default)")
    p.add_argument("--runs", type=int, default=3, help="random inputs to run (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="keep the build here (default: a temporary directory, removed afterwards)")
    p.add_argument("--name", default="model", help="C prefix of the generated API (default: model)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for each reply of the emulated board (default: 10)")
    p.set_defaults(func=run)


def _check_emulator(name: str) -> None:
    from ..emulator import qemu_binary
    if name == "qemu":
        qemu_binary()  # fail before a long build, not after
    elif shutil.which("renode") is None:
        raise ToolchainError("Renode is not installed (no `renode` on PATH): install it from "
                             "https://renode.io, or use --emulator qemu")
    else:
        raise McuCompileError("--emulator renode is not supported yet: use --emulator qemu")


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
    if not board.qemu_machine:
        raise BoardError(f"board {board.name!r} has no QEMU stand-in machine (qemu_machine): "
                         "it cannot be emulated")
    _check_emulator(args.emulator)
    model = read_model(args.model)
    timeout = args.timeout if args.timeout is not None else hil.DEFAULT_TIMEOUT_S

    with _out_dir(args.out) as out:
        build(args.model, board, out, name=args.name)
        firmware = compile_firmware(out, board, "qemu")
        machine = firmware.qemu_machine or board.qemu_machine
        print(firmware.summary().splitlines()[0])
        print(f"running {args.runs} random input(s) on QEMU {machine}")
        with emulator.boot(firmware.elf, machine, "tcp") as qemu:
            with hil.Device(qemu.connect(), timeout=timeout) as device:
                report = hil.evaluate(device, model=model, random=args.runs, seed=args.seed,
                                        clock_hz=board.clock_hz, progress=_progress(args.runs))
    print(report.summary())
    hil.require_bit_exact(report)
    return 0


def _progress(total: int):
    def show(k: int, sample) -> None:
        print(f"  input {k + 1}/{total}: {sample.count:,} instructions")
    return show
