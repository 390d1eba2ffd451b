"""`mcucompile quantize`: a Keras model to a full-int8 .tflite that `build` compiles."""
from __future__ import annotations

from pathlib import Path

from ..errors import McuCompileError


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="quantize a Keras model to full int8 (per-channel weights, "
                                        "int8 input and output) with TFLiteConverter")
    p.add_argument("model", type=Path, help="Keras model (.keras)")
    p.add_argument("--calib", required=True,
                   help="calibration data: digits, synthetic, an image folder or a .npz (x[, y])")
    p.add_argument("-o", "--out", type=Path, required=True, help="output .tflite file")
    p.add_argument("--samples", type=int, default=200,
                   help="representative samples for calibration (default: 200)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..nas.data import load
    from ..nas.quantize import (calibration_images, convert, float_accuracy, input_shape,
                                int8_accuracy, load_keras, representative_sample)
    from ..nas._tf import tf
    if args.samples < 1:
        raise McuCompileError(f"--samples {args.samples}: calibrate on at least one sample")
    if args.out.suffix != ".tflite":
        raise McuCompileError(f"-o {args.out}: the output is a .tflite file")
    if not args.model.is_file():        # before the seconds TensorFlow takes to import
        from ..errors import ModelFormatError
        raise ModelFormatError(f"{args.model}: no such file")
    data = load(args.calib, labels=False)
    tf().keras.backend.clear_session()
    model = load_keras(args.model)
    x = calibration_images(data, input_shape(model))
    tflite = convert(model, representative_sample(x, args.samples))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(tflite)
    print(f"wrote {args.out} ({len(tflite):,} bytes), calibrated on {min(len(x), args.samples)} "
          f"samples of {data.name}")
    if data.y is not None:
        if model.outputs[0].shape[-1] != data.num_classes:
            print(f"note: no accuracy: the model has {model.outputs[0].shape[-1]} outputs, "
                  f"the data {data.num_classes} classes")
            return 0
        f = float_accuracy(model, x, data.y)
        q = int8_accuracy(tflite, x, data.y)
        print(f"accuracy on {len(x)} labeled samples: float {f:.4f}, int8 {q:.4f} (TFLM)")
    return 0
