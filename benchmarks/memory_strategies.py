"""Activation memory per strategy, against the layer-wise bound and TFLM.

    python benchmarks/memory_strategies.py

Models: the shared models (../shared/models) and MobileNetV2- and MCUNet-style
models generated with tests/modelgen.py (needs TensorFlow the first time; the
conversions are cached). Prints the Markdown table used in the README.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mcucompile import boards  # noqa: E402
from mcucompile.errors import McuCompileError  # noqa: E402
from mcucompile.pipeline import CompileOptions, compile_model  # noqa: E402

SHARED = ROOT.parent / "shared" / "models"


def generated() -> list[tuple[str, bytes]]:
    import modelgen
    # MCUNet-style: wider expansion on a larger input, as MCUNet's VWW/ImageNet backbones.
    mcunet_blocks = ((1, 16, 1, 1), (4, 24, 2, 2), (5, 40, 3, 2), (4, 80, 2, 2), (6, 96, 2, 1))
    return [("mobilenet_v2 96px a0.35", modelgen.mobilenet_v2(resolution=96)),
            ("mobilenet_v2 128px a0.35", modelgen.mobilenet_v2(resolution=128)),
            ("mobilenet_v2 160px a0.35", modelgen.mobilenet_v2(resolution=160)),
            ("mcunet-style 144px a0.5", modelgen.mobilenet_v2(resolution=144, alpha=0.5,
                                                               blocks=mcunet_blocks)),
            ("resnet8 (MLPerf Tiny IC)", modelgen.resnet8()),
            ("ds_cnn (MLPerf Tiny KWS)", modelgen.ds_cnn())]


def row(name: str, model: bytes) -> str:
    board = boards.load("host")
    best = compile_model(model, board, CompileOptions(compare_tflm=True)).report
    arenas = {}
    recompute = 0.0
    apart = compile_model(model, board, CompileOptions(memory="layer", fuse_residuals=False))
    for memory in ("layer", "inplace", "patch"):
        try:
            r = compile_model(model, board, CompileOptions(memory=memory)).report
            arenas[memory] = r.arena_bytes
            if memory == "patch":
                recompute = next(s.recompute for s in r.strategies if s.chosen)
        except McuCompileError:
            arenas[memory] = None
    fmt = lambda v: f"{v:,}" if v else "-"  # noqa: E731
    tflm = best.tflm_arena_bytes
    lb = best.liveness_lower_bound_bytes
    return (f"| {name} | {lb:,} | {apart.plan.arena_bytes:,} | {fmt(arenas['layer'])} | "
            f"{fmt(arenas['inplace'])} | "
            f"{fmt(arenas['patch'])} | **{best.arena_bytes:,}** ({best.memory_strategy}) | {fmt(tflm)} | "
            f"{lb / best.arena_bytes:.2f}x | {(tflm / best.arena_bytes) if tflm else 0:.2f}x | "
            f"{100 * recompute:+.1f}% |")


def main() -> None:
    print("| model | layer-wise bound (B) | layer, ADDs apart | layer | inplace | patch | default | TFLM arena "
          "| bound / default | TFLM / default | patch MACs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(SHARED.glob("*.tflite")):
        print(row(path.stem, path.read_bytes()), flush=True)
    for name, model in generated():
        print(row(name, model), flush=True)


if __name__ == "__main__":
    main()
