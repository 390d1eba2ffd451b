"""Imports every kernel family so that its lowerings are registered."""
from . import activation, conv, elementwise, pool, region, shape  # noqa: F401
