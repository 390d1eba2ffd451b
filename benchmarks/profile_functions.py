"""Instructions per C function of one `mcucompile bench` run: where a kernel's time goes.

    python benchmarks/profile_functions.py MODEL [--board qemu-m7] [--top 30] [bench options...]

QEMU 7 (Debian's) has no TCG plugins, so this asks QEMU itself to log every
translated block (`-d in_asm`: its address and instructions) and every block
executed (`-d exec,nochain`: chaining off, so each execution is logged), through
a wrapper that stands first on PATH. Each execution adds the block's
instruction count to the function containing the block's address (nm of the
firmware). A block that faults or takes an exception part-way is counted whole,
so the figures are a close profile, not the exact `-icount` totals of `bench`.

The log is large (about 100 bytes per block executed): use `--runs 1` (the
default here) on models of a few million instructions.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WRAPPER = """#!/bin/sh
exec {qemu} -d in_asm,exec,nochain -D {log} "$@"
"""
# "IN: " block headers and their instruction lines ("0x00001234:  ...").
_INSN = re.compile(r"^0x([0-9a-f]+):\s")
_TRACE = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")


def blocks(log: Path) -> tuple[dict[int, int], collections.Counter[int]]:
    """Instructions per translated block (by start address), executions per block."""
    sizes: dict[int, int] = {}
    runs: collections.Counter[int] = collections.Counter()
    start = None
    with log.open(errors="replace") as f:
        for line in f:
            if line.startswith("Trace"):
                m = _TRACE.match(line)
                if m:
                    runs[int(m.group(1), 16)] += 1
                start = None
            elif line.startswith("IN:"):
                start = -1
            elif start is not None:
                m = _INSN.match(line)
                if m:
                    pc = int(m.group(1), 16)
                    if start == -1:
                        start = pc
                        sizes[start] = 0
                    sizes[start] += 1
    return sizes, runs


def symbols(elf: Path) -> tuple[list[int], list[str]]:
    out = subprocess.run(["arm-none-eabi-nm", "-n", "--defined-only", str(elf)],
                         check=True, capture_output=True, text=True).stdout
    addrs, names = [], []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            addrs.append(int(parts[0], 16) & ~1)
            names.append(parts[2])
    return addrs, names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--board", default="qemu-m7")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--blocks", metavar="FUNCTION",
                    help="also list FUNCTION's translated blocks: address, size, executions")
    args, rest = ap.parse_known_args()
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        sys.exit("qemu-system-arm is not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        log = tmp_path / "qemu.log"
        wrapper = tmp_path / "bin" / "qemu-system-arm"
        wrapper.parent.mkdir()
        wrapper.write_text(WRAPPER.format(qemu=qemu, log=log))
        wrapper.chmod(0o755)
        env = dict(os.environ, PATH=f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
        build = tmp_path / "build"
        cmd = [sys.executable, "-m", "mcucompile", "bench", args.model, "--board", args.board,
               "--emulator", "qemu", "--runs", "1", "--timeout", "600", "-o", str(build), *rest]
        run = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            sys.exit(f"mcucompile bench failed:\n{run.stderr.strip()}")
        elfs = sorted(build.rglob("*.elf"))
        if not elfs:
            sys.exit(f"no .elf under {build}")
        addrs, names = symbols(elfs[0])
        sizes, runs = blocks(log)
    if not runs:
        sys.exit(f"QEMU logged no executed blocks ({log.name} empty): is {qemu} a QEMU that takes -d exec?")
    per_function: collections.Counter[str] = collections.Counter()
    for start, n in runs.items():
        i = bisect.bisect_right(addrs, start) - 1
        per_function[names[i] if i >= 0 else "?"] += n * sizes.get(start, 0)
    if args.blocks:
        for start in sorted(runs):
            i = bisect.bisect_right(addrs, start) - 1
            if i >= 0 and names[i] == args.blocks:
                print(f"  0x{start:08x}  {sizes.get(start, 0):4} instructions  x{runs[start]:,}")
    total = sum(per_function.values())
    print(f"{total:,} instructions in {len(per_function)} functions (one inference plus boot)")
    for name, n in per_function.most_common(args.top):
        print(f"{n:>12,}  {100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
