"""Where the data directories (templates/, boards/, firmware/, renode/) are.

In a source checkout they sit beside the package; in an installed wheel they
are packaged under mcucompile/_data/.
"""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mcucompile's {name}/ directory is missing from the installation")
