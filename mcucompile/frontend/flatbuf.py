"""A small, bounds-checked FlatBuffers reader.

The .tflite file is untrusted input, so every offset is checked before it is
followed and every failure becomes a ModelFormatError that says where the
file is broken. It reads only what the importer asks for (tables, scalars,
vectors, strings), following the FlatBuffers binary format: a table starts
with a signed offset back to its vtable; the vtable lists field offsets.
"""
from __future__ import annotations

import struct

import numpy as np

from ..errors import ModelFormatError


class Buf:
    """The whole file, with checked reads."""

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.size = len(data)

    def need(self, pos: int, n: int, what: str) -> None:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise ModelFormatError(
                f"the file is truncated or corrupt: {what} at byte {pos} "
                f"(+{n}) lies outside the {self.size}-byte file")

    def u8(self, pos: int, what: str = "a byte") -> int:
        self.need(pos, 1, what)
        return self.data[pos]

    def u16(self, pos: int, what: str = "a vtable entry") -> int:
        self.need(pos, 2, what)
        return struct.unpack_from("<H", self.data, pos)[0]

    def i32(self, pos: int, what: str = "an offset") -> int:
        self.need(pos, 4, what)
        return struct.unpack_from("<i", self.data, pos)[0]

    def u32(self, pos: int, what: str = "an offset") -> int:
        self.need(pos, 4, what)
        return struct.unpack_from("<I", self.data, pos)[0]

    def root(self) -> "Table":
        if self.size < 8:
            raise ModelFormatError(f"the file is {self.size} bytes long: too short to be a .tflite model")
        return Table(self, self.u32(0, "the root offset"), "model")


class Table:
    """A FlatBuffers table at `pos`; `name` is used in error messages."""

    def __init__(self, buf: Buf, pos: int, name: str):
        self.buf, self.pos, self.name = buf, pos, name
        vt = pos - buf.i32(pos, f"the vtable offset of {name}")
        self.vt = vt
        self.vt_size = buf.u16(vt, f"the vtable of {name}")
        if self.vt_size < 4 or self.vt_size % 2:
            raise ModelFormatError(f"the file is corrupt: {name} has a vtable of {self.vt_size} bytes")
        buf.need(vt, self.vt_size, f"the vtable of {name}")

    def _field(self, index: int) -> int:
        """Absolute position of field `index`, or 0 when the field is absent."""
        entry = 4 + 2 * index
        if entry >= self.vt_size:
            return 0
        off = self.buf.u16(self.vt + entry)
        return self.pos + off if off else 0

    def has(self, index: int) -> bool:
        return self._field(index) != 0

    def _scalar(self, index: int, fmt: str, default):
        p = self._field(index)
        if not p:
            return default
        size = struct.calcsize(fmt)
        self.buf.need(p, size, f"field {index} of {self.name}")
        return struct.unpack_from(fmt, self.buf.data, p)[0]

    def u8(self, index: int, default: int = 0) -> int:
        return self._scalar(index, "<B", default)

    def i8(self, index: int, default: int = 0) -> int:
        return self._scalar(index, "<b", default)

    def bool(self, index: int, default: bool = False) -> bool:
        return bool(self._scalar(index, "<B", int(default)))

    def i32(self, index: int, default: int = 0) -> int:
        return self._scalar(index, "<i", default)

    def u32(self, index: int, default: int = 0) -> int:
        return self._scalar(index, "<I", default)

    def u64(self, index: int, default: int = 0) -> int:
        return self._scalar(index, "<Q", default)

    def f32(self, index: int, default: float = 0.0) -> float:
        return self._scalar(index, "<f", default)

    def _target(self, index: int) -> int:
        p = self._field(index)
        if not p:
            return 0
        return p + self.buf.u32(p, f"field {index} of {self.name}")

    def table(self, index: int, name: str) -> "Table | None":
        t = self._target(index)
        return Table(self.buf, t, name) if t else None

    def _vector(self, index: int, elem_size: int, what: str) -> tuple[int, int]:
        """(position of the first element, length); (0, 0) when absent."""
        v = self._target(index)
        if not v:
            return 0, 0
        n = self.buf.u32(v, f"the length of {what}")
        self.buf.need(v + 4, n * elem_size, what)
        return v + 4, n

    def tables(self, index: int, name: str) -> list["Table"]:
        start, n = self._vector(index, 4, f"the {name} list of {self.name}")
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(Table(self.buf, p + self.buf.u32(p), f"{name} {i}"))
        return out

    def array(self, index: int, dtype: str, what: str) -> np.ndarray | None:
        """A vector of scalars as a numpy array (a copy), or None when absent."""
        dt = np.dtype(dtype).newbyteorder("<")
        start, n = self._vector(index, dt.itemsize, f"{what} of {self.name}")
        if not start and not n:
            return None
        return np.frombuffer(self.buf.data, dtype=dt, count=n, offset=start).astype(dt.newbyteorder("="))

    def string(self, index: int, default: str = "") -> str:
        start, n = self._vector(index, 1, f"a string of {self.name}")
        if not start:
            return default
        return bytes(self.buf.data[start:start + n]).decode("utf-8", errors="replace")
