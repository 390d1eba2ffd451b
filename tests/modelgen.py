"""Tiny int8 TFLite test models, built with Keras and TFLiteConverter.

Every factory returns the bytes of a fully int8-quantized .tflite model:
int8 input and output (or float32 with QUANTIZE/DEQUANTIZE ops when
`float_io=True`), int8 weights quantized per output channel (FULLY_CONNECTED
too, since TF 2.18; `per_channel=False` gives one scale per tensor), int32
biases, calibrated on a representative dataset of seeded random data.

Converting takes a second or two and importing TensorFlow five, so results are
cached on disk under $MCUCOMPILE_MODEL_CACHE (default ~/.cache/mcucompile/models),
keyed by a hash of the factory name, its arguments, this module's FORMAT version
and the TensorFlow version. A cache hit never imports TensorFlow.

The converter rewrites what Keras builds (activations fuse into the op before
them, Flatten and SQUEEZE become RESHAPE, x*relu6(x+3)/6 becomes HARD_SWISH,
softmax(beta*x) becomes MUL + SOFTMAX); tests/test_modelgen.py pins down which
TFLite ops and options each factory really produces.

    import modelgen                     # tests/ is on sys.path under pytest
    tflite = modelgen.conv2d(kernel=(3, 3), stride=(2, 2), filters=8)
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

# Bump when a factory changes what it builds for the same arguments: old cache
# entries then stop matching instead of silently serving stale models.
FORMAT = 4

Shape = tuple[int, ...]
Activation = Literal[None, "relu", "relu6", "relu_n1_to_1", "tanh", "sigmoid"]
Padding = Literal["same", "valid"]

# Calibration data: this many samples, uniform in [-CALIB_RANGE, CALIB_RANGE].
CALIB_SAMPLES = 16
CALIB_RANGE = 1.0


# ----------------------------------------------------------------------------
# Cache and conversion
# ----------------------------------------------------------------------------

def cache_dir() -> Path:
    root = os.environ.get("MCUCOMPILE_MODEL_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "mcucompile" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tf_version() -> str:
    # Read from package metadata so that a cache hit does not pay for `import tensorflow`.
    for dist in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "absent"


def cache_key(name: str, config: dict[str, Any]) -> str:
    blob = json.dumps({"factory": name, "config": config, "format": FORMAT,
                       "tensorflow": _tf_version()}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cached(name: str, config: dict[str, Any], build: Callable[[Any], Any],
            patch: Callable[[bytes], bytes] | None = None) -> bytes:
    """Return the cached model for (name, config), converting `build` on a miss.

    `build(tf)` gets the tensorflow module and returns a Keras model; `config`
    must hold every argument that changes the model, including float_io and seed.
    `patch` edits the converted flatbuffer, for options Keras cannot express.
    """
    path = cache_dir() / f"{name}-{cache_key(name, config)}.tflite"
    if path.exists():
        return path.read_bytes()
    data = _convert(build, float_io=config["float_io"], seed=config["seed"],
                    per_channel=config.get("per_channel", True))
    if patch is not None:
        data = patch(data)
    # Several test processes may convert the same model at once: write a private
    # temporary file and rename it into place, which is atomic.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return data


def _import_tf():
    # Before the first import: oneDNN's reordered float sums would make the
    # calibration ranges (and so the model bytes) depend on the CPU.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:  # pragma: no cover - conftest skips tf tests first
        raise RuntimeError("tests/modelgen.py needs TensorFlow: pip install tensorflow-cpu") from e
    return tf


def _convert(build: Callable[[Any], Any], *, float_io: bool, seed: int, per_channel: bool) -> bytes:
    tf = _import_tf()
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    model = build(tf)

    # One array per model input, matched by name: the converter's signature may
    # list inputs in another order than model.inputs.
    specs = [(t.name, tuple(int(d) for d in t.shape)) for t in model.inputs]

    def representative_dataset():
        rng = np.random.default_rng(seed)
        for _ in range(CALIB_SAMPLES):
            yield {n: rng.uniform(-CALIB_RANGE, CALIB_RANGE, s).astype(np.float32) for n, s in specs}

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not per_channel:
        # One weight scale per tensor (the older scheme hello_world and micro_speech
        # use). TF >= 2.18 quantizes Dense weights per channel by default too.
        converter._experimental_disable_per_channel = True
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    # Keras' SavedModel export prints its endpoints on stdout and the converter
    # warns about its own deprecated interpreter; keep test logs readable.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def _fn_layer(tf, fn: Callable[..., Any], name: str | None = None):
    """A Keras layer applying an arbitrary TensorFlow function.

    Keras 3 refuses raw tf.* calls on symbolic tensors; wrapping them in a layer
    lets a model use tf.nn / tf.image ops that keras.ops does not expose.
    """
    class Fn(tf.keras.layers.Layer):
        def call(self, *args):
            return fn(*args)

    return Fn(name=name)


def _inputs(tf, shapes: Sequence[Shape]):
    """Keras inputs with a fixed batch dimension (shape[0]), named in_0, in_1, ..."""
    return [tf.keras.Input(shape=tuple(s[1:]), batch_size=s[0], name=f"in_{i}")
            for i, s in enumerate(shapes)]


def _initializers(tf, seed: int):
    # Non-zero biases so the bias path is exercised; seeded so bytes are reproducible.
    return dict(kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed),
                bias_initializer=tf.keras.initializers.RandomUniform(-0.3, 0.3, seed=seed + 1))


def _activation(tf, x, activation: Activation):
    """Apply an activation as a separate op (the converter may fuse it upwards)."""
    if activation is None:
        return x
    if activation == "relu_n1_to_1":
        return _fn_layer(tf, lambda t: tf.clip_by_value(t, -1.0, 1.0))(x)
    return tf.keras.layers.Activation(activation)(x)


def _edit_flatbuffer(model: bytes, edit: Callable[[Any], None]) -> bytes:
    """Unpack a .tflite into the schema's object API, let `edit` change it, repack."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(model, 0))
    edit(m)
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _config(local_vars: dict[str, Any]) -> dict[str, Any]:
    """The factory's arguments as JSON-able values (tuples become lists)."""
    return {k: v for k, v in local_vars.items() if not k.startswith("_")}


# ----------------------------------------------------------------------------
# Single-op factories
# ----------------------------------------------------------------------------

def conv2d(*, input_shape: Shape = (1, 12, 12, 3), filters: int = 8,
           kernel: int | tuple[int, int] = 3, stride: int | tuple[int, int] = 1,
           padding: Padding = "same", dilation: int | tuple[int, int] = 1,
           activation: Activation = None, use_bias: bool = True, per_channel: bool = True,
           float_io: bool = False, seed: int = 0) -> bytes:
    """CONV_2D; an activation is fused into it (relu, relu6, relu_n1_to_1)."""
    cfg = _config(locals())

    def build(tf):
        (inp,) = _inputs(tf, [input_shape])
        x = tf.keras.layers.Conv2D(filters, _pair(kernel), strides=_pair(stride), padding=padding,
                                   dilation_rate=_pair(dilation), use_bias=use_bias,
                                   **_initializers(tf, seed))(inp)
        return tf.keras.Model(inp, _activation(tf, x, activation))

    return _cached("conv2d", cfg, build)


def conv_residual(*, input_shape: Shape = (1, 10, 7, 8), filters: int = 17, kernel: int = 3,
                  stride: int = 1, padding: Padding = "same", activation: Activation = "relu",
                  add_activation: Activation = "relu", float_io: bool = False,
                  seed: int = 0) -> bytes:
    """Two CONV_2Ds of the same geometry over the input, added (the residual
    block's ADD): the later one can take the ADD into its epilogue
    (passes.fuse_residual_adds), the earlier one's output being the operand
    it writes over. `activation` is the convolutions', `add_activation` the ADD's."""
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [input_shape])
        seeds = iter(range(seed, seed + 100, 2))
        a = _he_conv(tf, seeds, inp, filters, kernel, stride, padding, activation)
        b = _he_conv(tf, seeds, inp, filters, kernel, stride, padding, activation)
        return tf.keras.Model(inp, _activation(tf, L.Add()([a, b]), add_activation))

    return _cached("conv_residual", cfg, build)


def depthwise_conv2d(*, input_shape: Shape = (1, 12, 12, 8), kernel: int | tuple[int, int] = 3,
                     stride: int | tuple[int, int] = 1, padding: Padding = "same",
                     dilation: int | tuple[int, int] = 1, depth_multiplier: int = 1,
                     activation: Activation = None, use_bias: bool = True, per_channel: bool = True,
                     float_io: bool = False, seed: int = 0) -> bytes:
    """DEPTHWISE_CONV_2D (filter [1, H, W, C*M])."""
    cfg = _config(locals())

    def build(tf):
        (inp,) = _inputs(tf, [input_shape])
        init = _initializers(tf, seed)
        x = tf.keras.layers.DepthwiseConv2D(_pair(kernel), strides=_pair(stride), padding=padding,
                                            dilation_rate=_pair(dilation),
                                            depth_multiplier=depth_multiplier, use_bias=use_bias,
                                            depthwise_initializer=init["kernel_initializer"],
                                            bias_initializer=init["bias_initializer"])(inp)
        return tf.keras.Model(inp, _activation(tf, x, activation))

    return _cached("depthwise_conv2d", cfg, build)


def dense(*, input_shape: Shape = (1, 16), units: int = 10, activation: Activation = None,
          use_bias: bool = True, per_channel: bool = True, float_io: bool = False,
          seed: int = 0) -> bytes:
    """FULLY_CONNECTED. input_shape[0] is the batch; with a rank-3+ input Keras
    applies the layer to the last axis and the converter sets keep_num_dims.
    Weights are per-channel (one scale per unit) unless per_channel=False."""
    cfg = _config(locals())

    def build(tf):
        (inp,) = _inputs(tf, [input_shape])
        x = tf.keras.layers.Dense(units, use_bias=use_bias, **_initializers(tf, seed))(inp)
        return tf.keras.Model(inp, _activation(tf, x, activation))

    return _cached("dense", cfg, build)


def _binary(name: str, op: str, shape_a: Shape, shape_b: Shape, activation: Activation,
            constant_b: bool, float_io: bool, seed: int) -> bytes:
    cfg = dict(shape_a=shape_a, shape_b=shape_b, activation=activation, constant_b=constant_b,
               float_io=float_io, seed=seed)

    def build(tf):
        fn = {"add": tf.add, "mul": tf.multiply, "sub": tf.subtract}[op]
        if constant_b:
            (a,) = _inputs(tf, [shape_a])
            b_value = np.random.default_rng(seed).uniform(-1, 1, shape_b).astype(np.float32)
            x = _fn_layer(tf, lambda t: fn(t, tf.constant(b_value)))(a)
            return tf.keras.Model(a, _activation(tf, x, activation))
        a, b = _inputs(tf, [shape_a, shape_b])
        x = _fn_layer(tf, fn)(a, b)
        return tf.keras.Model([a, b], _activation(tf, x, activation))

    return _cached(name, cfg, build)


def add(*, shape_a: Shape = (1, 6, 6, 8), shape_b: Shape = (1, 6, 6, 8),
        activation: Activation = None, constant_b: bool = False,
        float_io: bool = False, seed: int = 0) -> bytes:
    """ADD of two inputs (or an input and a constant), numpy-broadcasting shapes."""
    return _binary("add", "add", shape_a, shape_b, activation, constant_b, float_io, seed)


def mul(*, shape_a: Shape = (1, 6, 6, 8), shape_b: Shape = (1, 6, 6, 8),
        activation: Activation = None, constant_b: bool = False,
        float_io: bool = False, seed: int = 0) -> bytes:
    """MUL of two inputs (or an input and a constant), numpy-broadcasting shapes."""
    return _binary("mul", "mul", shape_a, shape_b, activation, constant_b, float_io, seed)


def sub(*, shape_a: Shape = (1, 6, 6, 8), shape_b: Shape = (1, 6, 6, 8),
        activation: Activation = None, constant_b: bool = False,
        float_io: bool = False, seed: int = 0) -> bytes:
    """SUB of two inputs (or an input and a constant), numpy-broadcasting shapes."""
    return _binary("sub", "sub", shape_a, shape_b, activation, constant_b, float_io, seed)


def _pool(name: str, input_shape: Shape, pool_size: int | tuple[int, int],
          stride: int | tuple[int, int] | None, padding: Padding, activation: Activation,
          float_io: bool, seed: int) -> bytes:
    cfg = dict(input_shape=input_shape, pool_size=pool_size, stride=stride, padding=padding,
               activation=activation, float_io=float_io, seed=seed)

    def build(tf):
        (inp,) = _inputs(tf, [input_shape])
        layer = tf.keras.layers.AveragePooling2D if name == "avg_pool2d" else tf.keras.layers.MaxPooling2D
        x = layer(_pair(pool_size), strides=None if stride is None else _pair(stride), padding=padding)(inp)
        return tf.keras.Model(inp, _activation(tf, x, activation))

    return _cached(name, cfg, build)


def avg_pool2d(*, input_shape: Shape = (1, 12, 12, 8), pool_size: int | tuple[int, int] = 2,
               stride: int | tuple[int, int] | None = None, padding: Padding = "valid",
               activation: Activation = None, float_io: bool = False, seed: int = 0) -> bytes:
    """AVERAGE_POOL_2D (stride defaults to pool_size, as in Keras)."""
    return _pool("avg_pool2d", input_shape, pool_size, stride, padding, activation, float_io, seed)


def max_pool2d(*, input_shape: Shape = (1, 12, 12, 8), pool_size: int | tuple[int, int] = 2,
               stride: int | tuple[int, int] | None = None, padding: Padding = "valid",
               activation: Activation = None, float_io: bool = False, seed: int = 0) -> bytes:
    """MAX_POOL_2D (stride defaults to pool_size, as in Keras)."""
    return _pool("max_pool2d", input_shape, pool_size, stride, padding, activation, float_io, seed)


def _unary(name: str, input_shape: Shape, fn: Callable[[Any, Any], Any], float_io: bool,
           seed: int, extra: dict[str, Any] | None = None,
           patch: Callable[[bytes], bytes] | None = None) -> bytes:
    """A one-input model `fn(tf, x)`; `extra` holds fn's parameters for the cache key."""
    cfg = dict(input_shape=input_shape, float_io=float_io, seed=seed, **(extra or {}))

    def build(tf):
        (inp,) = _inputs(tf, [input_shape])
        return tf.keras.Model(inp, _fn_layer(tf, lambda t: fn(tf, t))(inp))

    return _cached(name, cfg, build, patch)


def mean(*, input_shape: Shape = (1, 6, 6, 8), axes: Sequence[int] = (1, 2),
         keepdims: bool = True, float_io: bool = False, seed: int = 0) -> bytes:
    """MEAN over `axes` (global average pooling is axes=(1, 2))."""
    axes = tuple(axes)
    return _unary("mean", input_shape, lambda tf, t: tf.reduce_mean(t, axis=list(axes), keepdims=keepdims),
                  float_io, seed, dict(axes=axes, keepdims=keepdims))


def pad(*, input_shape: Shape = (1, 6, 6, 4),
        paddings: Sequence[tuple[int, int]] = ((0, 0), (1, 2), (2, 1), (0, 0)),
        float_io: bool = False, seed: int = 0) -> bytes:
    """PAD with zeros (the int8 zero point in the quantized model)."""
    paddings = tuple(tuple(p) for p in paddings)
    return _unary("pad", input_shape, lambda tf, t: tf.pad(t, [list(p) for p in paddings]),
                  float_io, seed, dict(paddings=paddings))


def concat(*, input_shapes: Sequence[Shape] = ((1, 4, 4, 3), (1, 4, 4, 5)), axis: int = -1,
           float_io: bool = False, seed: int = 0) -> bytes:
    """CONCATENATION of len(input_shapes) model inputs along `axis`."""
    input_shapes = tuple(tuple(s) for s in input_shapes)
    cfg = _config(locals())

    def build(tf):
        inputs = _inputs(tf, input_shapes)
        x = _fn_layer(tf, lambda *ts: tf.concat(list(ts), axis=axis))(*inputs)
        return tf.keras.Model(inputs, x)

    return _cached("concat", cfg, build)


def transpose(*, input_shape: Shape = (1, 3, 4, 5), perm: Sequence[int] = (0, 2, 1, 3),
              float_io: bool = False, seed: int = 0) -> bytes:
    """TRANSPOSE by `perm`."""
    perm = tuple(perm)
    return _unary("transpose", input_shape, lambda tf, t: tf.transpose(t, perm=list(perm)),
                  float_io, seed, dict(perm=perm))


def resize_nearest(*, input_shape: Shape = (1, 4, 5, 3), size: tuple[int, int] = (8, 10),
                   align_corners: bool = False, half_pixel_centers: bool = False,
                   float_io: bool = False, seed: int = 0) -> bytes:
    """RESIZE_NEAREST_NEIGHBOR to `size` with TF1's corner/centre flags."""
    size = tuple(size)

    def fn(tf, t):
        return tf.compat.v1.image.resize_nearest_neighbor(
            t, list(size), align_corners=align_corners, half_pixel_centers=half_pixel_centers)

    return _unary("resize_nearest", input_shape, fn, float_io, seed,
                  dict(size=size, align_corners=align_corners, half_pixel_centers=half_pixel_centers))


def softmax(*, input_shape: Shape = (1, 10), beta: float = 1.0,
            float_io: bool = False, seed: int = 0) -> bytes:
    """SOFTMAX over the last axis, with SoftmaxOptions.beta = `beta`.

    TensorFlow has no softmax-with-beta (tf.nn.softmax(beta * x) converts to MUL
    then SOFTMAX), so the model is converted with beta 1 and the option is then
    rewritten in the flatbuffer: the same file a converter emitting beta would write.
    """
    def set_beta(model: bytes) -> bytes:
        def edit(m) -> None:
            for op in m.subgraphs[0].operators:
                if op.builtinOptions is not None and hasattr(op.builtinOptions, "beta"):
                    op.builtinOptions.beta = float(beta)
        return _edit_flatbuffer(model, edit)

    return _unary("softmax", input_shape, lambda tf, t: tf.nn.softmax(t), float_io, seed,
                  dict(beta=beta), patch=None if beta == 1.0 else set_beta)


def activation(*, kind: Literal["relu", "relu6", "relu_n1_to_1", "logistic", "tanh",
                                "hard_swish", "leaky_relu"] = "relu",
               input_shape: Shape = (1, 6, 6, 8), float_io: bool = False, seed: int = 0) -> bytes:
    """A standalone activation on the model input (nothing before it to fuse into).

    Standalone relu_n1_to_1 gives RELU_N1_TO_1, which TFLM has no kernel for;
    fused into a conv it is fine. (ELU is left out: the converter keeps it in
    float, between DEQUANTIZE and QUANTIZE.)"""
    def fn(tf, t):
        if kind == "relu":
            return tf.nn.relu(t)
        if kind == "relu6":
            return tf.nn.relu6(t)
        if kind == "relu_n1_to_1":
            return tf.clip_by_value(t, -1.0, 1.0)
        if kind == "logistic":
            return tf.math.sigmoid(t)
        if kind == "tanh":
            return tf.math.tanh(t)
        if kind == "hard_swish":
            # The converter pattern-matches x * relu6(x + 3) / 6 into HARD_SWISH.
            return t * tf.nn.relu6(t + 3.0) * (1.0 / 6.0)
        if kind == "leaky_relu":
            return tf.nn.leaky_relu(t, alpha=0.2)
        raise ValueError(f"unknown activation kind {kind!r}")

    return _unary(f"act_{kind}", input_shape, fn, float_io, seed)


def relu(**kw: Any) -> bytes:
    return activation(kind="relu", **kw)


def relu6(**kw: Any) -> bytes:
    return activation(kind="relu6", **kw)


def logistic(**kw: Any) -> bytes:
    return activation(kind="logistic", **kw)


def hard_swish(**kw: Any) -> bytes:
    return activation(kind="hard_swish", **kw)


def tanh(**kw: Any) -> bytes:
    return activation(kind="tanh", **kw)


def reshape(*, input_shape: Shape = (1, 4, 4, 6), new_shape: Shape = (1, 16, 6),
            float_io: bool = False, seed: int = 0) -> bytes:
    """RESHAPE to `new_shape` (batch included)."""
    new_shape = tuple(new_shape)
    return _unary("reshape", input_shape, lambda tf, t: tf.reshape(t, list(new_shape)),
                  float_io, seed, dict(new_shape=new_shape))


def squeeze(*, input_shape: Shape = (1, 1, 1, 10), axes: Sequence[int] = (1, 2),
            float_io: bool = False, seed: int = 0, native: bool = False,
            after_relu: bool = False) -> bytes:
    """SQUEEZE of size-1 `axes`. The converter writes it as RESHAPE; with `native`
    the RESHAPE is rewritten into the SQUEEZE op other exporters emit (shape input
    dropped, SqueezeOptions.squeeze_dims = axes, empty for "every size-1 dim").
    `after_relu` puts a RELU before it, so the squeeze sits mid-graph."""
    axes = tuple(axes)

    def to_squeeze(model: bytes) -> bytes:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

        def edit(m) -> None:
            sg = m.subgraphs[0]
            (code,) = [i for i, c in enumerate(m.operatorCodes)
                       if max(c.builtinCode, c.deprecatedBuiltinCode) == fb.BuiltinOperator.RESHAPE]
            m.operatorCodes[code].builtinCode = fb.BuiltinOperator.SQUEEZE
            m.operatorCodes[code].deprecatedBuiltinCode = fb.BuiltinOperator.SQUEEZE
            for op in sg.operators:
                if op.opcodeIndex == code:
                    op.inputs = op.inputs[:1]
                    op.builtinOptionsType = fb.BuiltinOptions.SqueezeOptions
                    op.builtinOptions = fb.SqueezeOptionsT()
                    op.builtinOptions.squeezeDims = list(axes)
        return _edit_flatbuffer(model, edit)

    def fn(tf, t):
        return tf.squeeze(tf.nn.relu(t) if after_relu else t, axis=list(axes) or None)

    return _unary("squeeze", input_shape, fn, float_io, seed,
                  dict(axes=axes, native=native, after_relu=after_relu),
                  patch=to_squeeze if native else None)


def float_io(factory: Callable[..., bytes], **kwargs: Any) -> bytes:
    """`factory(**kwargs)` with float32 input and output: the converter adds a
    QUANTIZE after each input and a DEQUANTIZE before each output."""
    return factory(**kwargs, float_io=True)


# ----------------------------------------------------------------------------
# Composite models
# ----------------------------------------------------------------------------

def _make_divisible(v: float, divisor: int = 8) -> int:
    # MobileNetV2 keeps channel counts multiples of 8, never dropping below 90 %.
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v2(*, resolution: int = 96, alpha: float = 0.35, channels: int = 3,
                 num_classes: int = 10, head_channels: int = 128, blocks: Sequence[tuple[int, int, int, int]] | None = None,
                 per_channel: bool = True, float_io: bool = False, seed: int = 0) -> bytes:
    """A MobileNetV2-style classifier: stem conv, inverted residual blocks
    (1x1 expand + relu6, 3x3 depthwise + relu6, 1x1 project, ADD when the shape
    allows), 1x1 head conv (`head_channels`; the paper uses 1280), global average
    pool (MEAN), dense, softmax.

    `blocks` is a list of (expansion t, output channels c, repeats n, first stride s),
    optionally with a fifth entry, the depthwise filter size k (3 if absent; MCUNet's
    TinyNAS picks 3, 5 or 7 per block); the default is a shortened version of the
    paper's table.
    """
    if blocks is None:
        blocks = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1))
    blocks = tuple(tuple(b) for b in blocks)
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [(1, resolution, resolution, channels)])
        counter = iter(range(10_000))

        # An untrained deep net forgets its input: with Glorot (or He) weights
        # the softmax came out the same for every input, biases and relu6 clipping
        # drown the signal. Weights of 3x He's variance and small biases keep the
        # output input-dependent. Distinct seeds per layer: identical weights
        # would make identical channels and hide indexing bugs.
        def inits(i: int) -> dict[str, Any]:
            weights = tf.keras.initializers.VarianceScaling(6.0, "fan_in", "uniform", seed=seed + 2 * i)
            return dict(kernel_initializer=weights,
                        bias_initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + 2 * i + 1))

        def conv(x, c, k, s, act):
            x = L.Conv2D(c, k, strides=s, padding="same", **inits(next(counter)))(x)
            return L.ReLU(6.0)(x) if act else x

        def dwconv(x, s, k):
            init = inits(next(counter))
            x = L.DepthwiseConv2D(k, strides=s, padding="same", depthwise_initializer=init["kernel_initializer"],
                                  bias_initializer=init["bias_initializer"])(x)
            return L.ReLU(6.0)(x)

        x = conv(inp, _make_divisible(32 * alpha), 3, 2, True)
        for t, c, n, s, *k in blocks:
            out_c = _make_divisible(c * alpha)
            for r in range(n):
                stride = s if r == 0 else 1
                in_c = x.shape[-1]
                y = conv(x, in_c * t, 1, 1, True) if t != 1 else x
                y = dwconv(y, stride, k[0] if k else 3)
                y = conv(y, out_c, 1, 1, False)
                x = L.Add()([x, y]) if stride == 1 and in_c == out_c else y
        x = conv(x, head_channels, 1, 1, True)
        x = L.GlobalAveragePooling2D()(x)
        x = L.Dense(num_classes, **inits(next(counter)))(x)
        x = L.Softmax()(x)
        return tf.keras.Model(inp, x)

    return _cached("mobilenet_v2", cfg, build)


def resnet8(*, resolution: int = 32, widths: Sequence[int] = (16, 32, 64), num_classes: int = 10,
            per_channel: bool = True, float_io: bool = False, seed: int = 0) -> bytes:
    """MLPerf Tiny's image-classification network (ResNet-8, CIFAR-10): a 3x3
    stem conv, three residual stacks of two 3x3 convs (the second and third
    stride 2, with a 1x1 stride-2 shortcut conv), ADD + ReLU after each,
    average pooling, dense, softmax. Untrained weights: for speed and
    bit-exactness, not accuracy."""
    widths = tuple(widths)
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [(1, resolution, resolution, 3)])
        seeds = iter(range(seed, seed + 10_000, 2))

        x = _he_conv(tf, seeds, inp, widths[0], 3)
        for n, c in enumerate(widths):
            s = 1 if n == 0 else 2
            y = _he_conv(tf, seeds, x, c, 3, s)
            y = _he_conv(tf, seeds, y, c, 3, act=None)
            shortcut = x if n == 0 else _he_conv(tf, seeds, x, c, 1, s, act=None)
            x = L.ReLU()(L.Add()([shortcut, y]))
        return tf.keras.Model(inp, _classifier(tf, x, num_classes, next(seeds)))

    return _cached("resnet8", cfg, build)


def _he_init(tf, seed: int, weights: str = "kernel_initializer") -> dict:
    """A layer's initializers: He-uniform weights from `seed`, small random biases from `seed + 1`."""
    return {weights: tf.keras.initializers.VarianceScaling(2.0, "fan_in", "uniform", seed=seed),
            "bias_initializer": tf.keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + 1)}


def _he_conv(tf, seeds, x, filters, kernel, strides=1, padding="same", act="relu"):
    """A Conv2D over x with _he_init from the next of `seeds`."""
    return tf.keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding, activation=act,
                                  **_he_init(tf, next(seeds)))(x)


def _classifier(tf, x, num_classes: int, seed: int):
    """The MLPerf Tiny networks' head: average pooling over the whole map, dense, softmax."""
    L = tf.keras.layers
    x = L.AveragePooling2D((x.shape[1], x.shape[2]))(x)
    x = L.Flatten()(x)
    x = L.Dense(num_classes, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed))(x)
    return L.Softmax()(x)


def ds_cnn(*, input_shape: Shape = (1, 49, 10, 1), filters: int = 64, blocks: int = 4,
           num_classes: int = 12, per_channel: bool = True, float_io: bool = False,
           seed: int = 0) -> bytes:
    """MLPerf Tiny's keyword-spotting network (DS-CNN, 49x10 MFCC frames): a
    10x4 stride-2 conv over the one input channel, `blocks` depthwise-separable
    blocks (3x3 depthwise, 1x1 conv, each with ReLU), average pooling over the
    whole map, dense, softmax. Untrained weights: for speed and bit-exactness."""
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [input_shape])
        seeds = iter(range(seed, seed + 10_000, 2))

        x = L.Conv2D(filters, (10, 4), strides=2, padding="same", activation="relu",
                     **_he_init(tf, next(seeds)))(inp)
        for _ in range(blocks):
            x = L.DepthwiseConv2D(3, padding="same", activation="relu",
                                  **_he_init(tf, next(seeds), "depthwise_initializer"))(x)
            x = L.Conv2D(filters, 1, activation="relu", **_he_init(tf, next(seeds)))(x)
        return tf.keras.Model(inp, _classifier(tf, x, num_classes, next(seeds)))

    return _cached("ds_cnn", cfg, build)


def conv_mix(*, input_shape: Shape = (1, 32, 32, 1), num_classes: int = 10,
             per_channel: bool = True, float_io: bool = False, seed: int = 0) -> bytes:
    """Convolutions the benchmark networks lack, one of each, for the static
    estimate's fit: a 3x3 stride-2 layer over one channel, 3x3 over 6
    channels, 5x5 over 8, 3x5 at stride 2x1 over 16, 1x1 at stride 2 (all
    through im2col, its int8 and its widened ways), then the classifier head."""
    cfg = _config(locals())

    def build(tf):
        (inp,) = _inputs(tf, [input_shape])
        seeds = iter(range(seed, seed + 10_000, 2))

        x = _he_conv(tf, seeds, inp, 16, 3, 2)
        x = _he_conv(tf, seeds, x, 6, 1)
        x = _he_conv(tf, seeds, x, 8, 3)
        x = _he_conv(tf, seeds, x, 16, 5)
        x = _he_conv(tf, seeds, x, 12, (3, 5), (2, 1), "valid")
        x = _he_conv(tf, seeds, x, 24, 1, 2)
        return tf.keras.Model(inp, _classifier(tf, x, num_classes, next(seeds)))

    return _cached("conv_mix", cfg, build)


def depthwise_mix(*, input_shape: Shape = (1, 32, 32, 3), num_classes: int = 10,
                  per_channel: bool = True, float_io: bool = False, seed: int = 0) -> bytes:
    """Depthwise layers the benchmark networks lack, for the static estimate's
    fit: 3x3 at stride 2 over 8 and 12 channels (the planar kernel's pairs),
    5x5 at stride 1 and 2 and 7x7 (its wide rows), 3x3 dilated by 2 and 3x3 at
    stride 2 over 32 channels (the pixel kernel), with 1x1 convolutions
    between them, then the classifier head (the last depthwise layer linear,
    so the logits still follow the input)."""
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [input_shape])
        seeds = iter(range(seed, seed + 10_000, 2))

        def dw(x, kernel, strides=1, dilation=1, act="relu"):
            init = _he_init(tf, next(seeds), "depthwise_initializer")
            # Keras counts a depthwise filter's fan-in over every channel; each
            # output reads one: scale by the channels, or the signal fades.
            init["depthwise_initializer"].scale *= x.shape[-1]
            return L.DepthwiseConv2D(kernel, strides=strides, padding="same",
                                     dilation_rate=dilation, activation=act, **init)(x)

        x = _he_conv(tf, seeds, inp, 8, 3)
        x = dw(x, 3, 2)                         # 16x16x8
        x = dw(_he_conv(tf, seeds, x, 12, 1), 5)
        x = dw(x, 3, 2)                         # 8x8x12
        x = dw(_he_conv(tf, seeds, x, 16, 1), 7)
        x = dw(x, 5, 2)                         # 4x4x16
        x = dw(_he_conv(tf, seeds, x, 32, 1), 3, dilation=2)
        x = dw(x, 3, 2, act=None)               # 2x2x32
        return tf.keras.Model(inp, _classifier(tf, x, num_classes, next(seeds)))

    return _cached("depthwise_mix", cfg, build)


def elementwise_mix(*, input_shape: Shape = (1, 16, 16, 8), num_classes: int = 10,
                    per_channel: bool = True, float_io: bool = False, seed: int = 0) -> bytes:
    """ADD and MUL that no convolution takes in, for the static estimate's fit:
    ADDs of two pools' outputs over 4,096 and 1,024 elements (the tables) and
    over 256 (per element), a MUL over 1,024, then the classifier head."""
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [input_shape])
        seeds = iter(range(seed, seed + 10_000, 2))

        def pools(x, size, strides):
            return (L.AveragePooling2D(size, strides=strides, padding="same")(x),
                    L.MaxPooling2D(size, strides=strides, padding="same")(x))

        x = L.Add()(pools(_he_conv(tf, seeds, inp, 16, 3), 3, 1))      # 16x16x16
        a, m = pools(x, 2, 2)                                             # 8x8x16
        x = L.Multiply()([L.Add()([a, m]), m])
        x = L.Add()(pools(x, 2, 2))                                       # 4x4x16
        return tf.keras.Model(inp, _classifier(tf, x, num_classes, next(seeds)))

    return _cached("elementwise_mix", cfg, build)


def residual_mix(*, input_shape: Shape = (1, 16, 16, 8), num_classes: int = 10,
                 per_channel: bool = True, float_io: bool = False, seed: int = 0) -> bytes:
    """Residual blocks whose second convolution takes the ADD in
    (passes.fuse_residual_adds), for the static estimate's fit: 3x3 over 16
    and 12 channels (the band kernel on DSP cores), 1x1 (the GEMM) and 3x3
    over 6 channels (im2col's int8 way), then the classifier head."""
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [input_shape])
        seeds = iter(range(seed, seed + 10_000, 2))

        def block(x, channels, kernel):
            y = _he_conv(tf, seeds, _he_conv(tf, seeds, x, channels, kernel), channels, kernel,
                         act=None)
            return L.ReLU()(L.Add()([x, y]))

        x = block(_he_conv(tf, seeds, inp, 16, 3), 16, 3)
        x = block(_he_conv(tf, seeds, x, 12, 1), 12, 3)
        x = block(x, 12, 1)
        x = block(_he_conv(tf, seeds, x, 6, 1), 6, 3)
        return tf.keras.Model(inp, _classifier(tf, x, num_classes, next(seeds)))

    return _cached("residual_mix", cfg, build)


def branchy_cnn(*, input_shape: Shape = (1, 16, 16, 3), width: int = 8, num_classes: int = 5,
                per_channel: bool = True, float_io: bool = False, seed: int = 0) -> bytes:
    """A small CNN with parallel branches joined by CONCATENATION and ADD:
    conv stem, an inception-style block (1x1 conv | 3x3 conv | max pool + 1x1 conv),
    a residual ADD, average pooling, dense head."""
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [input_shape])
        seeds = iter(range(seed, seed + 10_000, 2))

        def conv(x, c, k, s=1, act="relu"):
            i = next(seeds)
            return L.Conv2D(c, k, strides=s, padding="same", activation=act,
                            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=i),
                            bias_initializer=tf.keras.initializers.RandomUniform(-0.3, 0.3, seed=i + 1))(x)

        x = conv(inp, width, 3, 2)
        a = conv(x, width, 1)
        b = conv(x, width, 3)
        c = conv(L.MaxPooling2D(3, strides=1, padding="same")(x), width, 1)
        x = L.Concatenate(axis=-1)([a, b, c])
        y = conv(x, 3 * width, 3, act=None)
        x = L.ReLU()(L.Add()([x, y]))
        x = L.AveragePooling2D(2)(x)
        x = L.Flatten()(x)
        i = next(seeds)
        x = L.Dense(num_classes, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=i),
                    bias_initializer=tf.keras.initializers.RandomUniform(-0.3, 0.3, seed=i + 1))(x)
        return tf.keras.Model(inp, x)

    return _cached("branchy_cnn", cfg, build)


# ----------------------------------------------------------------------------
# Inspection
# ----------------------------------------------------------------------------

def op_names(model: bytes) -> list[str]:
    """The builtin operator names of subgraph 0, in execution order.

    Reads the flatbuffer with the schema bundled in tflite_micro, so neither
    TensorFlow nor our own importer is needed.
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.Model.GetRootAsModel(model, 0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    sg = m.Subgraphs(0)
    out = []
    for i in range(sg.OperatorsLength()):
        code = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
        out.append(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return out


def conv_chain(*, input_shape: Shape = (1, 9, 11, 5),
               layers: Sequence[Sequence[Any]] = (("pw", 11, 1, "relu6"),
                                                  ("dw", 3, 1, "same", "relu6"),
                                                  ("pw", 7, 1, None)),
               wide: Sequence[int] = (), per_channel: bool = True, float_io: bool = False,
               seed: int = 0) -> bytes:
    """A chain of 1x1 and depthwise convolutions (a MobileNet block and its parts),
    each layer's output read only by the next: what in-place kernels run on.

    Layers: ("pw", filters, stride, activation) is a 1x1 CONV_2D without padding;
    ("dw", kernel, stride, padding, activation) a DEPTHWISE_CONV_2D (multiplier 1);
    kernel and stride may be (h, w) pairs. `wide` lists layers (by position)
    whose channel 0 then gets, in the flatbuffer, a weight (and bias) scale that
    makes its requantization multiplier 0.6: a shift >= 0, which TFLite allows
    and the fast requantization tables cannot express, so the whole layer takes
    TFLite's (multiplier, shift) form. Only that channel's outputs saturate;
    the others keep their calibrated range.
    """
    layers = tuple(tuple(layer) for layer in layers)
    wide = tuple(int(i) for i in wide)
    cfg = _config(locals())

    def build(tf):
        L = tf.keras.layers
        (inp,) = _inputs(tf, [input_shape])
        x = inp
        for i, layer in enumerate(layers):
            init = _initializers(tf, seed + 2 * i)
            if layer[0] == "pw":
                _, filters, stride, act = layer
                x = L.Conv2D(filters, 1, strides=_pair(stride), padding="valid", **init)(x)
            elif layer[0] == "dw":
                _, kernel, stride, padding, act = layer
                x = L.DepthwiseConv2D(_pair(kernel), strides=_pair(stride), padding=padding,
                                      depthwise_initializer=init["kernel_initializer"],
                                      bias_initializer=init["bias_initializer"])(x)
            else:
                raise ValueError(f"unknown layer kind {layer[0]!r}: use 'pw' or 'dw'")
            x = _activation(tf, x, act)
        return tf.keras.Model(inp, x)

    def widen(model: bytes) -> bytes:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

        def edit(m) -> None:
            sg = m.subgraphs[0]
            kinds = (fb.BuiltinOperator.CONV_2D, fb.BuiltinOperator.DEPTHWISE_CONV_2D)
            convs = [op for op in sg.operators
                     if max(m.operatorCodes[op.opcodeIndex].builtinCode,
                            m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode) in kinds]
            assert len(convs) == len(layers), "the converter split or merged a layer"
            for i in wide:
                x, w, b, y = (sg.tensors[t] for t in [*convs[i].inputs[:3], convs[i].outputs[0]])
                x_scale, y_scale = float(x.quantization.scale[0]), float(y.quantization.scale[0])
                for t, scale in ((w, 0.6 * y_scale / x_scale), (b, 0.6 * y_scale)):
                    scales = np.array(t.quantization.scale, dtype=np.float32)
                    scales[0] = scale
                    t.quantization.scale = scales
        return _edit_flatbuffer(model, edit)

    return _cached("conv_chain", cfg, build, patch=widen if wide else None)
