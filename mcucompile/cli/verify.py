"""`mcucompile verify`: build for the host and compare every output byte with TFLM."""
from __future__ import annotations

from pathlib import Path

from ..errors import MismatchError
from ._common import add_memory_arguments, compile_options


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check the generated C against the TFLM reference, bit for bit, layer by layer")
    p.add_argument("model", type=Path, help="fully int8 .tflite model")
    p.add_argument("--runs", type=int, default=5, help="random inputs to try (default: 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-sanitize", action="store_true",
                   help="build without AddressSanitizer/UBSan (faster)")
    add_memory_arguments(p)
    p.set_defaults(func=run, compare_tflm=False)


def run(args) -> int:
    from ..pipeline import read_model
    from ..verify import verify
    model = read_model(args.model)
    result = verify(model, runs=args.runs, seed=args.seed, sanitize=not args.no_sanitize,
                    model_name=args.model.stem, check_layers=True, options=compile_options(args))
    if not result.bit_exact:
        where = f"\n{result.first_bad_layer}" if result.first_bad_layer else ""
        raise MismatchError(f"{args.model}: {result.differing_bytes} of {result.output_bytes} output bytes "
                            f"differ from TFLM over {result.runs} runs{where}")
    print(f"{args.model}: bit-exact with TFLM: {result.output_bytes} output bytes and "
          f"{result.intermediate_bytes} intermediate bytes over {result.runs} random inputs, 0 differ")
    return 0
