"""The TFLM wrapper: outputs, intermediate tensors, arena size, input generation."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mcucompile import errors
from mcucompile import reference as R

pytestmark = pytest.mark.reference

# TFLM's arena for the shared models, as ../shared/models/README.md states.
ARENA_BYTES = {
    "person_detect.tflite": 85_264,
    "micro_speech_quantized.tflite": 7_584,
    "hello_world_int8.tflite": 1_504,
}
# Its non-persistent head: the README's liveness lower bound of the activations
# (55,296 B; 5,960 B), which TFLM's greedy planner meets up to 16-byte alignment.
ARENA_HEAD_BYTES = {
    "person_detect.tflite": 55_296,
    "micro_speech_quantized.tflite": 5_968,
    "hello_world_int8.tflite": 32,
}


def _load(shared_models, name: str) -> bytes:
    return (shared_models / name).read_bytes()


@pytest.mark.parametrize("name", sorted(ARENA_BYTES))
def test_arena_bytes_match_the_readme(shared_models, name):
    model = _load(shared_models, name)
    assert R.tflm_arena_bytes(model) == ARENA_BYTES[name]
    arena = R.tflm_arena(model)
    assert arena.head == ARENA_HEAD_BYTES[name]
    assert arena.head + arena.tail == arena.total


def test_model_info_of_person_detect(shared_models):
    info = R.model_info(_load(shared_models, "person_detect.tflite"))
    (inp,) = info.input_specs
    (out,) = info.output_specs
    assert (inp.shape, inp.dtype, inp.is_constant) == ((1, 96, 96, 1), np.int8, False)
    assert (out.shape, out.dtype) == ((1, 2), np.int8)
    assert len(inp.scale) == 1 and len(inp.zero_point) == 1
    # 14 CONV_2D + 14 DEPTHWISE_CONV_2D each carry a per-channel filter and bias.
    per_channel = [t for t in info.tensors if t.is_constant and t.dtype == np.int8 and len(t.scale) > 1]
    assert len(per_channel) == 28


@pytest.mark.parametrize("name", sorted(ARENA_BYTES))
def test_all_tensors_agree_with_outputs(shared_models, name):
    model = _load(shared_models, name)
    info = R.model_info(model)
    x = R.random_inputs(model, seed=1)
    outs = R.run(model, x)
    every = R.run_all_tensors(model, x)
    assert sorted(every) == list(range(len(info.tensors)))
    for k, idx in enumerate(info.outputs):
        assert every[idx].dtype == outs[k].dtype
        np.testing.assert_array_equal(every[idx], outs[k])
    # Inputs come back as they were set and constants as the file stores them.
    np.testing.assert_array_equal(every[info.inputs[0]], x[0])
    for t in info.tensors:
        assert every[t.index].shape == t.shape, t


@pytest.mark.parametrize("name", ["micro_speech_quantized.tflite", "hello_world_int8.tflite"])
def test_every_tensor_matches_litert(shared_models, name):
    pytest.importorskip("ai_edge_litert", reason="LiteRT: pip install ai-edge-litert")
    model = _load(shared_models, name)
    x = R.random_inputs(model, seed=2)
    ours = R.run_all_tensors(model, x)
    theirs = R.litert_run_all_tensors(model, x)
    assert set(ours) == set(theirs)
    for i in ours:
        np.testing.assert_array_equal(ours[i], theirs[i], err_msg=f"tensor {i}")
    np.testing.assert_array_equal(R.run(model, x)[0], R.litert_run(model, x)[0])


def test_litert_rejects_person_detect_cleanly(shared_models):
    # Its bias tensors declare quantized_dimension=3 on 1-D tensors: TFLM accepts
    # that, LiteRT refuses, and the wrapper must say so in a user-facing error.
    pytest.importorskip("ai_edge_litert", reason="LiteRT: pip install ai-edge-litert")
    with pytest.raises(errors.UnsupportedModelError, match="LiteRT cannot load"):
        R.litert_run(_load(shared_models, "person_detect.tflite"), [np.zeros((1, 96, 96, 1), np.int8)])


def test_runs_are_repeatable_and_inputs_matter(shared_models):
    model = _load(shared_models, "micro_speech_quantized.tflite")
    ref = R.Reference(model)
    a = ref.run(R.random_inputs(model, seed=3))
    b = ref.run(R.random_inputs(model, seed=4))
    c = R.run(model, R.random_inputs(model, seed=3))
    np.testing.assert_array_equal(a[0], c[0])
    assert not np.array_equal(a[0], b[0])


def test_random_inputs_are_seeded_and_cover_int8(shared_models):
    model = _load(shared_models, "person_detect.tflite")
    (x,) = R.random_inputs(model, seed=5)
    (y,) = R.random_inputs(model, seed=5)
    (z,) = R.random_inputs(model, seed=6)
    assert x.dtype == np.int8 and x.shape == (1, 96, 96, 1)
    np.testing.assert_array_equal(x, y)
    assert not np.array_equal(x, z)
    assert x.min() == -128 and x.max() == 127


def test_input_mistakes_are_reported(shared_models):
    model = _load(shared_models, "hello_world_int8.tflite")
    ref = R.Reference(model)
    with pytest.raises(ValueError, match="1 inputs, got 2"):
        ref.run([np.zeros((1, 1), np.int8)] * 2)
    with pytest.raises(ValueError, match="int8"):
        ref.run([np.zeros((1, 1), np.float32)])
    with pytest.raises(ValueError, match="preserve_all_tensors"):
        ref.tensor(0)
    with pytest.raises(ValueError, match="recorded"):
        R.Reference(model, preserve_all_tensors=True).arena()


@pytest.mark.parametrize("junk", [b"", b"garbage!", b"\0" * 64, b"1234TFL3" + b"\xff" * 8])
def test_garbage_is_a_model_format_error(junk):
    with pytest.raises(errors.ModelFormatError):
        R.model_info(junk)


def test_truncated_model_is_a_model_format_error(shared_models):
    with pytest.raises(errors.ModelFormatError):
        R.model_info(_load(shared_models, "hello_world_int8.tflite")[:200])


def test_c_stderr_is_captured_and_restored(capfd):
    import ctypes
    libc = ctypes.CDLL(None)
    with R._capture_c_stderr() as lines:
        libc.write(2, b"from C\n", 7)
    libc.write(2, b"after\n", 6)
    assert lines == ["from C"]
    assert capfd.readouterr().err == "after\n"


def test_missing_tflite_micro_names_the_extra(monkeypatch):
    # A None entry in sys.modules makes `import tflite_micro` raise ImportError.
    monkeypatch.setitem(sys.modules, "tflite_micro", None)
    with pytest.raises(errors.MissingDependencyError, match=r"pip install mcucompile\[reference\]"):
        R.run(b"", [])


def test_does_not_import_tensorflow(shared_models):
    code = ("import sys; from mcucompile import reference as R\n"
            f"m = open({str(shared_models / 'hello_world_int8.tflite')!r}, 'rb').read()\n"
            "R.run(m, R.random_inputs(m)); R.run_all_tensors(m, R.random_inputs(m)); R.tflm_arena_bytes(m)\n"
            "print(sorted(k for k in sys.modules if k == 'tensorflow' or k.startswith('tensorflow.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
