"""`mcucompile boards`: the boards a model can be built for, with their limits."""
from __future__ import annotations

import argparse
import json

from .. import boards


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("boards", help="list the target boards and their memory limits",
                              description="List the boards in boards/ (or check one board file) "
                                          "with their core, clock, flash and SRAM.")
    p.add_argument("board", nargs="?", help="show only this board (a name or a .yaml path); "
                                            "a path is checked against the schema")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    selected = [boards.load(args.board)] if args.board else boards.list_boards()
    if args.json:
        print(json.dumps([_as_dict(b) for b in selected], indent=2))
        return 0
    rows = [("BOARD", "CORE", "CLOCK", "FLASH", "SRAM", "DSP", "FPU", "QEMU", "DESCRIPTION")]
    for b in selected:
        if b.is_host:
            rows.append((b.name, "host", "-", "-", "-", "-", "-", "-", b.description))
            continue
        rows.append((b.name, b.core.name, f"{b.clock_hz / 1e6:g} MHz", _size(b.flash_bytes),
                     _size(b.sram_bytes), "yes" if b.dsp else "no", b.fpu_unit or "no",
                     b.qemu_machine or "-", b.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MB"
    return f"{n / 1024:g} KB"


def _as_dict(b: boards.Board) -> dict:
    d = {"name": b.name, "description": b.description, "is_host": b.is_host}
    if not b.is_host:
        d.update(core=b.core.name, gcc_flags=list(b.gcc_flags()), dsp=b.dsp, fpu=b.fpu,
                 clock_hz=b.clock_hz, flash_bytes=b.flash_bytes, sram_bytes=b.sram_bytes,
                 stack_bytes=b.stack_bytes, uart=b.uart.kind, counter=b.counter.kind,
                 qemu_machine=b.qemu_machine,
                 platformio=None if b.platformio is None else
                 {"board": b.platformio.board, "platform": b.platformio.platform})
    return d
