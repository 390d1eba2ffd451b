"""The serial protocol client's error paths, against fake peers in this process.

A fake peer is a TCP server on loopback that pyserial opens as socket://: it
plays a device that is silent, garbled, half-answering or crashing. Only error
paths are tested this way; every success path runs against real firmware on
QEMU in tests/test_qemu.py.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from mcucompile import hil
from mcucompile.cli import main
from mcucompile.errors import DeviceError, McuCompileError

READY = b"m-ready\r\n"


def _protocol(overrides: dict[str, bytes | None]) -> Callable[[str], bytes | None]:
    """Replies of a device that gets `name` and the empty command right and the rest from `overrides`
    (None: say nothing; a missing command is answered as unknown)."""
    def respond(command: str) -> bytes | None:
        word = command.split(" ")[0] if command.strip() else ""
        if word in overrides:
            return overrides[word]
        if word == "":
            return READY
        if word == "name":
            return b"m-name-dut-[mcucompile]\r\n" + READY
        return f"e-[Unknown command: {word}]\r\n".encode() + READY
    return respond


class FakePeer:
    """One-connection TCP server that answers each `...%` command with respond(command).

    respond returns the bytes to send, None to stay silent, or b"CLOSE" to hang up.
    """

    def __init__(self, respond: Callable[[str], bytes | None], greeting: bytes = b"") -> None:
        self.respond = respond
        self.greeting = greeting
        self.commands: list[str] = []
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return
        with conn:
            conn.sendall(self.greeting)
            pending = b""
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                pending += data
                while b"%" in pending:
                    raw, pending = pending.split(b"%", 1)
                    command = raw.decode(errors="replace")
                    self.commands.append(command)
                    reply = self.respond(command)
                    if reply == b"CLOSE":
                        return
                    if reply:
                        conn.sendall(reply)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def peer():
    peers: list[FakePeer] = []

    def make(overrides: dict[str, bytes | None] | None = None, **kw) -> FakePeer:
        p = FakePeer(_protocol(overrides or {}), **kw)
        peers.append(p)
        return p
    yield make
    for p in peers:
        p.close()


def test_port_that_does_not_exist():
    with pytest.raises(DeviceError, match=r"cannot open serial port /dev/ttyNOPE0: .*check the port name"):
        hil.Device.open("/dev/ttyNOPE0")


def test_silent_peer_times_out_with_advice():
    server = FakePeer(lambda command: None)
    start = time.monotonic()
    with pytest.raises(DeviceError, match=r"no answer from .* within 0.5 s: check the port name.*"
                                          r"baud rate \(115200\).*flashed"):
        hil.Device.open(server.url, timeout=0.5)
    assert time.monotonic() - start < 3
    server.close()


def test_boot_banner_and_leftovers_are_skipped(peer):
    # The banner of a fresh boot and the error for a half command left in the
    # device's buffer come before the name reply; sync() must get past them.
    p = peer({"": b"e-[Unknown command: junk]\r\n" + READY}, greeting=b"m-init-done\r\n" + READY)
    with hil.Device.open(p.url, timeout=2) as device:
        assert device.name == "mcucompile"
        with pytest.raises(DeviceError, match=r"rejected `profile`: Unknown command: profile"):
            device.profile()
    assert p.commands[:2] == ["", "name"]


def test_wrong_baud_rate_garbage(peer):
    garbage = bytes([0xF0, 0x83, 0x00, 0xFE, 0x9C]) * 4 + b"\r\n"
    p = peer({"name": garbage + READY})
    with pytest.raises(DeviceError, match=r"not with the protocol's .*not text: check the baud rate \(115200\)"):
        hil.Device.open(p.url, timeout=1)


def test_garbage_after_sync(peer):
    p = peer({"profile": b"m-profile-[\xff\xfe\x80]\r\n" + READY})
    with hil.Device.open(p.url, timeout=1) as device:
        with pytest.raises(DeviceError, match=r"bytes that are not protocol text \(b'm-profile-\[\\xff.*baud rate"):
            device.profile()


def test_long_lines_arrive_whole_and_are_checked_to_the_end(peer):
    # A model with a large output sends a results line of hundreds of KB, read
    # in many chunks: each byte is checked once (it was the whole line per chunk).
    line = b"m-results-[" + b"0.123456," * 40_000 + b"1.0]"
    p = peer({"results": line + b"\r\n" + READY,
              "bad": line[:200_000] + b"\xff" + line[200_000:] + b"\r\n" + READY})
    with hil.Device.open(p.url, timeout=5) as device:
        assert device.exchange("results").lines == (line.decode(),)
        with pytest.raises(DeviceError, match=r"not protocol text \(b'.*\\xff.*'\): check the baud rate"):
            device.exchange("bad")


def test_a_device_that_is_not_ours(peer):
    p = peer({"name": b"Hello from some other firmware\r\n" + READY})
    with pytest.raises(DeviceError, match=r"not with the protocol's `m-name-dut.*Hello from some other.*"
                                          r"mcucompile firmware"):
        hil.Device.open(p.url, timeout=1)


def test_incomplete_reply(peer):
    p = peer({"profile": b"m-profile-[mcucompile-fw-1]\r\nm-model-[per"})
    with hil.Device.open(p.url, timeout=0.5) as device:
        with pytest.raises(DeviceError, match=r"incomplete answer .* to `profile` \(no m-ready; got: "
                                              r"m-profile-\[mcucompile-fw-1\] \| m-model-\[per\)"):
            device.profile()


def test_fault_line_means_a_dead_device(peer):
    p = peer({"infer": b"m-warmup-start-0\r\ne-[fault: HardFault pc=0x00001234]\r\n"})
    with hil.Device.open(p.url, timeout=0.5) as device:
        with pytest.raises(DeviceError, match=r"crashed during `infer 1 0`: fault: HardFault pc=0x00001234.*reset"):
            device.infer()


def test_lost_bytes_while_loading(peer):
    # A device that never reaches m-load-done has not received every byte we sent.
    def respond(command: str) -> bytes | None:
        if command.startswith("db load"):
            return b"m-[Expecting 40 bytes]\r\n" + READY
        return READY if command.startswith("db ") else _protocol({})(command)
    p = FakePeer(respond)
    with hil.Device.open(p.url, timeout=0.5) as device:
        with pytest.raises(DeviceError, match=r"did not confirm the end of loading after 40 of 40 bytes: "
                                              r"bytes were lost"):
            device.load(bytes(range(40)))
    loaded = [c for c in p.commands if c.startswith("db ")]
    # `db load 40`, then 31 + 9 bytes, two hex digits each.
    assert [len(c) for c in loaded] == [len("db load 40"), 3 + 62, 3 + 18]
    p.close()


def test_device_rejects_a_db_line(peer):
    p = peer({"db": b"e-[Odd number of hex digits]\r\n" + READY})
    with hil.Device.open(p.url, timeout=0.5) as device:
        with pytest.raises(DeviceError, match=r"rejected `db load 4`: Odd number of hex digits"):
            device.load(b"\x01\x02\x03\x04")


def test_malformed_raw_results(peer):
    p = peer({"results-raw": b"m-results-raw-0-[12z4]\r\n" + READY})
    with hil.Device.open(p.url, timeout=0.5) as device:
        with pytest.raises(DeviceError, match=r"malformed `results-raw` line .*lost or garbled"):
            device.results_raw(1)


def test_missing_output_in_raw_results(peer):
    p = peer({"results-raw": b"m-results-raw-0-[1234]\r\n" + READY})
    with hil.Device.open(p.url, timeout=0.5) as device:
        with pytest.raises(DeviceError, match=r"gave outputs \[0\], expected 0..1"):
            device.results_raw(2)


def test_garbled_number(peer):
    p = peer({"cycles": b"m-cycles-12x4\r\nm-cycles-min-1\r\nm-cycles-max-1\r\n" + READY})
    with hil.Device.open(p.url, timeout=0.5) as device:
        with pytest.raises(DeviceError, match=r"no `m-cycles-<number>` line .*garbled"):
            device.counts()


def test_peer_hangs_up(peer):
    p = peer({"profile": b"CLOSE"})
    with hil.Device.open(p.url, timeout=1) as device:
        with pytest.raises(DeviceError, match=r"lost the connection to"):
            device.profile()


def test_commands_the_device_could_not_take_are_refused_locally(peer):
    p = peer()
    with hil.Device.open(p.url, timeout=0.5) as device:
        with pytest.raises(McuCompileError, match="not a single protocol command"):
            device.exchange("x" * 81)
        with pytest.raises(McuCompileError, match="not a single protocol command"):
            device.exchange("name%profile")


def test_compare_reports_the_first_differing_byte():
    got = [bytes([1, 2, 3, 4]), b"\x00"]
    expected = [bytes([1, 2, 9, 8]), b"\x00"]
    (m,) = hil.compare(7, got, expected)
    assert (m.sample, m.output, m.differing_bytes, m.first_offset, m.got, m.expected) == (7, 0, 2, 2, 3, 9)
    assert "2 of 4 bytes differ" in m.describe()
    assert hil.compare(0, expected, expected) == []


def test_input_bytes_are_little_endian_in_input_order():
    data = hil.input_bytes([np.array([-1, 2], np.int8), np.array([1.0], np.float32)])
    assert data == b"\xff\x02" + np.float32(1.0).astype("<f4").tobytes()


# -- the `test` verb on ports that do not answer ---------------------------------

def test_cli_test_on_a_silent_port(capsys):
    server = FakePeer(lambda command: None)
    code = main(["test", "--port", server.url, "--random", "1", "--timeout", "0.5"])
    server.close()
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no answer from socket://127.0.0.1:") and "flashed" in err


def test_cli_test_on_a_missing_port(capsys):
    assert main(["test", "--port", "/dev/ttyNOPE0", "--random", "1"]) == 1
    assert "cannot open serial port /dev/ttyNOPE0" in capsys.readouterr().err


def test_cli_test_refuses_inputs_without_a_model(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.int8))
    assert main(["test", "--port", "/dev/ttyNOPE0", "--inputs", str(tmp_path / "x.npy")]) == 1
    assert "--inputs needs --model" in capsys.readouterr().err


# -- a real board, when one is attached (MCUCOMPILE_TEST_PORT) -----------------------

@pytest.mark.hardware
def test_a_flashed_board_runs_inferences():
    with hil.Device.open(os.environ["MCUCOMPILE_TEST_PORT"]) as device:
        report = hil.evaluate(device, model=None, random=2)
    assert report.profile.variant == "board" and report.unit == "cycles"
    assert report.samples == 2 and min(report.counts) > 0
