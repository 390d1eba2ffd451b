"""C code generation: Python computes small view objects, Jinja lays them out.

`generate()` is pure: graph + plan + kernel calls in, {filename: text} out.
Every name, type, offset and constant is computed here; the templates in
templates/ only iterate over the views (StrictUndefined, no arithmetic).
Output is deterministic: no timestamps, stable ordering, and the header
records the model hash, tool version, board and options.

Layers that call the same kernels in a repeating pattern (every patch of a
patch-based stage, or a network's repeated blocks) become one loop. Its
parameter structs are kept once each, and a small table gives each pass the
struct and the arena offsets that differ. An 8x8 patch stage unrolled is
hundreds of calls and structs, about 40 KB of flash on person_detect.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from . import __version__
from .ir import DType, Graph
from .kernels import ArrayRef, FloatValue, KernelCall, TensorArg, TensorPtrs, omitted_paths, taken_paths
from .planner import MemoryPlan
from .resources import data_dir

_DTYPE_CODE = {DType.INT8: 1, DType.UINT8: 2, DType.INT16: 3, DType.INT32: 4, DType.FLOAT32: 5}
_ROW = 16  # array values per line


@dataclass(frozen=True)
class Ptr:
    """A typed pointer into the arena."""
    ctype: str
    offset: int
    column: int | None = None   # in a loop: the offset is this column of the loop's table


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
    args: tuple[Ptr, ...]      # tensors and the scratch buffer, in call order
    kind: str = "layer"

    @property
    def signature(self) -> tuple:
        """What must match for two layers to share a loop body."""
        return self.function, self.params_type, tuple(a.ctype for a in self.args)


@dataclass(frozen=True)
class StepView:
    """One call of a loop body: the same kernel on every pass."""
    index: int                 # profiling id on the first pass
    summary: str               # the first pass's comment
    function: str
    params_type: str
    params_name: str
    params: tuple[tuple[FieldView, ...], ...]   # the distinct structs
    pick: int | None           # the table column choosing the struct; None: only one
    args: tuple[Ptr, ...]


@dataclass(frozen=True)
class LoopView:
    """Layers first..last: `count` passes of the same `period` kernel calls."""
    name: str
    first: int
    last: int
    count: int
    period: int
    steps: tuple[StepView, ...]
    table_ctype: str
    table: tuple[tuple[int, ...], ...]   # a row per pass; empty when nothing differs
    kind: str = "loop"


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
    blocks: tuple[LayerView | LoopView, ...]   # the invoke sequence
    inputs: tuple[IOView, ...]
    outputs: tuple[IOView, ...]
    name_table_size: int        # C has no zero-length arrays
    input_bytes: int
    output_bytes: int
    paths: tuple[str, ...] = ()  # the optional kernel paths its layers take (kernels.OPTIONAL_PATHS)


@dataclass(frozen=True)
class ConfigView:
    header_lines: tuple[str, ...]
    omitted: tuple[str, ...]    # kernel paths no layer takes (kernels.OPTIONAL_PATHS)


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
    args = tuple(_ptr(graph, plan, a.tensor) if isinstance(a, TensorArg)
                 else Ptr("void", plan.scratch_offsets.get(op.index, 0)) for a in call.args)
    shapes = " ".join("x".join(map(str, graph.tensor(t).shape)) for t in op.outputs)
    summary = f"op {op.index} {op.label} -> {shapes}" + (f", {call.macs} MACs" if call.macs else "")
    return LayerView(step, lname, summary, call.function, call.params_type, tuple(fields), args)


# A loop pays for itself from three passes; bodies longer than this are not looked for.
LOOP_MIN_PASSES = 3
LOOP_MAX_PERIOD = 64


def _repeats(signatures: list[tuple], start: int) -> tuple[int, int]:
    """(period, passes) of the longest run of repeated signature patterns from `start`."""
    best_covered, best = 0, (1, 1)
    for period in range(1, LOOP_MAX_PERIOD + 1):
        if start + LOOP_MIN_PASSES * period > len(signatures):
            break
        body = signatures[start:start + period]
        passes = 1
        while signatures[start + passes * period:start + (passes + 1) * period] == body:
            passes += 1
        # Strictly longer only: the shortest body that covers the run wins.
        if passes >= LOOP_MIN_PASSES and passes * period > best_covered:
            best_covered, best = passes * period, (period, passes)
    return best


def _loop(layers: list[LayerView], period: int, number: int) -> LoopView:
    """One loop over `layers`, `period` calls per pass; the table holds what differs between passes."""
    passes = [layers[i:i + period] for i in range(0, len(layers), period)]
    columns: list[list[int]] = []   # a column per varying struct choice or offset

    def column(values: list[int]) -> int | None:
        if len(set(values)) == 1:
            return None
        columns.append(values)
        return len(columns) - 1

    steps = []
    for j, first in enumerate(passes[0]):
        distinct = list(dict.fromkeys(p[j].fields for p in passes))
        pick = column([distinct.index(p[j].fields) for p in passes])
        args = tuple(Ptr(a.ctype, a.offset, column([p[j].args[k].offset for p in passes]))
                     for k, a in enumerate(first.args))
        steps.append(StepView(first.index, first.summary, first.function, first.params_type,
                              f"{first.name}_params", tuple(distinct), pick, args))
    table = tuple(zip(*columns)) if columns else ()
    wide = any(v > 0xFFFF for row in table for v in row)
    return LoopView(f"loop_{number}", layers[0].index, layers[-1].index, len(passes), period,
                    tuple(steps), "uint32_t" if wide else "uint16_t", table)


def _blocks(layers: list[LayerView]) -> tuple[LayerView | LoopView, ...]:
    """The invoke sequence: repeated patterns of calls as loops, the rest as single calls."""
    signatures = [layer.signature for layer in layers]
    blocks: list[LayerView | LoopView] = []
    i = 0
    while i < len(layers):
        period, passes = _repeats(signatures, i)
        if passes >= LOOP_MIN_PASSES:
            blocks.append(_loop(layers[i:i + period * passes], period,
                                sum(b.kind == "loop" for b in blocks)))
            i += period * passes
        else:
            blocks.append(layers[i])
            i += 1
    return tuple(blocks)


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
                     layers=tuple(layers), blocks=_blocks(layers),
                     inputs=tuple(_io(graph, plan, t) for t in graph.inputs),
                     outputs=tuple(_io(graph, plan, t) for t in graph.outputs),
                     name_table_size=max(len(layers), 1),
                     input_bytes=sum(graph.tensor(t).nbytes for t in graph.inputs),
                     output_bytes=sum(graph.tensor(t).nbytes for t in graph.outputs),
                     paths=taken_paths(calls.values()))
    env = _environment()
    config = ConfigView(header_lines=header_lines, omitted=omitted_paths(calls.values()))
    files = {f"{prefix}.h": env.get_template("model.h.j2").render(m=view),
             f"{prefix}.c": env.get_template("model.c.j2").render(m=view),
             "mcc_config.h": env.get_template("mcc_config.h.j2").render(c=config)}
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
