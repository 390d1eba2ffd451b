"""The reference interpreters mcucompile is checked against.

TFLM (the `tflite-micro` package) is the ground truth: generated code must match
it byte for byte, outputs and every intermediate tensor. LiteRT (`ai-edge-litert`)
with its reference kernels is an optional second opinion.

Both are optional dependencies (`pip install mcucompile[reference]`) and are
imported only when a function here needs them. TensorFlow is never imported.

What is reliable (checked by tests/test_reference.py):
- `run` returns the output tensors exactly as TFLM computes them.
- `run_all_tensors` uses TFLM's kPreserveAllTensors mode, in which the
  interpreter plans memory with the linear planner: every tensor gets its own
  buffer, nothing is reused or shared, so after one invoke() each tensor still
  holds the value its producer wrote. The output tensors read this way equal
  `run`'s outputs, and on the test models every tensor equals LiteRT's.
- `tflm_arena_bytes` is the "Arena allocation total" line that TFLM's
  RecordingMicroAllocator prints (print_allocations): the bytes of arena TFLM
  used with its default greedy memory planner, i.e. the smallest `arena_size` a
  TFLM deployment of the model needs on this build (x86, reference kernels).
  It is head + tail: the head is the non-persistent part (activation tensors
  and kernel scratch, as planned), the tail the persistent part (eval tensor
  structs, quantization data, kernel op data, node structs). `tflm_arena`
  returns all three; the head is what our own planner's arena competes with
  (person_detect: 55,296 of 85,264 B).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import struct
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import MissingDependencyError, ModelFormatError, UnsupportedModelError

_INSTALL_HINT = "pip install mcucompile[reference]"


def _tflm():
    try:
        from tflite_micro import runtime
    except ImportError as e:
        raise MissingDependencyError(
            f"the TFLM reference interpreter (tflite-micro) is not installed: {_INSTALL_HINT}") from e
    return runtime


def _schema():
    """The TFLite flatbuffer schema bindings that ship inside tflite_micro."""
    _tflm()
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    return fb


# ----------------------------------------------------------------------------
# What the model looks like (read from the flatbuffer, no interpreter needed)
# ----------------------------------------------------------------------------

# TFLite TensorType codes -> numpy dtypes, for the types int8 models use.
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype(np.float32), 1: np.dtype(np.float16), 2: np.dtype(np.int32),
    3: np.dtype(np.uint8), 4: np.dtype(np.int64), 6: np.dtype(np.bool_),
    7: np.dtype(np.int16), 9: np.dtype(np.int8), 10: np.dtype(np.float64),
    15: np.dtype(np.uint32), 16: np.dtype(np.uint16),
}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of subgraph 0, as the .tflite file declares it."""
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: tuple[float, ...]        # empty when not quantized
    zero_point: tuple[int, ...]
    is_constant: bool               # has data in the file (weights, biases, shapes)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True)
class ModelInfo:
    tensors: tuple[TensorSpec, ...]
    inputs: tuple[int, ...]         # tensor indices, in the model's input order
    outputs: tuple[int, ...]

    @property
    def input_specs(self) -> list[TensorSpec]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_specs(self) -> list[TensorSpec]:
        return [self.tensors[i] for i in self.outputs]


def model_info(model: bytes) -> ModelInfo:
    """Tensors, inputs and outputs of subgraph 0."""
    fb = _schema()
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ModelFormatError("not a .tflite model: the file identifier 'TFL3' is missing at bytes 4..7")
    try:
        m = fb.Model.GetRootAsModel(model, 0)
        sg = m.Subgraphs(0)
        tensors = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            q = t.Quantization()
            scale = tuple(float(s) for s in q.ScaleAsNumpy()) if q is not None and q.ScaleLength() else ()
            zp = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q is not None and q.ZeroPointLength() else ()
            buf = m.Buffers(t.Buffer())
            # A tensor is constant when its buffer has bytes, inline or (for
            # models over 2 GB) at an offset into the file.
            constant = buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1)
            if t.Type() not in _DTYPES:
                raise UnsupportedModelError(f"tensor {i} has TFLite type {t.Type()}, which mcucompile does not handle")
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            tensors.append(TensorSpec(i, (t.Name() or b"").decode(), shape, _DTYPES[t.Type()],
                                      scale, zp, constant))
        inputs = tuple(int(i) for i in sg.InputsAsNumpy())
        outputs = tuple(int(i) for i in sg.OutputsAsNumpy())
    except (struct.error, IndexError, AttributeError, TypeError, ValueError) as e:  # flatbuffers on garbage
        raise ModelFormatError(f"not a readable .tflite model ({type(e).__name__}: {e})") from e
    return ModelInfo(tuple(tensors), inputs, outputs)


def random_inputs(model: bytes, seed: int = 0) -> list[np.ndarray]:
    """Seeded random inputs covering each input's whole dtype range.

    Integer inputs are uniform over the type (int8: -128..127); float inputs
    are drawn so that after the model's QUANTIZE they span the int8 range too.
    """
    rng = np.random.default_rng(seed)
    out = []
    for spec in model_info(model).input_specs:
        if np.issubdtype(spec.dtype, np.integer):
            info = np.iinfo(spec.dtype)
            out.append(rng.integers(info.min, info.max, size=spec.shape, dtype=spec.dtype, endpoint=True))
        elif spec.scale:
            lo = (-128 - spec.zero_point[0]) * spec.scale[0]
            hi = (127 - spec.zero_point[0]) * spec.scale[0]
            out.append(rng.uniform(lo, hi, size=spec.shape).astype(spec.dtype))
        else:
            # Float input without quantization parameters: the converter's float_io
            # models calibrate on [-1, 1], so go a little past it to hit saturation.
            out.append(rng.uniform(-1.5, 1.5, size=spec.shape).astype(spec.dtype))
    return out


# ----------------------------------------------------------------------------
# Capturing TFLM's C-level stderr
# ----------------------------------------------------------------------------

@contextlib.contextmanager
def _capture_c_stderr() -> Iterator[list[str]]:
    """Collect what C code writes to file descriptor 2 inside the block.

    TFLM prints with fprintf(stderr), below Python's sys.stderr, so the file
    descriptor itself is pointed at a temporary file. This is process-wide:
    other threads' stderr output during the block is captured too.
    """
    lines: list[str] = []
    libc = ctypes.CDLL(None)
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            libc.fflush(None)  # flush C stdio buffers while fd 2 still points at tmp
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


# ----------------------------------------------------------------------------
# TFLM
# ----------------------------------------------------------------------------

def _arena_size(info: ModelInfo, model: bytes) -> int:
    """A generous arena: room for every tensor separately (what kPreserveAllTensors
    needs) twice over, plus the model size for persistent structures."""
    activations = sum(t.nbytes for t in info.tensors if not t.is_constant)
    return max(1 << 20, 2 * activations + len(model) + (256 << 10))


@dataclass(frozen=True)
class TflmArena:
    """TFLM's arena use, from RecordingMicroAllocator (see the module docstring)."""
    total: int      # head + tail: the arena_size TFLM needs
    head: int       # non-persistent: activations and scratch buffers
    tail: int       # persistent: runtime structures and kernel op data


class Reference:
    """A TFLM interpreter for one model.

    `preserve_all_tensors=True` keeps every intermediate tensor readable with
    `tensor()` after `run()`; the default mode records arena usage instead.
    """

    def __init__(self, model: bytes, *, preserve_all_tensors: bool = False, arena_size: int | None = None):
        runtime = _tflm()
        self.model = bytes(model)
        self.info = model_info(self.model)
        self.preserve_all_tensors = preserve_all_tensors
        config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors
                  else runtime.InterpreterConfig.kAllocationRecording)
        size = arena_size or _arena_size(self.info, self.model)
        with _capture_c_stderr() as log:
            try:
                self._interp = runtime.Interpreter.from_bytes(self.model, arena_size=size,
                                                              intrepreter_config=config)
            except RuntimeError as e:
                failure: RuntimeError | None = e
            else:
                failure = None
        if failure is not None:
            detail = "; ".join(line.strip() for line in log if line.strip()) or str(failure)
            raise UnsupportedModelError(f"TFLM cannot prepare this model: {detail}")

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One inference; returns the outputs (copies, TFLM's dtype and shape)."""
        specs = self.info.input_specs
        if len(inputs) != len(specs):
            raise ValueError(f"model has {len(specs)} inputs, got {len(inputs)} arrays")
        for i, (x, spec) in enumerate(zip(inputs, specs)):
            x = np.ascontiguousarray(x)
            if x.dtype != spec.dtype or tuple(x.shape) != spec.shape:
                raise ValueError(f"input {i} must be {spec.dtype} {spec.shape}, got {x.dtype} {tuple(x.shape)}")
            self._interp.set_input(x, i)
        with _capture_c_stderr() as log:
            try:
                self._interp.invoke()
            except RuntimeError as e:
                failure: RuntimeError | None = e
            else:
                failure = None
        if failure is not None:
            detail = "; ".join(line.strip() for line in log if line.strip()) or str(failure)
            raise UnsupportedModelError(f"TFLM failed to run this model: {detail}")
        return [np.array(self._interp.get_output(i)) for i in range(len(self.info.outputs))]

    def tensor(self, index: int) -> np.ndarray:
        """Tensor `index` of subgraph 0 after the last run (needs preserve_all_tensors)."""
        if not self.preserve_all_tensors:
            raise ValueError("Reference.tensor() needs Reference(..., preserve_all_tensors=True)")
        return np.array(self._interp.GetTensor(index, 0)["tensor_data"])

    def arena(self) -> TflmArena:
        """TFLM's arena use (the "Arena allocation total/head/tail" lines)."""
        if self.preserve_all_tensors:
            raise ValueError("arena usage is only recorded with preserve_all_tensors=False")
        with _capture_c_stderr() as log:
            self._interp.print_allocations()
        found: dict[str, int] = {}
        for line in log:
            m = re.search(r"Arena allocation (total|head|tail) (\d+) bytes", line)
            if m:
                found[m.group(1)] = int(m.group(2))
        if set(found) != {"total", "head", "tail"}:
            raise RuntimeError("TFLM's print_allocations() did not print the arena total/head/tail lines:\n"
                               + "\n".join(log))
        return TflmArena(**found)


def run(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs on TFLM for one set of inputs."""
    return Reference(model).run(inputs)


def run_all_tensors(model: bytes, inputs: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """Every tensor of subgraph 0 (inputs, constants, intermediates, outputs)
    after one TFLM inference, by tensor index."""
    ref = Reference(model, preserve_all_tensors=True)
    ref.run(inputs)
    return {t.index: ref.tensor(t.index) for t in ref.info.tensors}


def tflm_arena(model: bytes) -> TflmArena:
    """TFLM's arena use for this model: total, head (activations), tail (runtime)."""
    return Reference(model).arena()


def tflm_arena_bytes(model: bytes) -> int:
    """The arena_size TFLM needs for this model (see the module docstring)."""
    return tflm_arena(model).total


# ----------------------------------------------------------------------------
# LiteRT, the optional second opinion
# ----------------------------------------------------------------------------

def _litert(model: bytes, preserve_all_tensors: bool):
    try:
        from ai_edge_litert import interpreter as litert
    except ImportError as e:
        raise MissingDependencyError(f"the LiteRT interpreter (ai-edge-litert) is not installed: {_INSTALL_HINT}") from e
    try:
        # BUILTIN_REF: the portable reference kernels, the closest to TFLM's.
        interp = litert.Interpreter(model_content=bytes(model),
                                    experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                                    experimental_preserve_all_tensors=preserve_all_tensors)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        # LiteRT is stricter than TFLM about some files (person_detect's biases
        # declare quantized_dimension=3 on a 1-D tensor, which TFLM ignores).
        raise UnsupportedModelError(f"LiteRT cannot load this model: {e}") from e
    return interp


def _litert_invoke(interp, inputs: Sequence[np.ndarray]) -> None:
    details = interp.get_input_details()
    if len(inputs) != len(details):
        raise ValueError(f"model has {len(details)} inputs, got {len(inputs)} arrays")
    for d, x in zip(details, inputs):
        interp.set_tensor(d["index"], np.ascontiguousarray(x))
    interp.invoke()


def litert_run(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs on LiteRT's reference kernels."""
    interp = _litert(model, preserve_all_tensors=False)
    _litert_invoke(interp, inputs)
    return [np.array(interp.get_tensor(d["index"])) for d in interp.get_output_details()]


def litert_run_all_tensors(model: bytes, inputs: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """Every tensor after one LiteRT inference, by tensor index (as run_all_tensors)."""
    interp = _litert(model, preserve_all_tensors=True)
    _litert_invoke(interp, inputs)
    out = {}
    for d in interp.get_tensor_details():
        try:
            out[d["index"]] = np.array(interp.get_tensor(d["index"]))
        except ValueError:
            continue  # a tensor LiteRT never allocated (e.g. an unused optional)
    return out
