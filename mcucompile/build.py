"""Builds the firmware in OUT/firmware/ with arm-none-eabi-gcc.

    fw = compile_firmware(out, board, "qemu")     # OUT/build/qemu/<prefix>.elf and .bin
    print(fw.summary())

Follows OUT/firmware/firmware.json (written by mcucompile.firmware): each
source compiles to an object in OUT/build/<variant>/obj/, then one link with
the rendered linker script. When the firmware does not fit, ld's
"region `RAM' overflowed by N bytes" becomes a BoardError that says which
memory, by how much, what fills it, and what to try.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .boards import Board
from .errors import BoardError, McuCompileError, ToolchainError
from .firmware import DESCRIPTION, FORMAT, variant as variant_of

INSTALL_HINT = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
_OVERFLOW = re.compile(r"region `([^']+)' overflowed by (\d+) bytes?")


@dataclass(frozen=True)
class SectionSize:
    name: str
    size: int
    address: int           # where it runs (VMA)
    load_address: int      # where it is stored (LMA)
    flash: bool            # occupies flash (stored there)
    sram: bool             # occupies SRAM (runs there)


@dataclass(frozen=True)
class FirmwareBuild:
    board: str
    variant: str
    elf: Path
    bin: Path
    map: Path
    qemu_machine: str | None   # -machine for the qemu variant
    unit: str                  # what the device's counts count
    flash_used: int
    flash_size: int
    sram_used: int             # stack included
    sram_size: int
    stack_bytes: int
    sections: tuple[SectionSize, ...]
    warnings: str              # compiler diagnostics, empty when clean

    def summary(self) -> str:
        lines = [f"{self.elf.name} for {self.board} ({self.variant}): "
                 f"flash {self.flash_used:,} / {self.flash_size:,} B ({_pct(self.flash_used, self.flash_size)}), "
                 f"SRAM {self.sram_used:,} / {self.sram_size:,} B ({_pct(self.sram_used, self.sram_size)}), "
                 f"stack {self.stack_bytes:,} B"]
        for s in self.sections:
            where = "+".join(w for w, on in (("flash", s.flash), ("SRAM", s.sram)) if on)
            lines.append(f"  {s.name:<12} {s.size:>10,} B  {where}")
        return "\n".join(lines)


def _pct(used: int, total: int) -> str:
    return f"{100.0 * used / total:.1f}%" if total else "-"


def toolchain(tool: str = "gcc") -> str:
    """Path of arm-none-eabi-<tool>, or ToolchainError saying how to install it."""
    path = shutil.which(f"arm-none-eabi-{tool}")
    if path is None:
        raise ToolchainError(f"arm-none-eabi-{tool} is not installed: {INSTALL_HINT}")
    return path


def compile_firmware(out: Path, board: Board, variant: str = "qemu") -> FirmwareBuild:
    """Compile and link OUT/firmware/ for one variant; returns the ELF, binary and sizes."""
    out = Path(out)
    spec = variant_of(board, variant)
    desc = _description(out, board, variant)
    vdesc = desc["variants"][variant]
    gcc, objcopy, objdump = toolchain("gcc"), toolchain("objcopy"), toolchain("objdump")

    build = out / "build" / variant
    objdir = build / "obj"
    if objdir.exists():
        shutil.rmtree(objdir)
    objdir.mkdir(parents=True)
    cflags = list(desc["cflags"]) + [f"-I{out / d}" for d in vdesc["include_dirs"]]

    model_sources = sorted(out.glob(vdesc["model_sources"]))
    if not model_sources:
        raise McuCompileError(f"{out / vdesc['model_sources']} matches no file: build the model first")
    size_sources = set(vdesc.get("size_sources", ()))
    size_cflags = list(desc.get("size_cflags", ()))
    jobs = [(out / s, objdir / f"fw_{Path(s).stem}.o", size_cflags if s in size_sources else [])
            for s in vdesc["sources"]]
    jobs += [(s, objdir / f"model_{s.stem}.o", []) for s in model_sources]
    warnings = []
    # One compiler process per source, as many at once as there are CPUs.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(lambda job: _run([gcc, *cflags, *job[2], "-c", str(job[0]), "-o", str(job[1])]),
                                jobs))
    for (src, _, _), r in zip(jobs, results):
        if r.returncode != 0:
            raise ToolchainError(f"arm-none-eabi-gcc failed on {src}:\n{r.stderr.strip()}")
        if r.stderr.strip():
            warnings.append(r.stderr.strip())

    elf = build / f"{desc['model_prefix']}.elf"
    mapfile = build / f"{desc['model_prefix']}.map"
    link = [gcc, *desc["cflags"], *(str(o) for _, o, _ in jobs), "-T", str(out / vdesc["linker_script"]),
            *desc["ldflags"], f"-Wl,-Map={mapfile}", "-o", str(elf)]
    r = _run(link)
    if r.returncode != 0:
        _link_failed(r.stderr, board, spec, [o for _, o, _ in jobs])
    if r.stderr.strip():
        warnings.append(r.stderr.strip())

    binary = elf.with_suffix(".bin")
    r = _run([objcopy, "-O", "binary", str(elf), str(binary)])
    if r.returncode != 0:
        raise ToolchainError(f"arm-none-eabi-objcopy failed:\n{r.stderr.strip()}")

    sections = _sections(objdump, elf, spec.flash, spec.sram)
    stack = next((s.size for s in sections if s.name == ".stack"), 0)
    return FirmwareBuild(
        board=board.name, variant=variant, elf=elf, bin=binary, map=mapfile,
        qemu_machine=spec.qemu_machine, unit=spec.unit,
        flash_used=sum(s.size for s in sections if s.flash), flash_size=spec.flash.size,
        sram_used=sum(s.size for s in sections if s.sram), sram_size=spec.sram.size,
        stack_bytes=stack, sections=sections, warnings="\n".join(warnings))


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def _description(out: Path, board: Board, variant: str) -> dict:
    path = out / "firmware" / DESCRIPTION
    try:
        desc = json.loads(path.read_text())
    except FileNotFoundError:
        raise McuCompileError(f"{path} is missing: build the model for board {board.name!r} first "
                              f"(mcucompile build MODEL --board {board.name} --out {out})") from None
    except ValueError as e:
        raise McuCompileError(f"{path} is not valid JSON ({e}): rebuild it") from None
    if desc.get("format") != FORMAT:
        raise McuCompileError(f"{path} was written by another mcucompile version: rebuild it")
    if desc.get("board") != board.name:
        raise BoardError(f"{out / 'firmware'} was written for board {desc.get('board')!r}, "
                         f"not {board.name!r}: rebuild with --board {board.name}")
    if variant not in desc.get("variants", {}):
        raise BoardError(f"{out / 'firmware'} has no {variant!r} variant for board {board.name!r}")
    return desc


def _link_failed(stderr: str, board: Board, spec, objects: list[Path]) -> None:
    """Turn ld's overflow report into a BoardError; anything else is a ToolchainError."""
    if "nano.specs" in stderr or "nosys.specs" in stderr:
        raise ToolchainError(f"newlib for arm-none-eabi is missing ({stderr.strip().splitlines()[0]}): "
                             f"{INSTALL_HINT}")
    overflows = {}
    for region, nbytes in _OVERFLOW.findall(stderr):
        overflows[region] = int(nbytes)
    if not overflows:
        raise ToolchainError(f"linking the firmware failed:\n{stderr.strip()}")
    parts, hints = [], []
    for region, nbytes in overflows.items():
        if region == spec.sram.name:
            memory, size = "SRAM", spec.sram.size
            biggest = _largest_symbols(objects, "bBdD")
            fill = ", ".join(f"{n} {s:,} B" for n, s in [("stack", board.stack_bytes), *biggest])
            hints.append("a smaller model, `--memory patch` (patch-based inference: less activation "
                         "memory), or a board with more SRAM")
        else:
            memory, size = "flash", spec.flash.size
            biggest = _largest_symbols(objects, "tTrRdD")
            fill = ", ".join(f"{n} {s:,} B" for n, s in biggest)
            hints.append("a smaller model (fewer weights) or a board with more flash")
        parts.append(f"{memory} (region {region}, {size:,} B) overflowed by {nbytes:,} bytes"
                     + (f"; the largest parts: {fill}" if fill else ""))
    raise BoardError(f"the firmware does not fit board {board.name!r} ({spec.name} variant): "
                     + "; ".join(parts) + f". Try {' / '.join(dict.fromkeys(hints))}; "
                     "`mcucompile boards` lists every board's SRAM and flash.")


def _largest_symbols(objects: list[Path], kinds: str, count: int = 3) -> list[tuple[str, int]]:
    """The biggest symbols of the given nm kinds in the object files (best effort: nm may be absent)."""
    nm = shutil.which("arm-none-eabi-nm")
    if nm is None:
        return []
    r = _run([nm, "-S", "--size-sort", *(str(o) for o in objects)])
    found = []
    for line in r.stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in kinds:
            found.append((fields[3], int(fields[1], 16)))
    found.sort(key=lambda x: -x[1])
    return found[:count]


def _sections(objdump: str, elf: Path, flash, sram) -> tuple[SectionSize, ...]:
    """Allocated sections from `objdump -h`: in flash if stored there, in SRAM if they run there."""
    r = _run([objdump, "-h", str(elf)])
    if r.returncode != 0:
        raise ToolchainError(f"arm-none-eabi-objdump failed:\n{r.stderr.strip()}")
    lines = r.stdout.splitlines()
    result = []
    for i, line in enumerate(lines):
        f = line.split()
        if len(f) >= 7 and f[0].isdigit() and i + 1 < len(lines):
            flags = lines[i + 1]
            if "ALLOC" not in flags:
                continue
            name, size, vma, lma = f[1], int(f[2], 16), int(f[3], 16), int(f[4], 16)
            if size == 0:
                continue
            stored = "LOAD" in flags and flash.origin <= lma < flash.origin + flash.size
            runs = sram.origin <= vma < sram.origin + sram.size
            result.append(SectionSize(name, size, vma, lma, stored, runs))
    return tuple(result)
