"""TinyNAS against the hand-designed baseline, Early-Bird's savings, and the search's wall time.

    python benchmarks/nas_benchmark.py [--budget small] [--seed 0] [--out /tmp/nas_bench]

On the built-in digits data and a board with 32 KB of SRAM and 256 KB of flash
(the stm32f746 board file cut down; same core and clock):

1. `search` finds a network for the board (report: accuracy, peak SRAM, wall time).
2. The baseline is MobileNetV2 as people shrink it by hand: its own block
   layout (expand 6, 3x3 kernels, 2-3-4-3 blocks per stage) scaled by the
   width multiplier and input resolution, the largest (most MACs) of the
   usual grid that fits the same SRAM and flash. It is trained from scratch
   for BASELINE_EPOCHS epochs, quantized the same way, and compiled.
3. The baseline is trained again with Early-Bird tickets; the compute to reach
   full training's accuracy is compared (training FLOPs and CPU-seconds).

Prints a Markdown table and writes OUT/nas_benchmark.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcucompile import boards  # noqa: E402
from mcucompile.nas import data as datamod  # noqa: E402
from mcucompile.nas.efficiency import DEFAULT_MEMORY, EfficiencyModel, constraints_for  # noqa: E402
from mcucompile.nas.space import Block, SearchSpace, SubnetConfig  # noqa: E402

BASELINE_EPOCHS = 20
BASELINE_WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0)
BASELINE_RESOLUTIONS = (16, 24, 32, 40, 48)
MOBILENETV2_DEPTHS = (2, 3, 4, 3)        # MobileNetV2's blocks at widths 24, 32, 64, 96


def bench_board(directory: Path, sram: str = "32K"):
    data = yaml.safe_load((REPO / "boards" / "stm32f746.yaml").read_text())
    name = f"bench{sram.lower()}"
    data.update(name=name, description=f"stm32f746 cut to {sram}B SRAM and 256 KB flash")
    data["memory"]["sram"]["size"], data["memory"]["flash"]["size"] = sram, "256K"
    for optional in ("platformio", "renode"):
        data.pop(optional, None)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return boards.load(path)


def mobilenetv2(width: float, resolution: int, channels: int, classes: int):
    space = SearchSpace(width, resolution, channels, classes)
    cfg = SubnetConfig(tuple((Block(3, 6),) * d for d in MOBILENETV2_DEPTHS))
    return space.arch(cfg)


def scaled_baseline(board, channels: int, classes: int):
    """The largest hand-scaled MobileNetV2 (by MACs) that fits the board."""
    em = EfficiencyModel(board)
    limit = constraints_for(board)
    fits = []
    for w in BASELINE_WIDTHS:
        for r in BASELINE_RESOLUTIONS:
            arch = mobilenetv2(w, r, channels, classes)
            c = em.cost(arch)
            if limit.fits(c):
                fits.append((c.macs, w, r, arch, c))
    if not fits:
        raise SystemExit("no scaled MobileNetV2 fits the benchmark board")
    _, w, r, arch, cost = max(fits, key=lambda f: f[0])
    return w, r, arch, cost


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="small", choices=("tiny", "small", "full"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "nas_bench")
    ap.add_argument("--sram", default="32K", help="the benchmark board's SRAM (default 32K; 8 KB of it "
                                                  "is stack, 4 KB runtime)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    board = bench_board(args.out, args.sram)
    results: dict = {"board": f"stm32f746 with {args.sram}B SRAM, 256 KB flash", "data": "digits",
                     "budget": args.budget, "seed": args.seed}

    # 1. TinyNAS
    from mcucompile.nas.search import search
    t0 = time.perf_counter()
    s = search(board, "digits", args.out / "search", budget=args.budget, seed=args.seed, verbose=True)
    wall = time.perf_counter() - t0
    best = s.report["best"]
    results["tinynas"] = {
        "network": best["name"], "width": s.space.width, "resolution": s.space.resolution,
        "test_accuracy_float": best["test_accuracy_float"], "test_accuracy_int8": best["test_accuracy_int8"],
        "arena_bytes": best["compiled"]["arena_bytes"], "weights_bytes": best["compiled"]["weights_bytes"],
        "macs": best["compiled"]["macs"], "search_wall_seconds": round(wall, 1),
        "search_cpu_seconds": s.report["time"]["total"]["cpu_seconds"],
        "stage_seconds": s.report["time"]}

    # 2. the hand-scaled MobileNetV2, trained in full, then 3. with Early-Bird
    from mcucompile.nas._tf import seed_everything, strategy
    from mcucompile.nas.earlybird import EarlyBird
    from mcucompile.nas.models import build_model
    from mcucompile.nas.quantize import convert, int8_accuracy, representative_sample
    from mcucompile.nas.train import macs
    from mcucompile.nas.training import fit, savings, train_early_bird
    from mcucompile.pipeline import CompileOptions, compile_model

    dataset = datamod.load("digits")
    splits = datamod.split(dataset, args.seed)
    strat = strategy()

    def from_scratch(arch, r: int, label: str):
        """Train `arch` at resolution r for BASELINE_EPOCHS, quantize and compile it."""
        xs = {k: datamod.resize(getattr(splits, k).x, r) for k in ("train", "val", "test")}
        ys = {k: getattr(splits, k).y for k in ("train", "val", "test")}
        seed_everything(args.seed)
        with strat.scope():
            model = build_model(arch)
        trainer, full = fit(model, xs["train"], ys["train"], (xs["val"], ys["val"]), BASELINE_EPOCHS,
                            1e-2, 64, args.seed, strat, macs(arch), label, True)
        tflite = convert(model, representative_sample(xs["train"], seed=args.seed))
        # The memory strategy the search plans and reports with (efficiency.DEFAULT_MEMORY).
        compiled = compile_model(tflite, board, CompileOptions(memory=DEFAULT_MEMORY)).report
        return xs, ys, full, {
            "resolution": r, "epochs": BASELINE_EPOCHS,
            "test_accuracy_float": trainer.accuracy(xs["test"], ys["test"]),
            "test_accuracy_int8": int8_accuracy(tflite, xs["test"], ys["test"]),
            "arena_bytes": compiled.arena_bytes, "weights_bytes": compiled.weights_bytes,
            "macs": compiled.macs, "train_cpu_seconds": full[-1].cpu_seconds}

    # The searched architecture with the baseline's training: architecture against
    # architecture, apart from the search's own (shorter, inherited) training.
    _, _, _, again = from_scratch(s.space.arch(s.best), s.space.resolution,
                                  "TinyNAS architecture: trained from scratch")
    results["tinynas_from_scratch"] = {"width": s.space.width, **again}
    w, r, arch, cost = scaled_baseline(board, dataset.channels, dataset.num_classes)
    xs, ys, full, base = from_scratch(arch, r, f"MobileNetV2 w{w:g} r{r}: full training")
    results["mobilenetv2"] = {"width": w, **base}

    seed_everything(args.seed)
    eb = train_early_bird(arch, xs["train"], ys["train"], (xs["val"], ys["val"]), BASELINE_EPOCHS, 1e-2, 64,
                          args.seed, strat, macs, EarlyBird(), 1e-4, True)
    sv = savings(full, eb.epochs)
    results["early_bird"] = {"ticket_epoch": eb.ticket_epoch,
                             "dense_macs": macs(arch),
                             "ticket_macs": macs(eb.ticket_arch) if eb.ticket_arch else None,
                             "final_val_accuracy": eb.final_accuracy,
                             "full_final_val_accuracy": full[-1].val_accuracy,
                             "eb_total_cpu_seconds": eb.epochs[-1].cpu_seconds,
                             "full_total_cpu_seconds": full[-1].cpu_seconds,
                             "eb_total_train_flops": 2 * eb.epochs[-1].train_macs,
                             "full_total_train_flops": 2 * full[-1].train_macs,
                             "to_same_accuracy": sv.to_json()}
    (args.out / "nas_benchmark.json").write_text(json.dumps(results, indent=2, default=float) + "\n")

    t, m, e = results["tinynas"], results["mobilenetv2"], results["early_bird"]
    print("\n| model | input | test acc. float | test acc. int8 | arena | weights | MACs |")
    print("|---|---|---|---|---|---|---|")
    print(f"| TinyNAS ({args.budget}) | {t['resolution']}x{t['resolution']}, w{t['width']:g} | "
          f"{t['test_accuracy_float']:.3f} | {t['test_accuracy_int8']:.3f} | {t['arena_bytes']:,} B | "
          f"{t['weights_bytes']:,} B | {t['macs']:,} |")
    a = results["tinynas_from_scratch"]
    print(f"| TinyNAS architecture, {a['epochs']} epochs from scratch | {a['resolution']}x{a['resolution']}, "
          f"w{a['width']:g} | {a['test_accuracy_float']:.3f} | {a['test_accuracy_int8']:.3f} | "
          f"{a['arena_bytes']:,} B | {a['weights_bytes']:,} B | {a['macs']:,} |")
    print(f"| MobileNetV2 scaled | {m['resolution']}x{m['resolution']}, w{m['width']:g} | "
          f"{m['test_accuracy_float']:.3f} | {m['test_accuracy_int8']:.3f} | {m['arena_bytes']:,} B | "
          f"{m['weights_bytes']:,} B | {m['macs']:,} |")
    print(f"\nsearch wall time {t['search_wall_seconds']:.0f} s ({t['search_cpu_seconds']:.0f} CPU-s)")
    s = e["to_same_accuracy"]
    ticket = "-" if e["ticket_macs"] is None else f"{e['ticket_macs']:,}"
    print(f"Early-Bird: ticket after epoch {e['ticket_epoch']}, {ticket} MACs vs {e['dense_macs']:,}; "
          f"whole run {e['eb_total_train_flops'] / 1e9:.2f} vs {e['full_total_train_flops'] / 1e9:.2f} GFLOPs, "
          f"{e['eb_total_cpu_seconds']:.0f} vs {e['full_total_cpu_seconds']:.0f} CPU-s; final val accuracy "
          f"{e['final_val_accuracy']:.3f} vs {e['full_final_val_accuracy']:.3f}")
    if s["eb_epochs"] is None:
        print(f"  Early-Bird did not reach {s['target_accuracy']:.3f} (full training's accuracy less "
              f"{s['tolerance']})")
    else:
        print(f"  to reach {s['target_accuracy']:.3f}: saved {s['train_flops_saved_fraction']:.0%} of the "
              f"training FLOPs and {s['cpu_seconds_saved_fraction']:.0%} of the CPU-seconds")
    print(f"wrote {args.out / 'nas_benchmark.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
