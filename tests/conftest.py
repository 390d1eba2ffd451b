"""Shared pytest setup: skip tests whose tools are missing, and common fixtures.

The markers are declared in pyproject.toml. A test marked with one whose tool
is absent is skipped with a reason that says what is missing and how to get it,
so `pytest` passes on a bare checkout and runs everything on a full setup.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Set MCUCOMPILE_TEST_PORT to the serial port of a board (e.g. /dev/ttyACM0)
# to run the `hardware` tests.
PORT_ENV = "MCUCOMPILE_TEST_PORT"


def _has_module(name: str) -> bool:
    # find_spec does not import: checking for TensorFlow stays instant.
    return importlib.util.find_spec(name) is not None


def _missing(marker: str) -> str | None:
    """Why tests with this marker cannot run here, or None if they can."""
    if marker == "tf" and not _has_module("tensorflow"):
        return "TensorFlow is not installed (pip install tensorflow-cpu, or mcucompile[nas])"
    if marker == "reference" and not _has_module("tflite_micro"):
        return "the TFLM reference interpreter is not installed (pip install mcucompile[reference])"
    if marker == "arm_gcc" and shutil.which("arm-none-eabi-gcc") is None:
        return ("arm-none-eabi-gcc is not on PATH (apt-get install gcc-arm-none-eabi "
                "libnewlib-arm-none-eabi, or Arm's GNU toolchain)")
    if marker == "qemu" and shutil.which("qemu-system-arm") is None:
        return "qemu-system-arm is not on PATH (apt-get install qemu-system-arm)"
    if marker == "renode" and shutil.which("renode") is None:
        return ("renode is not on PATH (Renode is not carried by any package registry reachable "
                "here; install it from https://renode.io)")
    if marker == "hardware" and not os.environ.get(PORT_ENV):
        return f"no board attached: set {PORT_ENV} to its serial port (e.g. /dev/ttyACM0)"
    return None


_GATED = ("tf", "reference", "arm_gcc", "qemu", "renode", "hardware")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {m: _missing(m) for m in _GATED}
    for item in items:
        for marker in _GATED:
            if reasons[marker] and item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reasons[marker]))
                break


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """The directory of real reference models (person_detect, micro_speech, hello_world):
    ../shared/models beside the repository, or $MCUCOMPILE_SHARED_MODELS."""
    override = os.environ.get("MCUCOMPILE_SHARED_MODELS")
    path = Path(override) if override else REPO.parent / "shared" / "models"
    if not (path / "person_detect.tflite").is_file():
        pytest.skip(f"the shared reference models are not at {path} "
                    "(set MCUCOMPILE_SHARED_MODELS to their directory)")
    return path


@pytest.fixture
def tmp_out(tmp_path: Path) -> Path:
    """An empty directory for a test's generated files (inside pytest's tmp_path)."""
    out = tmp_path / "out"
    out.mkdir()
    return out
