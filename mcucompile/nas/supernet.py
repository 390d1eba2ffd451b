"""The once-for-all supernet in Keras: elastic kernel, depth and expand ratio with shared weights.

Every subnet of a SearchSpace is a sub-network of one set of weights (the
largest subnet's). Instead of rebuilding a graph per subnet, the supernet runs
the largest graph and *masks* it, which is exactly equivalent and lets one
traced step serve every subnet:

* kernel size k: the depthwise kernel is zero outside its centre k x k. With
  SAME padding a centred odd kernel inside a larger zero kernel gives the same
  output as the small kernel, for any stride. The small kernels are derived
  from the big one as in OFA: centre crop, then a learned per-layer linear
  transform (k^2 x k^2, initialized to identity), 7 -> 5 -> 3.
* expand ratio e: the hidden channels past in_channels * e are zeroed after
  each activation (channel slicing: subnets keep the first channels; before
  the expand-ratio phase channels are sorted by importance).
* depth d: blocks past the d-th of a stage are gated off (y = x + 0 * f(x));
  only blocks with a residual path can be, and all blocks past the first are.

Training (train_supernet) uses progressive shrinking: the largest network from
scratch (with Early-Bird detection: it stops once the channel masks settle),
then elastic kernel, then depth, then expand ratio. Each step trains a
sandwich of subnets, the largest, the smallest and random ones, and the
others learn from the largest's predictions (in-place distillation).

Batch norm is our own small layer so that statistics can be recalibrated for
each subnet (OFA's "reset running statistics") before it is evaluated.

Import this module only when training: it imports TensorFlow.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._tf import keras as _keras
from ._tf import predict_in_batches, progbar
from ._tf import tf as _tf
from .earlybird import EarlyBird
from .models import BN_EPSILON, build_model
from .space import Block, SearchSpace, SubnetConfig

tf = _tf()
keras = _keras()

TRAIN_BN_MOMENTUM = 0.9      # short runs: let the running statistics follow quickly


class ElasticBN(keras.layers.Layer):
    """Batch norm whose running-statistics momentum is an argument of each call."""

    def __init__(self, channels: int, name: str):
        super().__init__(name=name)
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=(channels,), initializer="zeros", trainable=False,
                                           aggregation="mean", name="moving_mean")
        self.moving_var = self.add_weight(shape=(channels,), initializer="ones", trainable=False,
                                          aggregation="mean", name="moving_variance")

    def forward(self, x, training: bool, momentum):
        # The fused op is one graph node instead of a dozen: the traced step stays small.
        if training:
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(x, self.gamma, self.beta, epsilon=BN_EPSILON,
                                                            is_training=True)
            self.moving_mean.assign(momentum * self.moving_mean + (1.0 - momentum) * mean)
            self.moving_var.assign(momentum * self.moving_var + (1.0 - momentum) * var)
            return y
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, self.gamma, self.beta, self.moving_mean,
                                                   self.moving_var, epsilon=BN_EPSILON, is_training=False)
        return y

    def arrays(self, keep=slice(None)) -> list[np.ndarray]:
        """gamma, beta, mean, variance: Keras BatchNormalization's weight order."""
        return [v.numpy()[keep] for v in (self.gamma, self.beta, self.moving_mean, self.moving_var)]


def _conv_init():
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="truncated_normal")


class ElasticBlock(keras.layers.Layer):
    """An inverted-residual block at its largest: kernel max(kernels), hidden in_c * max(expands)."""

    def __init__(self, in_c: int, out_c: int, stride: int, kernels: tuple[int, ...],
                 max_expand: int, name: str):
        super().__init__(name=name)
        self.in_c, self.out_c, self.stride = in_c, out_c, stride
        self.kernels = tuple(sorted(kernels, reverse=True))          # 7, 5, 3
        self.hmax = in_c * max_expand
        kmax = self.kernels[0]
        self.expand = self.add_weight(shape=(1, 1, in_c, self.hmax), initializer=_conv_init(), name="expand")
        self.expand_bn = ElasticBN(self.hmax, f"{name}_expand_bn")
        self.dw = self.add_weight(shape=(kmax, kmax, self.hmax, 1), initializer=_conv_init(), name="dw")
        # One learned transform per step down, shared by all channels (OFA).
        self.transforms = [self.add_weight(shape=(k * k, k * k), initializer="identity", name=f"to{k}")
                           for k in self.kernels[1:]]
        self.dw_bn = ElasticBN(self.hmax, f"{name}_dw_bn")
        self.project = self.add_weight(shape=(1, 1, self.hmax, out_c), initializer=_conv_init(), name="project")
        self.project_bn = ElasticBN(out_c, f"{name}_project_bn")

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_c == self.out_c

    def kernels_by_size(self) -> list:
        """The depthwise kernel of each size (largest first), unpadded."""
        out = [tf.convert_to_tensor(self.dw)]
        cur = out[0]
        for big, small, t in zip(self.kernels, self.kernels[1:], self.transforms):
            off = (big - small) // 2
            c = cur[off:off + small, off:off + small]                           # [s, s, H, 1]
            flat = tf.reshape(tf.transpose(c, [2, 3, 0, 1]), [-1, small * small]) @ t
            cur = tf.transpose(tf.reshape(flat, [self.hmax, 1, small, small]), [2, 3, 0, 1])
            out.append(cur)
        return out

    def mixed_kernel(self, kernel_sel):
        """The kernel that kernel_sel (one-hot over self.kernels) picks, zero-padded to the largest."""
        kmax = self.kernels[0]
        total = 0.0
        for i, k in enumerate(self.kernels_by_size()):
            p = (kmax - int(k.shape[0])) // 2
            total += kernel_sel[i] * tf.pad(k, [[p, p], [p, p], [0, 0], [0, 0]])
        return total

    def forward(self, x, kernel_sel, hidden, gate, training: bool, momentum):
        mask = tf.cast(tf.range(self.hmax) < hidden, x.dtype)
        h = tf.nn.conv2d(x, self.expand, 1, "VALID")
        h = tf.nn.relu6(self.expand_bn.forward(h, training, momentum)) * mask
        h = tf.nn.depthwise_conv2d(h, self.mixed_kernel(kernel_sel), [1, self.stride, self.stride, 1], "SAME")
        h = tf.nn.relu6(self.dw_bn.forward(h, training, momentum)) * mask
        h = tf.nn.conv2d(h, self.project, 1, "VALID")
        h = self.project_bn.forward(h, training, momentum)
        return x + gate * h if self.residual else h

    def sort_channels(self) -> None:
        """Put the most important hidden channels first, so that a smaller expand ratio
        keeps the ones that matter. Importance: the L1 norm of the channel's projection
        weights (OFA) times its |gamma| after the depthwise conv (the scale Early-Bird's
        L1 penalty drove towards zero for the channels its mask would prune)."""
        importance = (np.abs(self.project.numpy()[0, 0]).sum(axis=1)
                      * np.abs(self.dw_bn.gamma.numpy()))
        order = np.argsort(-importance, kind="stable")
        self.expand.assign(self.expand.numpy()[..., order])
        self.dw.assign(self.dw.numpy()[:, :, order, :])
        self.project.assign(self.project.numpy()[:, :, order, :])
        for bn in (self.expand_bn, self.dw_bn):
            for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_var):
                v.assign(v.numpy()[order])


@dataclass(frozen=True)
class Encoded:
    """A subnet as the tensors the traced step takes (same shapes for every subnet)."""
    kernel_sel: np.ndarray     # float32 [slots, len(kernels)], one-hot, largest kernel first
    hidden: np.ndarray         # int32 [slots], active hidden channels
    gate: np.ndarray           # float32 [slots], 1 = block active

    def tensors(self):
        return (tf.constant(self.kernel_sel), tf.constant(self.hidden), tf.constant(self.gate))


class Supernet(keras.Model):
    def __init__(self, space: SearchSpace):
        super().__init__(name="supernet")
        self.space = space
        self.kernels = tuple(sorted(space.kernels, reverse=True))
        c_in, stem, first = space.in_channels, space.stem_channels, space.first_channels
        self.stem = self.add_weight(shape=(3, 3, c_in, stem), initializer=_conv_init(), name="stem_conv")
        self.stem_bn = ElasticBN(stem, "stem_bn")
        self.b0_dw = self.add_weight(shape=(3, 3, stem, 1), initializer=_conv_init(), name="b0_dw")
        self.b0_dw_bn = ElasticBN(stem, "b0_dw_bn")
        self.b0_project = self.add_weight(shape=(1, 1, stem, first), initializer=_conv_init(), name="b0_project")
        self.b0_project_bn = ElasticBN(first, "b0_project_bn")
        self.slots: list[ElasticBlock] = []
        prev = first
        for s, j in space.slots():
            out_c = space.stage_channels[s]
            stride = space.stages[s].stride if j == 0 else 1
            self.slots.append(ElasticBlock(prev, out_c, stride, space.kernels, max(space.expands),
                                           name=f"s{s}_{j}"))
            prev = out_c
        self.fc = self.add_weight(shape=(prev, space.num_classes), initializer="glorot_uniform", name="fc")
        self.fc_bias = self.add_weight(shape=(space.num_classes,), initializer="zeros", name="fc_bias")

    def encode(self, cfg: SubnetConfig) -> Encoded:
        slots = self.space.slots()
        sel = np.zeros((len(slots), len(self.kernels)), np.float32)
        hidden = np.zeros(len(slots), np.int32)
        gate = np.zeros(len(slots), np.float32)
        for i, ((s, j), blk) in enumerate(zip(slots, self.slots)):
            stage = cfg.stages[s]
            b = stage[j] if j < len(stage) else stage[-1]
            sel[i, self.kernels.index(b.kernel)] = 1.0
            hidden[i] = blk.in_c * b.expand
            gate[i] = 1.0 if j < len(stage) else 0.0
        return Encoded(sel, hidden, gate)

    def forward(self, x, cfg, training: bool, momentum):
        kernel_sel, hidden, gate = cfg
        h = tf.nn.conv2d(x, self.stem, 2, "SAME")
        h = tf.nn.relu6(self.stem_bn.forward(h, training, momentum))
        h = tf.nn.depthwise_conv2d(h, self.b0_dw, [1, 1, 1, 1], "SAME")
        h = tf.nn.relu6(self.b0_dw_bn.forward(h, training, momentum))
        h = tf.nn.conv2d(h, self.b0_project, 1, "VALID")
        h = self.b0_project_bn.forward(h, training, momentum)
        for i, blk in enumerate(self.slots):
            h = blk.forward(h, kernel_sel[i], hidden[i], gate[i], training, momentum)
        h = tf.reduce_mean(h, axis=[1, 2])
        return h @ self.fc + self.fc_bias

    def dw_gammas(self) -> list[np.ndarray]:
        return [np.abs(b.dw_bn.gamma.numpy()) for b in self.slots]

    def extract(self, cfg: SubnetConfig):
        """A plain Keras model of one subnet carrying its share of the weights
        (and the batch-norm statistics as they stand: recalibrate first)."""
        space = self.space
        arch = space.arch(cfg)
        model = build_model(arch)
        model.get_layer("stem_conv").set_weights([self.stem.numpy()])
        model.get_layer("stem_bn").set_weights(self.stem_bn.arrays())
        model.get_layer("b0_dw").set_weights([self.b0_dw.numpy()])
        model.get_layer("b0_dw_bn").set_weights(self.b0_dw_bn.arrays())
        model.get_layer("b0_project").set_weights([self.b0_project.numpy()])
        model.get_layer("b0_project_bn").set_weights(self.b0_project_bn.arrays())
        i = 1
        for (s, j), blk in zip(space.slots(), self.slots):
            if j >= len(cfg.stages[s]):
                continue
            b: Block = cfg.stages[s][j]
            h = blk.in_c * b.expand
            kernel = blk.kernels_by_size()[blk.kernels.index(b.kernel)].numpy()
            model.get_layer(f"b{i}_expand").set_weights([blk.expand.numpy()[..., :h]])
            model.get_layer(f"b{i}_expand_bn").set_weights(blk.expand_bn.arrays(slice(0, h)))
            model.get_layer(f"b{i}_dw").set_weights([kernel[:, :, :h, :]])
            model.get_layer(f"b{i}_dw_bn").set_weights(blk.dw_bn.arrays(slice(0, h)))
            model.get_layer(f"b{i}_project").set_weights([blk.project.numpy()[:, :, :h, :]])
            model.get_layer(f"b{i}_project_bn").set_weights(blk.project_bn.arrays())
            i += 1
        model.get_layer("fc").set_weights([self.fc.numpy(), self.fc_bias.numpy()])
        return model


# --- training -------------------------------------------------------------------

@dataclass(frozen=True)
class Phase:
    """One stage of progressive shrinking: which choices are elastic, for how long."""
    name: str
    epochs: int
    kernels: tuple[int, ...]
    depths: tuple[int, ...]
    expands: tuple[int, ...]
    learning_rate: float
    random_subnets: int          # per step, besides the largest and the smallest


def phases_for(space: SearchSpace, epochs: dict[str, int], random_subnets: int,
               base_lr: float) -> list[Phase]:
    K, D, E = max(space.kernels), max(space.depths), max(space.expands)
    # Every phase restarts the cosine schedule at the full rate: with the few epochs a
    # small budget affords, halving it (as OFA does over hundreds) left the small
    # subnets ~6 points less accurate on digits.
    out = [Phase("largest", epochs["largest"], (K,), (D,), (E,), base_lr, 0),
           Phase("kernel", epochs["kernel"], space.kernels, (D,), (E,), base_lr, random_subnets),
           Phase("depth", epochs["depth"], space.kernels, space.depths, (E,), base_lr, random_subnets),
           Phase("expand", epochs["expand"], space.kernels, space.depths, space.expands, base_lr,
                 random_subnets)]
    return [p for p in out if p.epochs > 0]


@dataclass
class PhaseLog:
    name: str
    epochs_planned: int
    epochs_run: int
    steps: int
    subnets_per_step: int
    cpu_seconds: float
    wall_seconds: float
    train_macs: int                 # forward MACs of the trained subnets x samples x 3 (fwd+bwd)
    val_accuracy_largest: float | None = None
    early_bird: dict | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TrainLog:
    phases: list[PhaseLog] = field(default_factory=list)

    def to_json(self) -> list:
        return [p.to_json() for p in self.phases]


def _subspace(space: SearchSpace, phase: Phase) -> SearchSpace:
    from dataclasses import replace
    return replace(space, kernels=phase.kernels, depths=phase.depths, expands=phase.expands)


class SupernetTrainer:
    """Progressive shrinking with sandwich sampling and in-place distillation, under a
    tf.distribute strategy.

    One traced step trains one subnet (its configuration and its soft targets are
    tensor arguments), so a whole run traces it once: tracing this graph costs
    tens of seconds on a small CPU, a step a fraction of one. A sandwich is the
    largest subnet's step (plain cross-entropy; its predictions become the
    targets), then a step for each other subnet (half cross-entropy, half
    distillation from the largest).
    """

    def __init__(self, space: SearchSpace, strategy, seed: int, batch_size: int,
                 distill_weight: float = 0.5, gamma_l1: float = 1e-4):
        self.space, self.strategy, self.seed = space, strategy, seed
        self.batch_size = batch_size
        self.distill_weight = distill_weight
        self.l1_value = gamma_l1
        self.rng = np.random.default_rng(seed)
        with strategy.scope():
            self.net = Supernet(space)
            self.momentum = tf.Variable(TRAIN_BN_MOMENTUM, trainable=False)
            self.gamma_l1 = tf.Variable(0.0, trainable=False)
            self.optimizer = keras.optimizers.Adam(1e-3)
            self.optimizer.build(self.net.trainable_variables)
        self._step = self._make_step()
        num_classes = space.num_classes
        self._onehot = tf.function(lambda y: strategy.run(
            lambda t: tf.one_hot(t, num_classes), args=(y,)))
        self._predict = tf.function(lambda x, cfg: self.net.forward(x, cfg, False, 0.0),
                                    reduce_retracing=True)
        self._calibrate = tf.function(lambda x, cfg, m: self.net.forward(x, cfg, True, m),
                                      reduce_retracing=True)

    def _make_step(self):
        net, strategy, optimizer = self.net, self.strategy, self.optimizer
        global_batch = self.batch_size
        num_classes = self.space.num_classes

        def replica_step(x, y, cfg, teacher, kd_weight):
            # Cross-entropy is linear in the target: mixing the targets mixes the losses.
            target = kd_weight * teacher + (1.0 - kd_weight) * tf.one_hot(y, num_classes)
            with tf.GradientTape() as tape:
                logits = net.forward(x, cfg, True, self.momentum)
                per_example = keras.losses.categorical_crossentropy(target, logits, from_logits=True)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                l1 = tf.add_n([tf.reduce_sum(tf.abs(b.dw_bn.gamma)) for b in net.slots])
                loss += self.gamma_l1 * l1 / strategy.num_replicas_in_sync
            grads = tape.gradient(loss, net.trainable_variables)
            optimizer.apply_gradients(zip(grads, net.trainable_variables))
            return loss, tf.stop_gradient(tf.nn.softmax(logits))

        @tf.function
        def step(x, y, cfg, teacher, kd_weight):
            loss, probs = strategy.run(replica_step, args=(x, y, cfg, teacher, kd_weight))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), probs

        return step

    def _dataset(self, x: np.ndarray, y: np.ndarray):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        ds = ds.shuffle(len(x), seed=self.seed, reshuffle_each_iteration=True)
        ds = ds.batch(self.batch_size, drop_remainder=True)
        return self.strategy.experimental_distribute_dataset(ds)

    def sandwich(self, phase: Phase) -> list[SubnetConfig]:
        """The largest subnet of the phase, then its smallest and random ones."""
        sub = _subspace(self.space, phase)
        cfgs = [sub.largest()]
        if phase.random_subnets:
            cfgs.append(sub.smallest())
            cfgs += [sub.sample(self.rng) for _ in range(phase.random_subnets)]
        return cfgs

    def _reset_optimizer(self) -> None:
        """Zero Adam's moments and step count: after sorting channels they belong to others."""
        for v in self.optimizer.variables:
            v.assign(tf.zeros_like(v))

    def train(self, x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray],
              phases: list[Phase], early_bird: EarlyBird | None, verbose: bool,
              macs_of) -> TrainLog:
        """Run the phases. macs_of(cfg) -> forward MACs, for the compute accounting."""
        log = TrainLog()
        steps_per_epoch = len(x) // self.batch_size
        if steps_per_epoch < 1:
            raise ValueError(f"{len(x)} training samples are fewer than one batch of {self.batch_size}")
        data = self._dataset(x, y)
        kd = tf.constant(self.distill_weight, tf.float32)
        no_kd = tf.constant(0.0, tf.float32)
        for phase in phases:
            if phase.name == "expand":
                for blk in self.net.slots:
                    blk.sort_channels()
                self._reset_optimizer()
            watch = early_bird if phase.name == "largest" else None
            self.gamma_l1.assign(self.l1_value if watch is not None else 0.0)
            n_sub = len(self.sandwich(phase))
            plog = PhaseLog(phase.name, phase.epochs, 0, 0, n_sub, 0.0, 0.0, 0)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            total_steps = phase.epochs * steps_per_epoch
            bar = progbar(total_steps, f"supernet phase '{phase.name}': up to {phase.epochs} epoch(s), "
                                       f"{n_sub} subnet(s) per batch", verbose)
            k = 0
            for epoch in range(phase.epochs):
                for xb, yb in data:
                    lr = 0.5 * phase.learning_rate * (1 + np.cos(np.pi * k / total_steps))
                    self.optimizer.learning_rate.assign(lr)
                    cfgs = self.sandwich(phase)
                    loss, teacher = self._step(xb, yb, self.net.encode(cfgs[0]).tensors(),
                                               self._onehot(yb), no_kd)
                    for cfg in cfgs[1:]:
                        self._step(xb, yb, self.net.encode(cfg).tensors(), teacher, kd)
                    plog.train_macs += 3 * self.batch_size * sum(macs_of(c) for c in cfgs)
                    k += 1
                    bar.update(k, values=[("loss", float(loss))])
                plog.epochs_run = epoch + 1
                if watch is not None and watch.update(self.net.dw_gammas()):
                    if verbose:
                        print(f"\n  Early-Bird ticket drawn after epoch {epoch + 1}: the channel masks "
                              f"changed < {watch.threshold:.0%} over {watch.window} epochs; "
                              f"ending the largest network's training")
                    break
            plog.steps = k
            plog.cpu_seconds = time.process_time() - cpu0
            plog.wall_seconds = time.perf_counter() - wall0
            if watch is not None:
                plog.early_bird = watch.to_json()
            plog.val_accuracy_largest = self.accuracy(self.space.largest(), val[0], val[1], x)
            if verbose:
                print(f"  largest subnet: validation accuracy {plog.val_accuracy_largest:.3f}")
            log.phases.append(plog)
        return log

    # --- evaluation with inherited weights ---------------------------------------

    def recalibrate(self, cfg: SubnetConfig, x: np.ndarray, batches: int, batch_size: int = 64) -> None:
        """Reset the batch-norm statistics to this subnet's: the average over `batches`
        fixed training batches (cumulative: momentum i/(i+1))."""
        enc = self.net.encode(cfg).tensors()
        for i in range(batches):
            start = (i * batch_size) % max(len(x) - batch_size + 1, 1)
            self._calibrate(tf.constant(x[start:start + batch_size]), enc,
                            tf.constant(i / (i + 1), tf.float32))

    def predict(self, cfg: SubnetConfig, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits of one subnet (inference-mode batch norm)."""
        enc = self.net.encode(cfg).tensors()
        return predict_in_batches(lambda xb: self._predict(tf.constant(xb), enc), x, batch_size)

    def accuracy(self, cfg: SubnetConfig, x: np.ndarray, y: np.ndarray, calib_x: np.ndarray,
                 calib_batches: int = 4) -> float:
        self.recalibrate(cfg, calib_x, calib_batches)
        return float(np.mean(np.argmax(self.predict(cfg, x), axis=1) == y))
