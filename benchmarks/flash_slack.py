"""Flash for speed: instructions per inference against the constants' flash, per --flash-slack.

    python benchmarks/flash_slack.py [--models DIR] [--board qemu-m7] [--slack 0,10,25,100]

For person_detect (../shared/models) and the generated networks of
speed_models.py (tests/modelgen.py, needs TensorFlow the first time), builds the
default build (the smallest arena) with each --flash-slack and runs it in QEMU
(`mcucompile bench`'s measure(): -icount shift=0, deterministic). int16 weights
(conv.widen) save two SXTB16 per weight word of the GEMM's and band's 4x2 tiles;
the slack buys them for the layers with the most MACs per weight byte first.
Prints the Markdown table used in the README.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import speed_models  # noqa: E402

# The networks of the speed table, not the fit-only mixes.
NETWORKS = ("mobilenet_v2_96_a035", "mobilenet_v2_64_a050", "resnet8_mlperf_ic", "ds_cnn_mlperf_kws")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=speed_models.DEFAULT_MODELS)
    ap.add_argument("--board", default="qemu-m7")
    ap.add_argument("--slack", default="0,10,25,100", help="percentages, comma-separated")
    args = ap.parse_args()

    from mcucompile import boards
    from mcucompile.cli.bench import measure
    from mcucompile.pipeline import CompileOptions

    board = boards.load(args.board)
    slacks = [float(s) for s in args.slack.split(",")]
    print(f"| model | `--flash-slack` | constants in flash | instructions ({args.board}) | per MAC |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = [args.models / "person_detect.tflite"]
        paths += [p for p in speed_models.generated_models(work) if p.stem in NETWORKS]
        for path in paths:
            base = None
            for slack in slacks:
                out = work / f"{path.stem}-{slack:g}"
                r = measure(path, board, out, runs=1, options=CompileOptions(flash_slack=slack / 100))
                flash, count = r.flash.model_constants, r.instructions
                report = json.loads((out / "report.json").read_text())
                macs = next((s["macs"] for s in report["strategies"] if s["strategy"] == "layer"),
                            report["macs"])
                base = base or (flash, count)
                change = "" if slack == slacks[0] else (f" ({100 * (flash / base[0] - 1):+.1f}%)",
                                                        f" ({100 * (count / base[1] - 1):+.1f}%)")
                label = f"{slack:g}" + (" (default)" if slack == 0 else "")
                print(f"| {path.stem} | {label} | {flash:,} B{change[0] if change else ''} | "
                      f"{count / 1e6:.2f} M{change[1] if change else ''} | "
                      f"{count / macs:.2f} |", flush=True)
    print(f"\n{speed_models.provenance()}")


if __name__ == "__main__":
    main()
