"""mcucompile: a TinyML deployment compiler for microcontrollers."""
__version__ = "0.1.0"
