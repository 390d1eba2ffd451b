"""`mcucompile test`: run inputs on a board (or an emulator's serial port) and check it against TFLM."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import McuCompileError


def add_parser(sub) -> None:
    p = sub.add_parser("test", help="run inputs on a flashed board over its serial port; "
                                    "check outputs against TFLM, report accuracy and latency")
    p.add_argument("--port", required=True,
                   help="serial port (/dev/ttyACM0, COM3) or pyserial URL (socket://127.0.0.1:PORT)")
    p.add_argument("--board", default=None,
                   help="board name or file: its clock converts counts to ms (default: the device's own)")
    p.add_argument("--model", type=Path, default=None,
                   help="the .tflite the firmware was built from: enables the byte-for-byte TFLM check")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--inputs", type=Path, default=None,
                     help=".npy (one model input, [N, *shape]) or .npz (one array per input, in order)")
    src.add_argument("--random", type=int, default=None, metavar="N",
                     help="N seeded random inputs (default: 10 when --inputs is not given)")
    p.add_argument("--labels", type=Path, default=None,
                   help=".npy of N integer class labels: report top-1 accuracy (argmax of output 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--baud", type=int, default=None, help="baud rate (default: 115200)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for each reply (default: 10)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import hil
    from ..pipeline import read_model
    from ._common import load_board

    model = read_model(args.model) if args.model is not None else None
    board = load_board(args.board) if args.board is not None else None
    samples = None
    if args.inputs is not None:
        if model is None:
            raise McuCompileError("--inputs needs --model: the model says how the inputs are laid out")
        from ..reference import model_info
        samples = hil.load_inputs(args.inputs, model_info(model).input_specs)
    random = 0 if samples is not None else (10 if args.random is None else args.random)
    if samples is None and random < 1:
        raise McuCompileError(f"--random {random}: run at least one input")
    count = len(samples) if samples is not None else random
    labels = hil.load_labels(args.labels, count) if args.labels is not None else None

    with hil.Device.open(args.port, baudrate=args.baud or hil.BAUD,
                         timeout=args.timeout if args.timeout is not None else hil.DEFAULT_TIMEOUT_S) as device:
        if board is not None:
            profile = device.profile()
            if profile.board != board.name:
                print(f"warning: the device reports board {profile.board!r}, not {board.name!r}",
                      file=sys.stderr)
        report = hil.evaluate(device, model=model, samples=samples, random=random, seed=args.seed,
                                labels=labels, clock_hz=board.clock_hz if board is not None else None)
    print(report.summary())
    hil.require_bit_exact(report)
    return 0
