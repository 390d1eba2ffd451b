"""The device firmware: what write_firmware renders, and building it with arm-none-eabi-gcc.

Models come from the real compiler (`pipeline.build` on the shared reference
models). Running the firmware end to end in QEMU is tests/test_qemu.py's job;
here QEMU only smoke-tests the boot and the counters, which are this firmware's
own business.
"""
from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mcucompile import boards, pipeline
from mcucompile.build import compile_firmware
from mcucompile.errors import BoardError, McuCompileError, ToolchainError
from mcucompile.firmware import available_variants, variant, write_firmware

DATA = Path(__file__).resolve().parent / "data" / "boards"
DEVICE_BOARDS = [b.name for b in boards.list_boards() if not b.is_host]
BUILDS = [(b.name, v) for b in boards.list_boards() for v in available_variants(b)]


@pytest.fixture(scope="module")
def built(tmp_path_factory, shared_models):
    """pipeline.build(model, board) once per (model, board) for this module."""
    cache: dict[tuple[str, str], Path] = {}

    def build(model: str, board: str) -> tuple[Path, boards.Board]:
        b = boards.load(board)
        key = (model, str(board))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{Path(model).stem}-{b.name}")
            pipeline.build(shared_models / model, b, out)
            cache[key] = out
        return cache[key], b
    return build


# ---------------------------------------------------------------- write_firmware


@pytest.mark.parametrize("board", DEVICE_BOARDS)
def test_write_firmware_layout(built, board):
    out, b = built("hello_world_int8.tflite", board)
    fw = out / "firmware"
    desc = json.loads((fw / "firmware.json").read_text())
    assert desc["board"] == b.name and desc["model_prefix"] == "model"
    assert desc["cflags"][:len(b.gcc_flags())] == list(b.gcc_flags())
    assert set(desc["variants"]) == set(available_variants(b))
    for name, v in desc["variants"].items():
        # Paths are relative to OUT (pipeline.build writes into a temporary directory first).
        for rel in [*v["sources"], *v["include_dirs"], v["linker_script"]]:
            assert not Path(rel).is_absolute() and (out / rel).exists(), rel
        spec = variant(b, name)
        assert f"firmware/src/uart_{spec.uart.kind}.c" in v["sources"]
        assert f"firmware/src/counter_{spec.counter.kind}.c" in v["sources"]
    for f in fw.rglob("*"):
        if f.is_file() and f.suffix in (".c", ".h", ".ld"):
            text = f.read_text()
            assert "{{" not in text and "{%" not in text, f


def test_qemu_variant_has_the_boards_sizes_at_the_machines_addresses(built):
    out, b = built("hello_world_int8.tflite", "stm32f746")
    qemu_ld = (out / "firmware" / "qemu" / "link.ld").read_text()
    board_ld = (out / "firmware" / "board" / "link.ld").read_text()
    assert "FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 1048576" in qemu_ld
    assert "RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 327680" in qemu_ld
    assert "FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 1048576" in board_ld
    qemu_cfg = (out / "firmware" / "qemu" / "fw_config.h").read_text()
    board_cfg = (out / "firmware" / "board" / "fw_config.h").read_text()
    assert "#define FW_UART_BASE 0x40004000u" in qemu_cfg and '#define FW_UNIT_NAME "instructions"' in qemu_cfg
    assert "#define FW_UNITS_PER_TICK 40u" in qemu_cfg  # 25 MHz timer, 1 ns per instruction
    assert "#define FW_UART_BASE 0x40011000u" in board_cfg and '#define FW_UNIT_NAME "cycles"' in board_cfg
    assert "#define FW_UART_TX_PORT 0u" in board_cfg and "#define FW_UART_RX_PORT 1u" in board_cfg
    # The board variant sets the clock up (25 MHz HSE / 25 x 432 / 2, over-drive, 7 wait
    # states) and enables the M7's caches; the QEMU stand-in keeps its machine's clock.
    for line in ("#define FW_PLL_M 25u", "#define FW_PLL_N 432u", "#define FW_PLL_P 2u",
                 "#define FW_CLOCK_SOURCE_EXTERNAL 1", "#define FW_FLASH_WAIT_STATES 7u",
                 "#define FW_REGULATOR_OVERDRIVE 1", "#define FW_DIV_APB2 2", "#define FW_L1_CACHES 1",
                 "#define FW_UART_CLOCK_HZ 108000000u", "#define FW_UART_ENABLE_REG 0x40023844u",
                 "#define FW_UART_ENABLE_BIT 4u", "#define FW_GPIO_BASE 0x40020000u", "#define FW_UART_PIN_AF 7u"):
        assert line in board_cfg, line
    assert "#define FW_L1_CACHES 0" in qemu_cfg and "FW_PLL_M" not in qemu_cfg


@pytest.mark.parametrize("board, drivers", [
    ("stm32f746", ("clock_stm32f4.c", "uart_stm32_usart_v2.c", "stm32_gpio.c", "cache_cm7.c")),
    ("stm32h743", ("clock_stm32h7.c", "uart_stm32_usart_v2.c", "stm32_gpio.c", "cache_cm7.c")),
    ("stm32l4r5", ("clock_stm32l4.c", "uart_stm32_lpuart.c", "stm32_gpio.c")),
    ("stm32f412", ("clock_stm32f4.c", "uart_stm32_usart_v1.c", "stm32_gpio.c")),
    ("nrf52840", ("clock_nrf52.c", "uart_nrf52_uarte.c")),
])
def test_board_variant_drivers_come_from_the_family(board, drivers):
    b = boards.load(board)
    board_sources = variant(b, "board").sources
    assert set(drivers) <= set(board_sources) and "counter_dwt.c" in board_sources
    assert ("cache_cm7.c" in board_sources) == ("cache_cm7.c" in drivers)
    qemu_sources = variant(b, "qemu").sources
    assert {"clock_fixed.c", "uart_cmsdk.c", "counter_cmsdk_timer.c"} <= set(qemu_sources)
    assert not set(drivers) & set(qemu_sources)
    # Compiled for size: all but what runs inside an inference (the hooks, the counter).
    for v in (variant(b, "board"), variant(b, "qemu")):
        assert set(v.sources) - set(v.size_sources) == {"fw_time.c", f"counter_{v.counter.kind}.c"}


def test_variants():
    assert available_variants(boards.load("qemu-m3")) == ("qemu", "board")
    only = boards.load(DATA / "board-only.yaml")
    assert available_variants(only) == ("board",)
    with pytest.raises(BoardError, match="names no QEMU machine"):
        variant(only, "qemu")
    with pytest.raises(BoardError, match="must be one of qemu, board, not 'renode'"):
        variant(only, "renode")
    with pytest.raises(BoardError, match="is the host"):
        variant(boards.load("host"), "qemu")


def test_write_firmware_needs_the_model(tmp_out):
    with pytest.raises(McuCompileError, match="model.h is missing"):
        write_firmware(tmp_out, boards.load("qemu-m3"), "model")


def test_compile_needs_firmware_for_the_same_board(built, tmp_out):
    with pytest.raises(McuCompileError, match="firmware.json is missing"):
        compile_firmware(tmp_out, boards.load("qemu-m3"), "qemu")
    out, _ = built("hello_world_int8.tflite", "qemu-m3")
    with pytest.raises(BoardError, match="was written for board 'qemu-m3', not 'qemu-m4'"):
        compile_firmware(out, boards.load("qemu-m4"), "qemu")


def test_missing_toolchain(built, monkeypatch, tmp_path):
    out, b = built("hello_world_int8.tflite", "qemu-m3")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        compile_firmware(out, b, "qemu")


# ---------------------------------------------------------------- arm-none-eabi-gcc


@pytest.mark.arm_gcc
@pytest.mark.parametrize("board, var", BUILDS)
def test_firmware_compiles_for_every_board(built, board, var):
    out, b = built("hello_world_int8.tflite", board)
    fw = compile_firmware(out, b, var)
    assert fw.warnings == ""
    assert fw.elf.is_file() and fw.bin.is_file() and fw.map.is_file()
    spec = variant(b, var)
    assert (fw.flash_size, fw.sram_size) == (b.flash_bytes, b.sram_bytes)
    assert fw.stack_bytes == b.stack_bytes
    assert 0 < fw.flash_used <= fw.flash_size and fw.stack_bytes < fw.sram_used <= fw.sram_size
    assert fw.unit == spec.unit and fw.qemu_machine == spec.qemu_machine
    names = {s.name for s in fw.sections}
    assert {".vectors", ".text", ".stack", ".bss"} <= names
    # The image starts with the vector table: initial SP at the top of the stack
    # (the stack is at the bottom of SRAM), then the reset handler (Thumb bit set).
    sp, reset = struct.unpack("<II", fw.bin.read_bytes()[:8])
    assert sp == spec.sram.origin + b.stack_bytes
    assert reset & 1 and spec.flash.origin <= reset < spec.flash.origin + fw.flash_used
    assert b.name in fw.summary() and "SRAM" in fw.summary()


REAL_BOARDS = [b.name for b in boards.list_boards() if b.family is not None]
SHARED_MODELS = ["person_detect.tflite", "micro_speech_quantized.tflite"]


@pytest.mark.arm_gcc
@pytest.mark.slow
@pytest.mark.parametrize("model", SHARED_MODELS)
@pytest.mark.parametrize("board", REAL_BOARDS)
def test_shared_models_link_for_every_real_board(built, board, model):
    """The firmware that gets flashed (the board variant: clock set-up, the chip's UART,
    DWT), for the reference models: it compiles warning-free and fits the board."""
    out, b = built(model, board)
    fw = compile_firmware(out, b, "board")
    assert fw.warnings == ""
    assert fw.flash_used <= b.flash_bytes and fw.sram_used <= b.sram_bytes
    sp, reset = struct.unpack("<II", fw.bin.read_bytes()[:8])
    assert sp == b.sram.origin + b.stack_bytes and b.flash.origin <= reset < b.flash.origin + fw.flash_used


@pytest.mark.arm_gcc
def test_firmware_follows_the_model_prefix(shared_models, tmp_out):
    b = boards.load("qemu-m4")
    pipeline.build(shared_models / "hello_world_int8.tflite", b, tmp_out, name="kws")
    assert "kws_invoke()" in (tmp_out / "firmware" / "model_glue.c").read_text()
    fw = compile_firmware(tmp_out, b, "qemu")
    assert fw.elf.name == "kws.elf" and fw.warnings == ""


@pytest.mark.arm_gcc
@pytest.mark.slow
def test_person_detect_fits_the_f746(built):
    out, b = built("person_detect.tflite", "stm32f746")
    fw = compile_firmware(out, b, "qemu")
    weights = json.loads((out / "report.json").read_text())["weights_bytes"]
    assert fw.flash_used > weights and fw.sram_used < b.sram_bytes


@pytest.mark.arm_gcc
@pytest.mark.slow
def test_sram_overflow_is_a_clear_board_error(built):
    out, b = built("person_detect.tflite", str(DATA / "tiny24k.yaml"))
    with pytest.raises(BoardError) as info:
        compile_firmware(out, b, "qemu")
    text = str(info.value)
    assert "does not fit board 'tiny24k' (qemu variant): SRAM (region RAM, 24,576 B) overflowed by " in text
    assert "model_arena" in text and "stack 8,192 B" in text
    assert "smaller model" in text and "--memory patch" in text and "mcucompile boards" in text


@pytest.mark.arm_gcc
@pytest.mark.slow
def test_flash_overflow_is_a_clear_board_error(built):
    out, b = built("person_detect.tflite", str(DATA / "tinyflash.yaml"))
    with pytest.raises(BoardError, match=r"flash \(region ROM, 131,072 B\) overflowed by [\d,]+ bytes; "
                                         r"the largest parts: conv_2d_\d+_weights"):
        compile_firmware(out, b, "qemu")


# ---------------------------------------------------------------- QEMU smoke tests


def qemu_session(elf: Path, machine: str, commands: list[str], timeout: float = 120) -> list[str]:
    """Boots the firmware, sends each command after the previous "m-ready"; returns all lines."""
    proc = subprocess.Popen(["qemu-system-arm", "-machine", machine, "-nographic", "-monitor", "none",
                             "-serial", "stdio", "-icount", "shift=0", "-kernel", str(elf)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b""
    try:
        for i in range(len(commands) + 1):
            if i > 0:
                proc.stdin.write(commands[i - 1].encode())
                proc.stdin.flush()
            deadline = time.monotonic() + timeout
            while out.count(b"m-ready\r\n") < i + 1:
                ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
                assert chunk, f"no m-ready from the firmware; it printed:\n{out.decode(errors='replace')}"
                out += chunk
    finally:
        proc.kill()
        proc.wait()
    return out.decode().split("\r\n")


def field(lines: list[str], prefix: str) -> str:
    return next(line[len(prefix):] for line in lines if line.startswith(prefix))


@pytest.mark.arm_gcc
@pytest.mark.qemu
@pytest.mark.reference
def test_boots_and_infers_in_qemu(built, shared_models):
    from mcucompile.reference import Reference
    out, b = built("hello_world_int8.tflite", "qemu-m3")
    fw = compile_firmware(out, b, "qemu")
    x = np.array([[-37]], np.int8)
    lines = qemu_session(fw.elf, b.qemu_machine, ["name%", "profile%", "db load 1%", f"db {x.tobytes().hex()}%",
                                                  "infer 2 1%", "results-raw%", "cycles%", "layers%", "stack%"])
    assert lines[:2] == ["m-init-done", "m-ready"]
    assert "m-name-dut-[mcucompile]" in lines and "m-counter-[instructions]" in lines
    expected = Reference((shared_models / "hello_world_int8.tflite").read_bytes()).run([x])[0]
    assert field(lines, "m-results-raw-0-[") == expected.astype(np.int8).tobytes().hex() + "]"
    cycles = int(field(lines, "m-cycles-"))
    assert 1000 < cycles < 100_000 and cycles % 40 == 0  # 25 MHz timer ticks of 40 instructions
    assert int(field(lines, "m-cycles-total-")) == 2 * cycles or \
        abs(int(field(lines, "m-cycles-total-")) - 2 * cycles) <= 40
    layer_counts = [int(line.split("-")[3]) for line in lines if line.startswith("m-layer-")]
    assert len(layer_counts) == 3 and 0 < sum(layer_counts) <= cycles
    assert 0 < int(field(lines, "m-stack-used-")) < b.stack_bytes
    assert not any(line.startswith("e-") for line in lines)


@pytest.mark.arm_gcc
@pytest.mark.qemu
@pytest.mark.slow
def test_systick_counter_survives_its_24_bit_wraps(built):
    """SysTick wraps every 2^24 ticks (671 M instructions at 40 per tick): enough person_detect
    inferences to cross it at least once; no inference may lose or gain a wrap."""
    out, b = built("person_detect.tflite", str(DATA / "systick" / "systick-m3.yaml"))
    fw = compile_firmware(out, b, "qemu")
    data = bytes(range(256)) * 36
    commands = ["db load 9216%"] + [f"db {data[i:i + 31].hex()}%" for i in range(0, len(data), 31)]
    one = int(field(qemu_session(fw.elf, b.qemu_machine, commands + ["infer 1 0%", "cycles%"], timeout=300),
                    "m-cycles-"))
    runs = 2 ** 24 * 40 // one + 2  # the kernels' speed changes; the wrap must be crossed whatever it is
    lines = qemu_session(fw.elf, b.qemu_machine, commands + [f"infer {runs} 0%", "cycles%"], timeout=300)
    total, low, high = (int(field(lines, p)) for p in ("m-cycles-total-", "m-cycles-min-", "m-cycles-max-"))
    assert total > 2 ** 24 * 40
    assert high - low <= 80 and abs(total - runs * low) <= runs * 80


# ---------------------------------------------------------------- the STM32 USART in QEMU

NETDUINO = DATA / "netduino" / "netduinoplus2.yaml"


def _wait_for_boot(port, timeout: float = 60) -> bytes:
    """The boot banner. QEMU's STM32 USART drops bytes sent before the firmware enabled
    it (a real board loses them too), so the host speaks only after `m-ready`."""
    seen, deadline = b"", time.monotonic() + timeout
    while b"m-ready\r\n" not in seen:
        assert time.monotonic() < deadline, f"no boot banner; got {seen!r}"
        seen += port.read(64)
    return seen


@pytest.mark.arm_gcc
@pytest.mark.qemu
@pytest.mark.reference
def test_stm32_f4_usart_driver_in_qemu_netduinoplus2(built, shared_models):
    """QEMU's netduinoplus2 is an STM32F405 with the F4 (SR/DR) USART: the board firmware
    of a one-file board (tests/data/boards/netduino/) boots there with our USART and
    clock drivers, and serves the protocol bit-exactly. QEMU does not model the RCC, so
    the clock set-up must give up on the crystal and fall back to the 16 MHz HSI."""
    from mcucompile import emulator, hil
    out, b = built("hello_world_int8.tflite", str(NETDUINO))
    assert b.uart.kind == "stm32_usart_v1" and b.family.source.parent == DATA / "netduino" / "_families"
    fw = compile_firmware(out, b, "board")
    assert fw.warnings == ""
    model = (shared_models / "hello_world_int8.tflite").read_bytes()
    with emulator.boot(fw.elf, "netduinoplus2", "tcp") as qemu:
        port = qemu.connect()
        assert _wait_for_boot(port).endswith(b"m-init-done\r\nm-ready\r\n")
        with hil.Device(port, timeout=30) as device:
            profile = device.profile()
            assert (profile.board, profile.variant, profile.counter) == ("netduinoplus2", "board", "cycles")
            assert profile.clock_hz == b.family.reset_hz  # the fall-back, reported as such
            report = hil.evaluate(device, model=model, random=3, seed=1, clock_hz=b.clock_hz)
            assert report.bit_exact and report.samples == 3
            assert report.mean_count() > 0  # SysTick, which QEMU clocks from its virtual time
            bad = device.exchange("bogus")
            assert bad.errors == ["Unknown command: bogus"]
            assert device.exchange_bytes(b"db " + b"0" * 100 + b"%", "oversized").errors
            assert device.stack().used > 0 and device.sync() == "mcucompile"
