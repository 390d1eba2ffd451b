"""CROP_2D and PASTE_2D, the internal ops of patch-based inference, onto
templates/kernels/mcc_region.{c,h}."""
from __future__ import annotations

from ..errors import UnsupportedModelError
from ..ir import DType, Graph, Op, OpKind
from . import Field, KernelCall, KernelTarget, TensorArg, lowering


@lowering(OpKind.CROP_2D, OpKind.PASTE_2D)
def lower_region(op: Op, graph: Graph, target: KernelTarget) -> KernelCall:
    if op.kind == OpKind.CROP_2D:
        full, patch = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
        function, args = "mcc_crop_2d_s8", (TensorArg(full.id), TensorArg(patch.id))
    else:
        patch, full = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
        # A second input is the full tensor pasted so far; the output overwrites it in place.
        function, args = "mcc_paste_2d_s8", (TensorArg(patch.id), TensorArg(full.id))
    if full.dtype != DType.INT8 or patch.dtype != DType.INT8:
        raise UnsupportedModelError(f"op {op.index} ({op.kind.value}): int8 tensors only")
    a = op.attrs
    if not (0 <= a.y and a.y + patch.shape[1] <= full.shape[1] and 0 <= a.x
            and a.x + patch.shape[2] <= full.shape[2]):
        raise UnsupportedModelError(f"op {op.index} ({op.kind.value}): region {patch.shape} at "
                                    f"({a.y}, {a.x}) lies outside {full.shape}")
    fields = (Field("full_h", full.shape[1]), Field("full_w", full.shape[2]),
              Field("patch_h", patch.shape[1]), Field("patch_w", patch.shape[2]),
              Field("channels", full.shape[3]), Field("y", a.y), Field("x", a.x))
    return KernelCall(function, "mcc_region", "mcc_region_params", fields, args)
