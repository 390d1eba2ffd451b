"""One exception hierarchy for every mistake a user can make.

The CLI prints `error: <message>` for any McuCompileError and exits non-zero;
anything else is a bug in mcucompile and keeps its traceback.
"""


class McuCompileError(Exception):
    """Base of every error meant for the user: the message says what, where, and what to do."""
    exit_code = 1


class ModelFormatError(McuCompileError):
    """The input is not a readable .tflite flatbuffer (corrupt, truncated, wrong file)."""


class UnsupportedModelError(McuCompileError):
    """A valid model that mcucompile cannot compile: unsupported ops or a float model."""


class GraphError(McuCompileError):
    """The IR broke an invariant: a bug in a pass, or a malformed model."""


class BoardError(McuCompileError):
    """A board file is missing, malformed, or the model does not fit it."""


class ToolchainError(McuCompileError):
    """A compiler, emulator or other external tool is missing or failed."""


class MismatchError(McuCompileError):
    """Generated code disagrees with the reference interpreter."""


class DeviceError(McuCompileError):
    """A serial device or emulator did not answer as the protocol says."""


class MissingDependencyError(McuCompileError):
    """An optional Python package is needed for this command."""
