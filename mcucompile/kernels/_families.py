"""Imports every kernel family so that its lowerings are registered."""
from . import activation, conv, elementwise, pool, region, shape  # noqa: F401
from . import inplace  # noqa: F401,E402  (after the families whose lowerings it wraps)
