"""The command line as a user meets it: outputs, reports, and one clear line for each mistake."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def mcucompile(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcucompile", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_build_writes_model_sources_and_report(shared_models, tmp_path):
    out = tmp_path / "out"
    r = mcucompile("build", str(shared_models / "person_detect.tflite"), "--board", "host", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "arena" in r.stdout and "55,296 B" in r.stdout and "memory strategies" in r.stdout
    files = sorted(p.name for p in (out / "model").iterdir())
    assert "model.c" in files and "model.h" in files and "mcc_common.h" in files
    report = json.loads((out / "report.json").read_text())
    # The default is the smallest of the strategies: patches beat the layer-wise bound here.
    assert report["liveness_lower_bound_bytes"] == 55296
    layer = next(s for s in report["strategies"] if s["strategy"] == "layer")
    assert layer["arena_bytes"] == 55296
    assert report["arena_bytes"] == min(s["arena_bytes"] for s in report["strategies"]) <= 27648
    assert [s["arena_bytes"] for s in report["strategies"] if s["chosen"]] == [report["arena_bytes"]]
    assert report["memory_strategy"] == "patch"
    r2 = mcucompile("build", str(shared_models / "person_detect.tflite"), "--board", "host", "-o",
                    str(tmp_path / "layer"), "--memory", "layer")
    assert r2.returncode == 0, r2.stderr
    plain = json.loads((tmp_path / "layer" / "report.json").read_text())
    assert plain["arena_bytes"] == 55296 and plain["macs"] == 7157888
    assert len(plain["layers"]) == 31 and plain["layers"][0]["op"] == "DEPTHWISE_CONV_2D"
    assert report["layers"][0]["op"] == "CROP_2D"  # the first patch's input
    assert report["weights_bytes"] > 0


def test_build_does_not_import_tensorflow(shared_models, tmp_path):
    code = ("import sys; from mcucompile.cli import main; "
            f"rc = main(['build', {str(shared_models / 'hello_world_int8.tflite')!r}, '--board', 'host', "
            f"'-o', {str(tmp_path / 'o')!r}]); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_output_is_byte_identical_across_builds(shared_models, tmp_path):
    for d in ("a", "b"):
        r = mcucompile("build", str(shared_models / "micro_speech_quantized.tflite"), "--board", "host",
                       "-o", str(tmp_path / d))
        assert r.returncode == 0, r.stderr
    for f in (tmp_path / "a" / "model").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / "model" / f.name).read_bytes(), f.name
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()


def test_name_changes_the_prefix_and_two_models_link_together(shared_models, tmp_path):
    for name, model in (("speech", "micro_speech_quantized"), ("sine", "hello_world_int8")):
        r = mcucompile("build", str(shared_models / f"{model}.tflite"), "--board", "host",
                       "-o", str(tmp_path / name), "--name", name)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "speech" / "model" / "speech.h").exists()
    main = tmp_path / "main.c"
    main.write_text('#include "speech.h"\n#include "sine.h"\n'
                    "int main(void) { return speech_invoke() | sine_invoke() |"
                    " (SPEECH_ARENA_BYTES == 0) | (SINE_ARENA_BYTES == 0); }\n")
    # The kernel library is shared: compile one copy of each library file, with
    # every optional path (each model's mcc_config.h omits what that model skips).
    def link(copy_from: str, *flags: str) -> subprocess.CompletedProcess:
        # Every library file either model needs; copy_from's copy where both have one.
        order = sorted(("sine", "speech"), key=lambda d: d == copy_from)
        lib = {p.name: p for d in order for p in (tmp_path / d / "model").glob("mcc_*.c")}.values()
        cmd = ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", *flags,
               "-I", str(tmp_path / "speech" / "model"), "-I", str(tmp_path / "sine" / "model"), str(main),
               str(tmp_path / "speech" / "model" / "speech.c"), str(tmp_path / "sine" / "model" / "sine.c"),
               *map(str, lib), "-o", str(tmp_path / "both")]
        return subprocess.run(cmd, capture_output=True, text=True)
    for copy_from in ("sine", "speech"):
        r = link(copy_from, "-DMCC_ALL_PATHS")
        assert r.returncode == 0, r.stderr
        assert subprocess.run([str(tmp_path / "both")]).returncode == 0
    # Without it, sine's copy lacks the path speech's 10x8 filter takes: a link
    # error that names it, not an MCC_ERROR at run time.
    assert "#define MCC_OMIT_DW1CH_GENERAL" in (tmp_path / "sine" / "model" / "mcc_config.h").read_text()
    r = link("sine")
    assert r.returncode != 0 and "mcc_has_path_DW1CH_GENERAL" in r.stderr, r.stderr


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_generated_c_is_warning_free_c99(shared_models, tmp_path, compiler):
    if not shutil.which(compiler):
        pytest.skip(f"{compiler} is not installed")
    out = tmp_path / "o"
    assert mcucompile("build", str(shared_models / "person_detect.tflite"), "--board", "host",
                      "-o", str(out)).returncode == 0
    srcs = sorted(str(p) for p in (out / "model").glob("*.c"))
    r = subprocess.run([compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c",
                        "-I", str(out / "model"), *srcs], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.arm_gcc
@pytest.mark.parametrize("cpu", ["cortex-m7", "cortex-m4", "cortex-m3"])
def test_generated_c_builds_for_cortex_m(shared_models, tmp_path, cpu):
    out = tmp_path / "o"
    assert mcucompile("build", str(shared_models / "person_detect.tflite"), "--board", "host",
                      "-o", str(out)).returncode == 0
    srcs = sorted(str(p) for p in (out / "model").glob("*.c"))
    r = subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-O2", "-std=c99", "-Wall",
                        "-Wextra", "-Werror", "-c", "-I", str(out / "model"), *srcs],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_analyze_reports_fit_without_writing(shared_models, tmp_path):
    r = mcucompile("analyze", str(shared_models / "person_detect.tflite"), "--board", "stm32f746",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "fits SRAM        yes" in r.stdout
    assert list(tmp_path.iterdir()) == []


# --- mistakes: one line, non-zero exit, nothing left behind ---------------------

def _assert_clean_failure(r: subprocess.CompletedProcess, out: Path, pattern: str):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert pattern in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_truncated_model_is_rejected(shared_models, tmp_path):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes((shared_models / "person_detect.tflite").read_bytes()[:5000])
    out = tmp_path / "out"
    _assert_clean_failure(mcucompile("build", str(bad), "--board", "host", "-o", str(out)), out, "truncated")


def test_random_bytes_are_rejected(tmp_path):
    bad = tmp_path / "noise.tflite"
    bad.write_bytes(os.urandom(3000))
    out = tmp_path / "out"
    _assert_clean_failure(mcucompile("build", str(bad), "--board", "host", "-o", str(out)), out,
                          "not a TensorFlow Lite model")


def test_missing_model_file(tmp_path):
    out = tmp_path / "out"
    _assert_clean_failure(mcucompile("build", str(tmp_path / "none.tflite"), "--board", "host",
                                     "-o", str(out)), out, "no such file")


def test_bad_name_is_rejected(shared_models, tmp_path):
    out = tmp_path / "out"
    _assert_clean_failure(mcucompile("build", str(shared_models / "hello_world_int8.tflite"), "--board",
                                     "host", "-o", str(out), "--name", "9lives"), out, "C prefix")


@pytest.mark.parametrize("flag, value", [("--memory-slack", "-3"), ("--memory-slack", "nan"),
                                         ("--max-recompute", "-1"), ("--max-recompute", "nan")])
def test_negative_memory_options_are_rejected(shared_models, tmp_path, flag, value):
    out = tmp_path / "out"
    _assert_clean_failure(mcucompile("build", str(shared_models / "hello_world_int8.tflite"), "--board",
                                     "host", "-o", str(out), flag, value), out, f"{flag} must be 0 or more")


@pytest.mark.tf
def test_unsupported_op_is_rejected(tmp_path):
    import modelgen
    model = tmp_path / "sub.tflite"
    model.write_bytes(modelgen.sub())
    out = tmp_path / "out"
    _assert_clean_failure(mcucompile("build", str(model), "--board", "host", "-o", str(out)), out,
                          "unsupported op(s): op 0: SUB")


@pytest.mark.tf
def test_float_model_is_rejected(tmp_path):
    tf = pytest.importorskip("tensorflow")
    tf.keras.backend.clear_session()
    m = tf.keras.Sequential([tf.keras.Input((8,)), tf.keras.layers.Dense(4)])
    model = tmp_path / "float.tflite"
    model.write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    out = tmp_path / "out"
    _assert_clean_failure(mcucompile("build", str(model), "--board", "host", "-o", str(out)), out,
                          "float")


def test_verify_reports_bit_exact(shared_models):
    pytest.importorskip("tflite_micro")
    r = mcucompile("verify", str(shared_models / "hello_world_int8.tflite"), "--runs", "3")
    assert r.returncode == 0, r.stderr
    assert "bit-exact with TFLM" in r.stdout
