"""Early-Bird tickets (You et al., ICLR 2020): find the pruned network early in training.

Train with an L1 penalty on the batch-norm scales (gammas). After each epoch,
the channels whose |gamma| is below the global `ratio` quantile are the ones
pruning would remove: that is the epoch's channel mask. When the masks stop
changing (the largest normalized Hamming distance between consecutive epochs'
masks, over the last `window` epochs, is below `threshold`), the ticket is
drawn: prune to it and train only the small network from there on.

This module is the detection logic, in numpy; training.py uses it for fixed
networks (`mcucompile train`) and supernet.py for the supernet's largest network.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

DEFAULT_RATIO = 0.5
DEFAULT_THRESHOLD = 0.1
DEFAULT_WINDOW = 3
DEFAULT_L1 = 1e-4


def channel_masks(gammas: list[np.ndarray], ratio: float) -> list[np.ndarray]:
    """Keep-masks (True = keep) pruning the `ratio` smallest |gamma| over all layers together."""
    flat = np.concatenate([np.abs(g).reshape(-1) for g in gammas])
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1), not {ratio}")
    k = int(ratio * flat.size)
    if k == 0:
        return [np.ones(g.shape, dtype=bool) for g in gammas]
    threshold = np.sort(flat)[k - 1]
    return [np.abs(g) > threshold for g in gammas]


def mask_distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Normalized Hamming distance between two lists of masks: the fraction of channels that differ."""
    fa = np.concatenate([m.reshape(-1) for m in a])
    fb = np.concatenate([m.reshape(-1) for m in b])
    return float(np.count_nonzero(fa != fb)) / max(fa.size, 1)


def ensure_minimum(masks: list[np.ndarray], gammas: list[np.ndarray], minimum: int) -> list[np.ndarray]:
    """Keep at least `minimum` channels in every layer (the largest |gamma| ones)."""
    out = []
    for m, g in zip(masks, gammas):
        m = m.copy()
        need = min(minimum, m.size)
        if m.sum() < need:
            m[np.argsort(-np.abs(g))[:need]] = True
        out.append(m)
    return out


@dataclass
class EarlyBird:
    """Feed it each epoch's gammas; it says when the ticket is drawn."""
    ratio: float = DEFAULT_RATIO
    threshold: float = DEFAULT_THRESHOLD
    window: int = DEFAULT_WINDOW

    def __post_init__(self):
        self.previous: list[np.ndarray] | None = None
        self.distances: deque[float] = deque(maxlen=self.window)
        self.history: list[float] = []          # distance after each epoch (from the 2nd)
        self.ticket: list[np.ndarray] | None = None
        self.epoch: int | None = None           # 1-based epoch the ticket was drawn after
        self._epochs = 0

    def update(self, gammas: list[np.ndarray]) -> bool:
        """Record one epoch; True once the ticket is drawn (and from then on)."""
        self._epochs += 1
        masks = channel_masks(gammas, self.ratio)
        if self.previous is not None:
            d = mask_distance(masks, self.previous)
            self.distances.append(d)
            self.history.append(d)
        self.previous = masks
        if (self.ticket is None and len(self.distances) == self.window
                and max(self.distances) < self.threshold):
            self.ticket, self.epoch = masks, self._epochs
        return self.ticket is not None

    @property
    def drawn(self) -> bool:
        return self.ticket is not None

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "threshold": self.threshold, "window": self.window,
                "mask_distances": [round(d, 4) for d in self.history], "ticket_epoch": self.epoch}
