"""Check generated code against the reference interpreter, byte for byte.

The model is compiled for the host, built with the system C compiler (with
AddressSanitizer and UBSan by default) together with a runner that dumps
every layer's output, and run on random inputs. Every output byte is compared
with TFLM; on a mismatch, the intermediate tensors name the first layer whose
output differs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from . import codegen
from .errors import MismatchError, ToolchainError
from .ir import DType, Graph
from .pipeline import CompileOptions, Compiled, compile_model
from .resources import data_dir

SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


@dataclass(frozen=True)
class DumpEntry:
    layer: int       # position in the invoke sequence
    offset: int
    size: int
    tensor: int      # tensor id in the graph
    op_index: int


@dataclass(frozen=True)
class RunnerView:
    prefix: str
    dumps: tuple[DumpEntry, ...]
    dump_table_size: int


@dataclass(frozen=True)
class LayerDiff:
    op_index: int
    op: str
    tensor: str
    differing: int
    total: int
    first_position: int
    ours: int
    reference: int

    def __str__(self) -> str:
        return (f"first differing layer: op {self.op_index} ({self.op}), tensor {self.tensor!r}: "
                f"{self.differing} of {self.total} bytes differ; first at element {self.first_position} "
                f"(ours {self.ours}, reference {self.reference})")


@dataclass(frozen=True)
class VerifyResult:
    runs: int
    output_bytes: int
    differing_bytes: int
    first_bad_layer: LayerDiff | None
    intermediate_bytes: int = 0        # bytes of intermediate tensors compared (check_layers)

    @property
    def bit_exact(self) -> bool:
        return self.differing_bytes == 0 and self.first_bad_layer is None


def dump_entries(compiled: Compiled) -> tuple[DumpEntry, ...]:
    entries, layer = [], 0
    for op in compiled.graph.ops:
        if compiled.calls[op.index] is None:
            continue
        for t in op.outputs:
            size = compiled.graph.tensor(t).nbytes
            entries.append(DumpEntry(layer, compiled.plan.tensor_offsets[t], size, t, op.index))
        layer += 1
    return tuple(entries)


def host_compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise ToolchainError("no C compiler found for the host build: install one "
                             "(apt-get install gcc) or set CC")
    return cc


def build_host_runner(compiled: Compiled, workdir: Path, sanitize: bool = True,
                      cc: str | None = None, extra_flags: tuple[str, ...] = ()) -> Path:
    """Write the model and the runner into workdir and compile them; returns the executable."""
    prefix = next(iter(f for f in compiled.files if f.endswith(".h") and not f.startswith("mcc_")))[:-2]
    model_dir = workdir / "model"
    codegen.write_files(model_dir, compiled.files)
    dumps = dump_entries(compiled)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    runner = env.get_template("host/runner.c.j2").render(
        r=RunnerView(prefix, dumps, max(len(dumps), 1)))
    (workdir / "runner.c").write_text(runner)
    exe = workdir / "runner"
    cmd = [cc or host_compiler(), "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
           "-DMCC_PROFILE_HOOKS", "-DMCC_DEBUG_ARENA", "-I", str(model_dir),
           *(SANITIZE_FLAGS if sanitize else ()), *extra_flags,
           str(workdir / "runner.c"), *sorted(str(p) for p in model_dir.glob("*.c")), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"the generated C failed to compile with {cmd[0]}:\n{proc.stderr[-4000:]}")
    return exe


def random_inputs(graph: Graph, runs: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Random inputs over each input's whole representable range."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        one = []
        for tid in graph.inputs:
            t = graph.tensor(tid)
            if t.dtype == DType.FLOAT32:
                # Inputs of a float-I/O model: span what its QUANTIZE op can represent.
                q = next((graph.tensor(op.outputs[0]).quant for op in graph.ops if tid in op.inputs
                          and graph.tensor(op.outputs[0]).quant), None)
                lo, hi = ((q.scale[0] * (-128 - q.zero_point[0]), q.scale[0] * (127 - q.zero_point[0]))
                          if q else (-1.0, 1.0))
                one.append(rng.uniform(lo, hi, t.shape).astype(np.float32))
            else:
                info = np.iinfo(t.dtype.numpy)
                one.append(rng.integers(info.min, info.max, t.shape, endpoint=True, dtype=t.dtype.numpy))
        out.append(one)
    return out


def run_host(exe: Path, compiled: Compiled, inputs: list[list[np.ndarray]]):
    """Run the runner; returns (outputs per run, {(run, tensor id): bytes})."""
    g = compiled.graph
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        with open(d / "in.bin", "wb") as f:
            for run in inputs:
                for arr in run:
                    f.write(np.ascontiguousarray(arr).tobytes())
        proc = subprocess.run([str(exe), str(len(inputs)), str(d / "in.bin"), str(d / "out.bin"),
                               str(d / "layers.bin")], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise MismatchError(f"the generated code failed at run time (exit {proc.returncode}):\n"
                                f"{proc.stderr[-4000:]}")
        raw_out = (d / "out.bin").read_bytes()
        raw_layers = (d / "layers.bin").read_bytes()
    outputs, pos = [], 0
    for _ in inputs:
        one = []
        for tid in g.outputs:
            t = g.tensor(tid)
            one.append(np.frombuffer(raw_out[pos:pos + t.nbytes], t.dtype.numpy).reshape(t.shape))
            pos += t.nbytes
        outputs.append(one)
    layers, pos = {}, 0
    for r in range(len(inputs)):
        for e in dump_entries(compiled):
            t = g.tensor(e.tensor)
            layers[(r, e.tensor)] = np.frombuffer(raw_layers[pos:pos + e.size], t.dtype.numpy).reshape(t.shape)
            pos += e.size
    return outputs, layers


def first_bad_layer(compiled: Compiled, model: bytes, run_inputs: list[np.ndarray],
                    ours: dict[int, np.ndarray]) -> LayerDiff | None:
    """Walk layers in order; the first whose output differs from TFLM's is the culprit."""
    from . import reference
    ref = reference.run_all_tensors(model, run_inputs)
    g = compiled.graph
    for e in dump_entries(compiled):
        if e.tensor not in ref:
            continue
        a = np.asarray(ours[e.tensor]).reshape(-1)
        b = np.asarray(ref[e.tensor]).reshape(-1)
        if a.shape != b.shape:
            continue
        bad = np.flatnonzero(a != b)
        if bad.size:
            i = int(bad[0])
            op = next(o for o in g.ops if o.index == e.op_index)
            return LayerDiff(op.index, op.label, g.tensor(e.tensor).name, int(bad.size), a.size, i,
                             a[i].item(), b[i].item())
    return None


def verify(model: bytes, runs: int = 3, seed: int = 0, sanitize: bool = True,
           board=None, options: CompileOptions = CompileOptions(), model_name: str = "model",
           check_layers: bool = False) -> VerifyResult:
    """Compare outputs with TFLM; with check_layers, every intermediate tensor too."""
    from . import reference
    if board is None:
        from .boards import load
        board = load("host")
    compiled = compile_model(model, board, options, model_name=model_name)
    inputs = random_inputs(compiled.graph, runs, seed)
    with tempfile.TemporaryDirectory(prefix="mcucompile-verify-") as d:
        exe = build_host_runner(compiled, Path(d), sanitize=sanitize)
        outputs, layers = run_host(exe, compiled, inputs)
    total = differing = compared = 0
    bad_layer = None
    for r, (run_in, ours) in enumerate(zip(inputs, outputs)):
        run_layers = {t: v for (rr, t), v in layers.items() if rr == r}
        ref = reference.run(model, run_in)
        for a, b in zip(ours, ref):
            a_bytes = np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8)
            b_bytes = np.frombuffer(np.ascontiguousarray(np.asarray(b, dtype=a.dtype)).tobytes(), np.uint8)
            total += a_bytes.size
            differing += int(np.count_nonzero(a_bytes != b_bytes)) if a_bytes.size == b_bytes.size \
                else a_bytes.size
        if (differing or check_layers) and bad_layer is None:
            bad_layer = first_bad_layer(compiled, model, run_in, run_layers)
        if check_layers:
            compared += sum(v.nbytes for v in run_layers.values())
    return VerifyResult(runs, total, differing, bad_layer, compared)
