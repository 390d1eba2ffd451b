"""The graph IR: typed, frozen dataclasses that every stage after the importer reads.

A Graph holds tensors (activations and constants) and ops in execution order.
Op attributes are one small dataclass per op kind, never dicts of strings.
`verify()` checks the invariants the later stages rely on and names the op
that breaks them.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Union

import numpy as np

from .errors import GraphError


class DType(enum.Enum):
    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    OTHER = "other"

    @property
    def itemsize(self) -> int:
        return {"float32": 4, "int8": 1, "uint8": 1, "int16": 2, "int32": 4,
                "int64": 8, "bool": 1}.get(self.value, 0)

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def ctype(self) -> str:
        return {"float32": "float", "int8": "int8_t", "uint8": "uint8_t",
                "int16": "int16_t", "int32": "int32_t", "int64": "int64_t",
                "bool": "uint8_t"}[self.value]


@dataclass(frozen=True)
class Quant:
    """Affine quantization: real = scale * (q - zero_point).

    One scale/zero-point per tensor, or one per slice along `axis` (per channel).
    """
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True, eq=False)
class Tensor:
    id: int
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: Quant | None = None
    data: np.ndarray | None = field(default=None, repr=False)  # constants only

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @cached_property
    def nbytes(self) -> int:
        # Cached: the planner asks for it per tensor per trial plan (frozen, so it cannot change).
        return self.num_elements * self.dtype.itemsize

    @property
    def scale(self) -> float:
        assert self.quant is not None
        return self.quant.scale[0]

    @property
    def zero_point(self) -> int:
        assert self.quant is not None
        return self.quant.zero_point[0]


class OpKind(enum.Enum):
    CONV_2D = "CONV_2D"
    DEPTHWISE_CONV_2D = "DEPTHWISE_CONV_2D"
    FULLY_CONNECTED = "FULLY_CONNECTED"
    ADD = "ADD"
    MUL = "MUL"
    AVERAGE_POOL_2D = "AVERAGE_POOL_2D"
    MAX_POOL_2D = "MAX_POOL_2D"
    MEAN = "MEAN"
    RESHAPE = "RESHAPE"
    SQUEEZE = "SQUEEZE"
    PAD = "PAD"
    PADV2 = "PADV2"
    CONCATENATION = "CONCATENATION"
    TRANSPOSE = "TRANSPOSE"
    RESIZE_NEAREST_NEIGHBOR = "RESIZE_NEAREST_NEIGHBOR"
    SOFTMAX = "SOFTMAX"
    RELU = "RELU"
    RELU6 = "RELU6"
    LOGISTIC = "LOGISTIC"
    HARD_SWISH = "HARD_SWISH"
    QUANTIZE = "QUANTIZE"
    DEQUANTIZE = "DEQUANTIZE"
    # Internal ops, made by the patch-based inference pass (never in a .tflite):
    CROP_2D = "CROP_2D"      # copy a spatial region of an NHWC tensor
    PASTE_2D = "PASTE_2D"    # write a patch into a region of a larger NHWC tensor


class Padding(enum.Enum):
    SAME = "SAME"
    VALID = "VALID"


@dataclass(frozen=True)
class ExplicitPadding:
    """Padding given in pixels, for windows over a patch of a larger tensor.

    Only the top and left amounts are stored: the bottom and right follow from
    the output shape (taps that fall outside the input are padding)."""
    top: int
    left: int


class Activation(enum.Enum):
    """A fused activation, as TFLite's ActivationFunctionType."""
    NONE = "NONE"
    RELU = "RELU"
    RELU_N1_TO_1 = "RELU_N1_TO_1"
    RELU6 = "RELU6"
    TANH = "TANH"
    SIGN_BIT = "SIGN_BIT"


# --- attributes, one dataclass per op kind ---------------------------------

@dataclass(frozen=True)
class ResidualAdd:
    """A residual ADD fused into the CONV_2D before it (passes.fuse_residual_adds).

    The op's fourth input is the ADD's other operand x, its output the ADD's
    output, written over x. `conv_output` is the quantization of the
    convolution's own int8 result, which is no longer a tensor; `activation`
    is the ADD's (the op's `activation` stays the convolution's)."""
    conv_output: Quant
    activation: Activation
    add_index: int               # the ADD's operator index in the source model


@dataclass(frozen=True)
class Conv2DAttrs:
    padding: "Padding | ExplicitPadding"
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    activation: Activation
    residual: ResidualAdd | None = None


@dataclass(frozen=True)
class DepthwiseConv2DAttrs:
    padding: "Padding | ExplicitPadding"
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    depth_multiplier: int
    activation: Activation


@dataclass(frozen=True)
class FullyConnectedAttrs:
    activation: Activation
    keep_num_dims: bool


@dataclass(frozen=True)
class Pool2DAttrs:
    padding: "Padding | ExplicitPadding"
    stride_h: int
    stride_w: int
    filter_h: int
    filter_w: int
    activation: Activation


@dataclass(frozen=True)
class ElementwiseAttrs:
    """ADD and MUL."""
    activation: Activation


@dataclass(frozen=True)
class ConcatenationAttrs:
    axis: int
    activation: Activation


@dataclass(frozen=True)
class SoftmaxAttrs:
    beta: float


@dataclass(frozen=True)
class ReducerAttrs:
    """MEAN; the axes are a constant input tensor."""
    keep_dims: bool


@dataclass(frozen=True)
class ResizeNearestAttrs:
    align_corners: bool
    half_pixel_centers: bool


@dataclass(frozen=True)
class SqueezeAttrs:
    squeeze_dims: tuple[int, ...]


@dataclass(frozen=True)
class RegionAttrs:
    """CROP_2D reads, PASTE_2D writes, the region of the full tensor whose
    top-left corner is (y, x); its size is the patch tensor's."""
    y: int
    x: int


@dataclass(frozen=True)
class NoAttrs:
    """RESHAPE (the new shape is the output tensor's), PAD, PADV2, TRANSPOSE,
    RELU, RELU6, LOGISTIC, HARD_SWISH, QUANTIZE, DEQUANTIZE."""


Attrs = Union[Conv2DAttrs, DepthwiseConv2DAttrs, FullyConnectedAttrs, Pool2DAttrs,
              ElementwiseAttrs, ConcatenationAttrs, SoftmaxAttrs, ReducerAttrs,
              ResizeNearestAttrs, SqueezeAttrs, RegionAttrs, NoAttrs]

ATTRS_OF_KIND: dict[OpKind, type] = {
    OpKind.CONV_2D: Conv2DAttrs,
    OpKind.DEPTHWISE_CONV_2D: DepthwiseConv2DAttrs,
    OpKind.FULLY_CONNECTED: FullyConnectedAttrs,
    OpKind.ADD: ElementwiseAttrs,
    OpKind.MUL: ElementwiseAttrs,
    OpKind.AVERAGE_POOL_2D: Pool2DAttrs,
    OpKind.MAX_POOL_2D: Pool2DAttrs,
    OpKind.MEAN: ReducerAttrs,
    OpKind.RESHAPE: NoAttrs,
    OpKind.SQUEEZE: SqueezeAttrs,
    OpKind.PAD: NoAttrs,
    OpKind.PADV2: NoAttrs,
    OpKind.CONCATENATION: ConcatenationAttrs,
    OpKind.TRANSPOSE: NoAttrs,
    OpKind.RESIZE_NEAREST_NEIGHBOR: ResizeNearestAttrs,
    OpKind.SOFTMAX: SoftmaxAttrs,
    OpKind.RELU: NoAttrs,
    OpKind.RELU6: NoAttrs,
    OpKind.LOGISTIC: NoAttrs,
    OpKind.HARD_SWISH: NoAttrs,
    OpKind.QUANTIZE: NoAttrs,
    OpKind.DEQUANTIZE: NoAttrs,
    OpKind.CROP_2D: RegionAttrs,
    OpKind.PASTE_2D: RegionAttrs,
}

# Ops whose output is the input's bytes under another shape: the planner
# gives both tensors one buffer and codegen emits no call.
ALIAS_KINDS = frozenset({OpKind.RESHAPE, OpKind.SQUEEZE})


@dataclass(frozen=True)
class Op:
    index: int                   # operator index in the source model
    kind: OpKind
    inputs: tuple[int, ...]      # tensor ids; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    attrs: Attrs

    @property
    def name(self) -> str:
        base = f"{self.kind.value.lower()}_{self.index}"
        residual = getattr(self.attrs, "residual", None)
        return f"{base}_add_{residual.add_index}" if residual else base

    @property
    def label(self) -> str:
        """The op kind as reports show it: CONV_2D+ADD for a fused residual."""
        return self.kind.value + ("+ADD" if getattr(self.attrs, "residual", None) else "")


@dataclass(frozen=True, eq=False)
class Graph:
    name: str
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]          # in execution order
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""

    def tensor(self, tid: int) -> Tensor:
        return self.tensors[tid]

    def producers(self) -> dict[int, Op]:
        return {t: op for op in self.ops for t in op.outputs}

    def consumers(self) -> dict[int, list[Op]]:
        out: dict[int, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(op)
        return out

    def activations(self) -> list[Tensor]:
        """Tensors that live in RAM: everything that is not a constant."""
        used = {t for op in self.ops for t in (*op.inputs, *op.outputs) if t >= 0}
        used |= set(self.inputs) | set(self.outputs)
        return [t for t in self.tensors if t.id in used and not t.is_const]

    @property
    def macs(self) -> int:
        from .kernels import macs_of  # late: kernels imports ir
        return sum(macs_of(op, self) for op in self.ops)


def verify(graph: Graph) -> None:
    """Check the invariants later stages assume; raise GraphError naming the op."""
    n = len(graph.tensors)
    for i, t in enumerate(graph.tensors):
        if t.id != i:
            raise GraphError(f"tensor {t.name!r} has id {t.id}, expected {i}")
        if any(d < 0 for d in t.shape):
            raise GraphError(f"tensor {t.name!r} has a dynamic shape {t.shape}")
    produced = set(graph.inputs) | {t.id for t in graph.tensors if t.is_const}
    for op in graph.ops:
        where = f"op {op.index} ({op.kind.value})"
        if not isinstance(op.attrs, ATTRS_OF_KIND[op.kind]):
            raise GraphError(f"{where}: attributes are {type(op.attrs).__name__}, "
                             f"expected {ATTRS_OF_KIND[op.kind].__name__}")
        for t in op.inputs:
            if t >= n:
                raise GraphError(f"{where}: input tensor {t} does not exist")
            if t >= 0 and t not in produced:
                raise GraphError(f"{where}: reads tensor {graph.tensors[t].name!r} "
                                 "before any op produces it")
        for t in op.outputs:
            if not 0 <= t < n:
                raise GraphError(f"{where}: output tensor {t} does not exist")
            if t in produced:
                raise GraphError(f"{where}: tensor {graph.tensors[t].name!r} "
                                 "is written twice")
            produced.add(t)
    for t in graph.outputs:
        if t not in produced:
            raise GraphError(f"graph output {graph.tensors[t].name!r} is never produced")
