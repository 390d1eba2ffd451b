"""`mcucompile train`: train a fixed network from scratch with Early-Bird tickets.

The network is an Arch: one of the search space's (width, resolution, one
kernel / expand ratio / depth for every stage), or one read from a JSON file
(an Arch, or the `best.arch` of a search_report.json). Training draws the
Early-Bird ticket, prunes to it and trains only the ticket. With
compare_full, the same network is also trained in full, without pruning, and
the report gives the compute Early-Bird saved to reach the same accuracy.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import McuCompileError
from . import data as datamod
from .earlybird import DEFAULT_L1, EarlyBird
from .efficiency import EfficiencyModel, graph_of
from .space import Arch, Block, SearchSpace, SubnetConfig


def uniform_arch(width: float, resolution: int, kernel: int, expand: int, depth: int,
                 in_channels: int, num_classes: int) -> Arch:
    space = SearchSpace(width, resolution, in_channels, num_classes)
    cfg = SubnetConfig(tuple((Block(kernel, expand),) * depth for _ in space.stages))
    if not space.contains(cfg):
        raise McuCompileError(f"kernel {kernel}, expand {expand}, depth {depth}: choose kernel in "
                              f"{space.kernels}, expand in {space.expands}, depth in {space.depths}")
    return space.arch(cfg)


def read_arch(path: Path) -> Arch:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise McuCompileError(f"{path}: not a readable JSON file ({e})") from None
    if isinstance(data, dict) and "best" in data and "arch" in data.get("best", {}):
        data = data["best"]["arch"]           # a search_report.json
    return Arch.from_json(data)


@functools.lru_cache(maxsize=64)
def macs(arch: Arch) -> int:
    """Forward MACs (the count our compiler's kernels do)."""
    from ..kernels import macs_of
    g = graph_of(arch)
    return sum(macs_of(op, g) for op in g.ops)


@dataclass
class TrainResult:
    report: dict
    model_path: Path


def train(data_spec: str, out: Path, arch: Arch | None, *, width: float = 0.5, resolution: int = 32,
          kernel: int = 3, expand: int = 6, depth: int = 2, epochs: int = 20, lr: float = 1e-2,
          batch_size: int = 64, ratio: float = 0.5, threshold: float = 0.1, window: int = 3,
          gamma_l1: float = DEFAULT_L1, compare_full: bool = False, tolerance: float = 0.01,
          seed: int = 0, board=None, verbose: bool = True) -> TrainResult:
    from ._tf import seed_everything, strategy
    from .quantize import float_accuracy
    from .training import fit, savings, train_early_bird

    dataset = datamod.load(data_spec)
    splits = datamod.split(dataset, seed)
    if arch is None:
        arch = uniform_arch(width, resolution, kernel, expand, depth, dataset.channels, dataset.num_classes)
    if arch.in_channels != dataset.channels or arch.num_classes != dataset.num_classes:
        raise McuCompileError(f"the architecture takes {arch.in_channels}-channel images into "
                              f"{arch.num_classes} classes; data {dataset.name!r} has "
                              f"{dataset.channels} channels and {dataset.num_classes} classes")
    if epochs < window + 2:
        raise McuCompileError(f"--epochs {epochs}: Early-Bird needs at least {window + 2} epochs "
                              f"(a window of {window} mask distances, then training the ticket)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    r = arch.resolution
    x_train, x_val, x_test = (datamod.resize(s.x, r) for s in (splits.train, splits.val, splits.test))
    y_train, y_val, y_test = splits.train.y, splits.val.y, splits.test.y
    strat = strategy()

    seed_everything(seed)
    detector = EarlyBird(ratio, threshold, window)
    eb = train_early_bird(arch, x_train, y_train, (x_val, y_val), epochs, lr, batch_size, seed, strat,
                          macs, detector, gamma_l1, verbose)
    report: dict = {
        "data": dataset.describe(), "seed": seed, "epochs": epochs, "learning_rate": lr,
        "batch_size": batch_size, "replicas": strat.num_replicas_in_sync,
        "dense_arch": arch.to_json(), "dense_macs": macs(arch),
        "early_bird": eb.detector | {"l1": gamma_l1},
        "ticket_arch": eb.ticket_arch.to_json() if eb.ticket_arch else None,
        "ticket_macs": macs(eb.ticket_arch) if eb.ticket_arch else None,
        "early_bird_run": [e.__dict__ for e in eb.epochs],
        "val_accuracy": eb.final_accuracy,
        "test_accuracy_float": float_accuracy(eb.model, x_test, y_test),
    }
    if eb.ticket_arch is None and verbose:
        print(f"note: no Early-Bird ticket in {epochs} epochs (mask distances "
              f"{eb.detector['mask_distances']}); the dense network was trained throughout")
    if compare_full:
        from .models import build_model
        seed_everything(seed)
        with strat.scope():
            dense = build_model(arch)
        _, full = fit(dense, x_train, y_train, (x_val, y_val), epochs, lr, batch_size,
                      seed, strat, macs(arch), f"full training (the baseline): {epochs} epochs", verbose)
        s = savings(full, eb.epochs, tolerance)
        report["full_run"] = [e.__dict__ for e in full]
        report["savings"] = s.to_json()
    if board is not None:
        final = eb.ticket_arch or arch
        c = EfficiencyModel(board).cost(final)
        report["board"] = {"name": board.name, "predicted": c.to_json()}
    model_path = out / "model.keras"
    eb.model.save(model_path)
    report["model"] = model_path.name
    (out / "train_report.json").write_text(json.dumps(report, indent=2, default=_plain) + "\n")
    return TrainResult(report, model_path)


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    raise TypeError(type(v).__name__)
