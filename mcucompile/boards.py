"""Boards as data: one YAML file per board in boards/, checked into frozen dataclasses.

A board file names its CPU core (boards/_cores/<core>.yaml: gcc -mcpu, FPU, DSP),
which it inherits, and optionally the QEMU machine that stands in for it
(boards/_qemu/<machine>.yaml: the emulated board's memory map, UART and timer).
A board built on a microcontroller family (boards/_families/<family>.yaml: STM32F4,
STM32F7, STM32H7, STM32L4, nRF52) also names its clock configuration and its UART
by peripheral name ("USART1"); the family file supplies the register addresses,
the clock-enable bits and the limits (PLL ranges, bus clocks, flash wait states)
that the board's clock tree is checked against here, before any C is compiled.
The firmware for the QEMU stand-in runs the same model code on the machine's
devices, linked into the *board's* memory sizes, so a model that would not fit
the real board does not fit its emulation either.

    board = load("stm32f746")          # or load("path/to/myboard.yaml")
    board.sram_bytes, board.gcc_flags()

Every mistake in a file is a BoardError that names the file, the field and what
is allowed. No code outside this module looks at a board's name: it reads fields.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import BoardError
from .resources import data_dir

# UART drivers (firmware/src/uart_<kind>.c). The STM32 USARTs come in two register
# layouts: "v1" (SR/DR: F1, F2, F4) and "v2" (ISR/RDR/TDR: F0, F3, F7, H7, L4);
# the LPUART is the v2 layout with a 256x baud divider.
UART_KINDS = ("cmsdk", "nrf52_uarte", "stm32_usart_v1", "stm32_usart_v2", "stm32_lpuart")
STM32_UART_KINDS = ("stm32_usart_v1", "stm32_usart_v2", "stm32_lpuart")
COUNTER_KINDS = ("cmsdk_timer", "dwt", "systick")
# Clock drivers (firmware/src/clock_<driver>.c), named by the family file.
CLOCK_DRIVERS = ("stm32f4", "stm32h7", "stm32l4", "nrf52")
CLOCK_SOURCES = ("hsi", "hse", "hfint", "hfxo")
REGULATOR_MODES = ("normal", "overdrive", "boost")
BUSES = ("ahb", "apb1", "apb2", "apb3", "apb4")
FPU_UNITS = ("none", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16")
DEFAULT_STACK_BYTES = 8 * 1024
MAX_DEVICE_IRQS = 32   # device interrupt vectors in firmware/src/startup.c

# The UARTE's BAUDRATE register takes these codes, not the rate (nRF52840 PS, UARTE BAUDRATE).
NRF52_UARTE_BAUD_CODES = {
    9600: 0x00275000, 19200: 0x004EA000, 38400: 0x009D0000, 57600: 0x00EB0000,
    115200: 0x01D60000, 230400: 0x03B00000, 460800: 0x07400000, 921600: 0x0F000000,
    1000000: 0x10000000,
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_SIZE = re.compile(r"^\s*(\d+)\s*(K|KB|KiB|M|MB|MiB)?\s*$", re.IGNORECASE)
_STM32_PIN = re.compile(r"^P([A-K])(\d{1,2})$")
_NRF_PIN = re.compile(r"^P([01])\.(\d{2})$")
_PIO_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_PERIPHERAL = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Core:
    """A CPU core as boards/_cores/<name>.yaml describes it."""
    name: str              # "cortex-m4f"
    description: str
    mcpu: str              # gcc -mcpu, and the CPU a QEMU machine must emulate
    fpu_unit: str | None   # gcc -mfpu, None when the core has no FPU
    dsp: bool              # ARMv7E-M DSP (SIMD) instructions


@dataclass(frozen=True)
class MemoryRegion:
    """One linker-script memory region."""
    name: str              # linker region name: ld says "region `RAM' overflowed"
    origin: int
    size: int

    @property
    def end(self) -> int:
        return self.origin + self.size


@dataclass(frozen=True)
class Uart:
    kind: str              # one of UART_KINDS: which driver in firmware/src/
    base: int              # peripheral base address
    baud: int
    clock_hz: int | None   # the clock its baud-rate generator divides (cmsdk, stm32_usart)
    rx_irq: int | None     # NVIC line of "byte received": lets the firmware sleep (cmsdk)
    tx_pin: str | None     # "PA9" (STM32), "P0.06" (nrf52_uarte)
    rx_pin: str | None
    pin_af: int | None     # GPIO alternate function of the pins (STM32)
    peripheral: str | None = None       # "USART1": its name in the family file
    enable_register: int | None = None  # RCC register and bit that clock it (STM32)
    enable_bit: int | None = None


@dataclass(frozen=True)
class Counter:
    """The free-running counter that times inferences."""
    kind: str              # one of COUNTER_KINDS
    base: int | None       # peripheral base (cmsdk_timer)
    clock_hz: int          # ticks per second


@dataclass(frozen=True)
class QemuMachine:
    """A QEMU machine (boards/_qemu/<name>.yaml) that can run a board's firmware."""
    name: str              # qemu-system-arm -machine NAME
    description: str
    cpu: str               # the core it emulates, as gcc's -mcpu spells it
    flash: MemoryRegion    # where code memory is (names come from the board)
    sram: MemoryRegion
    uart: Uart
    counter: Counter


@dataclass(frozen=True)
class Gpio:
    """Where a family's GPIO ports are: port n (A = 0, or P0 = 0) at base + n * stride."""
    base: int
    stride: int
    enable_register: int | None   # RCC register whose bit n clocks port n (STM32); None: always on


@dataclass(frozen=True)
class UartPeripheral:
    """One UART of a family, as boards/_families/<family>.yaml lists it."""
    name: str                     # "USART1"
    kind: str                     # its driver: one of UART_KINDS
    base: int
    bus: str | None               # the bus clock its baud generator divides (one of BUSES)
    enable_register: int | None   # RCC clock-enable register and bit (STM32)
    enable_bit: int | None


@dataclass(frozen=True)
class Range:
    low: int
    high: int

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.low}..{self.high}"


@dataclass(frozen=True)
class PllLimits:
    """What the family's main PLL accepts (reference manual, RCC chapter)."""
    sysclk_output: str            # the divider feeding the system clock: "p" or "r"
    m: tuple[int, ...]            # allowed values of each divider / multiplier
    n: tuple[int, ...]
    p: tuple[int, ...]
    q: tuple[int, ...]
    r: tuple[int, ...]
    vco_in_hz: Range              # PLL input after /M
    vco_out_hz: Range             # VCO output (x N)


@dataclass(frozen=True)
class BusLimits:
    """Highest allowed clock of each bus in Hz (None: the family has no such bus)."""
    ahb: int
    apb1: int
    apb2: int
    apb3: int | None
    apb4: int | None


@dataclass(frozen=True)
class Family:
    """A microcontroller family (boards/_families/<name>.yaml): what its board files share."""
    name: str
    description: str
    source: Path
    clock_driver: str             # firmware/src/clock_<driver>.c
    hsi_hz: int                   # the internal oscillator a PLL may use ("hsi" / "hfint")
    reset_hz: int                 # core clock after reset (the firmware's fallback)
    cpu_divider: bool             # a core-clock divider before the AHB one (H7 D1CPRE)
    l1_caches: bool               # Cortex-M7 L1 instruction and data caches
    flash_accelerator: int        # FLASH_ACR bits that turn on prefetch and the flash caches / ART
    gpio: Gpio
    uarts: tuple[UartPeripheral, ...]
    pll: PllLimits | None
    buses: BusLimits | None
    # Highest AHB clock (Hz) for 0, 1, 2... flash wait states at VDD 2.7-3.6 V.
    wait_states: tuple[int, ...]
    # Highest core clock (Hz) per regulator mode ("normal", "overdrive", "boost").
    regulator_modes: tuple[tuple[str, int], ...]
    voltage_scales: tuple[int, ...]

    def uart(self, name: str) -> UartPeripheral | None:
        return next((u for u in self.uarts if u.name == name), None)


@dataclass(frozen=True)
class Pll:
    """The main PLL: f_vco = f_in / m * n; outputs f_vco / p, / q, / r (0: output unused)."""
    m: int
    n: int
    p: int
    q: int
    r: int


@dataclass(frozen=True)
class ClockTree:
    """The clocks the firmware's clock set-up produces (Hz), computed from the board file."""
    sysclk_hz: int
    core_hz: int
    ahb_hz: int
    apb1_hz: int | None
    apb2_hz: int | None
    apb3_hz: int | None
    apb4_hz: int | None

    def bus_hz(self, bus: str) -> int | None:
        return getattr(self, f"{bus}_hz")


@dataclass(frozen=True)
class Clock:
    """A board's clock configuration (the `clock` field of a family board)."""
    driver: str                   # firmware/src/clock_<driver>.c (from the family)
    source: str                   # one of CLOCK_SOURCES
    source_hz: int                # the oscillator feeding the PLL
    hse_bypass: bool              # HSE driven by an external clock (e.g. the ST-LINK's MCO)
    pll: Pll | None
    cpu_div: int                  # core clock = sysclk / cpu_div (H7; 1 elsewhere)
    ahb_div: int
    apb1_div: int
    apb2_div: int
    apb3_div: int
    apb4_div: int
    flash_wait_states: int
    voltage_scale: int            # PWR regulator scale / range (1 = the fastest)
    regulator_mode: str           # one of REGULATOR_MODES
    reset_hz: int                 # core clock before set-up (the fallback if the HSE fails)
    l1_caches: bool               # enable the Cortex-M7 L1 caches
    flash_accelerator: int        # FLASH_ACR prefetch / cache bits (from the family)
    tree: ClockTree


@dataclass(frozen=True)
class Renode:
    """How Renode emulates the board: its platform file, our script, the UART it watches."""
    platform: str                 # Renode's platform description, e.g. platforms/cpus/stm32f746.repl
    script: str                   # renode/<script>.resc in this repository
    uart: str                     # the platform's name for the board's UART, e.g. usart1


@dataclass(frozen=True)
class Power:
    active_mw: float       # power while running inference
    source: str            # datasheet and table/figure it comes from


@dataclass(frozen=True)
class PlatformIO:
    board: str                    # PlatformIO board id, e.g. disco_f746ng
    platform: str                 # PlatformIO platform, e.g. ststm32
    upload_protocol: str | None = None   # None: the board's default (stlink, jlink, ...)


@dataclass(frozen=True)
class Board:
    """A target. For the host board every device field is None."""
    name: str
    description: str
    source: Path           # the YAML file it was read from
    is_host: bool
    core: Core | None
    fpu_unit: str | None   # gcc -mfpu after the board's override; None: soft float
    fpu: bool              # hardware floating point
    dsp: bool
    clock_hz: int | None
    flash: MemoryRegion | None
    sram: MemoryRegion | None
    uart: Uart | None
    counter: Counter | None
    qemu: QemuMachine | None
    stack_bytes: int       # stack the firmware's linker script reserves (0 for the host)
    power: Power | None = None
    platformio: PlatformIO | None = None
    family: Family | None = None  # None: a board without clock set-up (QEMU machines, fixtures)
    clock: Clock | None = None    # the clock set-up of a family board
    renode: Renode | None = None

    @property
    def sram_bytes(self) -> int | None:
        return self.sram.size if self.sram else None

    @property
    def flash_bytes(self) -> int | None:
        return self.flash.size if self.flash else None

    @property
    def qemu_machine(self) -> str | None:
        return self.qemu.name if self.qemu else None

    def gcc_flags(self) -> tuple[str, ...]:
        """Code-generation flags for arm-none-eabi-gcc (empty for the host)."""
        if self.core is None:
            return ()
        flags = [f"-mcpu={self.core.mcpu}", "-mthumb"]
        if self.fpu_unit:
            flags += [f"-mfpu={self.fpu_unit}", "-mfloat-abi=hard"]
        else:
            flags += ["-mfloat-abi=soft"]
        return tuple(flags)


# --------------------------------------------------------------------------- reading


def boards_dir() -> Path:
    return data_dir("boards")


def load(name_or_path: str | Path) -> Board:
    """A board by name (boards/<name>.yaml) or by the path of a board file."""
    path = _locate(name_or_path)
    return _parse_board(path)


def list_boards() -> list[Board]:
    """Every board shipped in boards/, by name."""
    return [_parse_board(p) for p in _board_files(boards_dir())]


def _board_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if not p.name.startswith("_"))


def _locate(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise BoardError(f"board file {path} does not exist")
        return path
    path = boards_dir() / f"{text}.yaml"
    if text.startswith("_") or not path.is_file():
        known = ", ".join(p.stem for p in _board_files(boards_dir()))
        raise BoardError(f"unknown board {text!r}: the boards are {known} "
                         "(or give the path of a board .yaml file)")
    return path


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise BoardError(f"{path}: not valid YAML{where}: {problem}") from None
    except OSError as e:
        raise BoardError(f"{path}: cannot read it ({e.strerror})") from None
    if not isinstance(data, dict):
        raise BoardError(f"{path}: a board file is a YAML mapping of fields, not {type(data).__name__}")
    return data


def _search_dirs(board_file: Path, sub: str) -> list[Path]:
    """Where a board's core/machine files are: beside the board first, then the shipped ones."""
    dirs = []
    for d in (board_file.parent / sub, boards_dir() / sub):
        if d.is_dir() and d.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(d)
    return dirs


def _find_part(board_file: Path, sub: str, name: str, fields: "_Fields", key: str) -> Path:
    dirs = _search_dirs(board_file, sub)
    for d in dirs:
        p = d / f"{name}.yaml"
        if p.is_file():
            return p
    known = sorted({p.stem for d in dirs for p in d.glob("*.yaml")})
    raise fields.error(key, f"must be one of {', '.join(known)}, not {name!r} "
                            f"(each is a file {sub}/<name>.yaml)")


class _Fields:
    """Typed access to one YAML mapping; every error names the file and the field."""

    def __init__(self, path: Path, data: dict, prefix: str = ""):
        self.path, self.data, self.prefix = path, data, prefix
        self.used: set[str] = set()

    def error(self, key: str, message: str) -> BoardError:
        return BoardError(f"{self.path}: field '{self.prefix}{key}' {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise self.error(key, "is required")
            return None
        return self.data[key]

    def str(self, key: str, required: bool = True) -> str | None:
        v = self._get(key, required)
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            raise self.error(key, f"must be a non-empty string, not {v!r}")
        return v.strip()

    def choice(self, key: str, allowed: tuple[str, ...], required: bool = True) -> str | None:
        v = self._get(key, required)
        if v is None:
            return None
        if v not in allowed:
            raise self.error(key, f"must be one of {', '.join(allowed)}, not {v!r}")
        return v

    def bool(self, key: str, required: bool = True, default: bool = False) -> bool:
        v = self._get(key, required)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, not {v!r}")
        return v

    def int(self, key: str, required: bool = True, minimum: int = 0) -> int | None:
        v = self._get(key, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(key, f"must be an integer (decimal or 0x hex), not {v!r}")
        if v < minimum:
            raise self.error(key, f"must be at least {minimum}, not {v}")
        return v

    def size(self, key: str, required: bool = True) -> int | None:
        """Bytes: an integer, or a string such as "320K" or "1M" (K = 1024)."""
        v = self._get(key, required)
        if v is None:
            return None
        if isinstance(v, int) and not isinstance(v, bool):
            n = v
        else:
            m = _SIZE.match(str(v))
            if not m:
                raise self.error(key, f"must be a size in bytes such as 65536, 64K or 1M, not {v!r}")
            unit = (m.group(2) or "").upper()
            n = int(m.group(1)) * (1024 * 1024 if unit.startswith("M") else 1024 if unit else 1)
        if n <= 0:
            raise self.error(key, f"must be positive, not {v!r}")
        return n

    def number(self, key: str, required: bool = True) -> float | None:
        v = self._get(key, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise self.error(key, f"must be a positive number, not {v!r}")
        return float(v)

    def values(self, key: str, required: bool = True) -> tuple[int, ...] | None:
        """Allowed integers: a list [2, 4, 6, 8] or a range {min: 2, max: 63}."""
        v = self._get(key, required)
        if v is None:
            return None
        if isinstance(v, dict) and set(v) == {"min", "max"} and all(
                isinstance(x, int) and not isinstance(x, bool) for x in v.values()) and v["min"] <= v["max"]:
            return tuple(range(v["min"], v["max"] + 1))
        if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return tuple(v)
        raise self.error(key, f"must be a list of integers or {{min: N, max: M}}, not {v!r}")

    def range(self, key: str, required: bool = True) -> Range | None:
        """[low, high] in Hz."""
        v = self._get(key, required)
        if v is None:
            return None
        if (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                and 0 <= v[0] <= v[1]):
            return Range(v[0], v[1])
        raise self.error(key, f"must be [low, high] (integers, low <= high), not {v!r}")

    def sub(self, key: str, required: bool = True) -> "_Fields | None":
        v = self._get(key, required)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.error(key, f"must be a mapping of fields, not {v!r}")
        return _Fields(self.path, v, f"{self.prefix}{key}.")

    def done(self) -> None:
        """Reject fields nobody read: most are typos of a real field."""
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise BoardError(f"{self.path}: unknown field '{self.prefix}{unknown[0]}' "
                             f"(the fields here are: {allowed})")


_BOARD_FIELDS = ("name", "description", "host", "core", "fpu", "clock_hz", "memory", "uart",
                 "counter", "qemu", "stack_bytes", "power", "platformio", "family", "clock", "renode")


def _parse_board(path: Path) -> Board:
    f = _Fields(path, _read_yaml(path))
    name = f.str("name")
    if not _NAME.match(name):
        raise f.error("name", f"must be lowercase letters, digits, '-', '_' or '.', not {name!r}")
    if name != path.stem:
        raise f.error("name", f"is {name!r} but the file is {path.name}: they must match")
    description = f.str("description")

    if f.bool("host", required=False):
        for key in _BOARD_FIELDS:
            if key not in ("name", "description", "host") and f.has(key):
                raise f.error(key, "does not apply to a host board (host: true)")
        f.done()
        return Board(name=name, description=description, source=path, is_host=True, core=None,
                     fpu_unit=None, fpu=True, dsp=False, clock_hz=None, flash=None, sram=None,
                     uart=None, counter=None, qemu=None, stack_bytes=0)

    core = _parse_core(_find_part(path, "_cores", f.str("core"), f, "core"))
    fpu_unit = core.fpu_unit
    override = f.choice("fpu", FPU_UNITS, required=False)
    if override is not None:
        if override != "none" and core.fpu_unit is None:
            raise f.error("fpu", f"is {override!r} but core {core.name} has no FPU")
        fpu_unit = None if override == "none" else override
    clock_hz = f.int("clock_hz", minimum=1)

    family = clock = None
    family_name = f.str("family", required=False)
    if family_name is not None:
        family = _parse_family(_find_part(path, "_families", family_name, f, "family"))
        clock = _parse_clock(f.sub("clock"), family, clock_hz)
    elif f.has("clock"):
        raise f.error("clock", "needs a 'family' (boards/_families/<family>.yaml): the clock "
                               "set-up is written for a microcontroller family")

    mem = f.sub("memory")
    flash = _parse_region(mem.sub("flash"), named=True)
    sram = _parse_region(mem.sub("sram"), named=True)
    mem.done()
    if flash.name == sram.name:
        raise mem.error("sram.name", f"must differ from memory.flash.name ({flash.name!r})")

    uart = _parse_uart(f.sub("uart"), family, clock)
    counter = _parse_counter(f.sub("counter"), clock_hz)
    if counter.clock_hz > clock_hz or clock_hz % counter.clock_hz:
        raise f.error("counter.clock_hz", f"must divide the core clock ({clock_hz} Hz) so that a "
                                          f"tick is a whole number of cycles, not {counter.clock_hz}")
    stack = f.size("stack_bytes", required=False) or DEFAULT_STACK_BYTES
    if stack % 8:
        raise f.error("stack_bytes", f"must be a multiple of 8 (the AAPCS stack alignment), not {stack}")

    qemu = None
    machine_name = f.str("qemu", required=False)
    if machine_name is not None:
        qemu = _parse_machine(_find_part(path, "_qemu", machine_name, f, "qemu"))
        if qemu.cpu != core.mcpu:
            raise f.error("qemu", f"names machine {qemu.name}, which emulates a {qemu.cpu}, "
                                  f"but the board's core {core.name} is a {core.mcpu}")
        for label, mine, theirs in (("flash", flash, qemu.flash), ("sram", sram, qemu.sram)):
            if mine.size > theirs.size:
                raise f.error("qemu", f"names machine {qemu.name}, whose {label} "
                                      f"({_kib(theirs.size)}) is smaller than the board's "
                                      f"({_kib(mine.size)}): it cannot stand in for the board")

    power = None
    p = f.sub("power", required=False)
    if p is not None:
        power = Power(active_mw=p.number("active_mw"), source=p.str("source"))
        p.done()
    pio = None
    p = f.sub("platformio", required=False)
    if p is not None:
        pio = PlatformIO(board=p.str("board"), platform=p.str("platform"),
                         upload_protocol=p.str("upload_protocol", required=False))
        for key, value in (("board", pio.board), ("platform", pio.platform)):
            if not _PIO_ID.match(value) and not value.startswith(("file://", "symlink://", "https://")):
                raise p.error(key, f"must be a PlatformIO id (letters, digits, '_', '-', '.') "
                                   f"or a platform URL, not {value!r}")
        p.done()
    renode = None
    r = f.sub("renode", required=False)
    if r is not None:
        renode = Renode(platform=r.str("platform"), script=r.str("script"), uart=r.str("uart"))
        if not renode.platform.startswith("platforms/") or not renode.platform.endswith(".repl"):
            raise r.error("platform", f"must be a platform file of Renode's repository such as "
                                      f"platforms/cpus/stm32f746.repl, not {renode.platform!r}")
        if not renode.script.endswith(".resc") or "/" in renode.script:
            raise r.error("script", f"must name a script in renode/ such as stm32f746.resc, "
                                    f"not {renode.script!r}")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", renode.uart):
            raise r.error("uart", f"must be the platform's peripheral name such as usart1, not {renode.uart!r}")
        r.done()
    f.done()
    return Board(name=name, description=description, source=path, is_host=False, core=core,
                 fpu_unit=fpu_unit, fpu=fpu_unit is not None, dsp=core.dsp, clock_hz=clock_hz,
                 flash=flash, sram=sram, uart=uart, counter=counter, qemu=qemu,
                 stack_bytes=stack, power=power, platformio=pio, family=family, clock=clock,
                 renode=renode)


def _parse_core(path: Path) -> Core:
    f = _Fields(path, _read_yaml(path))
    name = f.str("core")
    if name != path.stem:
        raise f.error("core", f"is {name!r} but the file is {path.name}: they must match")
    fpu = f.choice("fpu", FPU_UNITS)
    core = Core(name=name, description=f.str("description"), mcpu=f.str("mcpu"),
                fpu_unit=None if fpu == "none" else fpu, dsp=f.bool("dsp"))
    f.done()
    return core


def _parse_machine(path: Path) -> QemuMachine:
    f = _Fields(path, _read_yaml(path))
    name = f.str("machine")
    if name != path.stem:
        raise f.error("machine", f"is {name!r} but the file is {path.name}: they must match")
    description, cpu = f.str("description"), f.str("cpu")
    mem = f.sub("memory")
    flash = _parse_region(mem.sub("flash"), named=False)
    sram = _parse_region(mem.sub("sram"), named=False)
    mem.done()
    uart = _parse_uart(f.sub("uart"))
    counter = _parse_counter(f.sub("counter"), None)
    # Under `-icount shift=0` one instruction is 1 ns of virtual time; the firmware
    # turns timer ticks into instructions with this whole factor.
    if 1_000_000_000 % counter.clock_hz:
        raise f.error("counter.clock_hz", f"must divide 1 GHz (QEMU's icount clock), not {counter.clock_hz}")
    f.done()
    return QemuMachine(name=name, description=description, cpu=cpu, flash=flash, sram=sram,
                       uart=uart, counter=counter)


# Prescaler values the STM32 RCC can encode (HPRE / D1CPRE, and PPRE / DxPPRE).
_AHB_DIVIDERS = (1, 2, 4, 8, 16, 64, 128, 256, 512)
_APB_DIVIDERS = (1, 2, 4, 8, 16)


def _parse_family(path: Path) -> Family:
    f = _Fields(path, _read_yaml(path))
    name = f.str("family")
    if name != path.stem:
        raise f.error("family", f"is {name!r} but the file is {path.name}: they must match")
    description = f.str("description")
    driver = f.choice("clock_driver", CLOCK_DRIVERS)
    hsi_hz, reset_hz = f.int("hsi_hz", minimum=1), f.int("reset_hz", minimum=1)
    cpu_divider = f.bool("cpu_divider", required=False)
    l1_caches = f.bool("l1_caches", required=False)
    flash_accelerator = f.int("flash_accelerator", required=False) or 0

    g = f.sub("gpio")
    gpio = Gpio(base=g.int("base"), stride=g.int("stride", minimum=1),
                enable_register=g.int("enable_register", required=False))
    g.done()

    uarts = []
    u = f.sub("uarts")
    for uart_name in list(u.data):
        e = u.sub(uart_name)
        if not _PERIPHERAL.match(str(uart_name)):
            raise u.error(str(uart_name), "must be a peripheral name in capitals such as USART1")
        kind = e.choice("kind", UART_KINDS)
        bus = e.choice("bus", BUSES, required=kind in STM32_UART_KINDS)
        enable = e.sub("enable", required=kind in STM32_UART_KINDS)
        register = bit = None
        if enable is not None:
            register, bit = enable.int("register"), enable.int("bit")
            if bit > 31:
                raise enable.error("bit", f"must be 0..31, not {bit}")
            enable.done()
        uarts.append(UartPeripheral(name=str(uart_name), kind=kind, base=e.int("base"), bus=bus,
                                    enable_register=register, enable_bit=bit))
        e.done()
    u.done()

    pll = None
    p = f.sub("pll", required=False)
    if p is not None:
        pll = PllLimits(sysclk_output=p.choice("sysclk_output", ("p", "r")),
                        m=p.values("m"), n=p.values("n"), p=p.values("p"),
                        q=p.values("q", required=False) or (), r=p.values("r", required=False) or (),
                        vco_in_hz=p.range("vco_in_hz"), vco_out_hz=p.range("vco_out_hz"))
        p.done()
    buses = None
    b = f.sub("buses", required=False)
    if b is not None:
        buses = BusLimits(ahb=b.int("ahb", minimum=1), apb1=b.int("apb1", minimum=1),
                          apb2=b.int("apb2", minimum=1), apb3=b.int("apb3", required=False, minimum=1),
                          apb4=b.int("apb4", required=False, minimum=1))
        b.done()
    wait_states = f.values("wait_states", required=False) or ()
    modes = []
    r = f.sub("regulator_modes")
    for mode in list(r.data):
        if mode not in REGULATOR_MODES:
            raise r.error(str(mode), f"is not a regulator mode: use {', '.join(REGULATOR_MODES)}")
        modes.append((mode, r.int(mode, minimum=1)))
    r.done()
    scales = f.values("voltage_scales", required=False) or ()
    family = Family(name=name, description=description, source=path, clock_driver=driver,
                    hsi_hz=hsi_hz, reset_hz=reset_hz, cpu_divider=cpu_divider, l1_caches=l1_caches,
                    flash_accelerator=flash_accelerator, gpio=gpio, uarts=tuple(uarts), pll=pll, buses=buses,
                    wait_states=tuple(wait_states), regulator_modes=tuple(modes),
                    voltage_scales=tuple(scales))
    if driver != "nrf52" and (pll is None or buses is None):
        raise f.error("pll", f"and 'buses' are required for clock driver {driver}")
    f.done()
    return family


def _parse_clock(f: _Fields, family: Family, clock_hz: int) -> Clock:
    """The board's clock set-up, checked against its family's limits; computes the clock tree."""
    stm32 = family.pll is not None
    source = f.choice("source", ("hsi", "hse") if stm32 else ("hfint", "hfxo"))
    external = source in ("hse", "hfxo")
    source_hz = f.int("source_hz", required=stm32 and external, minimum=1)
    if source_hz is None:
        source_hz = family.hsi_hz
    elif not external and source_hz != family.hsi_hz:
        raise f.error("source_hz", f"of the internal oscillator is {family.hsi_hz} Hz on family "
                                   f"{family.name}, not {source_hz}")
    hse_bypass = f.bool("hse_bypass", required=False)
    if hse_bypass and source != "hse":
        raise f.error("hse_bypass", "only applies to source: hse")

    pll = None
    if stm32:
        p = f.sub("pll")
        limits = family.pll
        values = {}
        for key in ("m", "n", "p", "q", "r"):
            allowed = getattr(limits, key)
            required = key in ("m", "n", limits.sysclk_output)
            v = p.int(key, required=required, minimum=1)
            if v is not None and not allowed:
                raise p.error(key, f"does not exist on family {family.name}'s PLL")
            if v is not None and v not in allowed:
                raise p.error(key, f"must be {_allowed(allowed)} on family {family.name}, not {v}")
            values[key] = v or 0
        p.done()
        pll = Pll(**values)
        vco_in = source_hz / pll.m
        if vco_in not in limits.vco_in_hz:
            raise p.error("m", f"gives a PLL input of {vco_in / 1e6:g} MHz ({source_hz} / {pll.m}); "
                               f"family {family.name} needs {_mhz(limits.vco_in_hz)}")
        vco_out = vco_in * pll.n
        if vco_out not in limits.vco_out_hz:
            raise p.error("n", f"gives a VCO of {vco_out / 1e6:g} MHz; family {family.name} "
                               f"needs {_mhz(limits.vco_out_hz)}")
        out_div = getattr(pll, limits.sysclk_output)
        if (source_hz * pll.n) % (pll.m * out_div):
            raise p.error(limits.sysclk_output, "does not divide the VCO into a whole number of Hz")
        sysclk = source_hz * pll.n // (pll.m * out_div)
    else:
        sysclk = family.reset_hz

    d = f.sub("dividers", required=False)
    divs = {}
    for key, allowed, present in (("cpu", _AHB_DIVIDERS, family.cpu_divider),
                                  ("ahb", _AHB_DIVIDERS, stm32),
                                  ("apb1", _APB_DIVIDERS, stm32), ("apb2", _APB_DIVIDERS, stm32),
                                  ("apb3", _APB_DIVIDERS, stm32 and family.buses.apb3 is not None),
                                  ("apb4", _APB_DIVIDERS, stm32 and family.buses.apb4 is not None)):
        v = d.int(key, required=False, minimum=1) if d is not None else None
        if v is not None and not present:
            raise d.error(key, f"does not exist on family {family.name}")
        if v is not None and v not in allowed:
            raise d.error(key, f"must be one of {', '.join(map(str, allowed))}, not {v}")
        divs[key] = v or 1
    if d is not None:
        d.done()

    core = sysclk // divs["cpu"] if family.cpu_divider else sysclk // divs["ahb"]
    ahb = core // divs["ahb"] if family.cpu_divider else core
    tree = ClockTree(sysclk_hz=sysclk, core_hz=core, ahb_hz=ahb,
                     apb1_hz=ahb // divs["apb1"] if stm32 else None,
                     apb2_hz=ahb // divs["apb2"] if stm32 else None,
                     apb3_hz=ahb // divs["apb3"] if stm32 and family.buses.apb3 else None,
                     apb4_hz=ahb // divs["apb4"] if stm32 and family.buses.apb4 else None)
    if core != clock_hz:
        raise f.error("pll" if stm32 else "source", f"gives a core clock of {core} Hz, but the board's "
                                                    f"clock_hz is {clock_hz}")
    if stm32:
        for bus in BUSES:
            limit, hz = getattr(family.buses, bus), tree.bus_hz(bus)
            if limit is not None and hz is not None and hz > limit:
                raise f.error("dividers", f"give {bus.upper()} {hz / 1e6:g} MHz, above family "
                                          f"{family.name}'s {limit / 1e6:g} MHz")

    wait_states = f.int("flash_wait_states", required=bool(family.wait_states))
    if family.wait_states:
        needed = next((ws for ws, top in enumerate(family.wait_states) if ahb <= top), None)
        if needed is None:
            raise f.error("flash_wait_states", f"cannot be set for {ahb / 1e6:g} MHz: family "
                                               f"{family.name}'s flash runs up to {family.wait_states[-1] / 1e6:g} MHz")
        if wait_states < needed:
            raise f.error("flash_wait_states", f"must be at least {needed} for a {ahb / 1e6:g} MHz flash "
                                               f"clock on family {family.name} (at 2.7-3.6 V), not {wait_states}")
    scale = f.int("voltage_scale", required=bool(family.voltage_scales), minimum=0)
    if family.voltage_scales and scale not in family.voltage_scales:
        raise f.error("voltage_scale", f"must be {_allowed(family.voltage_scales)} on family "
                                       f"{family.name}, not {scale}")
    modes = dict(family.regulator_modes)
    mode = f.choice("regulator", tuple(modes), required=False) or "normal"
    if mode not in modes:
        raise f.error("regulator", f"must be one of {', '.join(modes)} on family {family.name}")
    if core > modes[mode]:
        better = [m for m, top in family.regulator_modes if top >= core]
        hint = f"; use regulator: {better[0]}" if better else ""
        raise f.error("regulator", f"{mode} allows at most {modes[mode] / 1e6:g} MHz on family "
                                   f"{family.name}, not {core / 1e6:g} MHz{hint}")
    f.done()
    return Clock(driver=family.clock_driver, source=source, source_hz=source_hz, hse_bypass=hse_bypass,
                 pll=pll, cpu_div=divs["cpu"], ahb_div=divs["ahb"], apb1_div=divs["apb1"],
                 apb2_div=divs["apb2"], apb3_div=divs["apb3"], apb4_div=divs["apb4"],
                 flash_wait_states=wait_states or 0, voltage_scale=scale or 0, regulator_mode=mode,
                 reset_hz=family.reset_hz, l1_caches=family.l1_caches,
                 flash_accelerator=family.flash_accelerator, tree=tree)


def _mhz(r: Range) -> str:
    return f"{r.low / 1e6:g}..{r.high / 1e6:g} MHz"


def _allowed(values: tuple[int, ...]) -> str:
    if len(values) > 4 and values == tuple(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return "one of " + ", ".join(map(str, values))


def _parse_region(f: _Fields, named: bool) -> MemoryRegion:
    name = f.str("name") if named else ""
    if named and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise f.error("name", f"must be a linker region name (letters, digits, '_'), not {name!r}")
    region = MemoryRegion(name=name, origin=f.int("origin"), size=f.size("size"))
    if region.end > 1 << 32:
        raise f.error("size", f"puts the region past the 4 GB address space ({region.origin:#x} + {region.size:#x})")
    f.done()
    return region


def _parse_uart(f: _Fields, family: Family | None = None, clock: Clock | None = None) -> Uart:
    """A UART given explicitly (kind, base, clock_hz), or by peripheral name on a family board."""
    if family is not None:
        return _parse_family_uart(f, family, clock)
    if f.has("peripheral"):
        raise f.error("peripheral", "needs a 'family' on the board: peripheral names are looked "
                                    "up in boards/_families/<family>.yaml")
    kind = f.choice("kind", UART_KINDS)
    if kind in STM32_UART_KINDS:
        raise f.error("kind", f"{kind!r} needs a 'family' on the board and 'uart.peripheral' "
                              "(the family file knows its clock-enable bit and the GPIO ports)")
    base, baud = f.int("base"), f.int("baud", minimum=1)
    needs_clock = kind == "cmsdk"
    clock_hz = f.int("clock_hz", required=needs_clock, minimum=1)
    rx_irq = f.int("rx_irq", required=False) if kind == "cmsdk" else None
    if rx_irq is not None and rx_irq >= MAX_DEVICE_IRQS:
        raise f.error("rx_irq", f"must be 0..{MAX_DEVICE_IRQS - 1} (the firmware's vector table has "
                                f"{MAX_DEVICE_IRQS} device interrupts), not {rx_irq}")
    tx_pin = rx_pin = None
    if kind == "nrf52_uarte":
        tx_pin, rx_pin = _pins(f, _NRF_PIN, 31, "an nRF52 pin such as P0.06 (port 0 or 1, pin 00..31)")
        _check_uarte_baud(f, baud)
    if needs_clock:
        _check_baud_divider(f, kind, clock_hz, baud)
    f.done()
    return Uart(kind=kind, base=base, baud=baud, clock_hz=clock_hz, rx_irq=rx_irq,
                tx_pin=tx_pin, rx_pin=rx_pin, pin_af=None)


def _parse_family_uart(f: _Fields, family: Family, clock: Clock | None) -> Uart:
    name = f.str("peripheral")
    periph = family.uart(name)
    if periph is None:
        known = ", ".join(u.name for u in family.uarts)
        raise f.error("peripheral", f"must be one of the UARTs of family {family.name}: {known} "
                                    f"(in {family.source}), not {name!r}")
    for key in ("kind", "base", "clock_hz"):
        if f.has(key):
            raise f.error(key, f"comes from the family file for peripheral {name}: remove it")
    baud = f.int("baud", minimum=1)
    pin_af = None
    if periph.kind in STM32_UART_KINDS:
        tx_pin, rx_pin = _pins(f, _STM32_PIN, 15, "an STM32 pin such as PA9 (port A..K, pin 0..15)")
        pin_af = f.int("pin_af")
        if pin_af > 15:
            raise f.error("pin_af", f"must be an alternate function 0..15, not {pin_af}")
    else:
        tx_pin, rx_pin = _pins(f, _NRF_PIN, 31, "an nRF52 pin such as P0.06 (port 0 or 1, pin 00..31)")
        _check_uarte_baud(f, baud)
    clock_hz = None
    if periph.bus is not None:
        clock_hz = clock.tree.bus_hz(periph.bus) if clock is not None else None
        if clock_hz is None:
            raise f.error("peripheral", f"{name} runs from bus {periph.bus}, which the board's clock "
                                        f"set-up of family {family.name} does not produce")
        _check_baud_divider(f, periph.kind, clock_hz, baud)
    f.done()
    return Uart(kind=periph.kind, base=periph.base, baud=baud, clock_hz=clock_hz, rx_irq=None,
                tx_pin=tx_pin, rx_pin=rx_pin, pin_af=pin_af, peripheral=name,
                enable_register=periph.enable_register, enable_bit=periph.enable_bit)


def _pins(f: _Fields, pattern: re.Pattern, top: int, what: str) -> tuple[str, str]:
    pins = f.str("tx_pin"), f.str("rx_pin")
    for key, pin in zip(("tx_pin", "rx_pin"), pins):
        m = pattern.match(pin)
        if not m or int(m.group(2)) > top:
            raise f.error(key, f"must be {what}, not {pin!r}")
    return pins


def _check_uarte_baud(f: _Fields, baud: int) -> None:
    if baud not in NRF52_UARTE_BAUD_CODES:
        rates = ", ".join(str(b) for b in NRF52_UARTE_BAUD_CODES)
        raise f.error("baud", f"must be one of the UARTE's rates {rates}, not {baud}")


def _check_baud_divider(f: _Fields, kind: str, clock_hz: int, baud: int) -> None:
    """The baud-rate generator's limits: a 16x-oversampling divider of 16..65535 (CMSDK,
    STM32 USART), or the LPUART's 256 * f / baud with f in 3..4096 times the rate."""
    if kind == "stm32_lpuart":
        if not 3 * baud <= clock_hz <= 4096 * baud:
            raise f.error("baud", f"{baud} cannot be made from the LPUART's {clock_hz} Hz clock "
                                  f"(the clock must be 3 to 4096 times the rate)")
        return
    if clock_hz // baud < 16:
        raise f.error("baud", f"is too fast for a {clock_hz} Hz UART clock (at most {clock_hz // 16})")
    if kind != "cmsdk" and (clock_hz + baud // 2) // baud > 0xFFFF:
        raise f.error("baud", f"is too slow for a {clock_hz} Hz UART clock (the divider is 16 bits)")


def _parse_counter(f: _Fields, core_clock_hz: int | None) -> Counter:
    kind = f.choice("kind", COUNTER_KINDS)
    base = f.int("base") if kind == "cmsdk_timer" else None
    # DWT CYCCNT and SysTick (processor clock source) count core cycles.
    clock_hz = f.int("clock_hz", required=kind == "cmsdk_timer" or core_clock_hz is None, minimum=1)
    f.done()
    return Counter(kind=kind, base=base, clock_hz=clock_hz or core_clock_hz)


def _kib(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n / 1024:g} KiB"


def pin_parts(pin: str) -> tuple[int, int]:
    """("PA9" -> (0, 9)), ("P0.06" -> (0, 6)), ("P1.10" -> (1, 10)): port index and pin number."""
    m = _STM32_PIN.match(pin)
    if m:
        return ord(m.group(1)) - ord("A"), int(m.group(2))
    m = _NRF_PIN.match(pin)
    if m:
        return int(m.group(1)), int(m.group(2))
    raise ValueError(f"not a pin name: {pin!r}")
