"""Compile time and activation memory on the shared models, against TFLM.

    python benchmarks/memory_and_compile.py [MODELS_DIR]

Prints a Markdown table (the one in the README): compile time (median of 5),
our arena, the layer-wise liveness lower bound, and the arena the tflite-micro
interpreter needs for the same model.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from mcucompile import boards
from mcucompile.pipeline import compile_model

DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def measure(path: Path) -> dict:
    model = path.read_bytes()
    board = boards.load("host")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        compiled = compile_model(model, board, model_name=path.stem)
        times.append(time.perf_counter() - t0)
    try:
        from mcucompile.reference import tflm_arena_bytes
        tflm = tflm_arena_bytes(model)
    except Exception as e:  # the reference is optional for this benchmark
        print(f"note: no TFLM figure for {path.name}: {e}", file=sys.stderr)
        tflm = None
    r = compiled.report
    return {"model": path.stem, "compile_s": statistics.median(times), "arena": r.arena_bytes,
            "bound": r.liveness_lower_bound_bytes, "tflm": tflm, "macs": r.macs}


def main() -> None:
    models_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODELS
    rows = [measure(p) for p in sorted(models_dir.glob("*.tflite"))]
    print("| model | MACs | compile time | arena (ours) | liveness lower bound | ours / bound "
          "| TFLM arena | TFLM / ours |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        tflm = f"{r['tflm']:,} B" if r["tflm"] else "n/a"
        ratio = f"{r['tflm'] / r['arena']:.2f}x" if r["tflm"] else "n/a"
        print(f"| {r['model']} | {r['macs']:,} | {r['compile_s'] * 1000:.0f} ms | {r['arena']:,} B "
              f"| {r['bound']:,} B | {r['arena'] / r['bound']:.3f} | {tflm} | {ratio} |")


if __name__ == "__main__":
    main()
