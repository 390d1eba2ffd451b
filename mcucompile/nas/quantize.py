"""Full-integer quantization of a Keras model with TensorFlow's TFLiteConverter.

What `mcucompile build` compiles: int8 weights quantized per channel, int32
biases, int8 activations calibrated on representative data, int8 input and
output tensors. `quantize_keras(path, calib)` is the entry point for `build
--calib`; `mcucompile quantize` adds float and int8 accuracy when the data has
labels. The int8 accuracy is measured with TFLM (mcucompile.reference), the
interpreter our generated code is bit-exact with, so it is the accuracy the
board will have.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import McuCompileError, ModelFormatError
from ._tf import keras, tf
from .data import Dataset, load, resize

CALIB_SAMPLES = 200       # representative samples: TFLite's docs suggest ~100-500


def representative_sample(x: np.ndarray, samples: int = CALIB_SAMPLES, seed: int = 0) -> np.ndarray:
    """A fixed random subset: calibration sees every class without costing every sample."""
    if len(x) <= samples:
        return x
    return x[np.random.default_rng(seed).choice(len(x), samples, replace=False)]


def convert(model, calib_x: np.ndarray) -> bytes:
    """The int8 .tflite of a Keras model, calibrated on calib_x (float NHWC, the model's input)."""
    t = tf()
    if len(calib_x) == 0:
        raise McuCompileError("quantization needs calibration data: the data set is empty")

    def representative():
        for i in range(len(calib_x)):
            yield [calib_x[i:i + 1].astype(np.float32)]

    converter = t.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [t.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = t.int8
    converter.inference_output_type = t.int8
    # The converter's SavedModel export prints every captured variable on stdout.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def load_keras(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such file")
    if path.suffix not in (".keras", ".h5"):
        raise ModelFormatError(f"{path}: expected a Keras model (.keras or .h5)")
    k = keras()
    try:
        return k.models.load_model(path, compile=False)
    except Exception as e:      # Keras raises many types for a broken archive
        raise ModelFormatError(f"{path}: not a loadable Keras model ({type(e).__name__}: {e})") from None


def input_shape(model) -> tuple[int, int, int]:
    shape = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else ()
    if len(shape) != 3 or None in shape:
        raise McuCompileError(f"the model's input must be one fixed-size NHWC image, not {model.inputs}")
    return shape  # (H, W, C)


def fit_to_model(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Resize and match the channels of images to a model's input."""
    h, w, c = shape
    if h != w:
        raise McuCompileError(f"the model's input is {h}x{w}: only square inputs are supported")
    return resize(x, h, channels=c)


def calibration_images(calib, shape: tuple[int, int, int]) -> np.ndarray:
    """calib: an array of images, a Dataset, or a data spec (see data.py)."""
    if isinstance(calib, np.ndarray):
        x = calib if calib.ndim == 4 else calib[..., None]
    elif isinstance(calib, Dataset):
        x = calib.x
    else:
        x = load(calib, labels=False).x
    return fit_to_model(x.astype(np.float32), shape)


def quantize_keras(path: str | Path, calib_data) -> bytes:
    """The int8 .tflite of the Keras model at `path`, calibrated on `calib_data`
    (an image array, or a data spec: digits, synthetic, an image folder, a .npz)."""
    tf().keras.backend.clear_session()
    model = load_keras(path)
    x = calibration_images(calib_data, input_shape(model))
    return convert(model, representative_sample(x))


# --- accuracy -----------------------------------------------------------------------

@dataclass(frozen=True)
class InputQuant:
    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(x / self.scale) + self.zero_point, -128, 127).astype(np.int8)


def input_quant(model_bytes: bytes) -> InputQuant:
    from ..frontend import tflite
    g = tflite.load(model_bytes)
    t = g.tensor(g.inputs[0])
    if t.quant is None:
        raise McuCompileError("the model's input is not quantized")
    return InputQuant(t.quant.scale[0], t.quant.zero_point[0])


def int8_accuracy(model_bytes: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the int8 model as TFLM runs it (the board's arithmetic)."""
    from ..reference import Reference
    ref = Reference(model_bytes)
    q = input_quant(model_bytes)
    xq = q.quantize(x)
    hits = 0
    for i in range(len(x)):
        out = ref.run([xq[i:i + 1]])[0]
        hits += int(np.argmax(out.reshape(-1)) == y[i])
    return hits / max(len(x), 1)


def float_accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    probs = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) == y))
