"""Boards as data: one YAML file per board in boards/, checked into frozen dataclasses.

A board file names its CPU core (boards/_cores/<core>.yaml: gcc -mcpu, FPU, DSP),
which it inherits, and optionally the QEMU machine that stands in for it
(boards/_qemu/<machine>.yaml: the emulated board's memory map, UART and timer).
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

UART_KINDS = ("cmsdk", "nrf52_uarte", "stm32_usart")
COUNTER_KINDS = ("cmsdk_timer", "dwt", "systick")
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
    tx_pin: str | None     # "PA9" (stm32_usart), "P0.06" (nrf52_uarte)
    rx_pin: str | None
    pin_af: int | None     # GPIO alternate function of the pins (stm32_usart)


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
class Power:
    active_mw: float       # power while running inference
    source: str            # datasheet and table/figure it comes from


@dataclass(frozen=True)
class PlatformIO:
    board: str
    platform: str


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
                 "counter", "qemu", "stack_bytes", "power", "platformio")


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

    mem = f.sub("memory")
    flash = _parse_region(mem.sub("flash"), named=True)
    sram = _parse_region(mem.sub("sram"), named=True)
    mem.done()
    if flash.name == sram.name:
        raise mem.error("sram.name", f"must differ from memory.flash.name ({flash.name!r})")

    uart = _parse_uart(f.sub("uart"))
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
        pio = PlatformIO(board=p.str("board"), platform=p.str("platform"))
        p.done()
    f.done()
    return Board(name=name, description=description, source=path, is_host=False, core=core,
                 fpu_unit=fpu_unit, fpu=fpu_unit is not None, dsp=core.dsp, clock_hz=clock_hz,
                 flash=flash, sram=sram, uart=uart, counter=counter, qemu=qemu,
                 stack_bytes=stack, power=power, platformio=pio)


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


def _parse_region(f: _Fields, named: bool) -> MemoryRegion:
    name = f.str("name") if named else ""
    if named and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise f.error("name", f"must be a linker region name (letters, digits, '_'), not {name!r}")
    region = MemoryRegion(name=name, origin=f.int("origin"), size=f.size("size"))
    if region.end > 1 << 32:
        raise f.error("size", f"puts the region past the 4 GB address space ({region.origin:#x} + {region.size:#x})")
    f.done()
    return region


def _parse_uart(f: _Fields) -> Uart:
    kind = f.choice("kind", UART_KINDS)
    base, baud = f.int("base"), f.int("baud", minimum=1)
    needs_clock = kind in ("cmsdk", "stm32_usart")
    clock_hz = f.int("clock_hz", required=needs_clock, minimum=1)
    rx_irq = f.int("rx_irq", required=False) if kind == "cmsdk" else None
    if rx_irq is not None and rx_irq >= MAX_DEVICE_IRQS:
        raise f.error("rx_irq", f"must be 0..{MAX_DEVICE_IRQS - 1} (the firmware's vector table has "
                                f"{MAX_DEVICE_IRQS} device interrupts), not {rx_irq}")
    tx_pin = rx_pin = None
    pin_af = None
    if kind == "stm32_usart":
        tx_pin, rx_pin = f.str("tx_pin"), f.str("rx_pin")
        for key, pin in (("tx_pin", tx_pin), ("rx_pin", rx_pin)):
            m = _STM32_PIN.match(pin)
            if not m or int(m.group(2)) > 15:
                raise f.error(key, f"must be an STM32 pin such as PA9 (port A..K, pin 0..15), not {pin!r}")
        pin_af = f.int("pin_af")
        if pin_af > 15:
            raise f.error("pin_af", f"must be an alternate function 0..15, not {pin_af}")
    if kind == "nrf52_uarte":
        tx_pin, rx_pin = f.str("tx_pin"), f.str("rx_pin")
        for key, pin in (("tx_pin", tx_pin), ("rx_pin", rx_pin)):
            m = _NRF_PIN.match(pin)
            if not m or int(m.group(2)) > 31:
                raise f.error(key, f"must be an nRF52 pin such as P0.06 (port 0 or 1, pin 00..31), not {pin!r}")
        if baud not in NRF52_UARTE_BAUD_CODES:
            rates = ", ".join(str(b) for b in NRF52_UARTE_BAUD_CODES)
            raise f.error("baud", f"must be one of the UARTE's rates {rates}, not {baud}")
    if needs_clock and clock_hz // baud < 16:
        raise f.error("baud", f"is too fast for a {clock_hz} Hz UART clock (at most {clock_hz // 16})")
    f.done()
    return Uart(kind=kind, base=base, baud=baud, clock_hz=clock_hz, rx_irq=rx_irq,
                tx_pin=tx_pin, rx_pin=rx_pin, pin_af=pin_af)


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
