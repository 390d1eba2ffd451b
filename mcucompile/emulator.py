"""Boot built firmware in QEMU, the stand-in for a board that is not plugged in.

Each Cortex-M core has a QEMU machine with the same core and a CMSDK UART
(board.qemu_machine: mps2-an385 for M3, mps2-an386 for M4, mps2-an500 for M7).
We always pass `-icount shift=0`: the emulated CPU then advances the virtual
clock by exactly 1 ns per instruction, which is what makes the firmware's
counter report instructions, deterministically (firmware/PROTOCOL.md, Counters).

The firmware's UART 0 is exposed to the host in one of two ways:

* `tcp`: QEMU listens on 127.0.0.1:PORT and waits (wait=on) for a client before
  it starts the CPU, so not a byte of the boot banner is lost. pyserial opens
  it as `socket://127.0.0.1:PORT`.
* `pty`: QEMU creates a pseudo-terminal and names it on stdout
  ("char device redirected to /dev/pts/N"). The CPU starts at once and output
  written before anyone opens the pty is dropped.

`boot()` is a context manager: whatever happens inside the `with` (an error, a
KeyboardInterrupt), QEMU is killed on the way out. QEMU also gets SIGKILL from
the kernel if this Python process dies without running its cleanup.
"""
from __future__ import annotations

import collections
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import serial

from .errors import DeviceError, McuCompileError, ToolchainError

QEMU = "qemu-system-arm"
INSTALL_HINT = "install it with `apt-get install qemu-system-arm` (Debian/Ubuntu)"

# How long QEMU may take to open its serial endpoint after it starts.
STARTUP_TIMEOUT_S = 10.0

_PTY_LINE = re.compile(r"char device redirected to (\S+)")
_ADDRESS_IN_USE = "Address already in use"


@dataclass(frozen=True)
class SerialSpec:
    """How QEMU exposes the firmware's UART: a pseudo-terminal, or a TCP server on loopback."""
    kind: Literal["pty", "tcp"]
    port: int | None = None  # tcp only; None picks a free port

    @staticmethod
    def parse(text: str) -> SerialSpec:
        """`pty`, `tcp` (any free port) or `tcp:PORT`."""
        if text == "pty":
            return SerialSpec("pty")
        if text == "tcp":
            return SerialSpec("tcp")
        if text.startswith("tcp:"):
            port = text[4:]
            if port.isdigit() and 0 < int(port) < 65536:
                return SerialSpec("tcp", int(port))
        raise McuCompileError(f"--serial {text!r}: expected `pty`, `tcp` or `tcp:PORT` (PORT in 1..65535)")


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise ToolchainError(f"{QEMU} was not found on PATH: {INSTALL_HINT}")
    return path


def _free_tcp_port() -> int:
    # The port is free now; QEMU binds it a moment later. If someone takes it in
    # between, QEMU fails with "Address already in use" and boot() retries.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent_death_signal():
    """A function for Popen's preexec_fn that asks Linux to SIGKILL the child when its parent dies,
    or None where that does not exist. prctl is looked up here, in the parent: between fork and
    exec the child should only make the call, not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # best effort: the context manager is the real guarantee
    PR_SET_PDEATHSIG = 1

    def set_signal() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    return set_signal


class _OutputLog:
    """QEMU's stdout and stderr, read by two threads so that the pipes never fill up."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=200)
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._pump, args=(stream,), daemon=True)
                         for stream in (proc.stdout, proc.stderr)]
        for t in self._threads:
            t.start()

    def _pump(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                self._lines.append(raw.decode(errors="replace").rstrip())
                self._cond.notify_all()
        stream.close()

    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def wait_for(self, pattern: re.Pattern[str] | str, proc: subprocess.Popen[bytes],
                 timeout: float) -> re.Match[str] | str | None:
        """The first match of `pattern` in the output; None if QEMU exits or time runs out first."""
        deadline = time.monotonic() + timeout
        while True:
            exited = proc.poll() is not None
            if exited:
                self.join()  # the pipes are at EOF: everything QEMU printed is in the log
            with self._cond:
                for line in self._lines:
                    if isinstance(pattern, str):
                        if pattern in line:
                            return line
                    elif m := pattern.search(line):
                        return m
                remaining = deadline - time.monotonic()
                if exited or remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.1))

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=2)


class QemuInstance:
    """A running QEMU. Use it only inside `with boot(...)`, which owns its lifetime."""

    def __init__(self, proc: subprocess.Popen[bytes], log: _OutputLog, machine: str, elf: Path,
                 spec: SerialSpec, endpoint: str) -> None:
        self.process = proc
        self.machine = machine
        self.elf = elf
        self.serial = spec
        self.endpoint = endpoint  # /dev/pts/N, or 127.0.0.1:PORT
        self._log = log

    @property
    def url(self) -> str:
        """The endpoint as a pyserial URL (serial.serial_for_url accepts it)."""
        return self.endpoint if self.serial.kind == "pty" else f"socket://{self.endpoint}"

    def output(self) -> list[str]:
        """The last lines QEMU printed on stdout and stderr."""
        if not self.alive():
            self._log.join()  # read up to EOF first: its last words are the useful ones
        return self._log.lines()

    def alive(self) -> bool:
        return self.process.poll() is None

    def messages(self) -> list[str]:
        """QEMU's own diagnostics ("qemu: fatal: Lockup ...", "qemu-system-arm: ..."), not register dumps."""
        return [line for line in self.output()
                if line.startswith("qemu") and "waiting for connection" not in line]

    def status(self) -> str:
        """One sentence on QEMU's state, for error messages."""
        said = self.messages() or ([] if self.alive() else self.output())
        tail = "; ".join(said[-3:])
        if self.alive():
            return f"QEMU ({self.machine}) is still running" + (f"; it printed: {tail}" if tail else "")
        return (f"QEMU ({self.machine}) exited with status {self.process.returncode}"
                + (f": {tail}" if tail else " without a message"))

    def connect(self, baudrate: int = 115200, timeout: float = STARTUP_TIMEOUT_S) -> serial.SerialBase:
        """Open the firmware's UART. For tcp this is the client QEMU waits for before it starts the CPU."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return serial.serial_for_url(self.url, baudrate=baudrate, timeout=1.0)
            except (serial.SerialException, OSError) as e:
                if not self.alive() or time.monotonic() > deadline:
                    # boot() appends QEMU's state to the message.
                    raise DeviceError(f"cannot open the emulator's serial port {self.url}: {e}") from e
                time.sleep(0.05)

    def _stop(self) -> None:
        _stop(self.process, self._log)


def _stop(proc: subprocess.Popen[bytes], log: _OutputLog) -> None:
    if proc.poll() is None:
        proc.terminate()  # QEMU exits cleanly on SIGTERM, closing its pty and socket
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.join()


def _command(qemu: str, machine: str, elf: Path, serial_arg: str) -> list[str]:
    return [qemu,
            "-machine", machine,
            "-nographic",
            "-monitor", "none",          # -nographic would put QEMU's monitor on our stdin/stdout
            "-icount", "shift=0",        # 1 instruction = 1 ns of virtual time: counts are instructions
            "-kernel", str(elf),
            "-serial", serial_arg]


def _start(elf: Path, machine: str, spec: SerialSpec) -> QemuInstance:
    qemu = qemu_binary()
    if spec.kind == "pty":
        serial_arg = "pty"
    else:
        port = spec.port or _free_tcp_port()
        # nodelay: QEMU sends the UART's output a byte at a time; with Nagle's
        # algorithm each reply would wait ~40 ms for the host's delayed ACK.
        serial_arg = f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"
    proc = subprocess.Popen(
        _command(qemu, machine, elf, serial_arg),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # Own session: a Ctrl-C in the terminal reaches us, and we stop QEMU in order.
        start_new_session=True,
        # If we are SIGKILLed no cleanup runs: then the kernel stops QEMU.
        preexec_fn=_parent_death_signal())
    log = _OutputLog(proc)
    try:
        if spec.kind == "pty":
            found = log.wait_for(_PTY_LINE, proc, STARTUP_TIMEOUT_S)
            endpoint = found.group(1) if isinstance(found, re.Match) else None
        else:
            # QEMU prints "QEMU waiting for connection on: ..." once it listens (when
            # the wording differs, connect() polls until the port accepts).
            log.wait_for("waiting for connection", proc, STARTUP_TIMEOUT_S)
            endpoint = f"127.0.0.1:{port}"
        instance = QemuInstance(proc, log, machine, elf, spec, endpoint or "")
        if endpoint is None or not instance.alive():
            raise _startup_error(instance, serial_arg)
        return instance
    except BaseException:
        _stop(proc, log)
        raise


def _startup_error(instance: QemuInstance, serial_arg: str) -> McuCompileError:
    text = " ".join(instance.output())
    if _ADDRESS_IN_USE in text:
        return _PortInUse(f"-serial {serial_arg}: the port is already in use: {instance.status()}")
    if "unsupported machine type" in text:
        return ToolchainError(f"this QEMU has no machine {instance.machine!r} "
                              f"(`{QEMU} -machine help` lists them): {instance.status()}")
    return DeviceError(f"QEMU did not start {instance.elf} on {instance.machine}: {instance.status()}")


class _PortInUse(DeviceError):
    pass


@contextlib.contextmanager
def boot(elf: Path, machine: str, serial_spec: SerialSpec | str = "tcp") -> Iterator[QemuInstance]:
    """Start QEMU on `elf`; kill it when the block ends, however it ends.

    A DeviceError raised inside the block (the firmware did not answer) gets
    QEMU's own state appended, since "QEMU crashed" and "the firmware hangs"
    need different fixes.
    """
    spec = SerialSpec.parse(serial_spec) if isinstance(serial_spec, str) else serial_spec
    qemu_binary()  # missing QEMU is the first thing to fix
    elf = Path(elf)
    if not elf.is_file():
        raise ToolchainError(f"firmware image {elf} does not exist: build it first")
    for attempt in range(3):
        try:
            instance = _start(elf, machine, spec)
            break
        except _PortInUse:
            if spec.port is not None or attempt == 2:
                raise  # the user asked for this port, or we are unlucky thrice
    try:
        yield instance
    except DeviceError as e:
        # Give QEMU a moment: a guest fault makes it exit just after the line goes quiet.
        with contextlib.suppress(subprocess.TimeoutExpired):
            instance.process.wait(timeout=0.2)
        why = ": the firmware hangs, or was not built for this machine" if instance.alive() else ""
        raise DeviceError(f"{e} ({instance.status()}{why})") from e
    finally:
        instance._stop()
