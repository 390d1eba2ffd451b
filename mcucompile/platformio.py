"""PlatformIO projects for real boards, and flashing them with `pio run -t upload`.

`mcucompile build` for a board with PlatformIO ids (the board file's
`platformio: {platform, board}`) also writes OUT/platformio.ini: one
environment, named after the board, that builds the "board" firmware variant
from our sources with our linker script and no vendor framework, on the real
platform and board (ststm32 / disco_f746ng, nordicnrf52 / nrf52840_dk, ...).
A user with PlatformIO can then `cd OUT && pio run -t upload`, which is what
`mcucompile flash` does, with clear messages when PlatformIO or the board is
missing.

    write_platformio(out, board, "model")    # called by mcucompile.firmware.write_firmware
    flash(out, board)                        # pio run -d OUT -e <board> -t upload
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .boards import Board
from .errors import BoardError, DeviceError, McuCompileError, ToolchainError
from .resources import data_dir

INI = "platformio.ini"
LINK_SCRIPT = "firmware/platformio_link.py"
SIZE_SCRIPT = "firmware/platformio_size.py"
INSTALL_HINT = "install it with `pip install platformio` (https://platformio.org)"
# The C library of a plain C firmware (see platformio_link.py.j2).
LIBS = ("c", "m", "gcc")

# What pio / its uploaders print when no board answers, and when it cannot reach
# its registry to install a platform, a toolchain or an upload tool.
_NO_BOARD = re.compile(
    r"(open failed|no device found|unable to find a matching cmsis-dap device|"
    r"couldn't find any st-?link|st-?link.*not (found|detected)|cannot connect to j-?link|"
    r"connecting to j-?link via usb\.*failed|could not connect to target|error connecting dp|"
    r"please specify `?upload_port|no (serial|upload) port|libusb_open\(\) failed|"
    r"error: no j-link found|nrfjprog.*no debuggers)", re.IGNORECASE)
_NO_REGISTRY = re.compile(
    r"(HTTPClientError|Could not resolve|Name or service not known|Temporary failure in name resolution|"
    r"UnknownPackageError|Unknown development platform|Connection refused|Max retries exceeded|"
    r"could not find the package)", re.IGNORECASE)


@dataclass(frozen=True)
class _ProjectView:
    """What the two templates render (paths relative to OUT, as PlatformIO reads them)."""
    board: str
    description: str
    board_file: str
    env: str
    platform: str
    pio_board: str
    upload_protocol: str | None
    baud: int
    linker_script: str
    sources: tuple[str, ...]
    build_flags: tuple[str, ...]
    link_script: str
    link_flags: str          # a Python list literal
    libs: str
    size_script: str
    size_sources: str        # a Python list literal: the runtime compiled for size
    size_cflags: str         # a Python list literal


def write_platformio(out: Path, board: Board, name: str) -> Path | None:
    """Write OUT/platformio.ini and OUT/firmware/platformio_link.py for the board firmware.

    Needs OUT/firmware/firmware.json (write_firmware writes it first). Returns the
    .ini, or None when the board has no PlatformIO ids (QEMU boards, the host):
    then any platformio.ini a previous build left in OUT is removed, so that OUT
    never holds a project for another board.
    """
    out = Path(out)
    ini = out / INI
    if board.platformio is None:
        ini.unlink(missing_ok=True)
        return None
    desc = _firmware_description(out)
    variant = desc["variants"].get("board")
    if variant is None:
        raise BoardError(f"{out / 'firmware'} has no 'board' firmware variant for {board.name!r}: "
                         "a PlatformIO project needs one")
    cflags = list(desc["cflags"])
    cpu_flags = [f for f in cflags if f.startswith(("-mcpu=", "-mthumb", "-mfpu=", "-mfloat-abi="))]
    view = _ProjectView(
        board=board.name, description=board.description, board_file=_display(board.source),
        env=board.name, platform=board.platformio.platform, pio_board=board.platformio.board,
        upload_protocol=board.platformio.upload_protocol, baud=board.uart.baud,
        linker_script=variant["linker_script"],
        sources=(*variant["sources"], variant["model_sources"]),
        build_flags=(" ".join(cflags), " ".join(f"-I{d}" for d in variant["include_dirs"])),
        link_script=LINK_SCRIPT,
        link_flags=json.dumps(cpu_flags + list(desc["ldflags"])), libs=json.dumps(list(LIBS)),
        size_script=SIZE_SCRIPT, size_sources=json.dumps(list(variant.get("size_sources", ()))),
        size_cflags=json.dumps(list(desc.get("size_cflags", ()))))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("firmware") / "templates")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    ini.write_text(env.get_template("platformio.ini.j2").render(p=view))
    (out / LINK_SCRIPT).write_text(env.get_template("platformio_link.py.j2").render(p=view))
    (out / SIZE_SCRIPT).write_text(env.get_template("platformio_size.py.j2").render(p=view))
    return ini


def _firmware_description(out: Path) -> dict:
    from .firmware import DESCRIPTION
    path = out / "firmware" / DESCRIPTION
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise McuCompileError(f"{path} is missing: write the firmware before its PlatformIO project") from None


def _display(path: Path) -> str:
    try:
        return str(Path("boards") / Path(path).resolve().relative_to(data_dir("boards").resolve()))
    except ValueError:
        return Path(path).name


# --------------------------------------------------------------------------- pio


def pio_binary() -> str:
    """The `pio` command (or `platformio`), or ToolchainError saying how to install it."""
    for name in ("pio", "platformio"):
        path = shutil.which(name)
        if path:
            return path
    # pip installs console scripts beside the interpreter, which may not be on PATH.
    beside = Path(sys.executable).parent / "pio"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise ToolchainError(f"PlatformIO is not installed (no `pio` on PATH): {INSTALL_HINT}")


@dataclass(frozen=True)
class Project:
    """A generated PlatformIO project: its directory and the environment for the board."""
    directory: Path
    env: str
    platform: str
    board: str


def read_project(out: Path, board: Board | None = None) -> Project:
    """OUT's platformio.ini, checked against `board` when given."""
    out = Path(out)
    ini = out / INI
    if not ini.is_file():
        hint = (f"board {board.name!r} has no PlatformIO ids (field 'platformio' of {board.source})"
                if board is not None and board.platformio is None else
                f"build for a board with PlatformIO ids first (mcucompile build MODEL --board BOARD --out {out})")
        raise McuCompileError(f"{ini} is missing: {hint}")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini)
    except configparser.Error as e:
        raise McuCompileError(f"{ini} is not a valid PlatformIO project file ({e}): rebuild it") from None
    envs = [s[len("env:"):] for s in parser.sections() if s.startswith("env:")]
    if len(envs) != 1:
        raise McuCompileError(f"{ini} should define exactly one [env:...], not {len(envs)}: rebuild it")
    env = envs[0]
    section = parser[f"env:{env}"]
    if board is not None and env != board.name:
        raise BoardError(f"{out} was built for board {env!r}, not {board.name!r}: "
                         f"rebuild with --board {board.name}")
    return Project(directory=out, env=env, platform=section.get("platform", ""),
                   board=section.get("board", ""))


@dataclass(frozen=True)
class FlashResult:
    project: Project
    command: tuple[str, ...]
    output: str


def flash(out: Path, board: Board | None = None, *, port: str | None = None,
          echo=None) -> FlashResult:
    """`pio run -t upload` for OUT's project: builds the firmware with PlatformIO and flashes it.

    `echo(line)` receives pio's output as it comes (None: collect it silently).
    Raises ToolchainError when PlatformIO is missing or cannot install what it
    needs, DeviceError when no board answers, McuCompileError for other failures;
    each message ends with pio's last lines.
    """
    project = read_project(out, board)
    command = [pio_binary(), "run", "-d", str(project.directory), "-e", project.env, "-t", "upload"]
    if port:
        command += ["--upload-port", port]
    lines: list[str] = []
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
    except OSError as e:
        raise ToolchainError(f"cannot run {command[0]}: {e.strerror}; {INSTALL_HINT}") from None
    with proc:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if echo is not None:
                echo(lines[-1])
    output = "\n".join(lines)
    if proc.returncode != 0:
        raise _flash_error(project, proc.returncode, output)
    return FlashResult(project=project, command=tuple(command), output=output)


def _flash_error(project: Project, code: int, output: str) -> McuCompileError:
    tail = "\n".join(output.strip().splitlines()[-12:])
    if _NO_REGISTRY.search(output):
        return ToolchainError(
            f"PlatformIO could not install platform {project.platform!r} or its tools for board "
            f"{project.board!r}: it downloads them from its registry on first use, which needs the "
            f"network (or install them beforehand with `pio pkg install -d {project.directory}`). "
            f"pio said:\n{tail}")
    if _NO_BOARD.search(output):
        return DeviceError(
            f"no board answered the upload for {project.env!r}: check that the board ({project.board}) "
            f"is plugged in over USB, powered, not held by another program (a debugger, a serial "
            f"monitor), and that its debug probe's driver is installed. pio said:\n{tail}")
    return McuCompileError(f"`pio run -t upload` failed (exit status {code}) for {project.env!r}. "
                           f"pio said:\n{tail}")
