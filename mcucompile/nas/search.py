"""`mcucompile search`: from a dataset and a board to the most accurate int8 model that fits.

    stage 1  choose the space (width, resolution) for the board     spaceopt.py
    stage 2  train the once-for-all supernet (progressive shrinking) supernet.py
             evolve subnets under the board's constraints           evolution.py
             (validation accuracy with inherited weights,
             cost from our IR + planner)                            efficiency.py
    finish   fine-tune the winner, quantize to int8, compile it with
             our compiler to confirm the fit, write OUT/:
               best_int8.tflite, best_float.keras, search_report.json,
               pareto_sram.png, pareto_macs.png (or pareto_energy.png), stage1_macs_cdf.png

Deterministic for a given --seed (numpy and TensorFlow seeds, deterministic
TensorFlow kernels). `--budget` scales the candidate spaces, epochs and
population; `tiny` is for tests, `small` (default) takes minutes on two CPU cores.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import McuCompileError, MissingDependencyError
from . import data as datamod
from .earlybird import EarlyBird
from .efficiency import DEFAULT_MEMORY, LATENCY_NOTE, Constraints, EfficiencyModel, constraints_for
from .evolution import EvolutionSettings, SearchHistory, evolve, pareto_front, random_search
from .space import SearchSpace, SubnetConfig
from .spaceopt import SpaceChoice, choose_space


@dataclass(frozen=True)
class Budget:
    name: str
    widths: tuple[float, ...]
    resolutions: tuple[int, ...]
    stage1_samples: int            # subnets sampled per candidate space
    epochs_largest: int            # at most: Early-Bird may end it sooner
    epochs_kernel: int
    epochs_depth: int
    epochs_expand: int
    random_subnets: int            # per batch, besides the largest and the smallest
    population: int
    generations: int
    calib_batches: int             # batch-norm recalibration batches per scored subnet
    finetune_epochs: int
    batch_size: int = 64
    lr: float = 1e-2

    @property
    def evaluations(self) -> int:
        """Distinct subnets evolution scores at most."""
        parents = max(2, int(round(0.25 * self.population)))
        return self.population + self.generations * (self.population - parents)


BUDGETS = {
    "tiny": Budget("tiny", widths=(0.35, 0.5), resolutions=(16, 24), stage1_samples=20,
                   epochs_largest=5, epochs_kernel=1, epochs_depth=1, epochs_expand=2,
                   random_subnets=2, population=8, generations=3, calib_batches=3,
                   finetune_epochs=1),
    "small": Budget("small", widths=(0.35, 0.5, 0.75), resolutions=(24, 32, 40), stage1_samples=100,
                    epochs_largest=12, epochs_kernel=3, epochs_depth=4, epochs_expand=6,
                    random_subnets=2, population=16, generations=5, calib_batches=4,
                    finetune_epochs=6),
    "full": Budget("full", widths=(0.5, 0.75, 1.0), resolutions=(32, 40, 48), stage1_samples=300,
                   epochs_largest=30, epochs_kernel=8, epochs_depth=12, epochs_expand=15,
                   random_subnets=2, population=40, generations=15, calib_batches=8,
                   finetune_epochs=20),
}


@dataclass
class SearchResult:
    out: Path
    report: dict
    space: SearchSpace
    best: SubnetConfig
    evolution: SearchHistory
    random: SearchHistory | None
    files: dict[str, Path] = field(default_factory=dict)


class _Clock:
    """Wall and CPU seconds per stage, for the report."""

    def __init__(self):
        self.stages: dict[str, dict] = {}
        self._t = (time.perf_counter(), time.process_time())

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.stages[name] = {"wall_seconds": round(wall - self._t[0], 2),
                             "cpu_seconds": round(cpu - self._t[1], 2)}
        self._t = (wall, cpu)

    def total(self) -> dict:
        return {"wall_seconds": round(sum(s["wall_seconds"] for s in self.stages.values()), 2),
                "cpu_seconds": round(sum(s["cpu_seconds"] for s in self.stages.values()), 2)}


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, flush=True)


def _require_matplotlib():
    try:
        import matplotlib
    except ImportError as e:
        raise MissingDependencyError("the search's Pareto plots need matplotlib, which is "
                                     "unavailable: pip install mcucompile[plot]") from e
    matplotlib.use("Agg")


def search(board, data_spec: str, out: Path, budget: str | Budget = "small", seed: int = 0,
           latency_ms: float | None = None, energy_uj: float | None = None,
           widths: tuple[float, ...] | None = None, resolutions: tuple[int, ...] | None = None,
           compare_random: bool = False, memory: str = DEFAULT_MEMORY,
           verbose: bool = True) -> SearchResult:
    """Run the whole search and write OUT/. See the module doc."""
    _require_matplotlib()
    b = BUDGETS[budget] if isinstance(budget, str) else budget
    constraints = constraints_for(board, latency_ms, energy_uj)
    clock = _Clock()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # --- data (no TensorFlow yet: a bad dataset fails fast) ------------------------
    dataset = datamod.load(data_spec)
    splits = datamod.split(dataset, seed)
    _say(verbose, f"data {dataset.name}: {len(dataset)} images {dataset.image_size[0]}x"
                  f"{dataset.image_size[1]}x{dataset.channels}, {dataset.num_classes} classes "
                  f"(train {len(splits.train)}, validation {len(splits.val)}, test {len(splits.test)})")

    # --- stage 1: the space ---------------------------------------------------------
    efficiency = EfficiencyModel(board, memory)
    rng = np.random.default_rng(seed)
    ws, rs = tuple(widths or b.widths), tuple(resolutions or b.resolutions)
    _say(verbose, f"stage 1: {len(ws) * len(rs)} candidate spaces (widths {ws}, resolutions {rs}), "
                  f"{b.stage1_samples} subnets each, against {constraints.sram_bytes:,} B of SRAM for "
                  f"the arena and {constraints.flash_bytes:,} B of flash")
    from ._tf import progbar, seed_everything, strategy
    bar = progbar(len(ws) * len(rs), "", verbose)
    choice = choose_space(ws, rs, dataset.channels, dataset.num_classes, efficiency, constraints,
                          b.stage1_samples, rng, progress=bar.update)
    space = choice.chosen
    for s in choice.stats:
        _say(verbose, f"  width {s.space.width:<5g} resolution {s.space.resolution:<4d} "
                      f"fit {s.fit_fraction:6.1%}  mean MACs of fitting {s.mean_macs:12,.0f}"
                      + ("   <- chosen" if s.space == space else ""))
    clock.lap("stage1_space")

    # --- stage 2: supernet ----------------------------------------------------------
    seed_everything(seed)
    strat = strategy()
    from . import supernet as sn
    res = space.resolution
    x_train = datamod.resize(splits.train.x, res)
    x_val = datamod.resize(splits.val.x, res)
    x_test = datamod.resize(splits.test.x, res)
    y_train, y_val, y_test = splits.train.y, splits.val.y, splits.test.y
    if len(x_train) < b.batch_size:
        raise datamod.DataError(f"data {dataset.name!r}: {len(x_train)} training images are fewer "
                                f"than one batch ({b.batch_size}); give more data")

    def macs_of(cfg: SubnetConfig) -> int:
        return efficiency.cost(space.arch(cfg)).macs

    trainer = sn.SupernetTrainer(space, strat, seed, b.batch_size)
    phases = sn.phases_for(space, {"largest": b.epochs_largest, "kernel": b.epochs_kernel,
                                   "depth": b.epochs_depth, "expand": b.epochs_expand},
                           b.random_subnets, b.lr)
    early_bird = EarlyBird()
    _say(verbose, f"stage 2: supernet of space w{space.width:g}-r{res} ({len(space.slots())} elastic "
                  f"blocks), progressive shrinking: {', '.join(p.name for p in phases)}")
    train_log = trainer.train(x_train, y_train, (x_val, y_val), phases, early_bird, verbose, macs_of)
    clock.lap("supernet_training")

    # --- stage 2: evolution ---------------------------------------------------------
    accuracy_cache: dict[SubnetConfig, float] = {}

    def accuracy(cfg: SubnetConfig) -> float:
        if cfg not in accuracy_cache:
            accuracy_cache[cfg] = trainer.accuracy(cfg, x_val, y_val, x_train, b.calib_batches)
        return accuracy_cache[cfg]

    def cost(cfg: SubnetConfig):
        return efficiency.cost(space.arch(cfg))

    settings = EvolutionSettings(b.population, b.generations)
    bar = progbar(b.evaluations, f"evolutionary search: population {b.population}, "
                                 f"{b.generations} generations", verbose)
    evo = evolve(space, cost, accuracy, constraints, settings, np.random.default_rng(seed + 1),
                 progress=bar.update)
    clock.lap("evolution")
    rand = None
    if compare_random:
        n = len(evo.scored)
        bar = progbar(n, f"random search baseline: {n} subnets (the same number)", verbose)
        rand = random_search(space, cost, accuracy, constraints, n, np.random.default_rng(seed + 2),
                             progress=bar.update)
        clock.lap("random_search")
    best = evo.best
    _say(verbose, f"best subnet {best.config.short()}: validation accuracy {best.accuracy:.3f} "
                  f"(inherited weights), peak SRAM {best.cost.peak_sram:,} B, flash {best.cost.flash:,} B, "
                  f"{best.cost.macs:,} MACs"
                  + (f"; random search's best {rand.best.accuracy:.3f}" if rand else ""))

    # --- fine-tune, quantize, compile -----------------------------------------------
    from .training import fit
    trainer.recalibrate(best.config, x_train, b.calib_batches)
    with strat.scope():
        model = trainer.net.extract(best.config)
    arch = space.arch(best.config)
    inherited = best.accuracy
    finetune = []
    if b.finetune_epochs:
        before = model.get_weights()
        ft_trainer, finetune = fit(model, x_train, y_train, (x_val, y_val), b.finetune_epochs,
                                   b.lr / 5, b.batch_size, seed, strat, best.cost.macs,
                                   f"fine-tuning the winner: {b.finetune_epochs} epochs", verbose)
        if finetune[-1].val_accuracy < inherited:      # keep what validates better
            model.set_weights(before)
    from .quantize import float_accuracy, int8_accuracy, quantize_keras, representative_sample
    val_float = float_accuracy(model, x_val, y_val)
    test_float = float_accuracy(model, x_test, y_test)
    keras_path = out / "best_float.keras"
    model.save(keras_path)
    del trainer, model
    clock.lap("finetune")
    _say(verbose, "quantizing to int8 (TFLiteConverter, per-channel weights, int8 input and output)")
    tflite = quantize_keras(keras_path, representative_sample(x_train, seed=seed))
    tflite_path = out / "best_int8.tflite"
    tflite_path.write_bytes(tflite)
    test_int8 = int8_accuracy(tflite, x_test, y_test)
    from ..pipeline import CompileOptions, compile_model
    compiled = compile_model(tflite, board, CompileOptions(memory=memory), model_name="best_int8").report
    predicted = efficiency.cost(arch)
    clock.lap("quantize_and_compile")

    fits_sram = compiled.arena_bytes <= constraints.sram_bytes
    fits_flash = compiled.weights_bytes + (predicted.flash - predicted.weights) <= constraints.flash_bytes
    report = {
        "board": board.name, "budget": b.name, "seed": seed, "replicas": strat.num_replicas_in_sync,
        "data": dataset.describe() | {"train": len(splits.train), "validation": len(splits.val),
                                      "test": len(splits.test)},
        "constraints": constraints.to_json(),
        "notes": [LATENCY_NOTE,
                  f"peak SRAM is the arena our compiler allocates for the int8 graph with memory "
                  f"strategy '{memory}' (`mcucompile build --memory {memory}`; build's default, auto, "
                  "can only be smaller); flash counts each layer's constant arrays plus a code "
                  "allowance",
                  "Early-Bird in the supernet: the largest network's from-scratch phase (L1 on the "
                  "hidden batch-norm scales) ends when the channel masks settle; before the "
                  "expand-ratio phase channels are sorted by |scale| x projection L1 norm, so the "
                  "channels the ticket would prune are the first sliced away (pruning a fixed "
                  "network to its ticket is `mcucompile train`)"],
        "stage1": choice.to_json(),
        "space": space.to_json(),
        "supernet": {"phases": train_log.to_json(),
                     "early_bird": early_bird.to_json(),
                     "largest_epochs_saved": b.epochs_largest - train_log.phases[0].epochs_run
                     if train_log.phases else 0},
        "evolution": _history_json(evo),
        "random_search": _history_json(rand) if rand else None,
        "best": {
            "config": best.config.to_json(), "name": best.config.short(), "arch": arch.to_json(),
            "predicted": predicted.to_json(),
            "compiled": {"arena_bytes": compiled.arena_bytes, "weights_bytes": compiled.weights_bytes,
                         "macs": compiled.macs, "memory": memory,
                         "memory_strategy": compiled.memory_strategy,
                         "fits_sram": fits_sram, "fits_flash": fits_flash},
            "val_accuracy_inherited": inherited,
            "finetune": [e.__dict__ for e in finetune],
            "val_accuracy_float": val_float,
            "test_accuracy_float": test_float,
            "test_accuracy_int8": test_int8,
            "input": {"resolution": res, "channels": dataset.channels,
                      "range": "float [0, 1] before quantization (uint8 images / 255)",
                      "classes": list(dataset.class_names)},
        },
        "files": {"tflite": tflite_path.name, "keras": keras_path.name},
    }
    files = {"tflite": tflite_path, "keras": keras_path}
    files |= _plots(out, evo, rand, choice, constraints, best)
    report["files"] |= {k: v.name for k, v in files.items()}
    clock.lap("report")
    report["time"] = clock.stages | {"total": clock.total()}
    (out / "search_report.json").write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    files["report"] = out / "search_report.json"
    if not (fits_sram and fits_flash):
        raise McuCompileError(
            f"the compiled model does not fit: arena {compiled.arena_bytes:,} B (limit "
            f"{constraints.sram_bytes:,} B), weights {compiled.weights_bytes:,} B; the efficiency "
            f"model predicted {predicted.peak_sram:,} B and {predicted.weights:,} B. This is a bug: "
            f"see {out / 'search_report.json'}")
    return SearchResult(out, report, space, best.config, evo, rand, files)


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON: {type(v).__name__}")


def _history_json(h: SearchHistory) -> dict:
    return {"evaluations": len(h.scored), "best_accuracy": h.best.accuracy,
            "best_name": h.best.config.short(), "best_per_generation": h.best_per_generation,
            "scored": [{"name": c.config.short(), "generation": c.generation, "accuracy": c.accuracy,
                        "peak_sram_bytes": c.cost.peak_sram, "flash_bytes": c.cost.flash,
                        "macs": c.cost.macs, "latency_ms": c.cost.latency_ms,
                        "energy_uj": c.cost.energy_uj} for c in h.scored]}


def _plots(out: Path, evo: SearchHistory, rand: SearchHistory | None, choice: SpaceChoice,
           constraints: Constraints, best) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    files = {}
    use_energy = all(c.cost.energy_uj is not None for c in evo.scored)
    axes = [("pareto_sram", "peak SRAM (KiB, our planner's arena)",
             lambda c: c.cost.peak_sram / 1024, constraints.sram_bytes / 1024)]
    if use_energy:
        axes.append(("pareto_energy", "energy per inference (uJ, static estimate)",
                     lambda c: c.cost.energy_uj, constraints.energy_uj))
    else:
        axes.append(("pareto_macs", "MACs per inference (millions)", lambda c: c.cost.macs / 1e6, None))
    for name, label, xof, limit in axes:
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
        if rand is not None:
            ax.scatter([xof(c) for c in rand.scored], [c.accuracy for c in rand.scored], marker="x",
                       color="0.6", label="random search", zorder=2)
        gens = [c.generation for c in evo.scored]
        sc = ax.scatter([xof(c) for c in evo.scored], [c.accuracy for c in evo.scored], c=gens,
                        cmap="viridis", s=22, label="evolution (colour: generation)", zorder=3)
        fig.colorbar(sc, ax=ax, label="generation")
        pts = [(xof(c), c.accuracy) for c in evo.scored]
        front = pareto_front(pts)
        ax.step([pts[i][0] for i in front], [pts[i][1] for i in front], where="post", color="C3",
                label="Pareto front", zorder=4)
        ax.scatter([xof(best)], [best.accuracy], marker="*", s=220, color="C3", edgecolor="k",
                   label="chosen", zorder=5)
        if limit is not None:
            ax.axvline(limit, color="k", linestyle="--", linewidth=1, label="board limit")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy (inherited weights)")
        ax.set_title(f"TinyNAS on {choice.chosen.label()}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        files[name] = path
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for s in choice.stats:
        if s.fitting_macs:
            m = np.array(s.fitting_macs) / 1e6
            ax.step(m, np.arange(1, len(m) + 1) / len(m), where="post",
                    label=f"{s.space.label()} ({s.fit_fraction:.0%} fit)",
                    linewidth=2.5 if s.space == choice.chosen else 1)
    ax.set_xlabel("MACs of subnets that fit (millions)")
    ax.set_ylabel("cumulative fraction")
    ax.set_title("stage 1: MAC distribution of fitting subnets per space")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "stage1_macs_cdf.png"
    fig.savefig(path)
    plt.close(fig)
    files["stage1_cdf"] = path
    return files
