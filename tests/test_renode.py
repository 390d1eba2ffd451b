"""Renode: the scripts in renode/, the board files' `renode` fields, and runs when Renode is here.

No registry we reach carries Renode, so the runs skip (marker `renode`). What
is checked everywhere: every Renode platform file, peripheral type, peripheral
name, monitor command and Robot keyword that renode/ and the board files use
exists in Renode's repositories. The names below were looked up there
(renode/renode and renode/renode-infrastructure on GitHub); the commits are
the versions read.
"""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from mcucompile import boards, pipeline, renode
from mcucompile.build import compile_firmware
from mcucompile.errors import BoardError, ToolchainError
from mcucompile.resources import data_dir

RENODE_DIR = data_dir("renode")

# renode/renode: platform descriptions (platforms/), read at the commits given.
RENODE_PLATFORMS = {
    # usart1: UART.STM32F7_USART @ sysbus 0x40011000; sram 0x60000 bytes at 0x20000000;
    # flash 0x200000 bytes at 0x08000000; the DWT range tagged "M4_DWT" (unimplemented).
    "platforms/cpus/stm32f746.repl": {  # commit b3c87cc80569dc9f83ed7462cfbc4987f5e13460
        "uarts": {"usart1": 0x40011000, "usart2": None, "usart3": None, "usart6": 0x40011400},
        "sram": (0x20000000, 0x60000), "flash": (0x08000000, 0x200000)},
    # uart0: UART.NRF52840_UART @ sysbus 0x40002000 (easyDMA: true); ram 0x40000 bytes at
    # 0x20000000; flash 0x100000 bytes at 0; no DWT.
    "platforms/cpus/nrf52840.repl": {  # commit 05ac5d6a4637790d8646c9376984a960dd9e0b4c
        "uarts": {"uart0": 0x40002000, "uart1": 0x40028000},
        "sram": (0x20000000, 0x40000), "flash": (0x00000000, 0x100000)},
    # Also in the repository: platforms/boards/stm32f7_discovery-bb.repl (the DISCO board on
    # top of the CPU file), platforms/cpus/stm32h743.repl, platforms/cpus/stm32f412.repl.
    "platforms/boards/stm32f7_discovery-bb.repl": None,
    "platforms/cpus/stm32h743.repl": None,
    "platforms/cpus/stm32f412.repl": None,
}
# renode/renode-infrastructure: peripheral types and their constructor parameters.
RENODE_TYPES = {
    "Miscellaneous.DWT": {"frequency"},  # class DWT(IMachine machine, uint frequency), CYCCNT at +4
}
# Monitor commands (Renode's monitor and the objects it exports) the scripts and mcucompile.renode use.
MONITOR_COMMANDS = {"using", "mach", "machine", "sysbus", "macro", "runMacro", "include", "emulation",
                    "connector", "start"}
# Robot keywords of Renode's renode-keywords.robot and UartKeywords.cs
# (WriteLineToUart(string content, int? testerId, bool waitForEcho)).
ROBOT_KEYWORDS = {"Setup", "Teardown", "Test Teardown", "Execute Command", "Create Terminal Tester",
                  "Start Emulation", "Wait For Line On Uart", "Write Line To Uart"}

RENODE_BOARDS = [b for b in boards.list_boards() if b.renode is not None]


def test_the_boards_with_renode_scripts():
    assert {b.name for b in RENODE_BOARDS} == {"stm32f746", "nrf52840"}
    for b in RENODE_BOARDS:
        assert renode.script_path(b).is_file()


@pytest.mark.parametrize("board", RENODE_BOARDS, ids=lambda b: b.name)
def test_board_names_a_renode_platform_and_its_uart(board):
    platform = RENODE_PLATFORMS[board.renode.platform]
    # The UART Renode calls board.renode.uart is the one the firmware drives.
    assert platform["uarts"][board.renode.uart] == board.uart.base
    # Renode maps at least the board's memory, and at the same addresses.
    for region, (origin, size) in (("sram", platform["sram"]), ("flash", platform["flash"])):
        mine = getattr(board, region)
        assert mine.origin == origin and mine.size <= size


@pytest.mark.parametrize("script", sorted(RENODE_DIR.glob("*.resc")), ids=lambda p: p.name)
def test_scripts_name_only_what_renode_has(script):
    text = script.read_text()
    platforms = re.findall(r"LoadPlatformDescription @(\S+)", text)
    assert platforms and all(p in RENODE_PLATFORMS for p in platforms), platforms
    for inline in re.findall(r'LoadPlatformDescriptionFromString "([^"]*)"', text):
        m = re.match(r"\s*(\w+): ([\w.]+) @ sysbus (0x[0-9A-Fa-f]+) \{ ([^}]*) \}", inline)
        assert m, inline
        assert m.group(2) in RENODE_TYPES
        assert {a.split(":")[0].strip() for a in m.group(4).split(";")} <= RENODE_TYPES[m.group(2)]
        assert int(m.group(3), 16) == 0xE0001000  # the DWT's architectural address
    for line in text.splitlines():
        word = line.split()[0] if line.strip() else ""
        if word and not word.startswith(("#", ":", "$", '"""')):
            assert word in MONITOR_COMMANDS, line
    # The script's DWT counts at the board's core clock.
    board = next(b for b in RENODE_BOARDS if b.renode.script == script.name)
    assert f"frequency: {board.clock_hz}" in text


def test_robot_suite_uses_only_renode_keywords():
    suite = (RENODE_DIR / renode.ROBOT_SUITE).read_text()
    keywords_section = suite.split("*** Keywords ***")[1].split("*** Test Cases ***")[0]
    ours = {line.strip() for line in keywords_section.splitlines() if line and not line[0].isspace()}
    used = set()
    for line in suite.split("*** Keywords ***")[1].splitlines():
        if line.startswith("    ") and not line.strip().startswith(("[", "...")):
            used.add(re.split(r"\s{2,}", line.strip())[0])
    assert used - ours <= ROBOT_KEYWORDS, used - ours - ROBOT_KEYWORDS
    assert "waitForEcho=false" in suite  # the firmware does not echo
    assert "Resource          ${RENODEKEYWORDS}" in suite


def test_monitor_commands_for_a_run(tmp_path):
    b = boards.load("stm32f746")
    elf = tmp_path / "fw.elf"
    commands = renode.monitor_commands(elf, b, 4321)
    assert commands[0] == f"$bin=@{elf.resolve()}"
    assert commands[1] == f"include @{RENODE_DIR / 'stm32f746.resc'}"
    assert commands[2:] == ['emulation CreateServerSocketTerminal 4321 "mcucompile_uart" false',
                            "connector Connect sysbus.usart1 mcucompile_uart", "start"]
    assert {c.split()[0] for c in commands[1:]} <= MONITOR_COMMANDS


def test_boards_without_renode_and_a_missing_renode(monkeypatch, tmp_path):
    with pytest.raises(BoardError, match="board 'stm32h743' cannot run in Renode: its file .* has no 'renode' "
                                         "field .*; use --emulator qemu"):
        renode.script_path(boards.load("stm32h743"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"Renode is not installed \(no `renode` on PATH\): install it "
                                             r"from https://renode.io"):
        with renode.boot(tmp_path / "fw.elf", boards.load("stm32f746")):
            pass
    with pytest.raises(ToolchainError, match="no `renode-test` on PATH"):
        renode.robot_test(tmp_path / "fw.elf", boards.load("nrf52840"), input_hex="00", output_hex="00",
                          results_dir=tmp_path)


@pytest.mark.arm_gcc
def test_linker_scripts_hold_renode_to_the_real_memory(tmp_path, shared_models):
    """Renode maps 384 KB / 2 MB for the F746; the firmware is linked for its 320 KB / 1 MB."""
    b = boards.load("stm32f746")
    pipeline.build(shared_models / "hello_world_int8.tflite", b, tmp_path / "out")
    ld = (tmp_path / "out" / "firmware" / "board" / "link.ld").read_text()
    assert "FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 1048576" in ld
    assert "RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 327680" in ld


# ---------------------------------------------------------------- with Renode


@pytest.fixture(scope="module")
def board_firmware(tmp_path_factory, shared_models):
    from mcucompile.reference import Reference

    def build(board: boards.Board):
        out = tmp_path_factory.mktemp(board.name) / "out"
        model = shared_models / "hello_world_int8.tflite"
        pipeline.build(model, board, out)
        fw = compile_firmware(out, board, "board")
        x = np.array([[-37]], np.int8)
        expected = Reference(model.read_bytes()).run([x])[0].astype(np.int8).tobytes()
        return fw, x.tobytes().hex(), expected.hex(), model
    return build


@pytest.mark.renode
@pytest.mark.arm_gcc
@pytest.mark.reference
@pytest.mark.skipif(shutil.which("renode-test") is None, reason="renode-test is not on PATH (install Renode)")
@pytest.mark.parametrize("board", RENODE_BOARDS, ids=lambda b: b.name)
def test_robot_suite_runs_the_protocol_exchange(board, board_firmware, tmp_path):
    fw, x_hex, y_hex, _ = board_firmware(board)
    result = renode.robot_test(fw.elf, board, input_hex=x_hex, output_hex=y_hex, results_dir=tmp_path)
    assert result.passed, result.output[-4000:]


@pytest.mark.renode
@pytest.mark.arm_gcc
@pytest.mark.reference
@pytest.mark.parametrize("board", RENODE_BOARDS, ids=lambda b: b.name)
def test_board_firmware_is_bit_exact_in_renode(board, board_firmware):
    from mcucompile import hil
    fw, _, _, model = board_firmware(board)
    with renode.boot(fw.elf, board) as emulation:
        with hil.Device(emulation.connect(), timeout=60) as device:
            profile = device.profile()
            assert (profile.board, profile.variant, profile.counter, profile.clock_hz) == \
                (board.name, "board", "cycles", board.clock_hz)
            report = hil.evaluate(device, model=model.read_bytes(), random=3, seed=0, clock_hz=board.clock_hz)
            assert report.bit_exact and report.mean_count() > 0
