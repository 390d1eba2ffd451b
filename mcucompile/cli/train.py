"""`mcucompile train`: train a network from scratch with Early-Bird tickets (prune early, train the ticket)."""
from __future__ import annotations

from pathlib import Path

from ..errors import McuCompileError


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a network with Early-Bird tickets: find the pruned "
                                     "network early, train only it")
    p.add_argument("--data", required=True,
                   help="digits, synthetic, an image folder (one sub-folder per class) or a .npz with x, y")
    p.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    p.add_argument("--arch", type=Path, default=None,
                   help="architecture JSON (an Arch, or a search_report.json: its best network)")
    p.add_argument("--width", type=float, default=0.5, help="width multiplier (without --arch)")
    p.add_argument("--resolution", type=int, default=32, help="input resolution (without --arch)")
    p.add_argument("--kernel", type=int, default=3, help="depthwise kernel of every block (3, 5, 7)")
    p.add_argument("--expand", type=int, default=6, help="expand ratio of every block (3, 4, 6)")
    p.add_argument("--depth", type=int, default=2, help="blocks per stage (2, 3, 4)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-2, help="peak learning rate (Adam, cosine)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--prune-ratio", type=float, default=0.5, help="share of hidden channels pruned")
    p.add_argument("--threshold", type=float, default=0.1,
                   help="draw the ticket when the mask distance stays below this (default 0.1)")
    p.add_argument("--window", type=int, default=3, help="epochs the distance must stay low")
    p.add_argument("--l1", type=float, default=1e-4, help="L1 penalty on batch-norm scales")
    p.add_argument("--compare-full", action="store_true",
                   help="also train the network in full and report the compute Early-Bird saved")
    p.add_argument("--board", default=None, help="also report the trained network's cost on this board")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..nas.train import read_arch, train
    if not 0.0 < args.prune_ratio < 1.0:
        raise McuCompileError(f"--prune-ratio {args.prune_ratio}: choose a share between 0 and 1")
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0 or args.window < 1 or args.threshold <= 0:
        raise McuCompileError("--epochs, --batch-size, --window, --lr and --threshold must be positive")
    board = None
    if args.board:
        from ._common import load_board
        board = load_board(args.board)
    arch = read_arch(args.arch) if args.arch else None
    result = train(args.data, args.out, arch, width=args.width, resolution=args.resolution,
                   kernel=args.kernel, expand=args.expand, depth=args.depth, epochs=args.epochs,
                   lr=args.lr, batch_size=args.batch_size, ratio=args.prune_ratio,
                   threshold=args.threshold, window=args.window, gamma_l1=args.l1,
                   compare_full=args.compare_full, seed=args.seed, board=board,
                   verbose=not args.quiet)
    r = result.report
    eb = r["early_bird"]
    if eb["ticket_epoch"]:
        print(f"\nEarly-Bird ticket after epoch {eb['ticket_epoch']} of {r['epochs']}: "
              f"{r['ticket_macs']:,} MACs instead of {r['dense_macs']:,}")
    else:
        print(f"\nno Early-Bird ticket within {r['epochs']} epochs: the dense network was trained")
    print(f"accuracy: validation {r['val_accuracy']:.3f}, test {r['test_accuracy_float']:.3f} (float)")
    if "savings" in r:
        s = r["savings"]
        eb_run, full_run = r["early_bird_run"][-1], r["full_run"][-1]
        print(f"whole runs: Early-Bird {2 * eb_run['train_macs'] / 1e9:.2f} GFLOPs, {eb_run['cpu_seconds']:.1f} "
              f"CPU-s, validation {eb_run['val_accuracy']:.3f}; full {2 * full_run['train_macs'] / 1e9:.2f} "
              f"GFLOPs, {full_run['cpu_seconds']:.1f} CPU-s, validation {full_run['val_accuracy']:.3f}")
        if s["eb_epochs"] is None:
            print(f"Early-Bird training did not reach full training's accuracy "
                  f"({s['target_accuracy']:.3f}) in {r['epochs']} epochs")
        else:
            print(f"to reach {s['target_accuracy']:.3f}: full training {s['full_epochs']} epochs, "
                  f"{s['train_flops_full'] / 1e9:.2f} GFLOPs, {s['full_cpu_seconds']:.1f} CPU-s; "
                  f"Early-Bird {s['eb_epochs']} epochs, {s['train_flops_early_bird'] / 1e9:.2f} GFLOPs, "
                  f"{s['eb_cpu_seconds']:.1f} CPU-s (saved {s['train_flops_saved_fraction']:.0%} of the "
                  f"FLOPs, {s['cpu_seconds_saved_fraction']:.0%} of the CPU time)")
    print(f"wrote {result.model_path} and {result.model_path.parent / 'train_report.json'}")
    return 0
