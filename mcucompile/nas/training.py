"""Training plain Keras models (fine-tuning, Early-Bird, baselines) with a traced step.

Keras' fit() costs seconds per epoch in bookkeeping on a small CPU, more than
the arithmetic of these networks; a traced step under the tf.distribute
strategy does the same work. The compute of every run is accounted for:
CPU-seconds (process time, all threads: on a shared machine wall time mostly
measures the neighbours) and training MACs (3 x forward MACs per sample: the
forward pass and the two backward products).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._tf import keras, predict_in_batches, progbar, tf
from .earlybird import EarlyBird, ensure_minimum
from .models import build_model, hidden_gammas, prune
from .space import Arch

MIN_CHANNELS = 4     # a pruned block keeps at least this many hidden channels


@dataclass
class EpochLog:
    epoch: int                  # 1-based, counted over the whole run
    loss: float
    val_accuracy: float
    cpu_seconds: float          # cumulative since the run started
    train_macs: int             # cumulative
    network: str                # "dense" or "ticket"


class Trainer:
    """Trains one Keras model (softmax output) on in-memory arrays."""

    def __init__(self, model, strategy, batch_size: int, seed: int):
        self.model, self.strategy = model, strategy
        self.batch_size, self.seed = batch_size, seed
        t, k = tf(), keras()      # outside the traced functions: autograph would trace into them
        with strategy.scope():
            self.optimizer = k.optimizers.Adam(1e-3)
            self.optimizer.build(model.trainable_variables)
        variables = model.trainable_variables
        optimizer = self.optimizer

        def replica_step(x, y):
            with t.GradientTape() as tape:
                probs = model(x, training=True)
                per_example = k.losses.sparse_categorical_crossentropy(y, probs)
                loss = t.nn.compute_average_loss(per_example, global_batch_size=batch_size)
                if model.losses:     # the L1 penalty on batch-norm scales, when asked for
                    loss += t.add_n(model.losses) / strategy.num_replicas_in_sync
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        @t.function
        def step(x, y):
            return strategy.reduce(t.distribute.ReduceOp.SUM,
                                   strategy.run(replica_step, args=(x, y)), axis=None)

        self._step = step
        self._predict = t.function(lambda x: model(x, training=False))

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return predict_in_batches(self._predict, x, batch_size)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(np.argmax(self.predict(x), axis=1) == y))

    def epoch(self, x: np.ndarray, y: np.ndarray, lr_of_step, first_step: int, bar, bar_offset: int) -> float:
        """One pass over the data; returns the mean loss."""
        t = tf()
        ds = t.data.Dataset.from_tensor_slices((x, y))
        ds = ds.shuffle(len(x), seed=self.seed + first_step, reshuffle_each_iteration=False)
        ds = self.strategy.experimental_distribute_dataset(ds.batch(self.batch_size, drop_remainder=True))
        losses = []
        for k, (xb, yb) in enumerate(ds):
            self.optimizer.learning_rate.assign(lr_of_step(first_step + k))
            losses.append(float(self._step(xb, yb)))
            bar.update(bar_offset + k + 1, values=[("loss", losses[-1])])
        return float(np.mean(losses)) if losses else float("nan")


def cosine(base_lr: float, total_steps: int):
    return lambda k: 0.5 * base_lr * (1 + np.cos(np.pi * min(k, total_steps) / max(total_steps, 1)))


def steps_per_epoch(n: int, batch_size: int) -> int:
    if n < batch_size:
        from .data import DataError
        raise DataError(f"{n} training samples are fewer than one batch of {batch_size}")
    return n // batch_size


def fit(model, x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray], epochs: int,
        lr: float, batch_size: int, seed: int, strategy, macs_per_sample: int, label: str,
        verbose: bool) -> tuple[Trainer, list[EpochLog]]:
    """Plain training (fine-tuning, baselines) with a cosine schedule."""
    trainer = Trainer(model, strategy, batch_size, seed)
    spe = steps_per_epoch(len(x), batch_size)
    schedule = cosine(lr, epochs * spe)
    bar = progbar(epochs * spe, label, verbose)
    logs: list[EpochLog] = []
    cpu0 = time.process_time()
    for e in range(epochs):
        loss = trainer.epoch(x, y, schedule, e * spe, bar, e * spe)
        logs.append(EpochLog(e + 1, loss, trainer.accuracy(*val), time.process_time() - cpu0,
                             3 * macs_per_sample * spe * batch_size * (e + 1), "dense"))
    return trainer, logs


# --- Early-Bird -----------------------------------------------------------------

@dataclass
class EarlyBirdRun:
    dense_arch: Arch
    ticket_arch: Arch | None            # None: the masks never settled
    ticket_epoch: int | None
    epochs: list[EpochLog]
    detector: dict
    model: object = field(repr=False)   # the trained network (the ticket when drawn)
    trainer: object = field(repr=False)

    @property
    def final_accuracy(self) -> float:
        return self.epochs[-1].val_accuracy


def train_early_bird(arch: Arch, x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray],
                     epochs: int, lr: float, batch_size: int, seed: int, strategy, macs_of,
                     detector: EarlyBird, gamma_l1: float, verbose: bool) -> EarlyBirdRun:
    """Train `arch` with an L1 penalty on its hidden batch-norm scales until the
    Early-Bird ticket is drawn, prune to it, and train only the ticket for the
    remaining epochs (same cosine schedule, continued). macs_of(arch) -> forward MACs."""
    spe = steps_per_epoch(len(x), batch_size)
    schedule = cosine(lr, epochs * spe)
    with strategy.scope():          # mirrored variables, one copy per replica
        model = build_model(arch, gamma_l1=gamma_l1)
    trainer = Trainer(model, strategy, batch_size, seed)
    bar = progbar(epochs * spe, f"Early-Bird training: up to {epochs} epochs, ticket at "
                                f"{detector.ratio:.0%} channels pruned", verbose)
    logs: list[EpochLog] = []
    cpu0 = time.process_time()
    macs, net, current_arch = 0, "dense", arch
    ticket_arch = None
    for e in range(epochs):
        loss = trainer.epoch(x, y, schedule, e * spe, bar, e * spe)
        macs += 3 * macs_of(current_arch) * spe * batch_size
        logs.append(EpochLog(e + 1, loss, trainer.accuracy(*val), time.process_time() - cpu0, macs, net))
        if net == "dense" and detector.update(hidden_gammas(model, arch)):
            keep = ensure_minimum(detector.ticket, hidden_gammas(model, arch), MIN_CHANNELS)
            with strategy.scope():
                ticket_arch, model = prune(model, arch, keep)
            trainer = Trainer(model, strategy, batch_size, seed)
            net, current_arch = "ticket", ticket_arch
            if verbose:
                kept = sum(int(m.sum()) for m in keep)
                total = sum(m.size for m in keep)
                print(f"\n  Early-Bird ticket drawn after epoch {e + 1}: keeping {kept} of {total} "
                      f"hidden channels; training only the ticket from here")
    return EarlyBirdRun(arch, ticket_arch, detector.epoch, logs, detector.to_json(), model, trainer)


@dataclass(frozen=True)
class Savings:
    """Compute to reach the same accuracy: full training against Early-Bird training."""
    target_accuracy: float          # full training's final validation accuracy, less the tolerance
    tolerance: float
    full_epochs: int                # epochs full training needed to reach the target
    full_train_macs: int
    full_cpu_seconds: float
    eb_epochs: int | None           # None: Early-Bird training never reached the target
    eb_train_macs: int | None
    eb_cpu_seconds: float | None

    @property
    def macs_saved(self) -> float | None:
        return None if self.eb_train_macs is None else 1 - self.eb_train_macs / self.full_train_macs

    @property
    def cpu_saved(self) -> float | None:
        return None if self.eb_cpu_seconds is None else 1 - self.eb_cpu_seconds / self.full_cpu_seconds

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["train_flops_full"] = 2 * self.full_train_macs
        d["train_flops_early_bird"] = None if self.eb_train_macs is None else 2 * self.eb_train_macs
        d["train_flops_saved_fraction"] = self.macs_saved
        d["cpu_seconds_saved_fraction"] = self.cpu_saved
        return d


def savings(full: list[EpochLog], eb: list[EpochLog], tolerance: float = 0.01) -> Savings:
    """Cost of each run up to the first epoch at which it reached full training's final
    validation accuracy (less `tolerance`, in absolute accuracy)."""
    target = full[-1].val_accuracy - tolerance

    def first(logs: list[EpochLog]) -> EpochLog | None:
        return next((e for e in logs if e.val_accuracy >= target), None)

    f = first(full)
    assert f is not None        # the final epoch reaches it by definition
    b = first(eb)
    return Savings(target, tolerance, f.epoch, f.train_macs, f.cpu_seconds,
                   None if b is None else b.epoch, None if b is None else b.train_macs,
                   None if b is None else b.cpu_seconds)
