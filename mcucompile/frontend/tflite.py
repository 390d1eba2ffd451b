"""Import a .tflite flatbuffer into the graph IR.

`load()` either returns a verified `ir.Graph` or raises one McuCompileError
that says everything that is wrong: a broken file (ModelFormatError), or a
valid model we cannot compile (UnsupportedModelError, listing every
unsupported op with its index and tensor types, or explaining how to
quantize a float model).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import ir
from ..errors import ModelFormatError, UnsupportedModelError
from ..ir import Activation, DType, OpKind, Padding
from .flatbuf import Buf, Table
from .tflite_names import builtin_name, tensor_type_name

# TensorType codes -> our dtypes (the rest are named in errors only).
_DTYPES = {0: DType.FLOAT32, 2: DType.INT32, 3: DType.UINT8, 4: DType.INT64,
           6: DType.BOOL, 7: DType.INT16, 9: DType.INT8}
_PADDING = {0: Padding.SAME, 1: Padding.VALID}
_ACTIVATION = {0: Activation.NONE, 1: Activation.RELU, 2: Activation.RELU_N1_TO_1,
               3: Activation.RELU6, 4: Activation.TANH, 5: Activation.SIGN_BIT}

# Ops whose data inputs and outputs are all int8 in a fully quantized model.
# QUANTIZE and DEQUANTIZE sit at float boundaries and are checked on their own.
_INT8_OPS = frozenset(OpKind) - {OpKind.QUANTIZE, OpKind.DEQUANTIZE}
INTERNAL_OPS = {OpKind.CROP_2D.value, OpKind.PASTE_2D.value}  # ours, never read from a file

QUANTIZE_HINT = (
    "mcucompile compiles fully integer (int8) models. Quantize it with "
    "`mcucompile quantize MODEL.keras --calib DATA -o model.tflite`, or with "
    "TFLiteConverter: optimizations=[tf.lite.Optimize.DEFAULT], a representative_dataset, "
    "target_spec.supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8], and "
    "inference_input_type = inference_output_type = tf.int8.")


def read_model(path: str | Path) -> bytes:
    """The bytes of a model file, or one clear error."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{path} is a directory, not a .tflite file") from None
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read it ({e.strerror})") from None


def load(source: bytes | str | Path, name: str | None = None) -> ir.Graph:
    """Read a .tflite model (bytes or a path) into a verified Graph."""
    if isinstance(source, (str, Path)):
        data = read_model(source)
        name = name or Path(source).stem
    else:
        data = bytes(source)
    graph = _Importer(data, name or "model").run()
    ir.verify(graph)
    return graph


class _Importer:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name

    def run(self) -> ir.Graph:
        if len(self.data) < 8 or self.data[4:8] != b"TFL3":
            raise ModelFormatError(
                "not a TensorFlow Lite model: the file lacks the 'TFL3' flatbuffer identifier "
                "(is it a .tflite file? Keras .h5/.keras models need `mcucompile quantize` first)")
        buf = Buf(self.data)
        model = buf.root()
        version = model.u32(0)
        if version != 3:
            raise ModelFormatError(f"unsupported .tflite schema version {version} (expected 3)")
        self.opcodes = [max(c.i8(0), c.i32(3)) if not c.has(1) else -1
                        for c in model.tables(1, "operator code")]
        self.custom = [c.string(1) for c in model.tables(1, "operator code")]
        self.buffers = model.tables(4, "buffer")
        subgraphs = model.tables(2, "subgraph")
        if not subgraphs:
            raise ModelFormatError("the model has no subgraph")
        if len(subgraphs) > 1:
            raise UnsupportedModelError(
                f"the model has {len(subgraphs)} subgraphs (control flow such as WHILE/IF); "
                "mcucompile compiles single-subgraph models")
        sg = subgraphs[0]
        self.tensors = [self._tensor(i, t) for i, t in enumerate(sg.tables(0, "tensor"))]
        inputs = self._ids(sg.array(1, "i4", "inputs"))
        outputs = self._ids(sg.array(2, "i4", "outputs"))
        raw_ops = sg.tables(3, "operator")
        self._check_supported(raw_ops)
        ops = tuple(self._op(i, t) for i, t in enumerate(raw_ops))
        return ir.Graph(name=self.name, tensors=tuple(self.tensors), ops=ops,
                        inputs=inputs, outputs=outputs, description=model.string(3))

    # --- tensors -------------------------------------------------------------

    def _ids(self, arr: np.ndarray | None, optional: bool = False) -> tuple[int, ...]:
        ids = tuple(int(x) for x in (arr if arr is not None else ()))
        for t in ids:
            if not (-1 if optional else 0) <= t < len(self.tensors):
                raise ModelFormatError(f"the file is corrupt: it refers to tensor {t}, "
                                       f"but there are {len(self.tensors)} tensors")
        return ids

    def _tensor(self, index: int, t: Table) -> ir.Tensor:
        shape_arr = t.array(0, "i4", "shape")
        shape = tuple(int(d) for d in shape_arr) if shape_arr is not None else ()
        type_code = t.i8(1)
        dtype = _DTYPES.get(type_code, DType.OTHER)
        name = t.string(3, f"tensor_{index}")
        if any(d < 0 for d in shape):
            raise UnsupportedModelError(f"tensor {index} ({name!r}) has a dynamic shape {list(shape)}; "
                                        "convert the model with a fixed input shape")
        quant = None
        q = t.table(4, f"quantization of tensor {index}")
        if q is not None:
            scale = q.array(2, "f4", "scale")
            zp = q.array(3, "i8", "zero_point")
            if scale is not None and len(scale) > 0:
                if zp is None or len(zp) != len(scale):
                    zp = np.zeros(len(scale), dtype=np.int64) if zp is None or len(zp) == 0 else zp
                if len(zp) != len(scale):
                    raise ModelFormatError(f"tensor {index} ({name!r}) has {len(scale)} scales "
                                           f"but {len(zp)} zero points")
                quant = ir.Quant(scale=tuple(float(s) for s in scale),
                                 zero_point=tuple(int(z) for z in zp), axis=q.i32(6))
        data = self._buffer_data(t.u32(2), index, name, shape, dtype, type_code)
        return ir.Tensor(id=index, name=name, shape=shape, dtype=dtype, quant=quant, data=data)

    def _buffer_data(self, bi: int, index: int, name: str, shape, dtype: DType,
                     type_code: int) -> np.ndarray | None:
        if bi == 0:
            return None  # buffer 0 is the empty sentinel: an activation
        if bi >= len(self.buffers):
            raise ModelFormatError(f"the file is corrupt: tensor {index} ({name!r}) uses buffer {bi}, "
                                   f"but there are {len(self.buffers)} buffers")
        b = self.buffers[bi]
        raw = b.array(0, "u1", f"data of buffer {bi}")
        if raw is None or len(raw) == 0:
            offset, size = b.u64(1), b.u64(2)
            if offset <= 1:       # no data: an activation (or a variable)
                return None
            if offset + size > len(self.data):
                raise ModelFormatError(f"the file is truncated: buffer {bi} of tensor {name!r} "
                                       f"ends at byte {offset + size} of {len(self.data)}")
            raw = np.frombuffer(self.data, np.uint8, count=size, offset=offset)
        if dtype == DType.OTHER:
            return np.frombuffer(raw.tobytes(), np.uint8)  # kept opaque; rejected later if used
        n = int(np.prod(shape)) if shape else 1
        if len(raw) != n * dtype.itemsize:
            raise ModelFormatError(f"tensor {index} ({name!r}) of shape {list(shape)} "
                                   f"{tensor_type_name(type_code)} needs {n * dtype.itemsize} bytes, "
                                   f"its buffer has {len(raw)}")
        return np.frombuffer(raw.tobytes(), dtype.numpy.newbyteorder("<")).astype(dtype.numpy).reshape(shape)

    # --- ops -----------------------------------------------------------------

    def _kind_name(self, t: Table) -> str:
        oi = t.u32(0)
        if oi >= len(self.opcodes):
            raise ModelFormatError(f"the file is corrupt: an operator uses opcode {oi}, "
                                   f"but there are {len(self.opcodes)} opcodes")
        code = self.opcodes[oi]
        return f"CUSTOM({self.custom[oi]})" if code in (-1, 32) else builtin_name(code)

    def _types(self, ids) -> str:
        return ", ".join(tensor_type_name(self._type_code(t)) for t in ids if t >= 0)

    def _type_code(self, tid: int) -> int:
        inv = {v: k for k, v in _DTYPES.items()}
        return inv.get(self.tensors[tid].dtype, -1)

    def _check_supported(self, raw_ops: list[Table]) -> None:
        """Collect every problem first, so one message lists them all."""
        unknown, float_ops, bad_types = [], [], []
        supported = {k.value for k in OpKind} - INTERNAL_OPS
        for i, t in enumerate(raw_ops):
            kind = self._kind_name(t)
            ins = self._ids(t.array(1, "i4", "inputs"), optional=True)
            outs = self._ids(t.array(2, "i4", "outputs"))
            sig = f"op {i}: {kind} ({self._types(ins)} -> {self._types(outs)})"
            if kind not in supported:
                unknown.append(sig)
                continue
            if OpKind(kind) not in _INT8_OPS:
                continue
            data = [x for x in (*ins, *outs) if x >= 0 and not self.tensors[x].is_const
                    and not (OpKind(kind) == OpKind.RESHAPE and x == (ins[1:2] or (-1,))[0])]
            dtypes = {self.tensors[x].dtype for x in data}
            if DType.FLOAT32 in dtypes:
                float_ops.append(sig)
            elif dtypes - {DType.INT8}:
                bad_types.append(sig)
            elif any(self.tensors[x].quant is None for x in data):
                bad_types.append(sig + " without quantization parameters")
        if float_ops:
            listing = "; ".join(float_ops[:5]) + (f"; and {len(float_ops) - 5} more" if len(float_ops) > 5 else "")
            raise UnsupportedModelError(
                f"this is a float (or hybrid) model: {len(float_ops)} ops compute in float32 "
                f"({listing}). {QUANTIZE_HINT}")
        problems = []
        if unknown:
            problems.append(f"{len(unknown)} unsupported op(s): " + "; ".join(unknown))
        if bad_types:
            problems.append(f"{len(bad_types)} op(s) with tensor types mcucompile has no kernel for "
                            "(activations must be int8): " + "; ".join(bad_types))
        if problems:
            supported_list = ", ".join(sorted(supported))
            raise UnsupportedModelError(". ".join(problems) + f". Supported ops: {supported_list}.")

    def _op(self, index: int, t: Table) -> ir.Op:
        kind = OpKind(self._kind_name(t))
        inputs = self._ids(t.array(1, "i4", "inputs"), optional=True)
        outputs = self._ids(t.array(2, "i4", "outputs"))
        opts = t.table(4, f"options of op {index}")
        attrs = _attrs(kind, opts, index, inputs, outputs, self.tensors)
        return ir.Op(index=index, kind=kind, inputs=inputs, outputs=outputs, attrs=attrs)


def _enum(table: dict, code: int, what: str, index: int):
    if code not in table:
        raise ModelFormatError(f"op {index}: unknown {what} code {code}")
    return table[code]


def _attrs(kind: OpKind, o: Table | None, index: int, inputs, outputs, tensors) -> ir.Attrs:
    """Typed attributes from the op's builtin options table (absent table = schema defaults)."""
    def need() -> Table:
        if o is None:
            raise ModelFormatError(f"op {index} ({kind.value}) has no options table")
        return o

    def act(field: int) -> Activation:
        return _enum(_ACTIVATION, o.i8(field) if o else 0, "fused activation", index)

    if kind == OpKind.CONV_2D:
        o = need()
        return ir.Conv2DAttrs(padding=_enum(_PADDING, o.i8(0), "padding", index),
                              stride_w=o.i32(1), stride_h=o.i32(2), activation=act(3),
                              dilation_w=o.i32(4, 1), dilation_h=o.i32(5, 1))
    if kind == OpKind.DEPTHWISE_CONV_2D:
        o = need()
        # TFLM derives the multiplier from the shapes; the option can be 0 in newer files.
        in_c = tensors[inputs[0]].shape[-1]
        out_c = tensors[outputs[0]].shape[-1]
        mult = out_c // in_c if in_c else 0
        return ir.DepthwiseConv2DAttrs(padding=_enum(_PADDING, o.i8(0), "padding", index),
                                       stride_w=o.i32(1), stride_h=o.i32(2),
                                       depth_multiplier=mult, activation=act(4),
                                       dilation_w=o.i32(5, 1), dilation_h=o.i32(6, 1))
    if kind == OpKind.FULLY_CONNECTED:
        return ir.FullyConnectedAttrs(activation=act(0), keep_num_dims=o.bool(2) if o else False)
    if kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
        o = need()
        return ir.Pool2DAttrs(padding=_enum(_PADDING, o.i8(0), "padding", index),
                              stride_w=o.i32(1), stride_h=o.i32(2),
                              filter_w=o.i32(3), filter_h=o.i32(4), activation=act(5))
    if kind in (OpKind.ADD, OpKind.MUL):
        return ir.ElementwiseAttrs(activation=act(0))
    if kind == OpKind.CONCATENATION:
        return ir.ConcatenationAttrs(axis=o.i32(0) if o else 0, activation=act(1))
    if kind == OpKind.SOFTMAX:
        return ir.SoftmaxAttrs(beta=o.f32(0) if o else 0.0)
    if kind == OpKind.MEAN:
        return ir.ReducerAttrs(keep_dims=o.bool(0) if o else False)
    if kind == OpKind.RESIZE_NEAREST_NEIGHBOR:
        return ir.ResizeNearestAttrs(align_corners=o.bool(0) if o else False,
                                     half_pixel_centers=o.bool(1) if o else False)
    if kind == OpKind.SQUEEZE:
        dims = o.array(0, "i4", "squeeze_dims") if o else None
        return ir.SqueezeAttrs(squeeze_dims=tuple(int(d) for d in (dims if dims is not None else ())))
    return ir.NoAttrs()
