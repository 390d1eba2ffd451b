"""Writes OUT/firmware/: the device firmware around the compiled model in OUT/model/.

The firmware is the C runtime in firmware/src/ (startup, protocol interpreter,
drivers) plus three rendered files: model_glue.c (binds it to the model's C
prefix), and per variant fw_config.h (the board's addresses and clocks) and
link.ld (the memory map). Python only picks files and computes numbers; every
line of C comes from firmware/.

Two variants of one board's firmware:
  "qemu"   runs on the QEMU machine standing in for the board's core (its UART
           and timer, counting instructions under `-icount shift=0`), linked
           into the BOARD's memory sizes, so fitting in QEMU means fitting the board;
  "board"  runs on the board itself (its UART, DWT cycle counter).

OUT/firmware/firmware.json describes how to build each variant (sources,
include directories, flags, linker script; paths relative to OUT), which is
what mcucompile.build follows; no Makefile. For a board with PlatformIO ids,
OUT/platformio.ini builds the "board" variant with PlatformIO
(mcucompile.platformio).
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .boards import NRF52_UARTE_BAUD_CODES, Board, Clock, Counter, Gpio, MemoryRegion, Uart, pin_parts
from .errors import BoardError, McuCompileError
from .resources import data_dir

VARIANTS = ("qemu", "board")
DESCRIPTION = "firmware.json"
FORMAT = 1

# The runtime every variant compiles; drivers are added by board data.
COMMON_SOURCES = ("startup.c", "main.c", "protocol.c", "fw_format.c", "fw_time.c", "fw_wait.c")
HEADERS = ("fw_hal.h", "fw_port.h", "fw_format.h", "protocol.h", "stm32_gpio.h", "stm32_rcc.h",
           "stm32_usart_v2.h")

# What each UART driver needs beside its own file (layered like libopencm3:
# the STM32 drivers share the GPIO / clock-enable helpers).
UART_HELPERS = {
    "stm32_usart_v1": ("stm32_gpio.c",),
    "stm32_usart_v2": ("stm32_gpio.c",),
    "stm32_lpuart": ("stm32_gpio.c",),
}

CFLAGS = ("-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections",
          "-DMCC_PROFILE_HOOKS")
# The runtime that runs between inferences (start-up, clock and UART set-up, the
# serial protocol, number formatting) is compiled for size: at -O2 it was 40% of
# person_detect's code beyond the weights, and it takes none of the inference's
# time. What runs inside an inference stays at -O2 with the model: the profiling
# hooks and the counter they read (and its interrupt).
SIZE_CFLAGS = ("-Os",)
INFERENCE_SOURCES = ("fw_time.c",)
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections")

QEMU_ICOUNT_HZ = 1_000_000_000  # `-icount shift=0`: one instruction per virtual nanosecond


@dataclass(frozen=True)
class Variant:
    """What differs between running on the board and on its QEMU stand-in."""
    name: str                  # "qemu" or "board"
    uart: Uart
    counter: Counter
    flash: MemoryRegion        # the board's sizes, at the addresses of the machine that runs it
    sram: MemoryRegion
    unit: str                  # what the counts count: "instructions" or "cycles"
    units_per_tick: int
    units_per_second: int
    qemu_machine: str | None
    clock: Clock | None        # the board's clock set-up; None: the clock after reset is the clock
    gpio: Gpio | None          # where the UART's pins are (family boards)

    @property
    def clock_driver(self) -> str:
        return self.clock.driver if self.clock else "fixed"

    @property
    def l1_caches(self) -> bool:
        return bool(self.clock and self.clock.l1_caches)

    @property
    def sources(self) -> tuple[str, ...]:
        files = COMMON_SOURCES + (f"clock_{self.clock_driver}.c", f"uart_{self.uart.kind}.c",
                                  *UART_HELPERS.get(self.uart.kind, ()), f"counter_{self.counter.kind}.c")
        return files + (("cache_cm7.c",) if self.l1_caches else ())

    @property
    def size_sources(self) -> tuple[str, ...]:
        """The sources compiled with SIZE_CFLAGS: all but the inference path's."""
        return tuple(s for s in self.sources
                     if s not in INFERENCE_SOURCES and s != f"counter_{self.counter.kind}.c")


def variant(board: Board, name: str) -> Variant:
    """The variant `name` of a board's firmware; BoardError if the board has none."""
    if board.is_host:
        raise BoardError(f"board {board.name!r} is the host: it runs the model as a host program, "
                         "with no firmware")
    if name not in VARIANTS:
        raise BoardError(f"firmware variant must be one of {', '.join(VARIANTS)}, not {name!r}")
    if name == "qemu":
        q = board.qemu
        if q is None:
            raise BoardError(f"board {board.name!r} names no QEMU machine (field 'qemu' of "
                             f"{board.source}): only its 'board' variant can be built")
        return Variant(
            name="qemu", uart=q.uart, counter=q.counter,
            flash=MemoryRegion(board.flash.name, q.flash.origin, board.flash.size),
            sram=MemoryRegion(board.sram.name, q.sram.origin, board.sram.size),
            unit="instructions", units_per_tick=QEMU_ICOUNT_HZ // q.counter.clock_hz,
            units_per_second=QEMU_ICOUNT_HZ, qemu_machine=q.name, clock=None, gpio=None)
    return Variant(
        name="board", uart=board.uart, counter=board.counter, flash=board.flash, sram=board.sram,
        unit="cycles", units_per_tick=board.clock_hz // board.counter.clock_hz,
        units_per_second=board.clock_hz, qemu_machine=None, clock=board.clock,
        gpio=board.family.gpio if board.family else None)


def available_variants(board: Board) -> tuple[str, ...]:
    if board.is_host:
        return ()
    return ("qemu", "board") if board.qemu else ("board",)


def write_firmware(out: Path, board: Board, name: str) -> Path:
    """Write OUT/firmware/ for `board` around OUT/model/<name>.h; returns OUT/firmware."""
    out = Path(out)
    if not (out / "model" / f"{name}.h").is_file():
        raise McuCompileError(f"{out / 'model' / (name + '.h')} is missing: the firmware is built "
                              "around a compiled model (mcucompile build writes both)")
    fw = out / "firmware"
    if fw.exists():
        shutil.rmtree(fw)
    (fw / "src").mkdir(parents=True)
    src_dir = data_dir("firmware") / "src"
    env = _jinja()

    variants = [variant(board, v) for v in available_variants(board)]
    sources = sorted({s for v in variants for s in v.sources})
    for f in (*sources, *HEADERS):
        shutil.copyfile(src_dir / f, fw / "src" / f)
    shutil.copyfile(data_dir("firmware") / "PROTOCOL.md", fw / "PROTOCOL.md")

    glue = {"prefix": name, "PREFIX": name.upper(), "model_label": _model_label(out, name)}
    (fw / "model_glue.c").write_text(env.get_template("model_glue.c.j2").render(g=glue))

    description = {
        "format": FORMAT,
        "board": board.name,
        "model_prefix": name,
        "compiler": "arm-none-eabi-gcc",
        "cflags": [*board.gcc_flags(), *CFLAGS],
        "size_cflags": list(SIZE_CFLAGS),
        "ldflags": list(LDFLAGS),
        "variants": {},
    }
    for v in variants:
        vdir = fw / v.name
        vdir.mkdir()
        (vdir / "fw_config.h").write_text(env.get_template("fw_config.h.j2").render(c=_config(board, v)))
        (vdir / "link.ld").write_text(env.get_template("link.ld.j2").render(l=_link(board, v)))
        description["variants"][v.name] = {
            "qemu_machine": v.qemu_machine,
            "unit": v.unit,
            "include_dirs": [f"firmware/{v.name}", "firmware/src", "model"],
            "sources": [f"firmware/src/{s}" for s in v.sources] + ["firmware/model_glue.c"],
            # Compiled with cflags then size_cflags (gcc keeps the last -O).
            "size_sources": [f"firmware/src/{s}" for s in v.size_sources] + ["firmware/model_glue.c"],
            "model_sources": "model/*.c",
            "linker_script": f"firmware/{v.name}/link.ld",
            "flash": _region_json(v.flash),
            "sram": _region_json(v.sram),
            "stack_bytes": board.stack_bytes,
        }
    (fw / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
    # The same board firmware as a PlatformIO project (boards with PlatformIO ids).
    from .platformio import write_platformio
    write_platformio(out, board, name)
    return fw


def _jinja() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("firmware") / "templates")),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def _model_label(out: Path, name: str) -> str:
    """What `profile` prints as the model: the .tflite's name from report.json, else the C prefix."""
    label = name
    try:
        label = str(json.loads((out / "report.json").read_text())["model"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", label)[:64] or name


def _region_json(r: MemoryRegion) -> dict:
    return {"name": r.name, "origin": r.origin, "size": r.size}


@dataclass(frozen=True)
class _ConfigView:
    source: str
    board: str
    variant: str
    clock_hz: int
    unit: str
    unit_comment: str
    units_per_tick: int
    units_per_second: int
    uart: Uart
    uart_rx_irq: int
    tx_pin: tuple[int, int] | None
    rx_pin: tuple[int, int] | None
    uarte_baud_code: int | None
    counter: Counter
    clock_driver: str
    l1_caches: bool
    clock: Clock | None
    vco_hz: int | None
    gpio: Gpio | None
    pll_q: int                 # the Q and R dividers to program: the board's, or for an
    pll_r: int                 # output it does not use any valid one (0 where the PLL has none)


def _config(board: Board, v: Variant) -> _ConfigView:
    if v.name == "qemu":
        comment = (f"Run QEMU with -icount shift=0: each {v.counter.clock_hz} Hz tick is then "
                   f"{v.units_per_tick} instructions.")
    else:
        comment = f"Core clock cycles at {board.clock_hz} Hz."
    return _ConfigView(
        source=_display_path(board.source), board=board.name, variant=v.name,
        clock_hz=board.clock_hz, unit=v.unit, unit_comment=comment,
        units_per_tick=v.units_per_tick, units_per_second=v.units_per_second,
        uart=v.uart, uart_rx_irq=v.uart.rx_irq if v.uart.rx_irq is not None else -1,
        tx_pin=pin_parts(v.uart.tx_pin) if v.uart.tx_pin else None,
        rx_pin=pin_parts(v.uart.rx_pin) if v.uart.rx_pin else None,
        uarte_baud_code=NRF52_UARTE_BAUD_CODES.get(v.uart.baud) if v.uart.kind == "nrf52_uarte" else None,
        counter=v.counter, clock_driver=v.clock_driver, l1_caches=v.l1_caches, clock=v.clock,
        vco_hz=v.clock.source_hz * v.clock.pll.n // v.clock.pll.m if v.clock and v.clock.pll else None,
        gpio=v.gpio, pll_q=_pll_divider(board, v, "q"), pll_r=_pll_divider(board, v, "r"))


def _pll_divider(board: Board, v: Variant, output: str) -> int:
    """A PLL output's divider register value. Unused outputs still need a valid divider
    (on the F4, PLLQ = 0 is a "wrong configuration"): the family's largest."""
    if v.clock is None or v.clock.pll is None:
        return 0
    allowed = getattr(board.family.pll, output)
    return getattr(v.clock.pll, output) or (max(allowed) if allowed else 0)


@dataclass(frozen=True)
class _LinkView:
    board: str
    variant: str
    flash: MemoryRegion
    sram: MemoryRegion
    flash_note: str
    sram_note: str
    stack_bytes: int


def _link(board: Board, v: Variant) -> _LinkView:
    note = ""
    if v.qemu_machine:
        note = f" (the board's size, at {v.qemu_machine}'s address)"
    return _LinkView(board=board.name, variant=v.name, flash=v.flash, sram=v.sram,
                     flash_note=note, sram_note=note, stack_bytes=board.stack_bytes)


def _display_path(p: Path) -> str:
    """The board file's path for a comment: relative to boards/ when it is a shipped board."""
    try:
        return str(Path("boards") / Path(p).resolve().relative_to(data_dir("boards").resolve()))
    except ValueError:
        return Path(p).name
