"""Hardware in the loop: drive mcucompile firmware over a serial line and check it against TFLM.

The firmware speaks the EEMBC / MLPerf Tiny device-under-test protocol plus our
extensions; firmware/PROTOCOL.md is the contract this module implements. In
short: the host sends `command%`, the device answers `m-...` lines (errors
`e-[...]`) and always ends with `m-ready`, and the host waits for that before
sending anything else (a real board has a small receive buffer and no flow
control).

`Device` is the protocol client over any pyserial URL or device name (a board's
/dev/ttyACM0, QEMU's /dev/pts/N or socket://127.0.0.1:PORT). Every way the line
can fail (no answer, a half answer, bytes that are not protocol text, an
`e-[...]` reply, a device that faulted) raises DeviceError saying what to check.

`evaluate()` is the `test` logic: send inputs, compare every output byte with
TFLM on the same model, report bit-exactness, accuracy and latency.
"""
from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serial

from .errors import DeviceError, McuCompileError, MismatchError

BAUD = 115200
# The device holds at most 80 characters per command: "db " + 62 hex digits fits.
DB_CHUNK_BYTES = 31
DEFAULT_TIMEOUT_S = 10.0
# Time allowed per inference (warm-up or timed) on top of the command timeout:
# QEMU runs person_detect in well under a second; a 100 MHz board in about one.
PER_INFERENCE_TIMEOUT_S = 10.0

_CHECK = ("check the port name, that nothing else has it open, the baud rate ({baud}), "
          "and that the board runs mcucompile firmware (flashed, then reset)")


# ----------------------------------------------------------------------------
# What the device reports
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """The `profile` reply: what firmware runs, for which model and board."""
    firmware: str       # mcucompile-fw-1
    model: str
    board: str
    variant: str        # qemu | board
    counter: str        # instructions (QEMU) | cycles (DWT on a real board)
    clock_hz: int
    input_bytes: int
    outputs: int
    layers: int


@dataclass(frozen=True)
class Counts:
    """The `cycles` reply: counter values of the timed inferences of the last `infer`."""
    last: int
    min: int
    max: int
    total: int
    iterations: int


@dataclass(frozen=True)
class LayerCount:
    index: int
    name: str
    count: int


@dataclass(frozen=True)
class StackUse:
    used: int
    size: int


@dataclass(frozen=True)
class Reply:
    """The lines a device sent for one command, before its `m-ready`."""
    command: str
    lines: tuple[str, ...]

    @property
    def errors(self) -> list[str]:
        """The text inside each `e-[...]` line."""
        return [line[3:-1] if line.endswith("]") else line[3:]
                for line in self.lines if line.startswith("e-[")]

    def value(self, prefix: str) -> str:
        """The rest of the first line that starts with `prefix`; DeviceError if there is none."""
        for line in self.lines:
            if line.startswith(prefix):
                return line[len(prefix):]
        raise DeviceError(f"the reply to `{self.command}` has no `{prefix}...` line "
                          f"(got: {_quote_lines(self.lines)}): is this mcucompile firmware?")

    def number(self, prefix: str) -> int:
        """N of the line `<prefix><N>` (decimal digits only, so `m-cycles-` does not match `m-cycles-min-5`)."""
        for line in self.lines:
            if line.startswith(prefix) and line[len(prefix):].isdigit():
                return int(line[len(prefix):])
        raise DeviceError(f"the reply to `{self.command}` has no `{prefix}<number>` line "
                          f"(got: {_quote_lines(self.lines)}): bytes were lost or garbled on the "
                          "serial line, or this is not mcucompile firmware")

    def bracketed(self, prefix: str) -> str:
        """The text of `<prefix>[text]`."""
        text = self.value(prefix)
        if not (text.startswith("[") and text.endswith("]")):
            raise DeviceError(f"`{prefix}{text}` in the reply to `{self.command}` is not `{prefix}[...]`: "
                              "bytes were lost or garbled on the serial line")
        return text[1:-1]


def _quote_lines(lines: Sequence[str], limit: int = 200) -> str:
    text = " | ".join(lines) or "nothing"
    return text if len(text) <= limit else text[:limit] + "..."


# ----------------------------------------------------------------------------
# The protocol client
# ----------------------------------------------------------------------------

class Device:
    """One device on a serial line. Open with `Device.open(url)`, or wrap an open pyserial port.

    Construction synchronises with the device (see `sync`), so a Device that
    exists has answered at least once.
    """

    def __init__(self, port: serial.SerialBase, *, timeout: float = DEFAULT_TIMEOUT_S,
                 baudrate: int = BAUD, sync: bool = True) -> None:
        self.port = port
        self.where = port.name or port.port or "the serial port"
        self.timeout = timeout
        self.baudrate = baudrate
        self._buf = bytearray()
        # Short reads, so that deadlines are checked often; set once (on a real
        # serial port every change of timeout reconfigures the device).
        port.timeout = 0.05
        self.name: str | None = None
        if sync:
            self.name = self.sync()

    @classmethod
    def open(cls, url: str, *, baudrate: int = BAUD, timeout: float = DEFAULT_TIMEOUT_S) -> Device:
        """Open `url` (a device name like /dev/ttyACM0, or a pyserial URL like socket://host:port)."""
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05, write_timeout=timeout)
        except (serial.SerialException, OSError, ValueError) as e:
            raise DeviceError(f"cannot open serial port {url}: {e}; check the port name "
                              "(boards usually appear as /dev/ttyACM<n> or /dev/ttyUSB<n>, COM<n> on "
                              "Windows) and that no other program has it open") from e
        try:
            return cls(port, timeout=timeout, baudrate=baudrate)
        except BaseException:
            port.close()
            raise

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the line ---------------------------------------------------------------

    def _hint(self) -> str:
        return _CHECK.format(baud=self.baudrate)

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as e:
            raise DeviceError(f"lost the connection to {self.where} while sending: {e}") from e

    def _read_line(self, deadline: float, strict: bool = True) -> str | None:
        """The next line without its line end; None when the deadline passes first.

        `strict` rejects bytes that protocol text never contains (the usual
        sign of a wrong baud rate); sync() is lenient because a board that was
        just reset may emit a little noise.
        """
        searched = 0    # the buffer has no line end before this; each byte is looked at once
        while True:
            end = self._buf.find(b"\n", searched)
            if end >= 0:
                raw = bytes(self._buf[:end]).rstrip(b"\r")
                del self._buf[:end + 1]
                if strict:
                    _check_text(raw, self.where, self.baudrate)
                return raw.decode("ascii", errors="replace")
            searched = len(self._buf)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError) as e:
                raise DeviceError(f"lost the connection to {self.where}: {e}") from e
            if strict and chunk:
                # Fail at the first bad byte rather than at the timeout: check the new
                # bytes only (a results line runs to hundreds of KB).
                _check_text(chunk, self.where, self.baudrate, before=bytes(self._buf[-32:]))
            self._buf += chunk

    def _partial(self) -> str:
        return bytes(self._buf).decode("ascii", errors="replace")

    def exchange(self, command: str, timeout: float | None = None) -> Reply:
        """Send `command%` and collect its reply up to `m-ready`. Error lines are returned, not raised;
        a fault line, silence or a broken line raise DeviceError."""
        if "%" in command or len(command) > 80:
            # The device would split or discard it; say so here rather than on the wire.
            raise McuCompileError(f"not a single protocol command: {command[:40]!r}")
        return self.exchange_bytes(command.encode("ascii") + b"%", command, timeout)

    def exchange_bytes(self, data: bytes, label: str, timeout: float | None = None) -> Reply:
        """Send `data` as is (it must end with `%`) and collect the reply; for testing the device's
        handling of commands that exchange() refuses to build (too long, binary bytes)."""
        self._write(data)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines: list[str] = []
        while True:
            line = self._read_line(deadline)
            if line is None:
                got = _quote_lines(lines + ([self._partial()] if self._buf else []))
                if not lines and not self._buf:
                    raise DeviceError(f"no answer from {self.where} to `{label}` within "
                                      f"{self.timeout if timeout is None else timeout:g} s: {self._hint()}")
                raise DeviceError(f"incomplete answer from {self.where} to `{label}` (no m-ready; "
                                  f"got: {got}): bytes were lost, or the device hangs")
            if line == "m-ready":
                return Reply(label, tuple(lines))
            if line.startswith("e-[fault:"):
                raise DeviceError(f"the device on {self.where} crashed during `{label}`: {line[3:-1]}; "
                                  "it no longer answers until it is reset")
            if line:
                lines.append(line)

    def command(self, command: str, timeout: float | None = None) -> Reply:
        """As exchange(), but an `e-[...]` reply raises DeviceError."""
        reply = self.exchange(command, timeout)
        if reply.errors:
            raise DeviceError(f"the device on {self.where} rejected `{command}`: {'; '.join(reply.errors)}")
        return reply

    def sync(self) -> str:
        """Get in step with the device and return its `m-name-dut-[...]` name.

        The line may hold leftovers: the boot banner (`m-init-done`, `m-ready`),
        or a half command a previous session left in the device's buffer. An
        empty command `%` ends any such half command (its error is ignored), then
        `name%` gets a reply we can recognise; everything before it is dropped.
        """
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError) as e:
            raise DeviceError(f"lost the connection to {self.where}: {e}") from e
        self._buf.clear()
        self._write(b"%name%")
        deadline = time.monotonic() + self.timeout
        seen: list[str] = []
        name = None
        while True:
            line = self._read_line(deadline, strict=False)
            if line is None:
                break
            if name is not None and line == "m-ready":
                return name
            if line.startswith("m-name-dut-"):
                name = line[len("m-name-dut-"):].strip("[]")
            elif line.startswith("e-[fault:"):
                raise DeviceError(f"the device on {self.where} reports a crash: {line[3:-1]}; reset it")
            elif line:
                seen.append(line)
        received = seen + ([self._partial()] if self._buf else [])
        if not received:
            raise DeviceError(f"no answer from {self.where} within {self.timeout:g} s: {self._hint()}")
        garbled = any(_is_garbage(line.encode("ascii", errors="replace")) for line in received)
        raise DeviceError(f"{self.where} answered, but not with the protocol's `m-name-dut-[...]` "
                          f"(got: {_quote_lines(received)}); "
                          + ("the bytes are not text: check the baud rate "
                             f"({self.baudrate})" if garbled else "is it running mcucompile firmware?"))

    # -- commands -----------------------------------------------------------------

    def profile(self) -> Profile:
        r = self.command("profile")
        return Profile(firmware=r.bracketed("m-profile-"), model=r.bracketed("m-model-"),
                       board=r.bracketed("m-board-"), variant=r.bracketed("m-variant-"),
                       counter=r.bracketed("m-counter-"), clock_hz=r.number("m-clock-hz-"),
                       input_bytes=r.number("m-input-bytes-"), outputs=r.number("m-outputs-"),
                       layers=r.number("m-layers-"))

    def load(self, data: bytes) -> None:
        """Fill the device's input buffer: `db load N`, then `db <hex>` lines of DB_CHUNK_BYTES."""
        if not data:
            raise McuCompileError("nothing to load: the input is empty")
        reply = self.command(f"db load {len(data)}")
        expecting = reply.value("m-[Expecting ")
        if expecting != f"{len(data)} bytes]":
            raise DeviceError(f"the device on {self.where} answered `db load {len(data)}` with "
                              f"`m-[Expecting {expecting}`")
        chunks = [data[i:i + DB_CHUNK_BYTES] for i in range(0, len(data), DB_CHUNK_BYTES)]
        for n, chunk in enumerate(chunks):
            reply = self.command(f"db {chunk.hex()}")
            last = n == len(chunks) - 1
            done = "m-load-done" in reply.lines
            if done != last:
                sent = sum(len(c) for c in chunks[:n + 1])
                raise DeviceError(
                    f"the device on {self.where} " + ("finished loading early" if done else
                                                      "did not confirm the end of loading")
                    + f" after {sent} of {len(data)} bytes: bytes were lost on the serial line")

    def infer(self, runs: int = 1, warmup: int = 0) -> Reply:
        """Run `warmup` + `runs` inferences on the loaded input; the reply holds m-lap-us and m-results."""
        timeout = self.timeout + PER_INFERENCE_TIMEOUT_S * (runs + warmup)
        reply = self.command(f"infer {runs} {warmup}", timeout=timeout)
        reply.value("m-infer-done")  # present, or the device did not finish
        return reply

    def results_raw(self, outputs: int) -> list[bytes]:
        """The raw bytes of each of the `outputs` output tensors after the last `infer`."""
        reply = self.command("results-raw")
        found: dict[int, bytes] = {}
        for line in reply.lines:
            m = re.fullmatch(r"m-results-raw-(\d+)-\[([0-9a-f]*)\]", line)
            if m is None or len(m.group(2)) % 2:
                raise DeviceError(f"malformed `results-raw` line from {self.where}: {line[:80]!r}: "
                                  "bytes were lost or garbled on the serial line")
            found[int(m.group(1))] = bytes.fromhex(m.group(2))
        if sorted(found) != list(range(outputs)):
            raise DeviceError(f"`results-raw` from {self.where} gave outputs {sorted(found)}, "
                              f"expected 0..{outputs - 1}: is the firmware built for this model?")
        return [found[i] for i in range(outputs)]

    def counts(self) -> Counts:
        r = self.command("cycles")
        return Counts(last=r.number("m-cycles-"),
                      min=r.number("m-cycles-min-"), max=r.number("m-cycles-max-"),
                      total=r.number("m-cycles-total-"), iterations=r.number("m-iterations-"))

    def layers(self) -> list[LayerCount]:
        r = self.command("layers")
        out = []
        for line in r.lines:
            m = re.fullmatch(r"m-layer-(\d+)-(\d+)-\[(.*)\]", line)
            if m:
                out.append(LayerCount(int(m.group(1)), m.group(3), int(m.group(2))))
        return out

    def stack(self) -> StackUse:
        r = self.command("stack")
        return StackUse(used=r.number("m-stack-used-"), size=r.number("m-stack-size-"))


_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")
_NOT_TEXT = re.compile(rb"[^\x20-\x7e\r\n]")     # what may come on a line, its end included


def _is_garbage(raw: bytes) -> bool:
    return _NOT_PRINTABLE.search(raw) is not None


def _check_text(raw: bytes, where: str, baud: int, before: bytes = b"") -> None:
    """DeviceError at the first byte of `raw` that protocol text never contains,
    showing the bytes up to it (`before`: what came earlier on the line)."""
    bad = _NOT_TEXT.search(raw)
    if bad is not None:
        shown = (before + raw[:bad.end()])[-32:]
        raise DeviceError(f"{where} sent bytes that are not protocol text ({shown!r}): "
                          f"check the baud rate ({baud}) and that the board runs mcucompile firmware")


# ----------------------------------------------------------------------------
# Inputs and the `test` logic
# ----------------------------------------------------------------------------

def input_bytes(arrays: Sequence[np.ndarray]) -> bytes:
    """One sample's inputs as `db` sends them: each tensor's raw storage, little-endian, input 0 first."""
    return b"".join(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes() for a in arrays)


@dataclass(frozen=True)
class Sample:
    """One inference on the device."""
    outputs: list[bytes]            # raw bytes per output tensor
    count: int                      # instructions (QEMU) or cycles (board) of the timed inference


def infer_sample(device: Device, data: bytes, outputs: int) -> Sample:
    device.load(data)
    device.infer(1, 0)
    raw = device.results_raw(outputs)
    return Sample(outputs=raw, count=device.counts().last)


@dataclass(frozen=True)
class Mismatch:
    sample: int
    output: int
    differing_bytes: int
    total_bytes: int
    first_offset: int
    got: int
    expected: int

    def describe(self) -> str:
        return (f"sample {self.sample}, output {self.output}: {self.differing_bytes} of {self.total_bytes} "
                f"bytes differ from TFLM (first at byte {self.first_offset}: "
                f"device 0x{self.got:02x}, TFLM 0x{self.expected:02x})")


def compare(sample: int, got: Sequence[bytes], expected: Sequence[bytes]) -> list[Mismatch]:
    out = []
    for i, (g, e) in enumerate(zip(got, expected)):
        if g == e:
            continue
        if len(g) != len(e):
            out.append(Mismatch(sample, i, max(len(g), len(e)), len(e), min(len(g), len(e)), -1, -1))
            continue
        diff = np.flatnonzero(np.frombuffer(g, np.uint8) != np.frombuffer(e, np.uint8))
        first = int(diff[0])
        out.append(Mismatch(sample, i, int(diff.size), len(e), first, g[first], e[first]))
    return out


@dataclass
class DeviceReport:
    """What `test` (and `run`) found: per sample counts, byte mismatches, accuracy."""
    profile: Profile
    clock_hz: int
    counts: list[int] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    compared: bool = False              # outputs were checked against TFLM
    predictions: list[int] = field(default_factory=list)
    labels: list[int] | None = None

    @property
    def samples(self) -> int:
        return len(self.counts)

    @property
    def bit_exact(self) -> bool:
        return self.compared and not self.mismatches

    @property
    def accuracy(self) -> float | None:
        if self.labels is None:
            return None
        return float(np.mean(np.asarray(self.predictions) == np.asarray(self.labels)))

    @property
    def unit(self) -> str:
        return self.profile.counter

    def mean_count(self) -> float:
        return float(np.mean(self.counts))

    def latency_ms(self) -> float:
        """Mean latency at clock_hz. For `instructions` (QEMU) this assumes one instruction per cycle."""
        return self.mean_count() / self.clock_hz * 1e3

    def summary(self) -> str:
        lines = [f"device           {self.profile.model} on {self.profile.board} "
                 f"({self.profile.variant} firmware)",
                 f"samples          {self.samples}"]
        if self.compared:
            verdict = "yes, every output byte equals TFLM" if self.bit_exact else \
                f"NO: {len(self.mismatches)} output(s) differ from TFLM"
            lines.append(f"bit-exact        {verdict}")
            lines += [f"  {m.describe()}" for m in self.mismatches[:10]]
        else:
            lines.append("bit-exact        not checked (pass --model to compare with TFLM)")
        if self.accuracy is not None:
            correct = int(round(self.accuracy * len(self.labels or [])))
            lines.append(f"accuracy         {self.accuracy:.2%} ({correct} of {len(self.labels or [])}, "
                         "argmax of output 0)")
        lo, hi = min(self.counts), max(self.counts)
        spread = "" if lo == hi else f" (min {lo:,}, max {hi:,})"
        lines.append(f"per inference    {self.mean_count():,.0f} {self.unit}{spread}")
        note = " if one instruction takes one cycle" if self.unit == "instructions" else ""
        lines.append(f"latency          {self.latency_ms():.3f} ms at {self.clock_hz / 1e6:g} MHz{note}")
        return "\n".join(lines)


def load_inputs(path: Path, specs) -> list[list[np.ndarray]]:
    """Samples from a .npy (one input: [N, *shape] or one sample) or .npz (one array per input, in the
    model's input order, each [N, *shape]). Values are cast to the input dtype when they fit."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise McuCompileError(f"--inputs {path}: cannot read it as .npy/.npz ({e})") from e
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            arrays = [loaded[k] for k in loaded.files]
    else:
        arrays = [loaded]
    if len(arrays) != len(specs):
        raise McuCompileError(f"--inputs {path} holds {len(arrays)} array(s) but the model has "
                              f"{len(specs)} input(s)")
    batches = []
    for i, (a, spec) in enumerate(zip(arrays, specs)):
        if tuple(a.shape) == spec.shape:
            a = a[None]
        if tuple(a.shape[1:]) != spec.shape:
            raise McuCompileError(f"--inputs {path}: array {i} has shape {tuple(a.shape)}, expected "
                                  f"[N, {', '.join(map(str, spec.shape))}] for input {i}")
        if np.issubdtype(spec.dtype, np.integer) and a.dtype != spec.dtype:
            info = np.iinfo(spec.dtype)
            if a.size and (a.min() < info.min or a.max() > info.max or not np.all(a == np.round(a))):
                raise McuCompileError(f"--inputs {path}: array {i} has values outside {spec.dtype}")
        batches.append(a.astype(spec.dtype))
    n = {len(b) for b in batches}
    if len(n) != 1:
        raise McuCompileError(f"--inputs {path}: the arrays hold different numbers of samples {sorted(n)}")
    return [[b[k] for b in batches] for k in range(n.pop())]


def load_labels(path: Path, samples: int) -> list[int]:
    try:
        labels = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise McuCompileError(f"--labels {path}: cannot read it as .npy ({e})") from e
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != samples or not np.issubdtype(labels.dtype, np.integer):
        raise McuCompileError(f"--labels {path}: expected {samples} integer class labels, "
                              f"got {len(labels)} of {labels.dtype}")
    return [int(x) for x in labels]


def evaluate(device: Device, *, model: bytes | None, samples: list[list[np.ndarray]] | None = None,
             random: int = 0, seed: int = 0, labels: list[int] | None = None,
             clock_hz: int | None = None, progress=None) -> DeviceReport:
    """Run samples on the device; with `model`, compare every output byte with TFLM.

    Without a model only random bytes can be sent (the host does not know the
    input layout beyond its size) and nothing is compared: latency only.
    """
    profile = device.profile()
    report = DeviceReport(profile=profile, clock_hz=clock_hz or profile.clock_hz, labels=labels)
    reference = None
    if model is not None:
        from . import reference as ref
        reference = ref.Reference(model)
        specs = reference.info.input_specs
        want = sum(s.nbytes for s in specs)
        if want != profile.input_bytes or len(reference.info.outputs) != profile.outputs:
            raise McuCompileError(
                f"the device runs a model with {profile.input_bytes} input bytes and {profile.outputs} "
                f"output(s) ({profile.model}), but --model has {want} and {len(reference.info.outputs)}: "
                "flash the firmware built from this model")
        if samples is None:
            samples = [ref.random_inputs(model, seed=seed + k) for k in range(random)]
    elif samples is not None:
        raise McuCompileError("--inputs needs --model (the input layout comes from the model)")
    if not samples and not random:
        raise McuCompileError("nothing to run: give --inputs FILE or --random N with N >= 1")
    if labels is not None and len(labels) != (len(samples) if samples else random):
        raise McuCompileError(f"{len(labels)} labels for {len(samples) if samples else random} samples")

    rng = np.random.default_rng(seed)
    total = len(samples) if samples else random
    for k in range(total):
        if samples:
            data = input_bytes(samples[k])
        else:
            data = rng.integers(0, 256, size=profile.input_bytes, dtype=np.uint8).tobytes()
        got = infer_sample(device, data, profile.outputs)
        report.counts.append(got.count)
        if reference is not None:
            expected = [o.tobytes() for o in reference.run(samples[k])]
            report.mismatches += compare(k, got.outputs, expected)
            report.compared = True
        if labels is not None:
            spec = reference.info.output_specs[0] if reference else None
            dtype = spec.dtype if spec is not None else np.dtype(np.int8)
            report.predictions.append(int(np.argmax(np.frombuffer(got.outputs[0], dtype))))
        if progress:
            progress(k, got)
    return report


def require_bit_exact(report: DeviceReport) -> None:
    if report.compared and report.mismatches:
        raise MismatchError(f"{len(report.mismatches)} output(s) of {report.samples} sample(s) differ "
                            f"from TFLM; first: {report.mismatches[0].describe()}")
