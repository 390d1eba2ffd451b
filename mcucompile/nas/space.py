"""The search space: MobileNetV2 inverted-residual stages, MCUNet / ProxylessNAS style.

A *space* is fixed by a width multiplier and an input resolution (what stage 1
of the search chooses). Inside it, a *subnet* picks per stage a depth in
DEPTHS and per block a depthwise kernel in KERNELS and an expand ratio in
EXPANDS (what stage 2 chooses). An `Arch` is the concrete network a subnet
stands for: every layer's channel counts, the form that the Keras builder,
the efficiency model (our IR and planner) and Early-Bird pruning all read.

Network layout (channels at width 1.0):

    stem      3x3 conv, stride 2, 16 channels, ReLU6
    block 0   fixed depthwise-separable block: 3x3 depthwise + ReLU6, 1x1 to 8 (linear)
    stage 1-4 elastic inverted-residual blocks (1x1 expand + ReLU6, kxk depthwise +
              ReLU6, 1x1 project, linear), widths 16, 24, 40, 64, first block
              of a stage strided 2, 2, 2, 1; a residual add where shapes allow
    head      global average pool, fully connected, softmax

Everything here is plain Python and numpy: no TensorFlow.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import McuCompileError

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)

# Channel counts are rounded to multiples of this. MobileNet uses 8; the tiny
# widths an MCU affords (0.25-0.5) would collapse onto a few sizes with 8.
CHANNEL_DIVISOR = 4

STEM_CHANNELS = 16
FIRST_BLOCK_CHANNELS = 8


@dataclass(frozen=True)
class StageSpec:
    channels: int          # at width 1.0
    stride: int            # of the stage's first block


STAGES: tuple[StageSpec, ...] = (StageSpec(16, 2), StageSpec(24, 2), StageSpec(40, 2),
                                 StageSpec(64, 1))


def make_divisible(v: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """MobileNet's rounding: nearest multiple of `divisor`, never below 90% of v."""
    n = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if n < 0.9 * v:
        n += divisor
    return n


# --- subnets -------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Block:
    """The choices of one elastic block."""
    kernel: int
    expand: int


@dataclass(frozen=True, order=True)
class SubnetConfig:
    """One subnet: per stage, its blocks (the tuple's length is the stage's depth)."""
    stages: tuple[tuple[Block, ...], ...]

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)

    def short(self) -> str:
        """A compact name, e.g. 'k3e4.k5e6|k7e3.k3e3|...'."""
        return "|".join(".".join(f"k{b.kernel}e{b.expand}" for b in s) for s in self.stages)

    def to_json(self) -> list:
        return [[[b.kernel, b.expand] for b in s] for s in self.stages]

    @staticmethod
    def from_json(data) -> "SubnetConfig":
        try:
            return SubnetConfig(tuple(tuple(Block(int(k), int(e)) for k, e in s) for s in data))
        except (TypeError, ValueError) as e:
            raise McuCompileError(f"not a subnet configuration (a list per stage of "
                                  f"[kernel, expand] pairs): {data!r}") from e


# --- concrete architectures ------------------------------------------------------

@dataclass(frozen=True)
class BlockArch:
    """One inverted-residual block with its channel counts fixed."""
    in_channels: int
    hidden: int            # channels after the expand conv (== in_channels without one)
    out_channels: int
    kernel: int
    stride: int
    expand_conv: bool      # False for the fixed depthwise-separable block 0

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class Arch:
    """A concrete network: what gets built, measured, pruned and deployed."""
    resolution: int
    in_channels: int
    stem_channels: int
    blocks: tuple[BlockArch, ...]
    num_classes: int

    @property
    def last_channels(self) -> int:
        return self.blocks[-1].out_channels if self.blocks else self.stem_channels

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "Arch":
        try:
            blocks = tuple(BlockArch(**b) for b in data["blocks"])
            arch = Arch(resolution=int(data["resolution"]), in_channels=int(data["in_channels"]),
                        stem_channels=int(data["stem_channels"]), blocks=blocks,
                        num_classes=int(data["num_classes"]))
        except (KeyError, TypeError, ValueError) as e:
            raise McuCompileError(f"not an architecture description ({e}): expected resolution, "
                                  "in_channels, stem_channels, blocks and num_classes") from None
        arch.check()
        return arch

    def check(self) -> None:
        prev = self.stem_channels
        for i, b in enumerate(self.blocks):
            if b.in_channels != prev or min(b.hidden, b.out_channels, b.kernel, b.stride) < 1:
                raise McuCompileError(f"architecture block {i} does not follow block {i - 1}: "
                                      f"{b} after {prev} channels")
            if not b.expand_conv and b.hidden != b.in_channels:
                raise McuCompileError(f"architecture block {i} has no expand conv but "
                                      f"{b.hidden} != {b.in_channels} hidden channels")
            if b.kernel % 2 == 0:
                raise McuCompileError(f"architecture block {i}: kernel {b.kernel} is not odd")
            prev = b.out_channels
        if self.resolution < 4 or self.num_classes < 2 or self.in_channels < 1:
            raise McuCompileError(f"architecture: resolution {self.resolution}, {self.in_channels} "
                                  f"input channels, {self.num_classes} classes is not a classifier")


# --- the space -------------------------------------------------------------------

@dataclass(frozen=True)
class SearchSpace:
    width: float
    resolution: int
    in_channels: int
    num_classes: int
    kernels: tuple[int, ...] = KERNELS
    expands: tuple[int, ...] = EXPANDS
    depths: tuple[int, ...] = DEPTHS
    stages: tuple[StageSpec, ...] = field(default=STAGES)

    @property
    def stem_channels(self) -> int:
        return make_divisible(STEM_CHANNELS * self.width)

    @property
    def first_channels(self) -> int:
        return make_divisible(FIRST_BLOCK_CHANNELS * self.width)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(make_divisible(s.channels * self.width) for s in self.stages)

    def label(self) -> str:
        return f"w{self.width:g}-r{self.resolution}"

    def sample(self, rng: np.random.Generator) -> SubnetConfig:
        """A uniformly random subnet."""
        stages = []
        for _ in self.stages:
            depth = int(rng.choice(self.depths))
            stages.append(tuple(self.random_block(rng) for _ in range(depth)))
        return SubnetConfig(tuple(stages))

    def random_block(self, rng: np.random.Generator) -> Block:
        return Block(int(rng.choice(self.kernels)), int(rng.choice(self.expands)))

    def largest(self) -> SubnetConfig:
        b = Block(max(self.kernels), max(self.expands))
        return SubnetConfig(tuple((b,) * max(self.depths) for _ in self.stages))

    def smallest(self) -> SubnetConfig:
        b = Block(min(self.kernels), min(self.expands))
        return SubnetConfig(tuple((b,) * min(self.depths) for _ in self.stages))

    def contains(self, cfg: SubnetConfig) -> bool:
        return (len(cfg.stages) == len(self.stages)
                and all(len(s) in self.depths for s in cfg.stages)
                and all(b.kernel in self.kernels and b.expand in self.expands
                        for s in cfg.stages for b in s))

    def arch(self, cfg: SubnetConfig) -> Arch:
        if not self.contains(cfg):
            raise McuCompileError(f"subnet {cfg.short()} is not in the search space {self.label()}")
        stem = self.stem_channels
        blocks = [BlockArch(stem, stem, self.first_channels, 3, 1, expand_conv=False)]
        prev = self.first_channels
        for spec, out_c, stage in zip(self.stages, self.stage_channels, cfg.stages):
            for j, b in enumerate(stage):
                blocks.append(BlockArch(prev, prev * b.expand, out_c, b.kernel,
                                        spec.stride if j == 0 else 1, expand_conv=True))
                prev = out_c
        return Arch(self.resolution, self.in_channels, stem, tuple(blocks), self.num_classes)

    def slots(self) -> tuple[tuple[int, int], ...]:
        """(stage, index in stage) of every elastic block slot of the largest subnet."""
        return tuple((s, j) for s in range(len(self.stages)) for j in range(max(self.depths)))

    def to_json(self) -> dict:
        return {"width": self.width, "resolution": self.resolution, "in_channels": self.in_channels,
                "num_classes": self.num_classes, "kernels": list(self.kernels),
                "expands": list(self.expands), "depths": list(self.depths),
                "stages": [[s.channels, s.stride] for s in self.stages]}
