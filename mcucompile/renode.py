"""Run a board's firmware in Renode, which emulates the real chip (renode/README.md).

QEMU stands in for a board with an MPS2 machine of the same core; Renode runs
the firmware that is flashed (the "board" variant: clock set-up, the chip's
UART driver, DWT), on Renode's own platform description of the chip. The board
file says how (`renode: {platform, script, uart}`); the script is in renode/.

    with boot(elf, board) as renode:                # renode --disable-xwt -e ...
        with hil.Device(renode.connect()) as device:  # the UART, over TCP
            ...

`robot_test()` runs renode/mcucompile.robot with `renode-test` instead: the
protocol exchange through Renode's UART terminal tester.

Renode is optional: no package registry we reach carries it. Every function
that needs it raises ToolchainError with where to get it when it is missing.
"""
from __future__ import annotations

import collections
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import serial

from .boards import Board
from .errors import BoardError, DeviceError, ToolchainError
from .resources import data_dir

RENODE = "renode"
RENODE_TEST = "renode-test"
INSTALL_HINT = ("install it from https://renode.io (Linux: the portable .tar.gz or the .deb of "
                "https://github.com/renode/renode/releases), or use --emulator qemu")
ROBOT_SUITE = "mcucompile.robot"
# Renode is a .NET program: starting it and loading a platform takes seconds.
STARTUP_TIMEOUT_S = 60.0
ROBOT_TIMEOUT_S = 600.0
TERMINAL = "mcucompile_uart"


def renode_binary(tool: str = RENODE) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolchainError(f"Renode is not installed (no `{tool}` on PATH): {INSTALL_HINT}")
    return path


def script_path(board: Board) -> Path:
    """renode/<script>.resc for the board; BoardError if the board has no Renode description."""
    if board.is_host or board.renode is None:
        raise BoardError(f"board {board.name!r} cannot run in Renode: its file ({board.source}) has no "
                         "'renode' field (platform, script, uart); use --emulator qemu")
    path = data_dir("renode") / board.renode.script
    if not path.is_file():
        raise BoardError(f"board {board.name!r} names Renode script {board.renode.script!r}, "
                         f"which is not in {data_dir('renode')}")
    return path


def monitor_commands(elf: Path, board: Board, port: int) -> list[str]:
    """The Renode monitor commands that load the firmware and serve the board's UART on `port`."""
    return [
        f"$bin=@{Path(elf).resolve()}",
        f"include @{script_path(board)}",
        # emitConfig false: a plain byte stream, without telnet negotiation.
        f'emulation CreateServerSocketTerminal {port} "{TERMINAL}" false',
        f"connector Connect sysbus.{board.renode.uart} {TERMINAL}",
        "start",
    ]


class RenodeInstance:
    """A running Renode. Use it only inside `with boot(...)`, which owns its lifetime."""

    def __init__(self, proc: subprocess.Popen, log: collections.deque, board: Board, port: int):
        self.process = proc
        self.board = board
        self.port = port
        self._log = log

    @property
    def url(self) -> str:
        """The board's UART as a pyserial URL."""
        return f"socket://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> list[str]:
        return list(self._log)

    def status(self) -> str:
        tail = "; ".join(line for line in list(self._log)[-3:] if line)
        if self.alive():
            return f"Renode ({self.board.name}) is still running" + (f"; it printed: {tail}" if tail else "")
        return (f"Renode ({self.board.name}) exited with status {self.process.returncode}"
                + (f": {tail}" if tail else ""))

    def connect(self, baudrate: int = 115200, timeout: float = STARTUP_TIMEOUT_S) -> serial.SerialBase:
        """Open the board's UART (Renode accepts the connection once the script has run)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return serial.serial_for_url(self.url, baudrate=baudrate, timeout=1.0)
            except (serial.SerialException, OSError) as e:
                if not self.alive() or time.monotonic() > deadline:
                    raise DeviceError(f"cannot open Renode's serial port {self.url}: {e} "
                                      f"({self.status()})") from e
                time.sleep(0.2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def boot(elf: Path, board: Board, *, port: int | None = None) -> Iterator[RenodeInstance]:
    """Start Renode with the board's script on `elf` (its "board" firmware); stop it on the way out.

    The UART is served on 127.0.0.1:`port` (default: a free port); connect() opens it.
    A DeviceError raised inside the block gets Renode's state appended.
    """
    renode = renode_binary()
    elf = Path(elf)
    if not elf.is_file():
        raise ToolchainError(f"firmware image {elf} does not exist: build it first")
    port = port or _free_port()
    command = [renode, "--disable-xwt", "--plain"]
    for c in monitor_commands(elf, board, port):
        command += ["-e", c]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            start_new_session=True)
    log: collections.deque[str] = collections.deque(maxlen=200)

    def pump() -> None:
        for line in proc.stdout:
            log.append(line.rstrip())
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    instance = RenodeInstance(proc, log, board, port)
    try:
        yield instance
    except DeviceError as e:
        raise DeviceError(f"{e} ({instance.status()})") from e
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=2)


@dataclass(frozen=True)
class RobotResult:
    passed: bool
    returncode: int
    output: str
    results_dir: Path


def robot_test(elf: Path, board: Board, *, input_hex: str, output_hex: str, results_dir: Path,
               timeout: float = ROBOT_TIMEOUT_S) -> RobotResult:
    """Run renode/mcucompile.robot with renode-test for the board's firmware.

    `input_hex` is the model's whole input (at most 31 bytes: one `db` line),
    `output_hex` the output-0 bytes the reference interpreter computes for it.
    """
    tester = renode_binary(RENODE_TEST)
    data = bytes.fromhex(input_hex)
    if not 0 < len(data) <= 31:
        raise ValueError(f"the Robot suite loads the input in one `db` line (1..31 bytes), not {len(data)}")
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    variables = {
        "RESC": str(script_path(board)), "UART": f"sysbus.{board.renode.uart}",
        "ELF": str(Path(elf).resolve()), "INPUT_BYTES": str(len(data)),
        "INPUT_HEX": data.hex(), "OUTPUT_HEX": output_hex.lower(),
    }
    command = [tester, str(data_dir("renode") / ROBOT_SUITE), "--results-dir", str(results_dir)]
    for name, value in variables.items():
        command += ["--variable", f"{name}:{value}"]
    try:
        r = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise DeviceError(f"renode-test did not finish within {timeout:g} s") from e
    return RobotResult(passed=r.returncode == 0, returncode=r.returncode,
                       output=r.stdout + r.stderr, results_dir=results_dir)
