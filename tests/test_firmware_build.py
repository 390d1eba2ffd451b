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
    out, b = built("person_detect.tflite", str(DATA / "tiny64k.yaml"))
    with pytest.raises(BoardError) as info:
        compile_firmware(out, b, "qemu")
    text = str(info.value)
    assert "does not fit board 'tiny64k' (qemu variant): SRAM (region RAM, 65,536 B) overflowed by " in text
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
    """SysTick wraps every 2^24 ticks (671 M instructions at 40 per tick): 15 person_detect
    inferences (~60 M instructions each) cross it; no inference may lose or gain a wrap."""
    out, b = built("person_detect.tflite", str(DATA / "systick" / "systick-m3.yaml"))
    fw = compile_firmware(out, b, "qemu")
    data = bytes(range(256)) * 36
    commands = ["db load 9216%"] + [f"db {data[i:i + 31].hex()}%" for i in range(0, len(data), 31)]
    lines = qemu_session(fw.elf, b.qemu_machine, commands + ["infer 15 0%", "cycles%"], timeout=300)
    total, low, high = (int(field(lines, p)) for p in ("m-cycles-total-", "m-cycles-min-", "m-cycles-max-"))
    assert total > 2 ** 24 * 40
    assert high - low <= 80 and abs(total - 15 * low) <= 15 * 80
