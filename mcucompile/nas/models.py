"""Plain Keras models of an `Arch`: what gets fine-tuned, pruned, saved and quantized.

Layer names are fixed (stem_conv, b3_expand, b3_dw_bn, fc, ...), so weights
can be copied in by name from the supernet or from a denser network.
The layers are exactly what TFLiteConverter folds into our kernels: conv or
depthwise conv without bias + batch norm + ReLU6 becomes one CONV_2D or
DEPTHWISE_CONV_2D with a fused RELU6, Add becomes ADD, the global average
pool MEAN, Dense FULLY_CONNECTED, Softmax SOFTMAX (efficiency.graph_of()
builds the same graph without TensorFlow).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._tf import keras
from .space import Arch

BN_EPSILON = 1e-3          # Keras' default; the supernet's batch norm uses the same
# Keras' default momentum (0.99) leaves the running statistics far from the data
# after the few hundred steps a small data set gives: inference would be noise.
BN_MOMENTUM = 0.9


def build_model(arch: Arch, gamma_l1: float = 0.0, name: str = "tinynas"):
    """The Keras model of `arch`: float input in [0, 1], NHWC; softmax output.

    gamma_l1 > 0 puts an L1 penalty on the batch-norm scales of every block's
    hidden channels (Early-Bird's channel-importance signal).
    """
    k = keras()
    L = k.layers
    reg = k.regularizers.L1(gamma_l1) if gamma_l1 else None
    inp = k.Input((arch.resolution, arch.resolution, arch.in_channels), name="input")
    x = L.Conv2D(arch.stem_channels, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = L.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    for i, b in enumerate(arch.blocks):
        h = x
        if b.expand_conv:
            h = L.Conv2D(b.hidden, 1, use_bias=False, name=f"b{i}_expand")(h)
            h = L.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"b{i}_expand_bn")(h)
            h = L.ReLU(6.0, name=f"b{i}_expand_relu")(h)
        h = L.DepthwiseConv2D(b.kernel, strides=b.stride, padding="same", use_bias=False,
                              name=f"b{i}_dw")(h)
        h = L.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                 gamma_regularizer=reg if b.expand_conv else None, name=f"b{i}_dw_bn")(h)
        h = L.ReLU(6.0, name=f"b{i}_dw_relu")(h)
        h = L.Conv2D(b.out_channels, 1, use_bias=False, name=f"b{i}_project")(h)
        h = L.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"b{i}_project_bn")(h)
        if b.residual:
            h = L.Add(name=f"b{i}_add")([x, h])
        x = h
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dense(arch.num_classes, name="fc")(x)
    out = L.Softmax(name="softmax")(x)
    return k.Model(inp, out, name=name)


def prunable_blocks(arch: Arch) -> list[int]:
    """Blocks whose hidden channels can be pruned: those with an expand conv (the
    fixed block 0's hidden channels are the stem's output)."""
    return [i for i, b in enumerate(arch.blocks) if b.expand_conv]


def hidden_gammas(model, arch: Arch) -> list[np.ndarray]:
    """|gamma| of the batch norm after each prunable block's depthwise conv: how much
    each hidden channel passes on to the projection."""
    return [np.abs(model.get_layer(f"b{i}_dw_bn").gamma.numpy()) for i in prunable_blocks(arch)]


def prune(model, arch: Arch, keep: list[np.ndarray], gamma_l1: float = 0.0):
    """The smaller network keeping only the hidden channels in `keep` (one boolean
    mask per prunable block), with the surviving weights copied over.

    A dropped channel still sent the constant relu6(beta) into the projection;
    that constant is folded into the projection's batch-norm mean, so a channel
    whose gamma is zero is removed without changing the output.
    """
    blocks = list(arch.blocks)
    for i, mask in zip(prunable_blocks(arch), keep):
        blocks[i] = replace(blocks[i], hidden=int(mask.sum()))
    small_arch = replace(arch, blocks=tuple(blocks))
    small = build_model(small_arch, gamma_l1=gamma_l1, name=model.name)
    masks = dict(zip(prunable_blocks(arch), keep))
    for layer in model.layers:
        if not layer.weights:
            continue
        name = layer.name
        idx = int(name[1:name.index("_")]) if name.startswith("b") and name[1].isdigit() else None
        mask = masks.get(idx)
        w = [v.numpy() for v in layer.weights]
        if mask is not None:
            if name.endswith("_expand"):
                w = [w[0][..., mask]]
            elif name.endswith(("_expand_bn", "_dw_bn")):
                w = [a[mask] for a in w]
            elif name.endswith("_dw"):
                w = [w[0][:, :, mask, :]]
            elif name.endswith("_project"):
                w = [w[0][:, :, mask, :]]
            elif name.endswith("_project_bn"):
                gamma, beta, mean, var = w
                dw_bn = model.get_layer(f"b{idx}_dw_bn")
                const = np.clip(dw_bn.beta.numpy()[~mask], 0.0, 6.0)
                proj = model.get_layer(f"b{idx}_project").kernel.numpy()[0, 0]   # [hidden, out]
                w = [gamma, beta, mean - const @ proj[~mask], var]
        small.get_layer(name).set_weights(w)
    return small_arch, small


def count_params(arch: Arch) -> int:
    n = 9 * arch.in_channels * arch.stem_channels
    for b in arch.blocks:
        n += (b.in_channels * b.hidden if b.expand_conv else 0) + b.kernel ** 2 * b.hidden
        n += b.hidden * b.out_channels
    return n + arch.last_channels * arch.num_classes + arch.num_classes

