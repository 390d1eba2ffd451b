"""Imports every kernel family so that its lowerings are registered."""
import importlib

for _name in ("conv", "elementwise", "activation", "pool", "shape"):
    try:
        importlib.import_module(f"{__package__}.{_name}")
    except ModuleNotFoundError as e:  # a family not written yet
        if e.name != f"{__package__}.{_name}":
            raise
