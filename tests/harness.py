"""Bit-exactness checks shared by the kernel tests.

`assert_bit_exact(model)` compiles the model for the host, builds the C with
AddressSanitizer and UBSan, runs random inputs and fails on any byte that
differs from TFLM, in the outputs or in any intermediate tensor, naming the
first layer that differs.
"""
from __future__ import annotations

import pytest

from mcucompile.verify import verify


def host_board():
    from mcucompile import boards
    return boards.load("host")


def assert_bit_exact(model: bytes, runs: int = 3, seed: int = 0, sanitize: bool = True,
                     options=None, board=None):
    """`options` (a pipeline.CompileOptions) selects e.g. the memory strategy;
    `board` the target the kernels are chosen for (the code runs on the host)."""
    from mcucompile.pipeline import CompileOptions
    pytest.importorskip("tflite_micro", reason="the TFLM reference: pip install tflite-micro")
    result = verify(model, runs=runs, seed=seed, sanitize=sanitize, board=board or host_board(),
                    check_layers=True, options=options or CompileOptions())
    assert result.output_bytes > 0 and result.intermediate_bytes > 0
    assert result.bit_exact, (f"{result.differing_bytes} of {result.output_bytes} output bytes differ "
                              f"from TFLM; {result.first_bad_layer}")
    return result


def run_on_qemu(model_path, board_name: str, out, options, runs: int = 2, seed: int = 17,
                defines: tuple[str, ...] = ()):
    """Build the model into the real firmware for a QEMU board (`options`: a
    pipeline.CompileOptions), boot it, run `runs` random inputs and compare
    every output byte with TFLM. Returns (pipeline.Compiled, hil.DeviceReport);
    the caller asserts on both. `defines`: macros added to the model's
    mcc_config.h (e.g. MCC_NO_ASM) before the firmware is compiled."""
    from mcucompile import boards, emulator, hil
    from mcucompile.build import compile_firmware
    from mcucompile.pipeline import build

    board = boards.load(board_name)
    compiled = build(model_path, board, out, options=options)
    if defines:
        config = out / "model" / "mcc_config.h"
        end = "#endif /* MCC_CONFIG_H */"
        text = config.read_text()
        assert end in text
        config.write_text(text.replace(end, "".join(f"#define {d} 1\n" for d in defines) + end))
    firmware = compile_firmware(out, board, "qemu")
    assert not firmware.warnings, firmware.warnings
    with emulator.boot(firmware.elf, firmware.qemu_machine, "tcp") as qemu:
        with hil.Device(qemu.connect(), timeout=20) as device:
            report = hil.evaluate(device, model=model_path.read_bytes(), random=runs, seed=seed)
    return compiled, report
