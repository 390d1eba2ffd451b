"""The compiler from end to end: .tflite bytes -> IR -> passes -> kernels -> plan -> C.

`compile_model()` does all the work in memory and raises before anything is
written; `build()` then writes OUT/ atomically (a temporary sibling directory
renamed into place), so a failed build leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import codegen, passes, planner
from .errors import McuCompileError
from .frontend import tflite
from .ir import Graph
from .kernels import KernelCall, KernelTarget, lower


@dataclass(frozen=True)
class CompileOptions:
    name: str = "model"          # C prefix of the generated API
    check_ir: bool = False       # verify the IR after every pass


@dataclass(frozen=True)
class LayerReport:
    index: int
    op: str
    input_shapes: list
    output_shapes: list
    macs: int
    kernel: str
    input_offsets: list
    output_offsets: list
    scratch_bytes: int
    scratch_offset: int | None


@dataclass(frozen=True)
class Report:
    model: str
    model_sha256: str
    board: str
    arena_bytes: int
    liveness_lower_bound_bytes: int
    weights_bytes: int
    macs: int
    planner: str
    sram_bytes: int | None
    flash_bytes: int | None
    fits_sram: bool | None
    fits_flash: bool | None
    layers: list[LayerReport] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


@dataclass(frozen=True, eq=False)
class Compiled:
    graph: Graph
    calls: dict[int, KernelCall | None]
    plan: planner.MemoryPlan
    files: dict[str, str]
    report: Report


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(name: str) -> None:
    if not _IDENT.match(name) or name.lower().startswith("mcc_"):
        raise McuCompileError(f"--name {name!r} is not usable as a C prefix: use letters, digits "
                              "and underscores, not starting with a digit or 'mcc_'")


def target_of(board) -> KernelTarget:
    return KernelTarget(dsp=bool(board.dsp), fpu=bool(board.fpu))


def compile_model(model: bytes, board, options: CompileOptions = CompileOptions(),
                  model_name: str = "model") -> Compiled:
    """Everything but writing files. Raises McuCompileError on any user mistake."""
    _check_name(options.name)
    graph = tflite.load(model, name=model_name)
    graph = passes.run_passes(graph, check=options.check_ir)
    target = target_of(board)
    calls = {op.index: lower(op, graph, target) for op in graph.ops}
    scratch = {i: c.scratch_bytes for i, c in calls.items() if c is not None and c.scratch_bytes}
    plan = planner.plan(graph, scratch)
    sha = hashlib.sha256(model).hexdigest()
    header = codegen.header_lines(sha, board.name, {"name": options.name})
    files = codegen.generate(graph, plan, calls, options.name, header)
    report = _report(graph, calls, plan, board, model_name, sha)
    return Compiled(graph, calls, plan, files, report)


def _report(graph: Graph, calls, plan: planner.MemoryPlan, board, model_name: str, sha: str) -> Report:
    layers = []
    for op in graph.ops:
        c = calls[op.index]
        layers.append(LayerReport(
            index=op.index, op=op.kind.value,
            input_shapes=[list(graph.tensor(t).shape) for t in op.inputs
                          if t >= 0 and not graph.tensor(t).is_const],
            output_shapes=[list(graph.tensor(t).shape) for t in op.outputs],
            macs=c.macs if c else 0, kernel=c.function if c else "(alias: no code)",
            input_offsets=[plan.tensor_offsets[t] for t in op.inputs if t in plan.tensor_offsets],
            output_offsets=[plan.tensor_offsets[t] for t in op.outputs if t in plan.tensor_offsets],
            scratch_bytes=c.scratch_bytes if c else 0,
            scratch_offset=plan.scratch_offsets.get(op.index)))
    weights = sum(int(a.values.size) * a.values.dtype.itemsize
                  for c in calls.values() if c for a in c.arrays)
    sram = None if board.is_host else board.sram_bytes
    flash = None if board.is_host else board.flash_bytes
    return Report(model=model_name, model_sha256=sha, board=board.name,
                  arena_bytes=plan.arena_bytes, liveness_lower_bound_bytes=plan.lower_bound,
                  weights_bytes=weights, macs=sum(layer.macs for layer in layers),
                  planner=plan.algorithm, sram_bytes=sram, flash_bytes=flash,
                  fits_sram=None if sram is None else plan.arena_bytes <= sram,
                  fits_flash=None if flash is None else weights <= flash,
                  layers=layers)


def read_model(path: Path) -> bytes:
    from .errors import ModelFormatError
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{path} is a directory, not a .tflite file") from None
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read it ({e.strerror})") from None


def build(model_path: Path, board, out: Path, name: str = "model",
          options: CompileOptions | None = None) -> Compiled:
    """Compile and write OUT/model/, OUT/report.json and, for a device board, OUT/firmware/."""
    options = options or CompileOptions(name=name)
    model_path = Path(model_path)
    compiled = compile_model(read_model(model_path), board, options, model_name=model_path.stem)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        codegen.write_files(tmp / "model", compiled.files)
        (tmp / "report.json").write_text(compiled.report.to_json())
        if not board.is_host:
            from .firmware import write_firmware
            write_firmware(tmp, board, options.name)
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return compiled


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace what this build owns in OUT; leave anything else the user put there."""
    if not out.exists():
        os.replace(tmp, out)
        return
    for entry in sorted(tmp.iterdir()):
        dest = out / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(entry, dest)
