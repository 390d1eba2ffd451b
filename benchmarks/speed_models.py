"""Instructions per inference and per MAC, portable against DSP kernels, flash for code against weights.

    python benchmarks/speed_models.py [--models DIR] [--json results.json] [--no-generated]

For every model in ../shared/models and the generated ones (tests/modelgen.py,
needs TensorFlow: two MobileNetV2-style models, a TinyNAS-style one with 5x5 and 7x7
depthwise filters, MLPerf Tiny's ResNet-8 and DS-CNN, and
mixes of convolutions, of fused residual blocks and of ADDs and MULs for the static estimate's fit), builds the firmware and runs it in QEMU
(`mcucompile bench`'s measure(): -icount shift=0, deterministic instruction
counts) on four configurations:

  M7 DSP       qemu-m7 (Cortex-M7), the kernels the compiler picks for a DSP core
  M7 portable  the same core, compiled with __ARM_FEATURE_DSP undefined: the
               kernels' portable C inner loops (`mcucompile bench --portable`)
  M4 DSP       qemu-m4 (Cortex-M4F)
  M3 portable  qemu-m3 (Cortex-M3, no DSP extension)

Prints Markdown tables for the README. --json keeps every measurement,
per layer, for benchmarks/speed_fit.py (the static estimate's kernel costs).
The JSON also holds "fit-only" runs (every eligible op in place, lean kernels)
on the three native configurations: the default build uses the lean in-place
kernels on few layers, and the pipeline's choice between kernels reads these
costs, so their fit must not depend on what the last choice happened to be.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = REPO.parent / "shared" / "models"

# (label, board, DSP kernels allowed)
CONFIGS = (("M7 DSP", "qemu-m7", True), ("M7 portable", "qemu-m7", False),
           ("M4 DSP", "qemu-m4", True), ("M3 portable", "qemu-m3", False))

# TFLM measured in the same QEMU (issue 5: TFLM 2026-08 sources, -O2, arm-none-eabi-gcc 12.2, Cortex-M7).
TFLM = {
    "person_detect": {"reference": 98.6e6, "cmsis_nn": 22.7e6, "arena": 82_308, "flash_beyond": "~75 KB"},
    "micro_speech_quantized": {"reference": 9.33e6, "cmsis_nn": 1.49e6, "arena": 6_836, "flash_beyond": "~62 KB"},
}

# Generated MobileNetV2-style models: (name, modelgen.mobilenet_v2 arguments).
GENERATED = (("mobilenet_v2_96_a035", "mobilenet_v2", dict(resolution=96, alpha=0.35)),
             ("mobilenet_v2_64_a050", "mobilenet_v2", dict(resolution=64, alpha=0.5)),
             # MLPerf Tiny's image classification network (CIFAR-10 ResNet-8): 3x3 convolutions.
             ("resnet8_mlperf_ic", "resnet8", dict()),
             # TinyNAS-style (MCUNet): the same blocks with 3x3, 5x5 and 7x7 depthwise
             # filters and expansion ratios of 1, 4 and 6, as the search picks them.
             ("tinynas_style_64", "mobilenet_v2", dict(
                 resolution=64, alpha=0.5, blocks=((1, 16, 1, 1, 3), (6, 24, 2, 2, 7), (4, 32, 2, 2, 5),
                                                   (6, 64, 2, 2, 5), (4, 96, 1, 1, 7)))),
             # MLPerf Tiny's keyword spotting network (DS-CNN): a 10x4 conv over one channel,
             # then depthwise-separable blocks of 64 channels.
             ("ds_cnn_mlperf_kws", "ds_cnn", dict()),
             # Convolutions the networks above lack (im2col's ways over 1, 6, 8 and 16
             # channels), so that the static estimate's fit sees them.
             ("conv_mix", "conv_mix", dict()),
             # Residual blocks whose ADD runs inside a convolution (band, GEMM, im2col).
             ("residual_mix", "residual_mix", dict()),
             # ADD and MUL outside convolutions: ADD's tables and its per-element form.
             ("elementwise_mix", "elementwise_mix", dict()),
             # Depthwise layers the networks above lack (planar stride 2 below 16
             # channels, 5x5 and 7x7, dilated and pixel by pixel).
             ("depthwise_mix", "depthwise_mix", dict()))


def generated_models(directory: Path) -> list[Path]:
    """Write the generated models (modelgen caches their conversion on disk)."""
    sys.path.insert(0, str(REPO / "tests"))
    import modelgen
    paths = []
    for name, factory, kwargs in GENERATED:
        path = directory / f"{name}.tflite"
        path.write_bytes(getattr(modelgen, factory)(**kwargs))
        paths.append(path)
    return paths


def run_config(path: Path, board_name: str, dsp: bool, work: Path, memory: str,
               fit_only: bool = False) -> dict:
    from mcucompile import boards
    from mcucompile.cli.bench import measure
    from mcucompile.pipeline import CompileOptions

    board = boards.load(board_name)
    out = work / f"{path.stem}-{board_name}-{'dsp' if dsp else 'portable'}{'-fit' if fit_only else ''}"
    options = (CompileOptions(memory="inplace", inplace_everywhere=True) if fit_only
               else CompileOptions(memory=memory))
    t0 = time.perf_counter()
    r = measure(path, board, out, runs=1, options=options, portable=not dsp)
    report = json.loads((out / "report.json").read_text())
    layer_macs = next((s["macs"] for s in report.get("strategies", []) if s["strategy"] == "layer"),
                      report["macs"])
    return {
        "model": path.stem, "board": board_name, "dsp": r.dsp, "core": r.estimate.core,
        # What a normal build for this core runs (not the --portable comparison build).
        "native": r.dsp == board.dsp,
        "fit_only": fit_only,
        "memory_strategy": report.get("memory_strategy", "layer"),
        "instructions": r.instructions, "macs": layer_macs, "executed_macs": r.estimate.macs,
        "flash": dataclasses.asdict(r.flash), "ram": dataclasses.asdict(r.ram),
        "kernels": list(r.kernels),
        "layers": [{"name": x.name, "op": x.op, "kernel": x.cost_name, "macs": x.macs,
                    "input_elements": x.input_elements,
                    "output_elements": x.output_elements, "instructions": x.instructions} for x in r.estimate.layers],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _m(n: float) -> str:
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n:,.0f}"


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def tables(rows: list[dict], layer_rows: list[dict] = ()) -> str:
    from mcucompile.energy import cpi_for
    by = {(r["model"], r["board"], r["dsp"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    out = ["| model | MACs | " + " | ".join(f"{label}: instructions (per MAC)" for label, _, _ in CONFIGS)
           + " | DSP speed-up on M7 |",
           "|---|---|" + "---|" * len(CONFIGS) + "---|"]
    for m in models:
        cells = []
        for _, board, dsp in CONFIGS:
            r = by.get((m, board, dsp))
            cells.append("n/a" if r is None else f"{_m(r['instructions'])} ({r['instructions'] / r['macs']:.2f})")
        dsp7, port7 = by.get((m, "qemu-m7", True)), by.get((m, "qemu-m7", False))
        speedup = f"{port7['instructions'] / dsp7['instructions']:.2f}x" if dsp7 and port7 else "n/a"
        macs = next(r["macs"] for r in rows if r["model"] == m)
        out.append(f"| {m} | {macs:,} | " + " | ".join(cells) + f" | {speedup} |")

    out += ["", "| model | memory strategy | weights | model code (kernels + invoke) | firmware runtime + C library "
            "| flash total | beyond the weights | arena | stack used | est. latency, STM32F746 at 216 MHz |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    f746 = cpi_for("cortex-m7", 216_000_000)
    for m in models:
        r = by.get((m, "qemu-m7", True))
        if r is None:
            continue
        f, ram = r["flash"], r["ram"]
        ms = r["instructions"] * f746.value / 216e6 * 1e3
        out.append(f"| {m} | {r['memory_strategy']} | {_kb(f['weights'])} | {_kb(f['model_code'])} | "
                   f"{_kb(f['firmware'] + f['c_library'])} | {_kb(f['used'])} | {_kb(f['used'] - f['weights'])} | "
                   f"{ram['arena']:,} B | {ram['stack_used']:,} B | {ms:.3g} ms |")

    compared = [m for m in models if m in TFLM and (m, "qemu-m7", True) in by]
    layer_by = {r["model"]: r for r in layer_rows}
    if compared:
        out += ["", "| model (Cortex-M7, QEMU) | mcucompile (memory strategy: instructions, arena) "
                "| mcucompile --memory layer | TFLM reference kernels | TFLM + CMSIS-NN (arena) "
                "| mcucompile / TFLM + CMSIS-NN |", "|---|---|---|---|---|---|"]
        for m in compared:
            r, t = by[(m, "qemu-m7", True)], TFLM[m]
            lay = layer_by.get(m)
            lay_text = ("(the same build)" if r["memory_strategy"] == "layer" else "n/a") if lay is None else \
                f"{_m(lay['instructions'])}, {lay['ram']['arena']:,} B"
            best = min(r["instructions"], lay["instructions"] if lay else r["instructions"])
            out.append(f"| {m} | {r['memory_strategy']}: {_m(r['instructions'])}, {r['ram']['arena']:,} B | "
                       f"{lay_text} | {_m(t['reference'])} | {_m(t['cmsis_nn'])} ({t['arena']:,} B) | "
                       f"{best / t['cmsis_nn']:.2f} |")
    out += ["", "Instructions per MAC divide by the "
                "model's layer-by-layer MACs. Latency: instructions x "
            f"{f746.value:.2f} cycles/instruction (mcucompile.energy, Cortex-M7 with {f746.wait_states} "
            "flash wait states) / 216 MHz."]
    return "\n".join(out)


def provenance() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "mcucompile", "templates"],
                               capture_output=True, text=True).stdout.strip()
        commit += "+uncommitted changes" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown commit"
    gcc = subprocess.run(["arm-none-eabi-gcc", "-dumpversion"], capture_output=True, text=True).stdout.strip()
    return f"{time.strftime('%Y-%m-%d')}, mcucompile {commit}, arm-none-eabi-gcc {gcc} -O2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="directory of .tflite models")
    ap.add_argument("--no-generated", action="store_true", help="skip the generated models")
    ap.add_argument("--memory", default="auto", help="memory strategy to build with (default: auto)")
    ap.add_argument("--json", type=Path, default=None, help="write every measurement here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="speed-") as tmp:
        work = Path(tmp)
        paths = sorted(args.models.glob("*.tflite"))
        if not args.no_generated:
            paths += generated_models(work)
        rows = []
        from mcucompile.errors import McuCompileError
        for path in paths:
            for label, board, dsp in CONFIGS:
                try:
                    row = run_config(path, board, dsp, work, args.memory)
                except McuCompileError as e:   # one failed build must not lose the other figures
                    print(f"{path.stem:<28} {label:<12} FAILED: {str(e).splitlines()[0]}", file=sys.stderr)
                    continue
                rows.append(row)
                print(f"{path.stem:<28} {label:<12} {row['instructions']:>13,} instructions "
                      f"({row['instructions'] / row['macs']:.2f}/MAC, {row['seconds']} s)", file=sys.stderr)
        fit_rows = []
        for path in paths:
            for label, board, dsp in CONFIGS:
                if dsp != (board != "qemu-m3"):
                    continue   # the native configurations only
                try:
                    fit_rows.append(run_config(path, board, dsp, work, args.memory, fit_only=True))
                except McuCompileError as e:
                    print(f"{path.stem:<28} {label:<12} fit run FAILED: {str(e).splitlines()[0]}",
                          file=sys.stderr)
        # Against TFLM, which runs layer by layer: also our fastest build, without patch recomputation.
        layer_rows = []
        for path in paths:
            if path.stem in TFLM and args.memory != "layer":
                try:
                    layer_rows.append(run_config(path, "qemu-m7", True, work / "layer", "layer"))
                except McuCompileError as e:
                    print(f"{path.stem:<28} M7 layer     FAILED: {str(e).splitlines()[0]}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"provenance": provenance(), "rows": rows + fit_rows},
                                        indent=1) + "\n")
    print(tables(rows, layer_rows))


if __name__ == "__main__":
    main()
