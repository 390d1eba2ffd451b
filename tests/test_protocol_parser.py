"""The firmware's serial protocol interpreter, fuzzed on the host.

firmware/src/protocol.c has no hardware dependencies. Here it is compiled with
AddressSanitizer and UBSan (every finding aborts) together with
tests/data/protocol_host.c, a stand-in model with known behaviour, into one
host program that serves many requests: each request is a byte stream fed to a
fresh interpreter. hypothesis drives it with random and malformed streams and
checks the contract of firmware/PROTOCOL.md: every '%' gets exactly one
"m-ready", every line is an "m-" or "e-[...]" line, nothing crashes or
overruns, and the model sees exactly the bytes that were loaded.
"""
from __future__ import annotations

import ctypes
import math
import shutil
import struct
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "firmware" / "src"
HOST = ROOT / "tests" / "data" / "protocol_host.c"
INPUT_BYTES = 8  # the stand-in model: int8[5] + uint8[3]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Device:
    """The sanitized host build of the interpreter, one request per call."""

    def __init__(self, exe: Path):
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def send(self, data: bytes) -> str:
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            self.proc.wait(timeout=10)
            pytest.fail(f"the interpreter died on {data!r}:\n{self.proc.stderr.read().decode()}")
        (n,) = struct.unpack("<I", header)
        return self.proc.stdout.read(n).decode("ascii")

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0, self.proc.stderr.read().decode()


@pytest.fixture(scope="module")
def device(tmp_path_factory) -> Device:
    exe = tmp_path_factory.mktemp("protocol") / "protocol_host"
    cmd = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-g", "-O1",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
           f"-I{SRC}", str(SRC / "protocol.c"), str(SRC / "fw_format.c"), str(HOST), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    dev = Device(exe)
    yield dev
    dev.close()


BOOT = "m-init-done\r\nm-ready\r\n"


def replies(device: Device, *commands: str) -> list[list[str]]:
    """Sends the commands (each gets its '%'); returns each one's reply lines without "m-ready"."""
    text = device.send("".join(c + "%" for c in commands).encode())
    assert text.startswith(BOOT)
    chunks = text[len(BOOT):].split("m-ready\r\n")
    assert chunks[-1] == "" and len(chunks) == len(commands) + 1, text
    return [c.split("\r\n")[:-1] for c in chunks[:-1]]


def standin(data: bytes) -> tuple[bytes, bytes]:
    """What tests/data/protocol_host.c's model computes from its 8 input bytes."""
    in0 = np.frombuffer(data[:5], np.int8)
    in1 = np.frombuffer(data[5:8], np.uint8)
    out0 = np.array([in0[k] ^ np.int8(in1[k % 3].astype(np.int8)) for k in range(4)], np.int8)
    out1 = np.array([np.float32(in0.astype(np.float32).sum()),
                     np.float32(in1.astype(np.float32).sum()) / np.float32(2)], np.float32)
    return out0.tobytes(), out1.tobytes()


def load_commands(data: bytes, chunk: int = 31) -> list[str]:
    return [f"db load {len(data)}"] + [f"db {data[i:i + chunk].hex()}" for i in range(0, len(data), chunk)]


# ---------------------------------------------------------------- the EEMBC commands


def test_boot_name_and_profile(device):
    name, profile = replies(device, "name", "profile")
    assert name == ["m-name-dut-[mcucompile]"]
    assert profile == ["m-profile-[mcucompile-fw-1]", "m-model-[standin]", "m-board-[hostboard]",
                       "m-variant-[host]", "m-counter-[instructions]", "m-clock-hz-25000000",
                       f"m-input-bytes-{INPUT_BYTES}", "m-outputs-2", "m-layers-3"]


def test_load_infer_and_read_results(device):
    data = bytes([1, 2, 3, 0xFE, 0x80, 10, 200, 7])
    *loads, infer, raw, results = replies(device, *load_commands(data, chunk=3), "infer 3 2",
                                          "results-raw", "results")
    assert loads[0] == [f"m-[Expecting {INPUT_BYTES} bytes]"]
    assert all(r == [] for r in loads[1:-1]) and loads[-1] == ["m-load-done"]
    out0, out1 = standin(data)
    assert infer[:3] == ["m-warmup-start-2", "m-warmup-done", "m-infer-start-3"]
    assert infer[3].startswith("m-lap-us-") and infer[4].startswith("m-lap-us-")
    assert infer[5] == "m-infer-done"
    dequantized = [(v + 3) * 0.5 for v in np.frombuffer(out0, np.int8)]  # scale 0.5, zero point -3
    assert infer[6] == "m-results-[" + ",".join(f"{v:.6f}" for v in dequantized) + "]"
    assert results == infer[6:]
    assert raw == [f"m-results-raw-0-[{out0.hex()}]", f"m-results-raw-1-[{out1.hex()}]"]


def test_every_inference_sees_the_loaded_input(device):
    """The stand-in clobbers its inputs like an arena: the firmware must copy them each time."""
    data = bytes(range(8))
    *_, infer, raw = replies(device, *load_commands(data), "infer 5 3", "results-raw")
    assert raw[0] == f"m-results-raw-0-[{standin(data)[0].hex()}]"


def test_counts_of_the_last_infer(device):
    *_, cycles, layers, stack = replies(device, *load_commands(bytes(8)), "infer 4 1", "cycles",
                                        "layers", "stack")
    # The host stand-in's clock advances 1000 units per read.
    assert cycles == ["m-cycles-1000", "m-cycles-min-1000", "m-cycles-max-1000",
                      "m-cycles-total-4000", "m-iterations-4"]
    assert layers == ["m-layers-3", "m-layer-0-100-[alpha]", "m-layer-2-102-[?]",
                      "e-[Only 2 of 3 layers profiled]"]
    assert stack == ["m-stack-used-1234", "m-stack-size-8192"]


def test_db_print(device):
    data = bytes(range(0xF0, 0xF8))
    _, _, printed = replies(device, "db load 8", f"db {data[:5].hex()}", "db print")
    assert printed == ["m-buffer-f0-f1-f2-f3-f4"]
    *_, printed = replies(device, *load_commands(data), "db print")
    assert printed == ["m-buffer-f0-f1-f2-f3-f4-f5-f6-f7"]


def test_defaults_and_whitespace(device):
    """`infer` alone is 1 inference, 0 warm-ups; tabs are spaces; CR/LF and empty commands are ignored."""
    text = device.send(b"db load 8%\r\ndb\t0001020304050607%\n%   %infer%")
    lines = text.split("\r\n")
    assert lines.count("m-ready") == 6
    assert "m-warmup-start-0" in lines and "m-infer-start-1" in lines and "m-load-done" in lines


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("commands, error", [
    (["bogus"], "e-[Unknown command: bogus]"),
    (["NAME"], "e-[Unknown command: NAME]"),
    (["name now"], "e-[name takes no arguments]"),
    (["db"], "e-[db needs a subcommand"),
    (["db load"], "e-[db load needs one byte count"),
    (["db load -8"], "e-[db load needs one byte count"),
    (["db load 99999999999"], "e-[db load needs one byte count"),
    (["db load 7"], "e-[db load: the model input is 8 bytes, not 7]"),
    (["db 00"], "e-[db: no load in progress"),
    (["db load 8", "db 0"], "e-[db: odd number of hex digits]"),
    (["db load 8", "db 0g"], "e-[db: not a hex digit: 'g']"),
    (["db load 8", "db 00 11"], "e-[db takes one string of hex digits"),
    (["db load 8", "db 000102030405060708"], "e-[db: 9 bytes but only 8 more expected]"),
    (["db load 8", "db 0001020304050607", "db 00"], "e-[db: the buffer is already full"),
    (["db print 3"], "e-[db print takes no arguments]"),
    (["infer"], "e-[Input not loaded"),
    (["db load 8", "db 0011", "infer"], "e-[Input not loaded"),
    (["infer 0"], "e-[infer N W"),
    (["infer 1000001"], "e-[infer N W"),
    (["infer 1 x"], "e-[infer N W"),
    (["infer 1 2 3"], "e-[infer N W"),
    (["results"], "e-[No results: run infer first]"),
    (["results-raw"], "e-[No results: run infer first]"),
    (["cycles"], "e-[No results: run infer first]"),
    (["layers"], "e-[No results: run infer first]"),
    (["a b c d e"], "e-[Too many arguments]"),
    (["x" * 81], "e-[Command too long"),
    ([*load_commands(bytes([127]) + bytes(7)), "infer 1 0"], "e-[Inference failed: status 7]"),
])
def test_errors(device, commands, error):
    last = replies(device, *commands)[-1]
    # The error is the reply's last line; only progress lines ("m-...") may precede it.
    assert last[-1].startswith(error) and last[-1].endswith("]"), last
    assert all(line.startswith("m-") for line in last[:-1]), last


def test_a_rejected_db_line_stores_nothing(device):
    *_, printed = replies(device, "db load 8", "db 0102", "db 0304zz", "db 03040506070809", "db print")
    assert printed == ["m-buffer-01-02"]


def test_failed_inference_clears_results(device):
    good, bad = bytes(8), bytes([127]) + bytes(7)
    *_, results = replies(device, *load_commands(good), "infer", *load_commands(bad), "infer", "results")
    assert results == ["e-[No results: run infer first]"]


def test_non_ascii_and_control_bytes_invalidate_the_command(device):
    for junk in (b"\x00", b"\x1b", b"\x7f", b"\xff", b"\xc3\xa9"):
        text = device.send(b"na" + junk + b"me%name%")
        assert text == BOOT + ("e-[Invalid byte in command: only printable ASCII is allowed]\r\nm-ready\r\n"
                               "m-name-dut-[mcucompile]\r\nm-ready\r\n")


def test_an_80_character_command_is_accepted_and_81_is_not(device):
    ok, too_long, after = replies(device, "db load 8" + " " * 71, "db load 8" + " " * 72, "name")
    assert ok == ["m-[Expecting 8 bytes]"]
    assert too_long[0].startswith("e-[Command too long")
    assert after == ["m-name-dut-[mcucompile]"]


# ---------------------------------------------------------------- fuzzing

HELP_PREFIXES = ("mcucompile device firmware", "name ", "profile ", "timestamp ", "db ", "infer ",
                 "results ", "results-raw ", "cycles ", "layers ", "stack ")


def check_well_formed(data: bytes, text: str) -> None:
    assert text.startswith(BOOT)
    assert text.endswith("\r\n")
    lines = text.split("\r\n")[:-1]
    # Exactly one "m-ready" per terminator (plus the boot one): the host never waits forever.
    assert lines.count("m-ready") == 1 + data.count(b"%")
    for line in lines:
        assert "\r" not in line and "\n" not in line
        assert len(line) <= 200 or line.startswith(("m-results", "m-buffer")), line
        if line.startswith("e-"):
            assert line.startswith("e-[") and line.endswith("]"), line
        else:
            assert line.startswith("m-") or line.startswith(HELP_PREFIXES), line


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(device, data):
    check_well_formed(data, device.send(data))


WORDS = ["name", "profile", "timestamp", "db", "load", "print", "infer", "results", "results-raw",
         "cycles", "layers", "stack", "help", "8", "0", "1", "31", "-1", "4294967296", "ff", "0g"]


def _command() -> st.SearchStrategy[bytes]:
    hexes = st.binary(min_size=0, max_size=40).map(lambda b: b"db " + b.hex().encode())
    numbers = st.tuples(st.integers(-5, 2_000_000), st.integers(-5, 2_000_000)).map(
        lambda t: f"infer {t[0]} {t[1]}".encode())
    loads = st.integers(-3, 20).map(lambda n: f"db load {n}".encode())
    wordy = st.lists(st.sampled_from(WORDS), max_size=6).map(lambda w: " ".join(w).encode())
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=120).map(str.encode)
    raw = st.binary(max_size=30)
    return st.one_of(hexes, numbers, loads, wordy, printable, raw,
                     st.just(b"db load 8"), st.just(b"db 0001020304050607"), st.just(b"infer 2 1"))


@FUZZ
@given(st.lists(st.tuples(_command(), st.sampled_from([b"%", b"%\r\n", b"", b"%%", b"\t%"])), max_size=25))
def test_command_streams(device, parts):
    data = b"".join(c + end for c, end in parts)
    check_well_formed(data, device.send(data))


@FUZZ
@given(st.binary(min_size=INPUT_BYTES, max_size=INPUT_BYTES), st.integers(1, 8),
       st.integers(1, 4), st.integers(0, 3))
def test_loaded_bytes_reach_the_model(device, data, chunk, n, warmup):
    *loads, infer, raw = replies(device, *load_commands(data, chunk), f"infer {n} {warmup}", "results-raw")
    assert loads[-1] == ["m-load-done"]
    if data[0] == 127:  # the stand-in's failure case
        assert infer[-1] == "e-[Inference failed: status 7]"
        assert raw == ["e-[No results: run infer first]"]
        return
    out0, out1 = standin(data)
    assert raw == [f"m-results-raw-0-[{out0.hex()}]", f"m-results-raw-1-[{out1.hex()}]"]


# ---------------------------------------------------------------- float formatting


@pytest.fixture(scope="module")
def fmt(tmp_path_factory):
    lib = tmp_path_factory.mktemp("fmt") / "libfwformat.so"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC",
                    str(SRC / "fw_format.c"), "-o", str(lib)], check=True, capture_output=True, text=True)
    so = ctypes.CDLL(str(lib))
    so.fw_fmt_float.argtypes = [ctypes.c_char_p, ctypes.c_float]
    so.fw_fmt_float.restype = ctypes.c_size_t

    def format_float(v: float) -> str:
        buf = ctypes.create_string_buffer(64)
        n = so.fw_fmt_float(buf, v)
        assert n <= 18  # FW_FMT_FLOAT_CHARS in fw_format.h
        return buf.raw[:n].decode()
    return format_float


@pytest.mark.parametrize("value, text", [
    (0.0, "0.000000"), (-0.0, "0.000000"), (1.0, "1.000000"), (-2.5, "-2.500000"),
    (0.99609375, "0.996094"), (123456.0, "123456.000000"), (2e-6, "0.000002"), (9e-7, "9.000000e-07"),
    (1e9, "1.000000e+09"), (-3.0e38, "-3.000000e+38"), (1e-7, "1.000000e-07"),
    (1.4e-45, "1.401298e-45"), (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"),
])
def test_float_format_examples(fmt, value, text):
    assert fmt(value) == text


@settings(max_examples=2000, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float_format_reads_back(fmt, value):
    text = fmt(value)
    back = float(text)
    f32 = float(np.float32(value))
    if "e" in text:
        assert math.isclose(back, f32, rel_tol=2e-6), (value, text)
    else:
        assert abs(back - f32) <= 5.1e-7 + abs(f32) * 1e-15, (value, text)


def _rounded_text(value: float) -> tuple[str, Decimal]:
    """The exact float printed as fw_fmt_float promises, rounded half up from its
    exact decimal value; and how far that value is from the rounding boundary
    (relative), for the cases the firmware's finite arithmetic cannot settle."""
    exact = Decimal(float(np.float32(value)))
    sign = "-" if exact < 0 else ""
    a = abs(exact)
    if a == 0 or Decimal("1e-6") <= a < Decimal("1e9"):
        q = int((a * 10**6).to_integral_value(rounding=ROUND_HALF_UP))
        frac = a * 10**6 - (a * 10**6).to_integral_value(rounding="ROUND_FLOOR")
        sign = sign if q else ""
        return f"{sign}{q // 10**6}.{q % 10**6:06d}", abs(frac - Decimal("0.5")) / max(a * 10**6, 1)
    exponent = a.adjusted()
    scaled = a.scaleb(6 - exponent)
    digits = int(scaled.to_integral_value(rounding=ROUND_HALF_UP))
    gap = abs(scaled - scaled.to_integral_value(rounding="ROUND_FLOOR") - Decimal("0.5")) / scaled
    if digits == 10**7:
        digits, exponent = digits // 10, exponent + 1
    return f"{sign}{digits // 10**6}.{digits % 10**6:06d}e{exponent:+03d}", gap


@settings(max_examples=3000, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float_format_is_correctly_rounded(fmt, value):
    # The integer arithmetic gives the exact value's digits, rounded half up,
    # except within 1e-15 (relative) of a rounding boundary: its truncations.
    text, gap = _rounded_text(value)
    assert fmt(value) == text or gap < Decimal("1e-15"), (value, fmt(value), text)


# ---------------------------------------------------------------- 64-bit division and dequantization


@pytest.fixture(scope="module")
def fmtlib(tmp_path_factory):
    lib = tmp_path_factory.mktemp("fmtlib") / "libfwformat.so"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC",
                    "-fsanitize=undefined", "-fno-sanitize-recover=all",
                    str(SRC / "fw_format.c"), "-o", str(lib)], check=True, capture_output=True, text=True)
    so = ctypes.CDLL(str(lib))
    so.fw_div_u64.argtypes = [ctypes.c_uint64, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)]
    so.fw_div_u64.restype = ctypes.c_uint64
    so.fw_dequantize.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_float]
    so.fw_dequantize.restype = ctypes.c_float
    so.fw_fmt_u64.argtypes = [ctypes.c_char_p, ctypes.c_uint64]
    so.fw_fmt_u64.restype = ctypes.c_size_t
    return so


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.integers(2**32, 2**33)),
       st.one_of(st.integers(1, 2**32 - 1), st.sampled_from([1, 10, 1_000_000, 216_000_000, 10**9,
                                                               2**31, 2**32 - 1])))
def test_division_is_exact(fmtlib, n, d):
    rem = ctypes.c_uint32(12345)
    assert fmtlib.fw_div_u64(n, d, ctypes.byref(rem)) == n // d and rem.value == n % d
    assert fmtlib.fw_div_u64(n, d, None) == n // d


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_u64_prints_in_decimal(fmtlib, v):
    buf = ctypes.create_string_buffer(32)
    n = fmtlib.fw_fmt_u64(buf, v)
    assert buf.raw[:n].decode() == str(v) and n <= 20  # FW_FMT_U64_CHARS


@settings(max_examples=3000, deadline=None)
@given(st.integers(-2**31, 2**31 - 1), st.integers(-2**31, 2**31 - 1),
       st.floats(width=32, min_value=2.0**-100, max_value=2.0**33))
def test_dequantize_rounds_the_difference_once(fmtlib, q, zero_point, scale):
    # (q - zero_point) can take 33 bits; it becomes a float in one rounding.
    want = np.float32(np.float32(q - zero_point) * np.float32(scale))
    assert np.float32(fmtlib.fw_dequantize(q, zero_point, scale)) == want
