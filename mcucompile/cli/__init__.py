"""The `mcucompile` command: a thin dispatcher over one module per verb.

Each verb module defines `add_parser(subparsers)` and `run(args) -> int`.
User mistakes (McuCompileError) print one line and exit non-zero; `--debug`
shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import McuCompileError

VERBS = ("build", "analyze", "verify", "boards", "run", "emulate", "test", "bench",
         "flash", "quantize", "search", "train")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcucompile",
                                description="Compile int8 TFLite models to C for microcontrollers.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for verb in VERBS:
        try:
            mod = importlib.import_module(f"{__name__}.{verb}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{verb}":
                continue  # verb not built yet
            raise
        mod.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except McuCompileError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
