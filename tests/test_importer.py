"""The .tflite importer: real models import, broken files are rejected cleanly, and fuzzing
never gets anything but a McuCompileError out of it."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcucompile.errors import McuCompileError, ModelFormatError, UnsupportedModelError
from mcucompile.frontend import tflite
from mcucompile.ir import DType, OpKind, Padding


def test_person_detect_imports_with_typed_attributes(shared_models):
    g = tflite.load(shared_models / "person_detect.tflite")
    kinds = [op.kind for op in g.ops]
    assert kinds.count(OpKind.CONV_2D) == 14 and kinds.count(OpKind.DEPTHWISE_CONV_2D) == 14
    first = g.ops[0]
    assert first.attrs.padding == Padding.SAME and first.attrs.stride_h == 2
    weights = g.tensor(first.inputs[1])
    assert weights.is_const and weights.dtype == DType.INT8 and weights.quant.per_channel
    assert g.tensor(g.inputs[0]).shape == (1, 96, 96, 1)


@pytest.mark.parametrize("name,ops", [("micro_speech_quantized", 4), ("hello_world_int8", 3)])
def test_other_shared_models_import(shared_models, name, ops):
    g = tflite.load(shared_models / f"{name}.tflite")
    assert len(g.ops) == ops


def test_truncated_file_is_a_format_error(shared_models):
    data = (shared_models / "hello_world_int8.tflite").read_bytes()
    for cut in (0, 5, 7, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(ModelFormatError):
            tflite.load(data[:cut])


def test_random_bytes_are_not_a_model():
    with pytest.raises(ModelFormatError, match="not a TensorFlow Lite model"):
        tflite.load(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFormatError, match="no such file"):
        tflite.load(tmp_path / "nope.tflite")
    with pytest.raises(ModelFormatError, match="is a directory"):
        tflite.load(tmp_path)


@pytest.mark.tf
def test_unsupported_ops_are_all_named_with_index_and_types():
    import modelgen
    with pytest.raises(UnsupportedModelError) as e:
        tflite.load(modelgen.sub())
    msg = str(e.value)
    assert "SUB" in msg and "op 0" in msg and "INT8" in msg and "Supported ops:" in msg


@pytest.mark.tf
def test_float_model_gets_quantization_advice(float_model):
    with pytest.raises(UnsupportedModelError, match="float .*mcucompile quantize"):
        tflite.load(float_model)


@pytest.fixture(scope="module")
def float_model() -> bytes:
    """A float32 model, converted without quantization."""
    tf = pytest.importorskip("tensorflow")
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    m = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4)])
    return tf.lite.TFLiteConverter.from_keras_model(m).convert()


# --- fuzzing -----------------------------------------------------------------

def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.integers(0, 1 << 20))
def test_fuzz_mutated_models_never_crash(shared_models, edits, cut):
    """Byte flips and truncations of a real model: either it loads, or a McuCompileError says why."""
    data = _mutate((shared_models / "hello_world_int8.tflite").read_bytes(), edits)
    data = data[: max(8, cut % (len(data) + 1))]
    try:
        tflite.load(data)
    except McuCompileError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=512))
def test_fuzz_arbitrary_bytes_with_identifier(blob):
    data = blob[:4].ljust(4, b"\0") + b"TFL3" + blob[4:]
    try:
        tflite.load(data)
    except McuCompileError:
        pass
