"""Boards as data: the shipped board files, inheritance from cores, and the schema's errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from mcucompile import boards
from mcucompile.cli import main as cli_main
from mcucompile.errors import BoardError

DATA = Path(__file__).resolve().parent / "data" / "boards"
BAD = DATA / "bad"
KIB, MIB = 1024, 1024 * 1024


REAL_BOARDS = ("stm32f746", "nrf52840", "stm32h743", "stm32l4r5", "stm32f412")


def test_the_shipped_boards():
    names = [b.name for b in boards.list_boards()]
    assert names == sorted(names)
    assert {*REAL_BOARDS, "qemu-m7", "qemu-m4", "qemu-m3", "host"} <= set(names)


@pytest.mark.parametrize("name, core, clock, sram, flash, dsp, fpu, machine", [
    ("stm32f746", "cortex-m7", 216_000_000, 320 * KIB, 1 * MIB, True, True, "mps2-an500"),
    ("nrf52840", "cortex-m4f", 64_000_000, 256 * KIB, 1 * MIB, True, True, "mps2-an386"),
    ("stm32h743", "cortex-m7", 400_000_000, 512 * KIB, 2 * MIB, True, True, "mps2-an500"),
    ("stm32l4r5", "cortex-m4f", 120_000_000, 640 * KIB, 2 * MIB, True, True, "mps2-an386"),
    ("stm32f412", "cortex-m4f", 100_000_000, 256 * KIB, 1 * MIB, True, True, "mps2-an386"),
    ("qemu-m7", "cortex-m7", 25_000_000, 4 * MIB, 4 * MIB, True, True, "mps2-an500"),
    ("qemu-m4", "cortex-m4f", 25_000_000, 4 * MIB, 4 * MIB, True, True, "mps2-an386"),
    ("qemu-m3", "cortex-m3", 25_000_000, 4 * MIB, 4 * MIB, False, False, "mps2-an385"),
])
def test_device_boards(name, core, clock, sram, flash, dsp, fpu, machine):
    b = boards.load(name)
    assert (b.name, b.is_host, b.core.name, b.clock_hz) == (name, False, core, clock)
    assert (b.sram_bytes, b.flash_bytes, b.dsp, b.fpu, b.qemu_machine) == (sram, flash, dsp, fpu, machine)
    # The QEMU stand-in must be able to hold the board's memory.
    assert b.qemu.sram.size >= b.sram_bytes and b.qemu.flash.size >= b.flash_bytes
    assert b.qemu.cpu == b.core.mcpu


def test_mps2_machines_match_qemu():
    """QEMU hw/arm/mps2.c: SSRAM1 at 0, SSRAM2&3 at 0x20000000 (4 MB each), UART0 at
    0x40004000 (RX IRQ 0), CMSDK timer 0 at 0x40000000, 25 MHz SYSCLK."""
    for name in ("qemu-m3", "qemu-m4", "qemu-m7"):
        q = boards.load(name).qemu
        assert (q.flash.origin, q.flash.size, q.sram.origin, q.sram.size) == (0, 4 * MIB, 0x20000000, 4 * MIB)
        assert (q.uart.kind, q.uart.base, q.uart.rx_irq) == ("cmsdk", 0x40004000, 0)
        assert (q.counter.kind, q.counter.base, q.counter.clock_hz) == ("cmsdk_timer", 0x40000000, 25_000_000)


def test_gcc_flags_come_from_the_core_and_the_board():
    assert boards.load("qemu-m7").gcc_flags() == (
        "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard")
    # The F746's M7 has the single-precision FPU: the board overrides its core.
    assert boards.load("stm32f746").gcc_flags() == (
        "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")
    assert boards.load("nrf52840").gcc_flags() == (
        "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
    assert boards.load("qemu-m3").gcc_flags() == ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft")


def test_host_board():
    b = boards.load("host")
    assert b.is_host and b.core is None and b.qemu_machine is None and b.gcc_flags() == ()
    assert b.sram_bytes is None and b.flash_bytes is None and b.clock_hz is None
    assert not b.dsp


@pytest.mark.parametrize("name, kind, peripheral, base, tx, rx, af, uart_clock, enable", [
    # The debugger's virtual COM port of each board (UM1907, UM2407, UM2179, UM1974, the DK's guide).
    ("stm32f746", "stm32_usart_v2", "USART1", 0x40011000, "PA9", "PB7", 7, 108_000_000, (0x40023844, 4)),
    ("stm32h743", "stm32_usart_v2", "USART3", 0x40004800, "PD8", "PD9", 7, 100_000_000, (0x580244E8, 18)),
    ("stm32l4r5", "stm32_lpuart", "LPUART1", 0x40008000, "PG7", "PG8", 8, 120_000_000, (0x4002105C, 0)),
    ("stm32f412", "stm32_usart_v1", "USART3", 0x40004800, "PD8", "PD9", 7, 50_000_000, (0x40023840, 18)),
    ("nrf52840", "nrf52_uarte", "UARTE0", 0x40002000, "P0.06", "P0.08", None, None, (None, None)),
])
def test_real_board_uarts(name, kind, peripheral, base, tx, rx, af, uart_clock, enable):
    u = boards.load(name).uart
    assert (u.kind, u.peripheral, u.base, u.tx_pin, u.rx_pin, u.pin_af, u.baud) == \
        (kind, peripheral, base, tx, rx, af, 115200)
    # The UART's clock is its bus clock, computed from the board's clock set-up.
    assert u.clock_hz == uart_clock and (u.enable_register, u.enable_bit) == enable


@pytest.mark.parametrize("name, platform, pio_board, counter", [
    ("stm32f746", "ststm32", "disco_f746ng", "dwt"),
    ("nrf52840", "nordicnrf52", "nrf52840_dk", "dwt"),
    ("stm32h743", "ststm32", "nucleo_h743zi", "dwt"),
    ("stm32l4r5", "ststm32", "nucleo_l4r5zi", "dwt"),
    ("stm32f412", "ststm32", "nucleo_f412zg", "dwt"),
])
def test_real_boards_platformio_and_counter(name, platform, pio_board, counter):
    b = boards.load(name)
    assert (b.platformio.platform, b.platformio.board) == (platform, pio_board)
    assert (b.counter.kind, b.counter.clock_hz) == (counter, b.clock_hz)


@pytest.mark.parametrize("name, sysclk, ahb, apb1, apb2, wait_states, mode", [
    # DISCO-F746NG: 25 MHz HSE / 25 x 432 / 2; over-drive above 180 MHz; 7 WS (RM0385).
    ("stm32f746", 216_000_000, 216_000_000, 54_000_000, 108_000_000, 7, "overdrive"),
    # H743: 64 MHz HSI / 4 x 50 / 2 = 400 MHz CPU, AXI at 200 MHz.
    ("stm32h743", 400_000_000, 200_000_000, 100_000_000, 100_000_000, 2, "normal"),
    # L4R5: 16 MHz HSI / 2 x 30 / 2 (PLLR) = 120 MHz in range 1 boost, 5 WS.
    ("stm32l4r5", 120_000_000, 120_000_000, 120_000_000, 120_000_000, 5, "boost"),
    ("stm32f412", 100_000_000, 100_000_000, 50_000_000, 100_000_000, 3, "normal"),
])
def test_stm32_clock_trees(name, sysclk, ahb, apb1, apb2, wait_states, mode):
    b = boards.load(name)
    t = b.clock.tree
    assert (t.sysclk_hz, t.core_hz, t.ahb_hz, t.apb1_hz, t.apb2_hz) == (sysclk, b.clock_hz, ahb, apb1, apb2)
    assert (b.clock.flash_wait_states, b.clock.regulator_mode, b.clock.voltage_scale) == (wait_states, mode, 1)
    assert b.clock.driver == b.family.clock_driver


def test_caches_and_families():
    assert boards.load("stm32f746").clock.l1_caches and boards.load("stm32h743").clock.l1_caches
    assert not boards.load("stm32l4r5").clock.l1_caches and not boards.load("nrf52840").clock.l1_caches
    nrf = boards.load("nrf52840")
    assert (nrf.family.name, nrf.clock.source, nrf.clock.tree.core_hz) == ("nrf52840", "hfxo", 64_000_000)
    assert boards.load("qemu-m7").family is None and boards.load("qemu-m7").clock is None


def test_renode_descriptions():
    f7, nrf = boards.load("stm32f746"), boards.load("nrf52840")
    assert (f7.renode.platform, f7.renode.script, f7.renode.uart) == \
        ("platforms/cpus/stm32f746.repl", "stm32f746.resc", "usart1")
    assert (nrf.renode.platform, nrf.renode.script, nrf.renode.uart) == \
        ("platforms/cpus/nrf52840.repl", "nrf52840.resc", "uart0")


def test_power_is_given_only_with_a_source():
    """No figure without a datasheet reference: a board either has both or no power at all."""
    for b in boards.list_boards():
        if b.power is not None:
            assert b.power.active_mw > 0 and b.power.source.strip()


def test_load_by_path_and_fixture_machines():
    b = boards.load(DATA / "systick" / "systick-m3.yaml")
    assert b.name == "systick-m3" and b.counter.kind == "systick" and b.counter.clock_hz == 25_000_000
    assert b.qemu.name == "mps2-an385" and b.qemu.counter.kind == "systick"  # the file beside the board wins
    assert boards.load(str(DATA / "tiny64k.yaml")).sram_bytes == 64 * KIB


def test_boards_are_frozen():
    b = boards.load("qemu-m3")
    with pytest.raises(AttributeError):
        b.clock_hz = 1


def test_unknown_board_lists_the_boards():
    with pytest.raises(BoardError, match=r"unknown board 'nope': the boards are host, nrf52840, "):
        boards.load("nope")
    with pytest.raises(BoardError, match="unknown board '_cores'"):
        boards.load("_cores")
    with pytest.raises(BoardError, match="does not exist"):
        boards.load(DATA / "missing.yaml")


@pytest.mark.parametrize("fixture, message", [
    ("bad-uart-kind", "field 'uart.kind' must be one of cmsdk, nrf52_uarte, stm32_usart_v1, stm32_usart_v2, "
                      "stm32_lpuart, not 'pl011'"),
    ("typo-field", "unknown field 'colck_hz' (the fields here are: clock_hz, core,"),
    ("missing-clock", "field 'clock_hz' is required"),
    ("bad-size", "field 'memory.sram.size' must be a size in bytes such as 65536, 64K or 1M, not '256Q'"),
    ("unknown-core", "field 'core' must be one of broken-core, cortex-m3, cortex-m4f, cortex-m7, "
                     "not 'cortex-m0'"),
    ("fpu-on-m3", "field 'fpu' is 'fpv4-sp-d16' but core cortex-m3 has no FPU"),
    ("wrong-machine", "field 'qemu' names machine mps2-an385, which emulates a cortex-m3, "
                      "but the board's core cortex-m7 is a cortex-m7"),
    ("too-big-for-qemu", "field 'qemu' names machine mps2-an500, whose sram (4 MiB) is smaller "
                         "than the board's (8 MiB)"),
    ("not-yaml", "not valid YAML (line 3)"),
    ("name-mismatch", "field 'name' is 'other-name' but the file is name-mismatch.yaml"),
    ("host-with-clock", "field 'clock_hz' does not apply to a host board"),
    ("bad-pin", "field 'uart.tx_pin' must be an STM32 pin such as PA9 (port A..K, pin 0..15), not 'PA19'"),
    ("clock-mismatch", "field 'clock.pll' gives a core clock of 192000000 Hz, but the board's clock_hz is 216000000"),
    ("clock-pll-p", "field 'clock.pll.p' must be one of 2, 4, 6, 8 on family stm32f7, not 3"),
    ("clock-vco-in", "field 'clock.pll.m' gives a PLL input of 0.78125 MHz (25000000 / 32); family stm32f7 "
                     "needs 0.95..2.1 MHz"),
    ("clock-wait-states", "field 'clock.flash_wait_states' must be at least 7 for a 216 MHz flash clock on "
                          "family stm32f7 (at 2.7-3.6 V), not 5"),
    ("clock-apb1", "field 'clock.dividers' give APB1 108 MHz, above family stm32f7's 54 MHz"),
    ("clock-overdrive", "field 'clock.regulator' normal allows at most 180 MHz on family stm32f7, not 216 MHz; "
                        "use regulator: overdrive"),
    ("clock-no-family", "field 'clock' needs a 'family'"),
    ("unknown-peripheral", "field 'uart.peripheral' must be one of the UARTs of family stm32f7: USART1, USART6,"),
    ("stm32-without-family", "field 'uart.kind' 'stm32_usart_v2' needs a 'family' on the board"),
    ("renode-platform", "field 'renode.platform' must be a platform file of Renode's repository"),
    ("bad-counter", "field 'counter.kind' must be one of cmsdk_timer, dwt, systick, not 'rtc'"),
    ("bad-counter-clock", "field 'counter.clock_hz' must divide the core clock (64000000 Hz)"),
    ("bad-nrf-baud", "field 'uart.baud' must be one of the UARTE's rates 9600,"),
    ("odd-stack", "field 'stack_bytes' must be a multiple of 8"),
    ("bad-rx-irq", "field 'uart.rx_irq' must be 0..31 (the firmware's vector table has 32 device "
                   "interrupts), not 40"),
    ("uart-clock-type", "field 'clock_hz' must be an integer (decimal or 0x hex), not '64 MHz'"),
])
def test_schema_errors_name_file_field_and_allowed_values(fixture, message):
    path = BAD / f"{fixture}.yaml"
    with pytest.raises(BoardError) as info:
        boards.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text


def test_an_error_in_an_inherited_core_names_the_core_file():
    with pytest.raises(BoardError) as info:
        boards.load(BAD / "uses-broken-core.yaml")
    assert str(info.value) == (f"{BAD / '_cores' / 'broken-core.yaml'}: field 'fpu' must be one of "
                               "none, fpv4-sp-d16, fpv5-sp-d16, fpv5-d16, not 'fpv9'")


def test_no_code_looks_at_board_names():
    """Behaviour comes from board fields: no Python module compares a board's name to a literal."""
    names = [b.name for b in boards.list_boards()]
    src = Path(boards.__file__).resolve().parent
    for py in src.rglob("*.py"):
        text = py.read_text()
        for name in names:
            for pattern in (f'== "{name}"', f"== '{name}'", f'"{name}" ==', f"'{name}' =="):
                assert pattern not in text, f"{py} tests a board's name: {pattern}"


def test_cli_lists_boards(capsys):
    assert cli_main(["boards"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["BOARD", "CORE", "CLOCK", "FLASH", "SRAM"]
    f7 = next(line for line in lines if line.startswith("stm32f746 "))
    assert f7.split()[1:8] == ["cortex-m7", "216", "MHz", "1", "MB", "320", "KB"]
    assert any(line.startswith("host ") for line in lines)


def test_cli_checks_one_board_file(capsys):
    assert cli_main(["boards", "--json", str(DATA / "tiny64k.yaml")]) == 0
    assert '"sram_bytes": 65536' in capsys.readouterr().out
    assert cli_main(["boards", str(BAD / "bad-size.yaml")]) == 1
    assert "field 'memory.sram.size'" in capsys.readouterr().err
