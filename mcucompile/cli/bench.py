"""`mcucompile bench`: build for a board, run the firmware in QEMU, report what an inference costs.

    mcucompile bench person_detect.tflite --board stm32f746 --emulator qemu [--json]
                     [--runs 3] [--rate 1/s] [--battery 220mAh]

QEMU runs the board's firmware on a machine with the same core and counts
executed instructions exactly (-icount shift=0), overall and per layer. The
latency/energy model (mcucompile.energy) turns them into cycles, milliseconds
and microjoules at the board's clock and power; the linker map gives flash by
what fills it, the firmware's stack painting the stack high-water mark.

`measure()` does the work and returns a BenchResult; the benchmarks call it too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..energy import BatteryLife, Estimate
from ..errors import BoardError, DeviceError, McuCompileError
from ._common import add_board_argument, add_memory_arguments, compile_options, load_board

DEFAULT_RATE = "1/s"
DEFAULT_BATTERY = "220mAh"   # a CR2032 coin cell


def add_parser(sub) -> None:
    from ..energy import DEFAULT_CELL_VOLTAGE, DEFAULT_SLEEP_UW
    p = sub.add_parser("bench", help="build for a board, run it in QEMU, report instructions, latency, "
                                     "energy, battery life and memory, overall and per layer")
    p.add_argument("model", type=Path, help="fully int8 .tflite model")
    add_board_argument(p)
    p.add_argument("--emulator", choices=("qemu", "renode"), default="qemu",
                   help="qemu: the board's core on a QEMU MPS2 machine, counting instructions (default)")
    p.add_argument("--runs", type=int, default=3, help="random inputs to run (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--json", action="store_true", help="print everything as one JSON object")
    g = p.add_argument_group("energy model")
    g.add_argument("--rate", default=DEFAULT_RATE,
                   help=f"inferences per time for the battery life: 1/s, 10/min, 2/h, 5Hz (default {DEFAULT_RATE})")
    g.add_argument("--battery", default=DEFAULT_BATTERY,
                   help=f"battery capacity, e.g. 220mAh or 2.6Ah (default {DEFAULT_BATTERY}, a CR2032)")
    g.add_argument("--cell-voltage", type=float, default=DEFAULT_CELL_VOLTAGE, metavar="V",
                   help=f"the cell's nominal voltage (default {DEFAULT_CELL_VOLTAGE:g}, CR2032)")
    g.add_argument("--sleep-uw", type=float, default=DEFAULT_SLEEP_UW, metavar="UW",
                   help=f"power while sleeping between inferences, microwatts (default {DEFAULT_SLEEP_UW:g})")
    g.add_argument("--active-mw", type=float, default=None, metavar="MW",
                   help="power while inferring, milliwatts (default: the board file's power.active_mw)")
    g.add_argument("--wait-states", type=int, default=None, metavar="N",
                   help="flash wait states at the board clock (default: estimated from the clock)")
    p.add_argument("--portable", action="store_true",
                   help="compile the portable C kernels even for a DSP core (to measure the DSP speed-up)")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="also draw the cost of each layer as a bar chart")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="keep the build here (default: a temporary directory, removed afterwards)")
    p.add_argument("--name", default="model", help="C prefix of the generated API (default: model)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for each reply of the emulated board (default: 10)")
    add_memory_arguments(p)
    p.set_defaults(func=run, compare_tflm=False)   # TFLM's arena is not a bench figure


# ---------------------------------------------------------------------------
# What a bench run finds
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FlashUse:
    """Flash bytes by what fills them, from the linker map (sections placed in flash)."""
    used: int                   # every flash section (objdump), .data's initial values included
    size: int
    weights: int                # the model's constant arrays as codegen emits them
    model_constants: int        # all read-only data of the model's .c (weights + layer parameters)
    model_code: int             # invoke() and the kernel library, code and tables
    firmware: int               # runtime: startup, protocol, UART and counter drivers
    c_library: int              # newlib-nano and libgcc
    other: int                  # vectors, alignment padding, .data initial values

    @property
    def beyond_weights(self) -> int:
        return self.used - self.weights


@dataclass(frozen=True)
class RamUse:
    used: int                   # every SRAM section, the reserved stack included
    size: int
    arena: int                  # the model's activation arena
    stack_reserved: int
    stack_used: int             # high-water mark since boot (stack painting)


@dataclass(frozen=True)
class BenchResult:
    model: str
    board: str
    qemu_machine: str
    counts: tuple[int, ...]     # instructions of each run's inference
    estimate: Estimate          # measured instructions, with latency and energy
    flash: FlashUse
    ram: RamUse
    sections: tuple             # build.SectionSize
    kernels: tuple[str, ...]    # C functions the layers call
    dsp: bool                   # the kernels' DSP inner loops were compiled in

    @property
    def instructions(self) -> int:
        return self.estimate.instructions


def _random_inputs(compiled, seed: int) -> bytes:
    """One random input of every model input, in `db` order: int8 over its whole range,
    float32 within [-1, 1] (the calibration range of float-I/O models)."""
    from ..ir import DType
    rng = np.random.default_rng(seed)
    parts = []
    for tid in compiled.graph.inputs:
        t = compiled.graph.tensor(tid)
        if t.dtype == DType.FLOAT32:
            parts.append(rng.uniform(-1.0, 1.0, size=t.num_elements).astype("<f4").tobytes())
        else:
            parts.append(rng.integers(0, 256, size=t.nbytes, dtype=np.uint8).tobytes())
    return b"".join(parts)


def measure(model_path: Path, board, out: Path, *, runs: int = 3, seed: int = 0, name: str = "model",
            options=None, timeout: float | None = None, active_mw: float | None = None,
            wait_states: int | None = None, portable: bool = False, progress=None) -> BenchResult:
    """Build `model_path` for `board` into OUT, run `runs` random inputs on its QEMU stand-in.

    `portable` builds the kernels' portable C paths on a DSP core: the kernel
    library picks its DSP inner loops when the compiler defines __ARM_FEATURE_DSP,
    so the firmware is compiled with that macro undefined (and the lowering is
    told the core has no DSP)."""
    from .. import emulator, hil
    from ..build import compile_firmware
    from ..energy import estimate_measured, layer_names
    from ..pipeline import CompileOptions, build

    if runs < 1:
        raise McuCompileError(f"--runs {runs}: run at least one input")
    if board.is_host:
        raise BoardError(f"`bench` needs a microcontroller board, not {board.name!r}: the host has no "
                         "instruction counts or power figures")
    if not board.qemu_machine:
        raise BoardError(f"board {board.name!r} has no QEMU stand-in machine (qemu_machine): "
                         "it cannot be run in the emulator")
    emulator.qemu_binary()  # fail before a long build, not after
    options = options or CompileOptions(name=name)
    if portable:
        board = dataclasses.replace(board, dsp=False)
    compiled = build(model_path, board, out, options=options)
    if portable:
        _undefine_dsp(Path(out))
    firmware = compile_firmware(out, board, "qemu")
    machine = firmware.qemu_machine or board.qemu_machine
    names = layer_names(compiled)

    totals, per_layer = [], []
    with emulator.boot(firmware.elf, machine, "tcp") as qemu:
        with hil.Device(qemu.connect(), timeout=timeout or hil.DEFAULT_TIMEOUT_S) as device:
            profile = device.profile()
            if profile.counter != "instructions" or profile.layers != len(names):
                raise DeviceError(f"the firmware reports {profile.layers} layers counted in "
                                  f"{profile.counter}, expected {len(names)} in instructions: "
                                  "it was not built from this compilation")
            for k in range(runs):
                device.load(_random_inputs(compiled, seed + k))
                device.infer(1, 0)
                totals.append(device.counts().last)
                layers = device.layers()
                got = [layer.name for layer in layers]
                if got != names:
                    raise DeviceError(f"the firmware's layers ({', '.join(got[:4])}, ...) are not the "
                                      f"build's ({', '.join(names[:4])}, ...)")
                per_layer.append([layer.count for layer in layers])
                if progress:
                    progress(k, totals[-1])
            stack = device.stack()
    # The median run stands for the model; inputs change the count only a little
    # (the counter ticks every 40 instructions, softmax and requantization branch).
    median = sorted(range(runs), key=lambda k: totals[k])[(runs - 1) // 2]
    estimate = estimate_measured(compiled, board, totals[median], per_layer[median],
                                 active_mw=active_mw, wait_states=wait_states)
    flash = _flash_use(firmware, compiled.report.weights_bytes)
    ram = RamUse(used=firmware.sram_used, size=firmware.sram_size, arena=compiled.report.arena_bytes,
                 stack_reserved=stack.size, stack_used=stack.used)
    kernels = tuple(sorted({c.function for c in compiled.calls.values() if c is not None}))
    return BenchResult(model=compiled.report.model, board=board.name, qemu_machine=machine,
                       counts=tuple(totals), estimate=estimate, flash=flash, ram=ram,
                       sections=firmware.sections, kernels=kernels, dsp=bool(board.dsp))


def _undefine_dsp(out: Path) -> None:
    """Add -U__ARM_FEATURE_DSP to the compiler flags of OUT/firmware/firmware.json."""
    from ..firmware import DESCRIPTION
    path = out / "firmware" / DESCRIPTION
    desc = json.loads(path.read_text())
    desc["cflags"] = [*desc["cflags"], "-U__ARM_FEATURE_DSP"]
    path.write_text(json.dumps(desc, indent=2) + "\n")


# An input section of the linker map: ` .text.name` then, on the same line or the
# next, its address, size and the object (or `lib.a(member.o)`) it comes from.
_MAP_ENTRY = re.compile(r"^ (\.[^\s]+|\*fill\*)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?:\s+(\S.*))?$")


def _flash_use(firmware, weights: int) -> FlashUse:
    """Attribute the flash sections of the linker map to the model, the firmware and the C library."""
    flash_sections = [s for s in firmware.sections if s.flash]
    lo = min((s.load_address for s in flash_sections), default=0)
    hi = max((s.load_address + s.size for s in flash_sections), default=0)
    try:
        text = firmware.map.read_text(errors="replace")
    except OSError as e:
        raise McuCompileError(f"cannot read the linker map {firmware.map}: {e}") from None
    text = text.split("Linker script and memory map", 1)[-1]
    lines = text.splitlines()
    sums = dict(model_constants=0, model_code=0, firmware=0, c_library=0)
    for i, line in enumerate(lines):
        # A long section name is alone on its line; its figures follow on the next.
        if line.startswith(" .") and len(line.split()) == 1 and i + 1 < len(lines):
            line = line + lines[i + 1]
        m = _MAP_ENTRY.match(line)
        if m is None:
            continue
        section, address, size, origin = m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4) or ""
        if size == 0 or not (lo <= address < hi) or section.startswith((".debug", ".comment", ".ARM.attr")):
            continue
        obj = origin.rsplit("/", 1)[-1]
        if ".a(" in obj:
            sums["c_library"] += size
        elif obj == "model_model.o" and section.startswith(".rodata"):
            sums["model_constants"] += size
        elif obj.startswith("model_"):
            sums["model_code"] += size
        elif obj.startswith("fw_"):
            sums["firmware"] += size
    used = firmware.flash_used
    return FlashUse(used=used, size=firmware.flash_size, weights=weights, other=used - sum(sums.values()),
                    **sums)


# ---------------------------------------------------------------------------
# The verb
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def _out_dir(out: Path | None):
    if out is not None:
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="mcucompile-bench-") as tmp:
        yield Path(tmp) / "build"


def _check_emulator(name: str) -> None:
    import shutil
    from ..emulator import qemu_binary
    from ..errors import ToolchainError
    if name == "qemu":
        qemu_binary()  # fail before a long build, not after
    elif shutil.which("renode") is None:
        raise ToolchainError("Renode is not installed (no `renode` on PATH): install it from "
                             "https://renode.io, or use --emulator qemu")
    else:
        raise McuCompileError("--emulator renode cannot count instructions yet: use --emulator qemu")


def run(args) -> int:
    from ..energy import parse_capacity, parse_rate
    from ..pipeline import read_model

    # Every argument is checked before the build, which takes seconds.
    rate_hz = parse_rate(args.rate)
    capacity = parse_capacity(args.battery)
    if args.cell_voltage <= 0 or args.sleep_uw < 0:
        raise McuCompileError("--cell-voltage must be positive and --sleep-uw 0 or more")
    if args.active_mw is not None and args.active_mw <= 0:
        raise McuCompileError("--active-mw must be positive")
    if args.wait_states is not None and args.wait_states < 0:
        raise McuCompileError("--wait-states must be 0 or more")
    if args.runs < 1:
        raise McuCompileError(f"--runs {args.runs}: run at least one input")
    board = load_board(args.board)
    if board.is_host:
        raise BoardError(f"`bench` needs a microcontroller board, not {board.name!r}: the host has no "
                         "instruction counts or power figures")
    if not board.qemu_machine:
        raise BoardError(f"board {board.name!r} has no QEMU stand-in machine (qemu_machine): "
                         "it cannot be run in the emulator")
    _check_emulator(args.emulator)
    read_model(args.model)  # a missing file is reported before anything else
    options = compile_options(args)

    def progress(k: int, count: int) -> None:
        if not args.json:
            print(f"  input {k + 1}/{args.runs}: {count:,} instructions", flush=True)

    with _out_dir(args.out) as out:
        if not args.json:
            print(f"building {args.model.name} for {board.name} and running {args.runs} random input(s) "
                  f"on QEMU {board.qemu_machine}", flush=True)
        result = measure(args.model, board, out, runs=args.runs, seed=args.seed, options=options,
                         timeout=args.timeout, active_mw=args.active_mw, wait_states=args.wait_states,
                         portable=args.portable, progress=progress)
    battery = None
    if result.estimate.energy_uj is not None:
        battery = result.estimate.battery(rate_hz, capacity, args.cell_voltage, args.sleep_uw)
    if args.json:
        print(json.dumps(to_json(result, battery), indent=2))
    else:
        print(format_text(result, battery))
    if args.plot:
        from ..plot import latency_per_layer
        latency_per_layer(result.estimate, args.plot)
        if not args.json:
            print(f"wrote {args.plot}")
    return 0


def to_json(result: BenchResult, battery: BatteryLife | None) -> dict:
    """Everything the text report says, as one JSON object."""
    est = result.estimate
    e = est.to_dict()
    return {
        "model": result.model,
        "board": result.board,
        "core": est.core,
        "clock_hz": est.clock_hz,
        "emulator": "qemu",
        "qemu_machine": result.qemu_machine,
        "dsp": result.dsp,
        "runs": len(result.counts),
        "instructions_per_inference": est.instructions,
        "instructions_per_run": list(result.counts),
        "instructions_min": min(result.counts),
        "instructions_max": max(result.counts),
        "macs": est.macs,
        "instructions_per_mac": est.instructions_per_mac,
        "cycles_per_instruction": e["cycles_per_instruction"],
        "cycles_per_inference": est.cycles,
        "latency_ms": est.latency_ms,
        "active_mw": est.active_mw,
        "power_source": est.power_source,
        "energy_uj": est.energy_uj,
        "battery": None if battery is None else {**asdict(battery), "days": battery.days},
        "cpi": e["cpi"],
        "flash": {**asdict(result.flash), "beyond_weights": result.flash.beyond_weights,
                  "sections": [_section(s) for s in result.sections if s.flash]},
        "ram": {**asdict(result.ram), "sections": [_section(s) for s in result.sections if s.sram]},
        "kernels": list(result.kernels),
        "layers": e["layers"],
        "assumptions": list(est.assumptions) + (list(battery.assumptions) if battery else []),
        "notes": list(est.notes),
    }


def _section(s) -> dict:
    return {"name": s.name, "bytes": s.size, "address": s.address, "load_address": s.load_address}


def _b(n: int) -> str:
    return f"{n:,} B"


def format_text(result: BenchResult, battery: BatteryLife | None) -> str:
    est = result.estimate
    core = f"{est.core}, {est.clock_hz / 1e6:g} MHz" if est.core and est.clock_hz else est.core or "?"
    kernels = "" if result.dsp else ", portable C kernels"
    lines = [f"{result.model} on {result.board} ({core}{kernels}); firmware run in QEMU {result.qemu_machine}, "
             f"{len(result.counts)} random input(s)", "", est.layer_table(), ""]
    lo, hi = min(result.counts), max(result.counts)
    spread = "" if lo == hi else f"; median of {len(result.counts)} inputs, min {lo:,}, max {hi:,}"
    lines.append(est.summary().replace(" (measured in QEMU)", f" (measured in QEMU{spread})"))
    if battery is None:
        lines.append("battery life     - (no energy figure)")
    else:
        lines.append(f"battery life     {_duration(battery.hours)} on {battery.capacity_mah:g} mAh at "
                     f"{battery.cell_voltage:g} V, {_rate(battery.rate_hz)} "
                     f"(average {battery.average_uw:,.1f} uW)")
    f, r = result.flash, result.ram
    lines += [
        f"flash            {_b(f.used)} of {_b(f.size)}: weights {_b(f.weights)} "
        f"(model constants {_b(f.model_constants)}), model code {_b(f.model_code)}, firmware runtime "
        f"{_b(f.firmware)}, C library {_b(f.c_library)}, other {_b(f.other)}; "
        f"{_b(f.beyond_weights)} beyond the weights",
        f"RAM              {_b(r.used)} of {_b(r.size)}: arena {_b(r.arena)}, stack {_b(r.stack_reserved)} "
        f"reserved, {_b(r.stack_used)} used (high-water mark)",
        "sections         " + ", ".join(
            f"{s.name} {_b(s.size)} ({'+'.join(w for w, on in (('flash', s.flash), ('RAM', s.sram)) if on)})"
            for s in result.sections),
        "kernels          " + ", ".join(result.kernels),
        "",
        "assumptions:",
    ]
    lines += [f"  - {a}" for a in (*est.assumptions, *(battery.assumptions if battery else ()))]
    if est.notes:
        lines += ["notes:"] + [f"  - {n}" for n in est.notes]
    return "\n".join(lines)


def _duration(hours: float) -> str:
    if hours >= 24 * 365:
        return f"{hours / (24 * 365):.1f} years ({hours / 24:,.0f} days)"
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    return f"{hours:.1f} hours"


def _rate(hz: float) -> str:
    if hz >= 1:
        return f"{hz:g} inference(s)/s"
    if hz * 60 >= 1:
        return f"{hz * 60:g} inference(s)/min"
    if hz * 3600 >= 1:
        return f"{hz * 3600:g} inference(s)/h"
    return f"{hz * 86400:g} inference(s)/day"
