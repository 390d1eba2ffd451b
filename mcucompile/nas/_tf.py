"""Lazy TensorFlow: imported only by the commands that train, never by `mcucompile build`."""
from __future__ import annotations

import os

from ..errors import MissingDependencyError

INSTALL_HINT = "pip install mcucompile[nas]"


def tf():
    """The tensorflow module, or MissingDependencyError saying how to get it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN's float sums change order with the CPU and its load: off, so that the same
    # --seed gives the same network on every machine (at some training speed).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import tensorflow
    except ImportError as e:
        raise MissingDependencyError(f"TensorFlow is unavailable: {INSTALL_HINT}") from e
    if os.environ.get(CPU_REPLICAS_ENV) and not _configured:
        _configured.append(_cpu_replicas(tensorflow, os.environ[CPU_REPLICAS_ENV]))
    return tensorflow


_configured: list = []      # the replicas' strategy, once made: devices are fixed at first use


def keras():
    tf()
    import keras as k
    return k


def predict_in_batches(fn, x, batch_size: int = 256):
    """Concatenated fn(batch).numpy() over x. A short last batch is zero-padded when
    there are several, so a tf.function sees one input shape and traces once."""
    import numpy as np
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        n = len(xb)
        if n < batch_size and len(x) > batch_size:
            xb = np.concatenate([xb, np.zeros((batch_size - n,) + xb.shape[1:], xb.dtype)])
        out.append(fn(xb).numpy()[:n])
    return np.concatenate(out)


def seed_everything(seed: int) -> None:
    """Python, numpy and TensorFlow seeds, and deterministic TF kernels: same seed, same run."""
    t = tf()
    t.keras.utils.set_random_seed(seed)
    t.config.experimental.enable_op_determinism()


def strategy():
    """MirroredStrategy over the GPUs when there are several, else the default strategy.

    Every model and optimizer is created in its scope and every step runs
    through `strategy.run`, so the same code scales out without change.
    """
    t = tf()
    if _configured:
        return _configured[0]
    gpus = t.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return t.distribute.MirroredStrategy()
    return t.distribute.get_strategy()


# MirroredStrategy over N logical CPU devices: the multi-GPU code path (mirrored variables,
# per-replica steps, cross-replica sums) exercised on a machine without GPUs.
CPU_REPLICAS_ENV = "MCUCOMPILE_CPU_REPLICAS"


def _cpu_replicas(t, value: str):
    from ..errors import McuCompileError
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise McuCompileError(f"{CPU_REPLICAS_ENV}={value!r}: give a number of replicas >= 1")
    cpu = t.config.list_physical_devices("CPU")[0]
    if len(t.config.get_logical_device_configuration(cpu) or ()) != n:
        try:
            t.config.set_logical_device_configuration(cpu, [t.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:        # TensorFlow already placed something on the CPU
            raise McuCompileError(f"{CPU_REPLICAS_ENV}: TensorFlow's devices were initialized "
                                  "before the replicas could be set up") from None
    return t.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])


def progbar(total: int, label: str, verbose: bool):
    """Keras' progress bar (silent when not verbose)."""
    k = keras()
    if verbose:
        print(label)
    return k.utils.Progbar(total, verbose=1 if verbose else 0, unit_name="step")
