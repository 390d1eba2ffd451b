"""`verify`: the shared models are bit-exact with TFLM, and a wrong kernel is caught and located."""
from __future__ import annotations

import re

import pytest

from harness import assert_bit_exact, host_board
from mcucompile import pipeline
from mcucompile import verify as verify_mod

pytestmark = pytest.mark.reference


@pytest.mark.parametrize("name", ["person_detect", "micro_speech_quantized", "hello_world_int8"])
def test_shared_models_are_bit_exact(shared_models, name):
    assert_bit_exact((shared_models / f"{name}.tflite").read_bytes(), runs=3)


def test_a_wrong_constant_is_caught_and_the_layer_named(shared_models, monkeypatch):
    """Corrupt the weights of the second FC layer: verify must fail and blame op 1."""
    real = pipeline.compile_model

    def corrupted(*args, **kwargs):
        c = real(*args, **kwargs)
        text = c.files["model.c"]
        m = re.search(r"(static const int8_t fully_connected_1_\w+\[\d+\] = \{\n    )(.*),\n", text)
        assert m, "the test expects an int8 weight array for op 1"
        row = ", ".join(str(-int(v)) for v in m.group(2).split(", "))  # negate a row of weights
        text = text[:m.start(2)] + row + text[m.end(2):]
        c.files["model.c"] = text
        return c

    monkeypatch.setattr(verify_mod, "compile_model", corrupted)
    r = verify_mod.verify((shared_models / "hello_world_int8.tflite").read_bytes(), runs=4,
                          board=host_board(), sanitize=False, check_layers=True)
    assert not r.bit_exact
    assert r.first_bad_layer is not None and r.first_bad_layer.op_index == 1
    assert "FULLY_CONNECTED" in str(r.first_bad_layer)
