"""C code generation: Python computes small view objects, Jinja lays them out.

`generate()` is pure: graph + plan + kernel calls in, {filename: text} out.
Every name, type, offset and constant is computed here; the templates in
templates/ only iterate over the views (StrictUndefined, no arithmetic).
Output is deterministic: no timestamps, stable ordering, and the header
records the model hash, tool version, board and options.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from . import __version__
from .ir import DType, Graph
from .kernels import (ArrayRef, FloatValue, KernelCall, ScratchArg, TensorArg,
                      TensorPtrs)
from .planner import MemoryPlan
from .resources import data_dir

_DTYPE_CODE = {DType.INT8: 1, DType.UINT8: 2, DType.INT16: 3, DType.INT32: 4, DType.FLOAT32: 5}
_ROW = 16  # array values per line


@dataclass(frozen=True)
class Ptr:
    """A typed pointer into the arena."""
    ctype: str
    offset: int


@dataclass(frozen=True)
class ArrayView:
    name: str
    ctype: str
    length: int
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class PtrArrayView:
    name: str
    ctype: str
    const: bool
    pointers: tuple[Ptr, ...]


@dataclass(frozen=True)
class FieldView:
    name: str
    text: str


@dataclass(frozen=True)
class LayerView:
    index: int                 # position in the invoke sequence (profiling id)
    name: str
    summary: str               # one-line comment: op, shapes, MACs
    function: str
    params_type: str
    fields: tuple[FieldView, ...]
    args: tuple[Ptr | str, ...]   # Ptr for tensors, "scratch" for the scratch buffer
    scratch: Ptr | None


@dataclass(frozen=True)
class IOView:
    ptr: Ptr
    size: int
    dtype_code: int
    scale: str
    zero_point: int
    name: str


@dataclass(frozen=True)
class ModelView:
    prefix: str
    PREFIX: str
    header_lines: tuple[str, ...]
    arena_bytes: int
    arena_storage: int          # at least one word: C has no zero-length arrays
    libraries: tuple[str, ...]
    arrays: tuple[ArrayView, ...]
    ptr_arrays: tuple[PtrArrayView, ...]
    layers: tuple[LayerView, ...]
    inputs: tuple[IOView, ...]
    outputs: tuple[IOView, ...]
    name_table_size: int        # C has no zero-length arrays
    input_bytes: int
    output_bytes: int


def c_identifier(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return s if s and not s[0].isdigit() else f"_{s}"


def _float_text(x: float) -> str:
    v = float(np.float32(x))
    return f"{v!r}f" if np.isfinite(v) else "0.0f"


def _rows(values: np.ndarray, ctype: str) -> tuple[tuple[str, ...], ...]:
    flat = values.reshape(-1)
    if ctype == "float":
        items = [_float_text(v) for v in flat]
    elif ctype == "int32_t":
        # INT32_MIN cannot be written as a literal in C.
        items = [str(int(v)) if int(v) != -2**31 else "INT32_MIN" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    return tuple(tuple(items[i:i + _ROW]) for i in range(0, len(items), _ROW))


def _ptr(graph: Graph, plan: MemoryPlan, tid: int) -> Ptr:
    return Ptr(graph.tensor(tid).dtype.ctype, plan.tensor_offsets[tid])


def _io(graph: Graph, plan: MemoryPlan, tid: int) -> IOView:
    t = graph.tensor(tid)
    q = t.quant
    return IOView(ptr=_ptr(graph, plan, tid), size=t.nbytes, dtype_code=_DTYPE_CODE.get(t.dtype, 0),
                  scale=_float_text(q.scale[0]) if q else "0.0f",
                  zero_point=q.zero_point[0] if q else 0, name=t.name)


def _layer(graph: Graph, plan: MemoryPlan, step: int, op, call: KernelCall,
           arrays: list[ArrayView], ptr_arrays: list[PtrArrayView], seen: dict) -> LayerView:
    lname = c_identifier(op.name)
    names = {}
    for a in call.arrays:
        values = np.ascontiguousarray(a.values)
        # Identical constants (the same weights used by every patch of a layer) are emitted once.
        key = (a.ctype, values.dtype.str, values.tobytes())
        if key not in seen:
            seen[key] = f"{lname}_{a.suffix}"
            arrays.append(ArrayView(seen[key], a.ctype, int(values.size), _rows(values, a.ctype)))
        names[a.suffix] = seen[key]
    fields = []
    for f in call.fields:
        v = f.value
        if isinstance(v, ArrayRef):
            text = names[v.suffix]
        elif isinstance(v, TensorPtrs):
            text = f"{lname}_{f.name}"
            ctype = graph.tensor(v.tensors[0]).dtype.ctype
            ptr_arrays.append(PtrArrayView(text, ctype, True,
                                           tuple(_ptr(graph, plan, t) for t in v.tensors)))
        elif isinstance(v, FloatValue):
            text = _float_text(v.value)
        elif isinstance(v, bool):
            text = "1" if v else "0"
        else:
            text = "INT32_MIN" if int(v) == -2**31 else str(int(v))
        fields.append(FieldView(f.name, text))
    args: list[Ptr | str] = []
    for a in call.args:
        args.append(_ptr(graph, plan, a.tensor) if isinstance(a, TensorArg) else "scratch")
    scratch = None
    if any(isinstance(a, ScratchArg) for a in call.args):
        scratch = Ptr("void", plan.scratch_offsets.get(op.index, 0))
    shapes = " ".join("x".join(map(str, graph.tensor(t).shape)) for t in op.outputs)
    summary = f"op {op.index} {op.kind.value} -> {shapes}" + (f", {call.macs} MACs" if call.macs else "")
    return LayerView(step, lname, summary, call.function, call.params_type, tuple(fields),
                     tuple(args), scratch)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


def generate(graph: Graph, plan: MemoryPlan, calls: dict[int, KernelCall | None], prefix: str,
             header_lines: tuple[str, ...]) -> dict[str, str]:
    """Render the model's .c/.h and collect the kernel library files it needs."""
    arrays: list[ArrayView] = []
    ptr_arrays: list[PtrArrayView] = []
    layers = []
    seen: dict = {}
    for op in graph.ops:
        call = calls[op.index]
        if call is not None:
            layers.append(_layer(graph, plan, len(layers), op, call, arrays, ptr_arrays, seen))
    libraries = tuple(sorted({c.library for c in calls.values() if c is not None}))
    view = ModelView(prefix=prefix, PREFIX=prefix.upper(), header_lines=header_lines,
                     arena_bytes=plan.arena_bytes, arena_storage=max(plan.arena_bytes, 4),
                     libraries=libraries, arrays=tuple(arrays), ptr_arrays=tuple(ptr_arrays),
                     layers=tuple(layers),
                     inputs=tuple(_io(graph, plan, t) for t in graph.inputs),
                     outputs=tuple(_io(graph, plan, t) for t in graph.outputs),
                     name_table_size=max(len(layers), 1),
                     input_bytes=sum(graph.tensor(t).nbytes for t in graph.inputs),
                     output_bytes=sum(graph.tensor(t).nbytes for t in graph.outputs))
    env = _environment()
    files = {f"{prefix}.h": env.get_template("model.h.j2").render(m=view),
             f"{prefix}.c": env.get_template("model.c.j2").render(m=view)}
    kernels = data_dir("templates") / "kernels"
    for lib in ("mcc_common", "mcc_simd") + libraries:
        for ext in (".h", ".c"):
            src = kernels / f"{lib}{ext}"
            if src.exists():
                files[src.name] = src.read_text()
    return files


def flash_constant_bytes(calls: dict[int, KernelCall | None]) -> int:
    """Bytes of distinct constant arrays, as generate() emits them."""
    seen = set()
    total = 0
    for c in calls.values():
        for a in (c.arrays if c else ()):
            v = np.ascontiguousarray(a.values)
            key = (a.ctype, v.dtype.str, v.tobytes())
            if key not in seen:
                seen.add(key)
                total += v.nbytes
    return total


def header_lines(model_sha256: str, board: str, options: dict[str, str]) -> tuple[str, ...]:
    opts = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return (f"Generated by mcucompile {__version__}. Do not edit.",
            f"model sha256: {model_sha256}",
            f"board: {board}",
            f"options: {opts}")


def write_files(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(files.items()):
        (directory / name).write_text(text)
