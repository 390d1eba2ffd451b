"""A wheel installed into a clean virtual environment still finds its templates and boards."""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_in_a_clean_venv_builds_a_model(tmp_path, shared_models):
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wheel = next(wheels.glob("mcucompile-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    # Nothing from this checkout may leak into the venv's imports.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    py = env_dir / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    exe = env_dir / "bin" / "mcucompile"
    # Run from an unrelated directory so nothing can come from the source tree.
    out = tmp_path / "out"
    r = subprocess.run([str(exe), "build", str(shared_models / "hello_world_int8.tflite"), "--board",
                        "stm32f746", "-o", str(out)], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert (out / "model" / "model.c").exists() and (out / "firmware").is_dir()
    r = subprocess.run([str(exe), "boards"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "stm32f746" in r.stdout, r.stderr
    where = subprocess.run([str(py), "-c", "import mcucompile, sys; print(mcucompile.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env).stdout
    assert str(env_dir) in where
