"""Firmware on QEMU: booting, the protocol end to end, bit-exactness with TFLM, and the verbs.

The emulator-level tests build a tiny image that never says a word (the one
thing a real firmware must not do) to check the "no answer" and cleanup paths.
Everything else runs the real firmware that `mcucompile build` + compile_firmware
produce for the qemu-m3/m4/m7 boards.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from mcucompile import emulator, hil
from mcucompile.cli import main
from mcucompile.errors import DeviceError, McuCompileError, ToolchainError

MACHINES = {"qemu-m3": "mps2-an385", "qemu-m4": "mps2-an386", "qemu-m7": "mps2-an500"}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still in the process table: dead only if it is a zombie nobody reaped yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


# ----------------------------------------------------------------------------
# The emulator itself, with a silent image
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def silent_elf(tmp_path_factory) -> Path:
    """A Cortex-M3 image that spins forever without touching the UART."""
    d = tmp_path_factory.mktemp("silent")
    (d / "silent.c").write_text(textwrap.dedent("""\
        void reset(void) { for (;;) { } }
        __attribute__((section(".vectors"), used))
        static const void *const vectors[2] = { (void *)0x20001000, (void *)reset };
        """))
    (d / "silent.ld").write_text("SECTIONS { . = 0; .text : { KEEP(*(.vectors)) *(.text*) } }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m3", "-mthumb", "-O1", "-nostdlib",
                    "-T", str(d / "silent.ld"), str(d / "silent.c"), "-o", str(d / "silent.elf")],
                   check=True)
    return d / "silent.elf"


def test_missing_qemu_is_a_toolchain_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"qemu-system-arm was not found.*apt-get install qemu-system-arm"):
        with emulator.boot(tmp_path, "mps2-an500"):
            pass


def test_bad_serial_spec():
    for bad in ("tcp:0", "tcp:http", "udp:4000", ""):
        with pytest.raises(McuCompileError, match=r"expected `pty`, `tcp` or `tcp:PORT`"):
            emulator.SerialSpec.parse(bad)
    assert emulator.SerialSpec.parse("tcp:4321") == emulator.SerialSpec("tcp", 4321)


@pytest.mark.qemu
@pytest.mark.arm_gcc
def test_silent_emulator_is_a_device_error_and_qemu_is_stopped(silent_elf):
    with pytest.raises(DeviceError) as info:
        with emulator.boot(silent_elf, "mps2-an385", "tcp") as qemu:
            pid = qemu.process.pid
            hil.Device(qemu.connect(), timeout=1.0)
    message = str(info.value)
    assert "no answer from socket://127.0.0.1:" in message and "within 1 s" in message
    assert "QEMU (mps2-an385) is still running" in message  # the firmware hangs, not QEMU
    assert _gone(pid)


@pytest.mark.qemu
def test_qemu_that_dies_is_named_in_the_error(tmp_path):
    # Not an ELF: QEMU loads it as raw bytes, the core locks up at once and QEMU aborts.
    junk = tmp_path / "junk.elf"
    junk.write_bytes(b"hello\n")
    with pytest.raises(DeviceError, match=r"lost the connection to socket://.*\(QEMU \(mps2-an385\) exited "
                                          r"with status -?\d+: qemu: fatal: Lockup"):
        with emulator.boot(junk, "mps2-an385", "tcp") as qemu:
            hil.Device(qemu.connect(), timeout=5)


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.parametrize("serial", ["pty", "tcp"])
def test_qemu_is_killed_on_keyboard_interrupt(silent_elf, serial):
    with pytest.raises(KeyboardInterrupt):
        with emulator.boot(silent_elf, "mps2-an385", serial) as qemu:
            pid = qemu.process.pid
            if serial == "pty":
                assert qemu.endpoint.startswith("/dev/pts/") and Path(qemu.endpoint).exists()
            else:
                assert qemu.url.startswith("socket://127.0.0.1:")
            raise KeyboardInterrupt
    assert _gone(pid)


@pytest.mark.qemu
@pytest.mark.arm_gcc
def test_qemu_dies_with_a_killed_parent(silent_elf, tmp_path):
    # No cleanup code runs in a SIGKILLed process: the kernel must take QEMU down.
    script = textwrap.dedent(f"""\
        import sys, time
        from mcucompile import emulator
        with emulator.boot({str(silent_elf)!r}, "mps2-an385", "pty") as q:
            print(q.process.pid, flush=True)
            time.sleep(60)
        """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


@pytest.mark.qemu
@pytest.mark.arm_gcc
def test_a_taken_tcp_port_is_reported(silent_elf):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DeviceError, match=rf"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on: the port is already in use"):
            with emulator.boot(silent_elf, "mps2-an385", f"tcp:{port}"):
                pass


@pytest.mark.qemu
def test_unknown_machine(tmp_path):
    elf = tmp_path / "x.elf"
    elf.write_bytes(b"\x7fELF")
    with pytest.raises(ToolchainError, match=r"no machine 'mps2-nope'.*unsupported machine type"):
        with emulator.boot(elf, "mps2-nope", "pty"):
            pass


# ----------------------------------------------------------------------------
# Real firmware
# ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def firmware(tmp_path_factory):
    """firmware(model_path, board) -> (elf, machine), built once per session and pair."""
    from mcucompile import boards
    from mcucompile.build import compile_firmware
    from mcucompile.pipeline import build

    root = tmp_path_factory.mktemp("firmware")
    cache: dict[tuple[Path, str], tuple[Path, str]] = {}

    def get(model_path: Path, board_name: str) -> tuple[Path, str]:
        key = (model_path, board_name)
        if key not in cache:
            board = boards.load(board_name)
            out = root / f"{model_path.stem}-{board_name}"
            build(model_path, board, out)
            fw = compile_firmware(out, board, "qemu")
            assert fw.qemu_machine == MACHINES[board_name]
            cache[key] = (fw.elf, fw.qemu_machine)
        return cache[key]
    return get


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """generated(name) -> path of a tests/modelgen model written to disk."""
    pytest.importorskip("tflite_micro")
    import modelgen
    factories = {
        "branchy_cnn": lambda: modelgen.branchy_cnn(),
        "add_two_inputs": lambda: modelgen.add(),
        "float_io_dense": lambda: modelgen.float_io(modelgen.dense),
        "mobilenet_v2_32": lambda: modelgen.mobilenet_v2(resolution=32),
        "dense_seed1": lambda: modelgen.dense(seed=1),
        "dense_seed2": lambda: modelgen.dense(seed=2),
    }
    root = tmp_path_factory.mktemp("generated")

    def get(name: str) -> Path:
        path = root / f"{name}.tflite"
        if not path.exists():
            path.write_bytes(factories[name]())
        return path
    return get


def _check_on_qemu(elf: Path, machine: str, model_path: Path, runs: int) -> hil.DeviceReport:
    model = model_path.read_bytes()
    with emulator.boot(elf, machine, "tcp") as qemu:
        with hil.Device(qemu.connect(), timeout=20) as device:
            report = hil.evaluate(device, model=model, random=runs, seed=11)
    assert report.compared and report.samples == runs
    assert report.bit_exact, "\n".join(m.describe() for m in report.mismatches)
    assert report.unit == "instructions" and min(report.counts) > 0
    return report


SHARED = ["hello_world_int8", "micro_speech_quantized",
          pytest.param("person_detect", marks=pytest.mark.slow)]


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
@pytest.mark.parametrize("board", sorted(MACHINES))
@pytest.mark.parametrize("model", SHARED)
def test_shared_models_are_bit_exact_on_qemu(firmware, shared_models, model, board):
    path = shared_models / f"{model}.tflite"
    elf, machine = firmware(path, board)
    report = _check_on_qemu(elf, machine, path, runs=2 if model == "person_detect" else 3)
    # The counter ticks every 40 instructions (25 MHz timer, 1 ns per instruction),
    # and a model's work does not depend on its int8 input values much.
    assert max(report.counts) - min(report.counts) <= 0.02 * max(report.counts) + 40


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
@pytest.mark.tf
@pytest.mark.parametrize("name,board", [
    ("branchy_cnn", "qemu-m3"),        # CONCATENATION, ADD, pools, FC
    ("float_io_dense", "qemu-m4"),     # float32 input and output, QUANTIZE/DEQUANTIZE
    ("add_two_inputs", "qemu-m7"),     # two inputs: `db` carries input 0 then input 1
    pytest.param("mobilenet_v2_32", "qemu-m7", marks=pytest.mark.slow),
])
def test_generated_models_are_bit_exact_on_qemu(firmware, generated, name, board):
    path = generated(name)
    elf, machine = firmware(path, board)
    _check_on_qemu(elf, machine, path, runs=3)


# -- the protocol, command by command ---------------------------------------------

@pytest.fixture
def speech_device(firmware, shared_models):
    """A freshly booted M7 running micro_speech (1960 input bytes: 64 `db` lines)."""
    elf, machine = firmware(shared_models / "micro_speech_quantized.tflite", "qemu-m7")
    with emulator.boot(elf, machine, "tcp") as qemu:
        with hil.Device(qemu.connect(), timeout=10) as device:
            yield device


def _floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split(",")])


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
def test_eembc_session_end_to_end(speech_device, shared_models):
    from mcucompile import reference
    d = speech_device
    model = (shared_models / "micro_speech_quantized.tflite").read_bytes()
    ref = reference.Reference(model)
    x = reference.random_inputs(model, seed=5)
    data = hil.input_bytes(x)
    assert len(data) == 1960

    assert d.name == "mcucompile"
    p = d.profile()
    assert (p.firmware, p.model, p.board, p.variant, p.counter) == (
        "mcucompile-fw-1", "micro_speech_quantized", "qemu-m7", "qemu", "instructions")
    assert (p.clock_hz, p.input_bytes, p.outputs) == (25_000_000, 1960, 1)

    # A fresh device has nothing to report and nothing to infer on.
    assert d.exchange("results").errors == ["No results: run infer first"]
    assert d.exchange("results-raw").errors == ["No results: run infer first"]
    assert d.exchange("infer 1 0").errors
    assert d.exchange("db 00").errors  # no `db load` yet

    # Loading: a wrong size is refused, then 63 lines of 31 bytes and one of 7.
    assert d.exchange("db load 1959").errors
    d.load(data)
    printed = d.command("db print").lines
    assert all(line.startswith("m-buffer-") for line in printed) and len(printed) == 1960 // 8
    assert bytes.fromhex("".join(line[len("m-buffer-"):].replace("-", "") for line in printed)) == data

    # infer N W: the EEMBC lines in order, then results (dequantized, 6 decimals).
    lines = d.infer(runs=2, warmup=1).lines
    assert lines[:3] == ("m-warmup-start-1", "m-warmup-done", "m-infer-start-2")
    assert lines[3].startswith("m-lap-us-") and lines[4].startswith("m-lap-us-")
    assert int(lines[4][9:]) > int(lines[3][9:])
    assert lines[5] == "m-infer-done"
    expected = ref.run(x)[0]
    scale, zero = ref.info.output_specs[0].scale[0], ref.info.output_specs[0].zero_point[0]
    shown = _floats(d.command("results").bracketed("m-results-"))
    assert np.allclose(shown, (expected.astype(np.float64).ravel() - zero) * scale, atol=1e-6, rtol=0)
    assert _floats(hil.Reply("infer", lines).bracketed("m-results-")).tolist() == shown.tolist()

    # The extensions: raw bytes equal TFLM's, counts, layers, stack, timestamp.
    assert d.results_raw(1) == [expected.tobytes()]
    c = d.counts()
    assert c.iterations == 2 and c.min <= c.last <= c.max and c.total == pytest.approx(2 * c.last, abs=80)
    assert c.max - c.min <= 40
    layers = d.layers()
    assert [layer.index for layer in layers] == list(range(p.layers))
    assert all(layer.count > 0 and layer.name for layer in layers)
    assert sum(layer.count for layer in layers) <= c.last
    stack = d.stack()
    assert 0 < stack.used <= stack.size
    t0 = d.command("timestamp").number("m-lap-us-")
    assert d.command("timestamp").number("m-lap-us-") > t0

    # The input buffer stays: infer again without reloading, same answer.
    d.infer()
    assert d.results_raw(1) == [expected.tobytes()]


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
def test_malformed_commands_get_errors_and_the_device_keeps_serving(speech_device):
    d = speech_device
    bad = [
        b"bogus%",                              # unknown command
        b"x" * 81 + b"%",                       # longer than 80 characters
        b"y" * 5000 + b"%",                     # far longer
        b"na\x01me%",                           # a control byte
        b"pro\xfffile%",                        # a byte above ASCII
        b"db load%", b"db load x%", b"db load -5%",
        b"infer 0 0%", b"infer 1 x%",
    ]
    for raw in bad:
        reply = d.exchange_bytes(raw, repr(raw[:20]))
        assert reply.errors, f"{raw[:40]!r} was accepted: {reply.lines}"
        assert d.command("name").lines == ("m-name-dut-[mcucompile]",)
    assert d.exchange("").lines == ()  # the empty command: just m-ready
    d.command("db load 1960")
    for line in ("db 123", "db zz", "db 0g"):  # odd digit count, not hex
        assert d.exchange(line).errors, line
    for _ in range(63):
        assert d.command("db " + "11" * 31).lines == ()
    assert d.exchange("db " + "22" * 8).errors  # 8 bytes when 7 are still expected
    assert d.command("db " + "33" * 7).lines == ("m-load-done",)
    # None of the refused lines stored a byte.
    printed = d.command("db print").lines
    assert bytes.fromhex("".join(line[9:].replace("-", "") for line in printed)) == b"\x11" * 1953 + b"\x33" * 7
    assert d.infer().value("m-infer-done") == ""


# -- the verbs ------------------------------------------------------------------------

@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
def test_run_verb_builds_runs_and_cleans_up(shared_models, tmp_path, monkeypatch, capsys):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = main(["run", str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m3", "--runs", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "bit-exact        yes, every output byte equals TFLM" in out
    assert re.search(r"per inference    [\d,]+ instructions", out)
    assert list(tmp_path.iterdir()) == []  # the temporary build is gone


@pytest.mark.qemu
@pytest.mark.arm_gcc
def test_run_verb_with_firmware_that_never_answers(shared_models, silent_elf, monkeypatch, capsys):
    # The build is real; the image QEMU boots is swapped for one that never speaks.
    import mcucompile.build
    from dataclasses import dataclass

    @dataclass
    class Silent:
        elf: Path = silent_elf
        qemu_machine: str = "mps2-an385"

        def summary(self) -> str:
            return "silent.elf"
    monkeypatch.setattr(mcucompile.build, "compile_firmware", lambda out, board, variant: Silent())
    code = main(["run", str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m3",
                 "--timeout", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert re.match(r"error: no answer from socket://127\.0\.0\.1:\d+ within 1 s: check the port name.*"
                    r"flashed.*\(QEMU \(mps2-an385\) is still running: the firmware hangs", err), err


def test_run_verb_without_renode(shared_models, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["run", str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m7",
                 "--emulator", "renode"])
    assert code == 1
    assert "Renode is not installed" in capsys.readouterr().err


def test_run_verb_without_qemu(shared_models, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["run", str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m7",
                 "-o", str(tmp_path / "out")])
    assert code == 1
    assert "apt-get install qemu-system-arm" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # it failed before building anything


def test_run_verb_refuses_the_host(shared_models, capsys):
    assert main(["run", str(shared_models / "hello_world_int8.tflite"), "--board", "host"]) == 1
    assert "needs a microcontroller board" in capsys.readouterr().err


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
def test_emulate_then_test_over_the_pty(shared_models, tmp_path):
    model = shared_models / "micro_speech_quantized.tflite"
    out = tmp_path / "speech"
    assert main(["build", str(model), "--board", "qemu-m7", "-o", str(out)]) == 0
    # Ctrl-C at a terminal: SIGINT at its default disposition, which a suite
    # started in the background (`pytest &` in a script) would otherwise pass
    # on as ignored.
    emulate = subprocess.Popen([sys.executable, "-m", "mcucompile", "emulate", str(out), "--serial", "pty"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        pty = None
        for line in emulate.stdout:
            if line.strip().startswith("/dev/pts/"):
                pty = line.strip()
                break
        assert pty, emulate.stderr.read()

        # Two inputs whose labels TFLM's own argmax gives, and a third one labelled wrong.
        from mcucompile import reference
        m = model.read_bytes()
        xs = [reference.random_inputs(m, seed=s)[0] for s in range(3)]
        labels = [int(np.argmax(reference.run(m, [x])[0])) for x in xs]
        labels[2] = (labels[2] + 1) % 4
        np.save(tmp_path / "x.npy", np.stack(xs))
        np.save(tmp_path / "y.npy", np.array(labels))
        r = subprocess.run([sys.executable, "-m", "mcucompile", "test", "--port", pty, "--model", str(model),
                            "--board", "stm32f746", "--inputs", str(tmp_path / "x.npy"),
                            "--labels", str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "bit-exact        yes" in r.stdout
        assert "accuracy         66.67% (2 of 3" in r.stdout
        assert "at 216 MHz" in r.stdout                # --board's clock, not the emulator's
        assert "reports board 'qemu-m7', not 'stm32f746'" in r.stderr

        # Without the model: random bytes, latency only, nothing to compare.
        r = subprocess.run([sys.executable, "-m", "mcucompile", "test", "--port", pty, "--random", "1"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "bit-exact        not checked" in r.stdout and "at 25 MHz" in r.stdout
    finally:
        emulate.send_signal(signal.SIGINT)
        code = emulate.wait(timeout=10)
    assert code == 0
    assert not Path(pty).exists()  # QEMU is gone, and its pty with it


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
@pytest.mark.tf
def test_test_verb_fails_on_a_model_that_differs(firmware, generated, capsys):
    # Firmware built from one dense layer, checked against another of the same shape.
    elf, machine = firmware(generated("dense_seed1"), "qemu-m4")
    with emulator.boot(elf, machine, "tcp") as qemu:
        code = main(["test", "--port", qemu.url, "--model", str(generated("dense_seed2")), "--random", "2"])
    captured = capsys.readouterr()
    assert code == 1
    assert "bit-exact        NO" in captured.out
    assert re.search(r"error: 2 output\(s\) of 2 sample\(s\) differ from TFLM; first: sample 0, output 0", captured.err)
