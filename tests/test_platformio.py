"""The PlatformIO project `build` writes for a real board, and `mcucompile flash`.

PlatformIO's registry cannot be reached from here, so the project is checked
two ways: `pio project config` parses it, and a real `pio run` builds it
against a local stand-in for the platform. That platform (made in a temporary
PlatformIO home by `local_platform` below) has the real platform's name and
board id, a toolchain package whose bin/ links to the Debian arm-none-eabi-gcc,
and SCons as the local `tool-scons` package PlatformIO runs its builds with:
PlatformIO itself then reads our platformio.ini, filters our sources, applies
our flags and links with our linker script. Nothing is downloaded.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcucompile import boards, pipeline, platformio
from mcucompile.cli import main as cli_main
from mcucompile.errors import BoardError, DeviceError, McuCompileError, ToolchainError

REAL_BOARDS = [b.name for b in boards.list_boards() if b.platformio is not None]

needs_pio = pytest.mark.skipif(
    shutil.which("pio") is None and not (Path(sys.executable).parent / "pio").is_file(),
    reason="PlatformIO is not installed (pip install platformio)")
needs_scons = pytest.mark.skipif(
    importlib.util.find_spec("SCons") is None,
    reason="SCons is not installed (pip install scons): the local platform runs PlatformIO's builds with it")


@pytest.fixture(scope="module")
def projects(tmp_path_factory, shared_models):
    """`mcucompile build` output for hello_world on each board, once per module."""
    cache: dict[str, Path] = {}

    def build(board: str) -> Path:
        if board not in cache:
            out = tmp_path_factory.mktemp(board) / "out"
            pipeline.build(shared_models / "hello_world_int8.tflite", boards.load(board), out)
            cache[board] = out
        return cache[board]
    return build


def pio_env(home: Path) -> dict[str, str]:
    """PlatformIO confined to `home`: no telemetry, nothing of the user's ~/.platformio."""
    return {**os.environ, "PLATFORMIO_CORE_DIR": str(home), "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No",
            "PLATFORMIO_DISABLE_PROGRESSBAR": "true"}


# ---------------------------------------------------------------- the generated project


@pytest.mark.parametrize("board", REAL_BOARDS)
def test_project_names_the_real_platform_and_our_files(projects, board):
    out, b = projects(board), boards.load(board)
    project = platformio.read_project(out, b)
    assert (project.env, project.platform, project.board) == (b.name, b.platformio.platform, b.platformio.board)
    desc = json.loads((out / "firmware" / "firmware.json").read_text())["variants"]["board"]
    ini = (out / "platformio.ini").read_text()
    for src in desc["sources"]:
        assert f"+<{src}>" in ini and (out / src).is_file()
    assert "+<model/*.c>" in ini and "-<*>" in ini
    assert f"board_build.ldscript = {desc['linker_script']}" in ini and (out / desc["linker_script"]).is_file()
    assert " ".join(b.gcc_flags()) in ini and "framework" not in ini.replace("no vendor framework", "")
    assert f"upload_protocol = {b.platformio.upload_protocol}" in ini
    link = (out / platformio.LINK_SCRIPT).read_text()
    compile(link, platformio.LINK_SCRIPT, "exec")  # valid Python for SCons
    compile((out / platformio.SIZE_SCRIPT).read_text(), platformio.SIZE_SCRIPT, "exec")
    assert '"--specs=nano.specs"' in link and f'"{b.gcc_flags()[-1]}"' in link


def test_boards_without_platformio_ids_get_no_project(projects, tmp_path, shared_models):
    out = tmp_path / "out"
    pipeline.build(shared_models / "hello_world_int8.tflite", boards.load("qemu-m3"), out)
    assert not (out / "platformio.ini").exists()
    with pytest.raises(McuCompileError, match="platformio.ini is missing: build for a board with PlatformIO ids"):
        platformio.read_project(out)
    with pytest.raises(BoardError, match="was built for board 'stm32f746', not 'nrf52840'"):
        platformio.read_project(projects("stm32f746"), boards.load("nrf52840"))


@needs_pio
@pytest.mark.parametrize("board", REAL_BOARDS)
def test_pio_project_config_parses_the_ini(projects, board, tmp_path):
    out, b = projects(board), boards.load(board)
    r = subprocess.run([platformio.pio_binary(), "project", "config", "-d", str(out), "--json-output"], capture_output=True,
                       text=True, env=pio_env(tmp_path / "home"), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    sections = dict(json.loads(r.stdout))
    env = dict(sections[f"env:{b.name}"])
    assert (env["platform"], env["board"]) == (b.platformio.platform, b.platformio.board)
    assert env["extra_scripts"] == [f"pre:{platformio.SIZE_SCRIPT}", f"post:{platformio.LINK_SCRIPT}"]
    assert env["build_unflags"] == ["-Os"]
    assert env["board_build.ldscript"] == "firmware/board/link.ld"
    assert dict(sections["platformio"])["default_envs"] == [b.name]


# ---------------------------------------------------------------- a real `pio run`, offline


def local_platform(home: Path, name: str, board_id: str, cpu: str) -> None:
    """A stand-in for PlatformIO platform `name` with board `board_id`, installed into `home`."""
    from platformio.package.meta import PackageMetadata, PackageSpec, PackageType
    import SCons

    packages = home / "packages"
    scons = packages / "tool-scons"
    scons.mkdir(parents=True)
    # PlatformIO runs `python <tool-scons>/scons.py`: point it at the SCons installed from PyPI.
    (scons / "scons.py").write_text(textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(Path(SCons.__path__[0]).parent)!r})
        import SCons.Script
        SCons.Script.main()
        """))
    toolchain = packages / "toolchain-gccarmnoneeabi"
    (toolchain / "bin").mkdir(parents=True)
    for tool in glob.glob("/usr/bin/arm-none-eabi-*"):
        (toolchain / "bin" / Path(tool).name).symlink_to(tool)
    for path, pkg, version in ((scons, "tool-scons", "4.41101.0"),
                               (toolchain, "toolchain-gccarmnoneeabi", "1.120201.0")):
        (path / "package.json").write_text(json.dumps({"name": pkg, "version": version}))
        PackageMetadata(PackageType.TOOL, pkg, version,
                        spec=PackageSpec(owner="platformio", name=pkg)).dump(str(path / ".piopm"))

    platform = home.parent / f"platform-{name}"
    (platform / "builder").mkdir(parents=True)
    (platform / "boards").mkdir()
    (platform / "platform.json").write_text(json.dumps({
        "name": name, "title": f"offline stand-in for {name}", "version": "0.0.1",
        "description": "test platform", "engines": {"platformio": "^6"}, "frameworks": {},
        "packages": {"toolchain-gccarmnoneeabi": {"type": "toolchain", "owner": "platformio",
                                                  "version": "~1.120201.0"}}}))
    (platform / "boards" / f"{board_id}.json").write_text(json.dumps({
        "build": {"cpu": cpu, "f_cpu": "1000000L", "mcu": board_id}, "frameworks": [], "name": board_id,
        "upload": {"maximum_ram_size": 1 << 20, "maximum_size": 1 << 21, "protocol": "stlink",
                   "protocols": ["stlink", "jlink"]},
        "url": "https://example.invalid", "vendor": "test"}))
    # What the real platforms do without a framework (ststm32 / nordicnrf52 builder/main.py
    # and frameworks/_bare.py): the arm-none-eabi tools, -Os, -mcpu from the board, BuildProgram.
    # Its upload fails like an ST-LINK that finds no board.
    (platform / "builder" / "main.py").write_text(textwrap.dedent("""\
        from SCons.Script import AlwaysBuild, Builder, Default, DefaultEnvironment
        env = DefaultEnvironment()
        cpu = "-mcpu=%s" % env.BoardConfig().get("build.cpu")
        env.Replace(AR="arm-none-eabi-ar", AS="arm-none-eabi-as", CC="arm-none-eabi-gcc",
                    CXX="arm-none-eabi-g++", OBJCOPY="arm-none-eabi-objcopy", RANLIB="arm-none-eabi-ranlib",
                    SIZETOOL="arm-none-eabi-size", ARFLAGS=["rc"], PROGSUFFIX=".elf", PROGNAME="firmware")
        env.Append(CCFLAGS=["-Os", "-ffunction-sections", "-fdata-sections", "-Wall", "-mthumb", cpu],
                   LINKFLAGS=["-Os", "-Wl,--gc-sections,--relax", "-mthumb", cpu],
                   LIBS=["c", "gcc", "m", "stdc++"],
                   BUILDERS=dict(ElfToBin=Builder(action="$OBJCOPY -O binary $SOURCES $TARGET", suffix=".bin")))
        elf = env.BuildProgram()
        image = env.ElfToBin("$BUILD_DIR/${PROGNAME}", elf)
        AlwaysBuild(env.Alias("upload", image, env.VerboseAction(
            "echo 'Error: open failed' && echo 'in procedure program' && exit 1", "Uploading $SOURCE")))
        Default([image])
        """))
    r = subprocess.run([platformio.pio_binary(), "pkg", "install", "-g", "-p", f"file://{platform}"], capture_output=True,
                       text=True, env=pio_env(home), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_pio
@needs_scons
@pytest.mark.arm_gcc
def test_pio_run_builds_the_project_with_our_flags_and_linker_script(projects, tmp_path, monkeypatch):
    from elftools.elf.elffile import ELFFile

    b = boards.load("stm32f746")
    out = projects("stm32f746")
    home = tmp_path / "home"
    local_platform(home, b.platformio.platform, b.platformio.board, b.core.mcpu)
    r = subprocess.run([platformio.pio_binary(), "run", "-d", str(out), "-v"], capture_output=True, text=True,
                       env=pio_env(home), timeout=300)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log
    link = next(line for line in log.splitlines() if "-o .pio/build/stm32f746/firmware.elf" in line)
    for flag in ("-T firmware/board/link.ld", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16", "--specs=nano.specs",
                 "-nostartfiles", "-lc -lm -lgcc"):
        assert flag in link, flag
    assert "-lstdc++" not in link
    # Exactly the board variant's sources (OUT/firmware/src also holds the QEMU variant's drivers).
    compiles = [line for line in log.splitlines() if line.startswith("arm-none-eabi-gcc -o ") and " -c " in line]
    sources = json.loads((out / "firmware" / "firmware.json").read_text())["variants"]["board"]["sources"]
    assert sorted(c.split()[-1] for c in compiles) == sorted(sources + [str(p.relative_to(out))
                                                                         for p in out.glob("model/*.c")])
    # The model and the profiling hooks at -O2; the runtime around them for size (-Os after -O2).
    size_sources = json.loads((out / "firmware" / "firmware.json").read_text())["variants"]["board"]["size_sources"]
    assert "firmware/src/protocol.c" in size_sources and "firmware/src/fw_time.c" not in size_sources
    for c in compiles:
        assert "-O2" in c and "-Ifirmware/board" in c, c
        flags = c.split()
        assert (flags[-1] in size_sources) == ("-Os" in flags and flags.index("-Os") > flags.index("-O2")), c

    elf_path = out / ".pio" / "build" / "stm32f746" / "firmware.elf"
    with elf_path.open("rb") as f:
        elf = ELFFile(f)
        symbols = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
        vectors = elf.get_section_by_name(".vectors")
        assert vectors["sh_addr"] == b.flash.origin  # the board's flash, from our linker script
        assert symbols["__stack_end"] == b.sram.origin + b.stack_bytes
        assert symbols["Reset_Handler"] & ~1 == elf.header["e_entry"] & ~1
        assert "fw_clock_init" in symbols and "fw_caches_enable" in symbols

    # The size script fails the build, before the link, rather than leave a
    # runtime source at -O2 without a word: one it never met (a QEMU driver,
    # in the project but not in the board's build), one that does not exist.
    script = out / platformio.SIZE_SCRIPT
    original = script.read_text()
    qemu_only = next(s for s in json.loads((out / "firmware" / "firmware.json").read_text())["variants"]["qemu"]
                     ["sources"] if s not in sources)
    for extra, message in ((qemu_only, f"were not compiled with -Os: {qemu_only}"),
                           ("firmware/src/gone.c", "names runtime sources that are not in the project: "
                                                   "firmware/src/gone.c")):
        script.write_text(original.replace(" for s in [", f" for s in [{extra!r}, ", 1))
        elf_path.unlink(missing_ok=True)
        r = subprocess.run([platformio.pio_binary(), "run", "-d", str(out)], capture_output=True, text=True,
                           env=pio_env(home), timeout=300)
        assert r.returncode != 0 and message in r.stdout + r.stderr, r.stdout + r.stderr
        assert not elf_path.exists()
    script.write_text(original)
    # Either extra script dropped from platformio.ini: said, not a traceback or a silent -O2.
    ini = out / "platformio.ini"
    ini_text = ini.read_text()
    for line, message in ((f"pre:{platformio.SIZE_SCRIPT}", f"lacks pre:{platformio.SIZE_SCRIPT}"),
                          (f"post:{platformio.LINK_SCRIPT}", f"lacks post:{platformio.LINK_SCRIPT}")):
        ini.write_text(ini_text.replace(f"    {line}\n", ""))
        r = subprocess.run([platformio.pio_binary(), "run", "-d", str(out)], capture_output=True, text=True,
                           env=pio_env(home), timeout=300)
        assert r.returncode != 0 and message in r.stdout + r.stderr, r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr
    ini.write_text(ini_text)

    # `mcucompile flash` runs the upload; the stand-in's uploader finds no board.
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(home))
    monkeypatch.setenv("PLATFORMIO_SETTING_ENABLE_TELEMETRY", "No")
    with pytest.raises(DeviceError, match=r"no board answered the upload for 'stm32f746': check that the "
                                          r"board \(disco_f746ng\) is plugged in(.|\n)*Error: open failed"):
        platformio.flash(out, b)


# ---------------------------------------------------------------- mcucompile flash


def test_flash_without_platformio_says_how_to_install_it(projects, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(platformio.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ToolchainError, match=r"PlatformIO is not installed \(no `pio` on PATH\): install it "
                                             r"with `pip install platformio`"):
        platformio.flash(projects("stm32f746"))
    assert cli_main(["flash", "--board", "stm32f746", str(projects("stm32f746"))]) == 1
    assert "error: PlatformIO is not installed" in capsys.readouterr().err


def test_flash_verb_checks_the_board(projects, capsys, tmp_path):
    assert cli_main(["flash", "--board", "qemu-m3", str(projects("stm32f746"))]) == 1
    assert "board 'qemu-m3' cannot be flashed: it has no PlatformIO ids" in capsys.readouterr().err
    assert cli_main(["flash", str(tmp_path)]) == 1
    assert "has no readable report.json naming its board" in capsys.readouterr().err


@pytest.mark.parametrize("output, error, message", [
    ("Open On-Chip Debugger 0.12.0\nError: open failed\nin procedure 'program'", DeviceError,
     "no board answered the upload"),
    ("Connecting to J-Link via USB...FAILED: Cannot connect to J-Link.", DeviceError, "no board answered"),
    ("Error: Please specify `upload_port` for environment or use global `--upload-port` option.", DeviceError,
     "no board answered"),
    ("Platform Manager: Installing ststm32\nHTTPClientError: registry.platformio.org", ToolchainError,
     "PlatformIO could not install platform 'ststm32' or its tools"),
    ("*** [.pio/build/stm32f746/firmware.elf] Error 1", McuCompileError, r"`pio run -t upload` failed \(exit status 1\)"),
])
def test_upload_failures_are_told_apart(output, error, message):
    project = platformio.Project(directory=Path("out"), env="stm32f746", platform="ststm32", board="disco_f746ng")
    e = platformio._flash_error(project, 1, output)
    assert type(e) is error and e.__class__.__name__ == error.__name__
    assert re.search(message, str(e)) and output.splitlines()[-1] in str(e)
