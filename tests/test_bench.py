"""`mcucompile bench`: the JSON report of a real QEMU run, the text report, and its errors."""
from __future__ import annotations

import contextlib
import io
import json

import pytest

from mcucompile.cli import main


@pytest.fixture(scope="module")
def hello_json(shared_models, tmp_path_factory):
    """bench on hello_world for the QEMU Cortex-M4, with a given active power, as JSON."""
    out = tmp_path_factory.mktemp("bench") / "build"
    buf = io.StringIO()   # capsys is per test; this fixture is per module

    with contextlib.redirect_stdout(buf):
        code = main(["bench", str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m4",
                     "--runs", "2", "--json", "--active-mw", "30", "--rate", "10/min", "--battery", "1Ah",
                     "-o", str(out)])
    assert code == 0, buf.getvalue()
    return json.loads(buf.getvalue()), out


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.slow
def test_bench_json_schema_and_consistency(hello_json):
    r, out = hello_json
    for key in ("model", "board", "core", "clock_hz", "emulator", "qemu_machine", "runs",
                "instructions_per_inference", "instructions_per_run", "macs", "instructions_per_mac",
                "cycles_per_instruction", "cycles_per_inference", "latency_ms", "active_mw", "energy_uj",
                "battery", "flash", "ram", "layers", "kernels", "assumptions", "notes"):
        assert key in r, key
    assert (r["model"], r["board"], r["core"], r["qemu_machine"]) == (
        "hello_world_int8", "qemu-m4", "cortex-m4", "mps2-an386")
    assert r["runs"] == 2 and len(r["instructions_per_run"]) == 2
    n = r["instructions_per_inference"]
    assert isinstance(n, int) and n in r["instructions_per_run"] and r["macs"] == 288
    assert r["instructions_per_mac"] == pytest.approx(n / 288)
    # The chain: cycles = instructions x CPI; ms = cycles / clock; uJ = mW x ms.
    assert r["cycles_per_inference"] == round(n * r["cycles_per_instruction"])
    assert r["latency_ms"] == pytest.approx(r["cycles_per_inference"] / r["clock_hz"] * 1e3)
    assert r["energy_uj"] == pytest.approx(30.0 * r["latency_ms"])
    assert r["power_source"] == "given (--active-mw)"
    b = r["battery"]
    assert b["rate_hz"] == pytest.approx(10 / 60) and b["capacity_mah"] == 1000 and b["cell_voltage"] == 3.0
    assert b["hours"] == pytest.approx(1000 * 3.0 * 1000 / b["average_uw"])

    layers = r["layers"]
    assert [x["name"] for x in layers] == ["fully_connected_0", "fully_connected_1", "fully_connected_2"]
    assert [x["macs"] for x in layers] == [16, 256, 16]
    assert all(x["instructions"] > 0 and x["source"] == "qemu" for x in layers)
    assert sum(x["instructions"] for x in layers) <= n
    assert all(x["arena_bytes"] > 0 for x in layers)
    assert r["kernels"] == sorted({x["kernel"] for x in layers}) and all(k.startswith("mcc_") for k in r["kernels"])

    flash, ram = r["flash"], r["ram"]
    assert flash["used"] == sum(s["bytes"] for s in flash["sections"])
    assert flash["model_constants"] >= flash["weights"] > 0
    parts = ("model_constants", "model_code", "firmware", "c_library", "other")
    assert sum(flash[p] for p in parts) == flash["used"] and flash["other"] >= 0
    assert flash["model_code"] > 0 and flash["firmware"] > 0
    assert flash["beyond_weights"] == flash["used"] - flash["weights"]
    assert ram["used"] == sum(s["bytes"] for s in ram["sections"])
    assert 0 < ram["stack_used"] <= ram["stack_reserved"] and ram["arena"] == 32

    text = " ".join(r["assumptions"])
    for said in ("QEMU", "cycles/instruction", "30 mW", "1000 mAh at 3 V", "sleeping at"):
        assert said in text, said
    assert (out / "build" / "qemu" / "model.elf").is_file()   # -o keeps the build


@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.slow
def test_bench_text_on_a_real_board_without_power(shared_models, capsys, tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = main(["bench", str(shared_models / "hello_world_int8.tflite"), "--board", "stm32f746", "--runs", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "hello_world_int8 on stm32f746 (cortex-m7, 216 MHz); firmware run in QEMU mps2-an500" in text
    header = next(line for line in text.splitlines() if line.startswith("#"))
    assert header.split() == ["#", "layer", "op", "MACs", "instructions", "est.", "cycles", "uJ", "arena", "B", "%"]
    assert "at 216 MHz" in text and "7 flash wait states" in text
    assert "no power figure for this board" in text
    assert "battery life     - (no energy figure)" in text
    assert "stack 8,192 B reserved" in text and "(high-water mark)" in text
    assert list(tmp_path.iterdir()) == []    # the temporary build is gone


def _fails(args: list[str], capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1, err
    return err


def test_bench_without_qemu(shared_models, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    err = _fails(["bench", str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m7",
                  "-o", str(tmp_path / "out")], capsys)
    assert "qemu-system-arm was not found" in err and "apt-get install qemu-system-arm" in err
    assert not (tmp_path / "out").exists()   # it failed before building anything


def test_bench_unknown_board(shared_models, capsys):
    err = _fails(["bench", str(shared_models / "hello_world_int8.tflite"), "--board", "nope"], capsys)
    assert "unknown board 'nope'" in err and "qemu-m7" in err


def test_bench_refuses_the_host(shared_models, capsys):
    err = _fails(["bench", str(shared_models / "hello_world_int8.tflite"), "--board", "host"], capsys)
    assert "needs a microcontroller board" in err


def test_bench_without_renode(shared_models, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    err = _fails(["bench", str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m7",
                  "--emulator", "renode"], capsys)
    assert "Renode is not installed" in err


@pytest.mark.parametrize("extra,message", [
    (["--rate", "often"], "--rate 'often'"),
    (["--battery", "220"], "--battery '220'"),
    (["--runs", "0"], "--runs 0: run at least one input"),
    (["--active-mw", "-3"], "--active-mw must be positive"),
])
def test_bench_argument_errors_come_before_the_build(shared_models, tmp_path, capsys, extra, message):
    err = _fails(["bench", str(shared_models / "hello_world_int8.tflite"), "--board", "qemu-m7",
                  "-o", str(tmp_path / "out"), *extra], capsys)
    assert message in err
    assert not (tmp_path / "out").exists()


def test_bench_missing_model(tmp_path, capsys):
    err = _fails(["bench", str(tmp_path / "none.tflite"), "--board", "qemu-m7"], capsys)
    assert "none.tflite: no such file" in err
