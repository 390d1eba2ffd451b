"""What one inference costs on a board: instructions, cycles, latency, energy, battery life.

    est = estimate_static(compiled, board)                     # before anything runs
    est = estimate_measured(compiled, board, total, per_layer)  # from QEMU's counts
    est.latency_ms, est.energy_uj
    est.battery(rate_hz=1.0, capacity_mah=220)

The chain, each link with the assumption it rests on (Estimate.assumptions
repeats them in every report):

  instructions  measured: QEMU with `-icount shift=0` counts executed guest
                instructions exactly (firmware/PROTOCOL.md). Static: per layer,
                its kernel's instructions per MAC, per element in and out and per call on
                its core, fitted to our own QEMU runs (KERNEL_COSTS).
  cycles        instructions x CPI. CPI = the core's cycles per instruction with
                zero-wait memory + a stall term per flash wait state at the board's
                clock (CORE_TIMINGS; wait states from the board file's clock
                configuration, else estimated from the clock: flash_wait_states).
  latency       cycles / the board's clock.
  energy        the board's active power (a datasheet figure in its board file)
                x latency. 1 mW for 1 ms is 1 uJ.
  battery life  the cell's energy (mAh x nominal voltage) / average power, where
                average power = energy per inference x rate + sleep power x the
                time between inferences.

Calibration (tests/test_energy.py, and the README): MLPerf Tiny measured
TFLM + CMSIS-NN on the NUCLEO-L4R5ZI. Its energy / latency is the average power
drawn while inferring; the L4R5's datasheet current times the supply voltage
reproduces it within 10% for all four benchmarks, which is the check of the
"energy = datasheet power x latency" link. Its VWW latency, with the instruction
count TFLM + CMSIS-NN executes for that network in QEMU, fixes the one fitted
parameter (the flash stall of small-cache Cortex-M parts). The fastest published
Cortex-M7 results bound the M7 figures from above.

The fitted flash stall (0.36 cycles per instruction per wait state) is the
model's largest uncertainty: it absorbs every difference between the 2021
reference build MLPerf measured and the TFLM build whose instructions we
counted, and is well above what the L4R5's flash accelerator alone suggests
(about 0.06: one 8-byte flash read per ~20 instructions of MAC loop). On a part
at 5 wait states it makes latency and energy up to ~1.8x higher than that
physical estimate. Code run from zero-wait memory (the QEMU boards) has no stall.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Sequence

from .errors import McuCompileError

# ---------------------------------------------------------------------------
# Cycles per instruction
# ---------------------------------------------------------------------------

# Arm's published CoreMark/MHz per core: the relative speed of the same integer
# code on each pipeline. Instruction counts of one program barely differ between
# these cores (same Thumb-2 ISA), so CPI scales with the inverse of CoreMark/MHz.
COREMARK_PER_MHZ = {"cortex-m3": 3.34, "cortex-m4": 3.42, "cortex-m33": 4.02, "cortex-m7": 5.01}

# The anchor: Cortex-M4 running int8 kernels from zero-wait memory. From the
# Cortex-M4 TRM cycle timings: data processing, MUL/MLA, SMLAD and SXTB16 take
# 1 cycle; LDR 2 (1 when it follows another load), STR 1, a taken branch 2-4.
# In MAC loops about one instruction in three is a load and one in ten to twenty
# a branch: 1.2 to 1.3 cycles per instruction.
CPI_M4 = 1.25

# Embedded flash needs one more wait state for every ~30 MHz of clock at
# 2.7-3.6 V (STM32F4 RM0090 and STM32F7 RM0385 wait-state tables: 5 WS at
# 168 MHz, 7 WS at 216 MHz). Chips differ (the STM32L4+ needs 5 WS at 120 MHz),
# so callers that know the chip pass wait_states explicitly.
FLASH_HZ_PER_WAIT_STATE = 30_000_000


@dataclass(frozen=True)
class PublishedResult:
    """One published MLPerf Tiny measurement (closed division, performance and energy runs)."""
    benchmark: str             # KWS, VWW, IC, AD
    network: str
    macs: int                  # multiply-accumulates per inference of that network
    system: str
    core: str                  # gcc -mcpu of the system's core
    clock_hz: int
    flash_wait_states: int     # at that clock, from the chip's reference manual
    software: str
    latency_ms: float
    energy_uj: float | None    # None: no energy run published

    @property
    def implied_mw(self) -> float | None:
        """Average power while inferring: energy / latency (uJ / ms = mW)."""
        return None if self.energy_uj is None else self.energy_uj / self.latency_ms


_L4R5 = dict(system="NUCLEO-L4R5ZI (STM32L4R5, Cortex-M4F)", core="cortex-m4", clock_hz=120_000_000,
             flash_wait_states=5,  # RM0432: range 1 boost mode, 100 < HCLK <= 120 MHz
             software="TFLM + CMSIS-NN (MLPerf Tiny reference submission)")
_F746 = dict(system="DISCO-F746NG (STM32F746, Cortex-M7)", core="cortex-m7", clock_hz=216_000_000,
             flash_wait_states=7,  # RM0385 Table 5: 210 < HCLK <= 216 MHz at 2.7-3.6 V
             software="fastest published submission")

# MACs: VWW is MobileNetV1 0.25 at 96x96x3 (person_detect plus 3x the first
# layer's 165,888 MACs for three input channels); KWS is DS-CNN small on 49x10
# MFCCs; IC is the MLPerf ResNet-8 on 32x32x3; AD the FC autoencoder on 640 inputs.
MLPERF_TINY: tuple[PublishedResult, ...] = (
    PublishedResult("KWS", "DS-CNN", 2_656_768, latency_ms=181.9, energy_uj=7_374, **_L4R5),
    PublishedResult("VWW", "MobileNetV1 0.25", 7_489_664, latency_ms=600.6, energy_uj=24_313, **_L4R5),
    PublishedResult("IC", "ResNet-8", 12_501_632, latency_ms=704.0, energy_uj=29_207, **_L4R5),
    PublishedResult("AD", "FC autoencoder", 264_192, latency_ms=10.05, energy_uj=416, **_L4R5),
    PublishedResult("VWW", "MobileNetV1 0.25", 7_489_664, latency_ms=34.08, energy_uj=None, **_F746),
    PublishedResult("KWS", "DS-CNN", 2_656_768, latency_ms=17.75, energy_uj=None, **_F746),
)

# The STM32L4R5 datasheet (DS12023) gives 110 uA/MHz in Run mode with the LDO
# regulator (the NUCLEO-L4R5ZI has no SMPS). The energy monitor powers the chip;
# we take 3.0 V. 0.110 mA/MHz x 120 MHz x 3.0 V = 39.6 mW.
L4R5_ACTIVE_MW = 0.110 * 120 * 3.0
L4R5_POWER_SOURCE = "STM32L4R5 datasheet DS12023: 110 uA/MHz Run mode (LDO), x 120 MHz x 3.0 V supply"
CALIBRATION_TOLERANCE = 0.10   # |datasheet power x published latency - published energy| / published energy

# Instructions TFLM + CMSIS-NN executes for person_detect (7,157,888 MACs) in QEMU
# Cortex-M7 (issue 5's table: TFLM 2026-08 sources, -O2, arm-none-eabi-gcc 12.2).
# MLPerf's VWW network is the same MobileNetV1 with an RGB input; we scale by MACs
# and take the M4 build to execute as many instructions as the M7 build (same ISA).
TFLM_CMSIS_NN_PERSON_DETECT_INSTRUCTIONS = 22_700_000
PERSON_DETECT_MACS = 7_157_888


def _vww_l4r5() -> PublishedResult:
    return next(r for r in MLPERF_TINY if r.benchmark == "VWW" and r.core == "cortex-m4")


def tflm_vww_instructions() -> float:
    """TFLM + CMSIS-NN's instructions for MLPerf VWW, scaled from person_detect by MACs."""
    return TFLM_CMSIS_NN_PERSON_DETECT_INSTRUCTIONS * _vww_l4r5().macs / PERSON_DETECT_MACS


def _fitted_small_cache_stall() -> float:
    """Extra cycles per instruction per flash wait state on a part with only a flash accelerator
    (prefetch and a few hundred bytes to 1 KB of cache), fitted to MLPerf Tiny VWW on the L4R5:
    published cycles / TFLM + CMSIS-NN's instructions = the CPI the model must give there."""
    r = _vww_l4r5()
    cpi = r.latency_ms * 1e-3 * r.clock_hz / tflm_vww_instructions()
    return (cpi - CPI_M4) / r.flash_wait_states


@dataclass(frozen=True)
class CoreTiming:
    """Cycles per instruction of one core: cpi + stall_per_wait_state x flash wait states."""
    core: str                     # gcc -mcpu
    cpi: float                    # with zero-wait code and data memory (SRAM, TCM, MPS2 SSRAM)
    stall_per_wait_state: float   # extra cycles per instruction per flash wait state
    basis: str


def _scaled(core: str) -> float:
    return CPI_M4 * COREMARK_PER_MHZ["cortex-m4"] / COREMARK_PER_MHZ[core]


_SMALL_CACHE_STALL = _fitted_small_cache_stall()
_SMALL_CACHE_BASIS = (f"flash stall {_SMALL_CACHE_STALL:.2f} cycles per instruction per wait state, fitted to "
                      "MLPerf Tiny VWW on the NUCLEO-L4R5ZI (600.6 ms at 120 MHz, 5 wait states, "
                      "ART accelerator only) with TFLM + CMSIS-NN's instruction count from QEMU")
# The M7's L1 caches (4-16 KB each) keep loop code; weights stream through the
# D-cache, one 32-byte line fill (about wait states + 4 cycles) per ~40-60
# instructions of MAC loop: ~0.02 cycles per instruction per wait state.
M7_STALL_PER_WAIT_STATE = 0.02

CORE_TIMINGS: dict[str, CoreTiming] = {
    "cortex-m3": CoreTiming(
        "cortex-m3", round(_scaled("cortex-m3") + 0.07, 2), _SMALL_CACHE_STALL,
        f"{CPI_M4} (Cortex-M4 int8 loops, TRM timings) x CoreMark/MHz 3.42/3.34, + 0.07 for MLA taking "
        f"2 cycles on the M3 (about one instruction in ten of the portable MAC loop); {_SMALL_CACHE_BASIS}"),
    "cortex-m4": CoreTiming(
        "cortex-m4", CPI_M4, _SMALL_CACHE_STALL,
        "Cortex-M4 TRM timings over int8 MAC loops (1 cycle for ALU, MLA, SMLAD, SXTB16; 2 for an "
        f"unpipelined LDR; 2-4 for a taken branch); {_SMALL_CACHE_BASIS}"),
    "cortex-m33": CoreTiming(
        "cortex-m33", round(_scaled("cortex-m33"), 2), _SMALL_CACHE_STALL,
        f"{CPI_M4} (Cortex-M4) x CoreMark/MHz 3.42/4.02; flash stall as the Cortex-M4 "
        "(no published M33 calibration point)"),
    "cortex-m7": CoreTiming(
        "cortex-m7", round(_scaled("cortex-m7"), 2), M7_STALL_PER_WAIT_STATE,
        f"{CPI_M4} (Cortex-M4) x CoreMark/MHz 3.42/5.01 (dual issue); flash stall "
        f"{M7_STALL_PER_WAIT_STATE} per wait state with the L1 caches on (weights stream through the "
        "D-cache, one 32-byte line per ~50 instructions)"),
}


def flash_wait_states(clock_hz: int) -> int:
    """Flash wait states a typical Cortex-M part needs at this clock (0 up to 30 MHz)."""
    return max(0, math.ceil(clock_hz / FLASH_HZ_PER_WAIT_STATE) - 1)


@dataclass(frozen=True)
class Cpi:
    """The cycles-per-instruction figure used for one board, with its parts."""
    core: str
    base: float
    wait_states: int
    stall_per_wait_state: float
    basis: str

    @property
    def value(self) -> float:
        return self.base + self.wait_states * self.stall_per_wait_state


def cpi_for(core: str, clock_hz: int, wait_states: int | None = None) -> Cpi | None:
    """The CPI model of `core` (gcc -mcpu) at `clock_hz`; None for a core without figures."""
    timing = CORE_TIMINGS.get(core)
    if timing is None:
        return None
    ws = flash_wait_states(clock_hz) if wait_states is None else wait_states
    return Cpi(core, timing.cpi, ws, timing.stall_per_wait_state, timing.basis)


# ---------------------------------------------------------------------------
# Static instruction estimate: per-kernel costs measured in QEMU
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class KernelCost:
    """Instructions of one kernel on one core:
        per_mac x MACs + per_input x input elements + per_output x output elements + per_call
    Input elements are those of the layer's activation inputs (what a kernel
    reads, packs or pads), output elements what it requantizes and stores;
    per_call is the fixed set-up cost."""
    per_mac: float
    per_input: float
    per_output: float
    per_call: float
    layers: int          # measured layers it was fitted on

    def instructions(self, macs: int, inputs: int, outputs: int) -> float:
        return self.per_mac * macs + self.per_input * inputs + self.per_output * outputs + self.per_call


# Generated by benchmarks/speed_fit.py from QEMU runs (per-layer instruction
# counts of the firmware); rerun it after changing kernels. Do not edit by hand.
# BEGIN KERNEL_COSTS
KERNEL_COSTS_PROVENANCE = '2026-12-08, mcucompile 56401a6, arm-none-eabi-gcc 12.2.1 -O2; models conv_mix, depthwise_mix, ds_cnn_mlperf_kws, elementwise_mix, hello_world_int8, micro_speech_quantized, mobilenet_v2_64_a050, mobilenet_v2_96_a035, person_detect, residual_mix, resnet8_mlperf_ic, tinynas_style_64'
KERNEL_COSTS: dict[str, dict[str, KernelCost]] = {
    'cortex-m3': {
        'mcc_add_s8:fast': KernelCost(0, 25.02, 0, 71.77, 8),
        'mcc_add_s8:tables': KernelCost(0, 0, 20, 80, 4),
        'mcc_avgpool_s8': KernelCost(0, 2.288, 52.65, 0, 20),
        'mcc_conv2d_1x1_inplace_s8': KernelCost(2.523, 2.281, 39.34, 1136, 58),
        'mcc_conv2d_im2col_s8': KernelCost(1.916, 0, 41.57, 1868, 23),
        'mcc_conv2d_im2col_s8:int8': KernelCost(2.103, 61.1, 18.5, 0, 14),
        'mcc_conv2d_im2col_s8:int8+residual': KernelCost(0, 0, 0, 3.442e+05, 2),
        'mcc_conv2d_im2col_s8:pairs': KernelCost(2.096, 0, 102.4, 8926, 9),
        'mcc_conv2d_im2col_s8:residual': KernelCost(2.172, 0, 35.06, 1.046e+04, 10),
        'mcc_conv2d_im2col_s8:rgb3x3': KernelCost(3.237, 0, 0, 1.113e+04, 60),
        'mcc_crop_2d_s8': KernelCost(0, 0.01763, 1.223, 416.6, 122),
        'mcc_depthwise_conv2d_1ch_s8': KernelCost(0, 466.3, 0, 0, 2),
        'mcc_depthwise_conv2d_1ch_s8:3rows': KernelCost(4.308, 0, 0, 423.2, 61),
        'mcc_depthwise_conv2d_inplace_s8': KernelCost(5.197, 8.75, 138.6, 0, 8),
        'mcc_depthwise_conv2d_inplace_s8:3x3': KernelCost(5.787, 0, 0, 5.495e+05, 24),
        'mcc_depthwise_conv2d_pixel_s8': KernelCost(4.814, 0.3569, 6.638, 1397, 137),
        'mcc_depthwise_conv2d_planar_3x3_s8': KernelCost(4.184, 3.973, 0, 1588, 10),
        'mcc_depthwise_conv2d_planar_3x3_s8:2rows': KernelCost(4.19, 0, 0, 3198, 119),
        'mcc_depthwise_conv2d_planar_s8': KernelCost(2.301, 5.111, 33.43, 5695, 13),
        'mcc_fully_connected_inplace_s8': KernelCost(2.61, 0, 31.19, 365.2, 13),
        'mcc_gemm_inplace_s8': KernelCost(1.928, 3.606, 15.63, 2513, 99),
        'mcc_gemm_s8': KernelCost(1.929, 4.238, 15.17, 847.4, 162),
        'mcc_gemm_s8:residual': KernelCost(1.864, 3.567, 37.32, 0, 14),
        'mcc_maxpool_inplace_s8': KernelCost(0, 172.3, 0, 0, 2),
        'mcc_maxpool_s8': KernelCost(0, 0, 57.34, 240, 4),
        'mcc_mean_s8': KernelCost(0, 2.742, 68.47, 0, 6),
        'mcc_mul_s8': KernelCost(0, 28.52, 0, 0, 2),
        'mcc_paste_2d_s8': KernelCost(0, 0, 0, 299.8, 122),
        'mcc_softmax_s8': KernelCost(0, 60.95, 0, 222.1, 22),
    },
    'cortex-m4': {
        'mcc_add_s8:fast': KernelCost(0, 0, 45, 80, 8),
        'mcc_add_s8:tables': KernelCost(0, 0, 13.26, 106.7, 4),
        'mcc_avgpool_s8': KernelCost(0, 1.514, 45.7, 0, 20),
        'mcc_conv2d_1x1_inplace_s8': KernelCost(1.385, 3.066, 14.38, 911.7, 58),
        'mcc_conv2d_band_s8': KernelCost(0.8346, 3.095, 13.54, 0, 18),
        'mcc_conv2d_band_s8:residual': KernelCost(0.7886, 18, 0, 0, 6),
        'mcc_conv2d_im2col_s8': KernelCost(1.104, 0, 0, 2939, 7),
        'mcc_conv2d_im2col_s8:int8': KernelCost(1.024, 44.22, 12.02, 0, 14),
        'mcc_conv2d_im2col_s8:int8+residual': KernelCost(0, 65.08, 0, 0, 2),
        'mcc_conv2d_im2col_s8:pairs': KernelCost(1.11, 3.166, 95.43, 0, 7),
        'mcc_conv2d_im2col_s8:residual': KernelCost(0, 0, 26.28, 9.824e+04, 4),
        'mcc_conv2d_im2col_s8:rgb3x3': KernelCost(1.507, 0, 0, 5498, 60),
        'mcc_crop_2d_s8': KernelCost(0, 0.01725, 1.222, 424.3, 122),
        'mcc_depthwise_conv2d_1ch_s8': KernelCost(1.417, 0, 0, 0, 2),
        'mcc_depthwise_conv2d_1ch_s8:3rows': KernelCost(2.225, 0, 0, 904.8, 65),
        'mcc_depthwise_conv2d_inplace_s8': KernelCost(0.9109, 6.275, 159.7, 5.829e+04, 8),
        'mcc_depthwise_conv2d_inplace_s8:3x3': KernelCost(4.238, 0, 0, 3.592e+05, 24),
        'mcc_depthwise_conv2d_pixel_s8': KernelCost(3.922, 0, 0, 746.1, 138),
        'mcc_depthwise_conv2d_planar_3x3_s8': KernelCost(0, 9.011, 0, 1655, 3),
        'mcc_depthwise_conv2d_planar_3x3_s8:2rows': KernelCost(2.568, 0, 0, 2671, 121),
        'mcc_depthwise_conv2d_planar_s8': KernelCost(1.046, 5.664, 18.77, 9858, 13),
        'mcc_fully_connected_inplace_s8': KernelCost(1.456, 0, 18.01, 365.7, 13),
        'mcc_gemm_inplace_s8': KernelCost(0.8422, 1.739, 9.764, 1499, 99),
        'mcc_gemm_s8': KernelCost(0.8326, 2.067, 9.616, 498, 162),
        'mcc_gemm_s8:residual': KernelCost(0.8125, 1.793, 21.22, 0, 14),
        'mcc_maxpool_inplace_s8': KernelCost(0, 178.1, 0, 0, 2),
        'mcc_maxpool_s8': KernelCost(0, 5.859, 0, 240, 4),
        'mcc_mean_s8': KernelCost(0, 1.75, 66.69, 0, 6),
        'mcc_mul_s8': KernelCost(0, 29.02, 0, 0, 2),
        'mcc_paste_2d_s8': KernelCost(0, 0, 0, 304.7, 122),
        'mcc_softmax_s8': KernelCost(0, 63.84, 0, 214.8, 22),
    },
    'cortex-m7': {
        'mcc_add_s8:fast': KernelCost(0, 23.5, 0, 85.88, 8),
        'mcc_add_s8:tables': KernelCost(0, 7.002, 0, 100, 4),
        'mcc_avgpool_s8': KernelCost(0, 1.531, 47.54, 0, 20),
        'mcc_conv2d_1x1_inplace_s8': KernelCost(1.384, 3.138, 14.43, 872, 58),
        'mcc_conv2d_band_s8': KernelCost(0.8346, 3.106, 13.53, 0, 18),
        'mcc_conv2d_band_s8:residual': KernelCost(0.7886, 17.99, 0, 0, 6),
        'mcc_conv2d_im2col_s8': KernelCost(1.104, 0, 0, 2938, 7),
        'mcc_conv2d_im2col_s8:int8': KernelCost(1.01, 43.96, 12.31, 0, 14),
        'mcc_conv2d_im2col_s8:int8+residual': KernelCost(0, 64.45, 0, 0, 2),
        'mcc_conv2d_im2col_s8:pairs': KernelCost(1.121, 3.052, 93.21, 0, 7),
        'mcc_conv2d_im2col_s8:residual': KernelCost(0.7491, 8.766, 0, 0, 4),
        'mcc_conv2d_im2col_s8:rgb3x3': KernelCost(1.505, 0, 0, 5564, 60),
        'mcc_crop_2d_s8': KernelCost(0, 0.01698, 1.227, 421.1, 122),
        'mcc_depthwise_conv2d_1ch_s8': KernelCost(1.42, 0, 0, 0, 2),
        'mcc_depthwise_conv2d_1ch_s8:3rows': KernelCost(2.222, 0, 0, 896.9, 65),
        'mcc_depthwise_conv2d_inplace_s8': KernelCost(0.9058, 6.246, 160.3, 5.941e+04, 8),
        'mcc_depthwise_conv2d_inplace_s8:3x3': KernelCost(4.244, 0, 0, 3.62e+05, 24),
        'mcc_depthwise_conv2d_pixel_s8': KernelCost(3.949, 0, 0, 691.1, 138),
        'mcc_depthwise_conv2d_planar_3x3_s8': KernelCost(3.919, 0, 0, 2274, 3),
        'mcc_depthwise_conv2d_planar_3x3_s8:2rows': KernelCost(2.562, 0, 0, 2628, 121),
        'mcc_depthwise_conv2d_planar_s8': KernelCost(1.048, 5.659, 18.6, 9534, 13),
        'mcc_fully_connected_inplace_s8': KernelCost(1.452, 0, 17.93, 363.1, 13),
        'mcc_gemm_inplace_s8': KernelCost(0.8418, 1.692, 9.783, 1527, 99),
        'mcc_gemm_s8': KernelCost(0.8322, 2.015, 9.625, 522.5, 162),
        'mcc_gemm_s8:residual': KernelCost(0.8115, 1.745, 21.33, 0, 14),
        'mcc_maxpool_inplace_s8': KernelCost(0, 178.4, 0, 0, 2),
        'mcc_maxpool_s8': KernelCost(0, 5.801, 0, 239.9, 4),
        'mcc_mean_s8': KernelCost(0, 1.746, 67.61, 0, 6),
        'mcc_mul_s8': KernelCost(0, 29.51, 0, 0, 2),
        'mcc_paste_2d_s8': KernelCost(0, 0, 0, 304.7, 122),
        'mcc_softmax_s8': KernelCost(0, 64.24, 0, 213.9, 22),
    },
}
# END KERNEL_COSTS

# When a kernel was never measured: about what the portable C kernels cost,
# rounded up (conservative).
FALLBACK_COST = KernelCost(per_mac=12.0, per_input=5.0, per_output=10.0, per_call=200.0, layers=0)

# Which measured table stands in for a core that QEMU does not emulate.
_TABLE_FOR_CORE = {"cortex-m33": "cortex-m4"}


def activation_elements(op, graph) -> tuple[int, int]:
    """Element counts of the op's activation (non-constant) inputs and of its outputs."""
    def count(tensors) -> int:
        return sum(graph.tensor(t).num_elements for t in tensors if t >= 0 and not graph.tensor(t).is_const)
    return count(op.inputs), count(op.outputs)


def _cost_table(core: str) -> tuple[str, dict[str, KernelCost]]:
    name = core if core in KERNEL_COSTS else _TABLE_FOR_CORE.get(core, core)
    return name, KERNEL_COSTS.get(name, {})


# Instructions per output of a fused residual ADD's epilogue (mcc_residual), for
# fused kernels the fit has not seen: ResNet-8's first block in QEMU, the fused
# layer against the same convolution alone (2,465,560 - 2,262,000 over 16,384
# values on the M7's assembly loop; 7,470,720 - 7,039,120 on the M3's C).
RESIDUAL_ADD_PER_OUTPUT = {"dsp": 12.4, "portable": 26.3}

# Kernels that run another kernel's loops and are rarely measured on their own:
# until a fit has them, they cost what that kernel costs.
_COSTS_LIKE = {"mcc_gemm_inplace_s8": "mcc_gemm_s8"}


def kernel_cost(core: str, function: str) -> tuple[KernelCost, str]:
    """The cost of `function` (a KernelCall.cost_name) on `core` and where it comes from (for the report)."""
    table_name, table = _cost_table(core)
    base = function.split(":")[0]
    measured = any(function in costs for other, costs in KERNEL_COSTS.items()
                   if _same_isa(other, core))
    if function.endswith("wide") and not measured:
        # int16 weights never measured: the int8 way, less the SXTB16 they save on DSP cores.
        way = function[:-len("wide")].rstrip("+:")
        cost, origin = kernel_cost(core, way)
        if not _same_isa(core, "cortex-m4"):
            return cost, origin
        from .kernels.conv import WIDE_SAVING_PER_MAC
        return (replace(cost, per_mac=cost.per_mac - WIDE_SAVING_PER_MAC),
                f"not measured wide: {way} ({origin}), {WIDE_SAVING_PER_MAC:g} less per MAC")
    if function.endswith("residual") and not measured:
        # A fused residual ADD never measured: the kernel's way, plus the ADD's epilogue.
        way = function[:-len("residual")].rstrip("+:")
        cost, origin = kernel_cost(core, way)
        extra = RESIDUAL_ADD_PER_OUTPUT["dsp" if _same_isa(core, "cortex-m4") else "portable"]
        return (replace(cost, per_output=cost.per_output + extra),
                f"not measured fused: {way} ({origin}), the ADD {extra:g} per output")
    if base != function and not measured:
        return kernel_cost(core, base)   # a variant never measured: the function's figure
    if function not in table and function in _COSTS_LIKE:
        cost, origin = kernel_cost(core, _COSTS_LIKE[function])
        return cost, f"{origin}, as {_COSTS_LIKE[function]}"
    if function in table:
        origin = "measured" if table_name == core else f"measured on {table_name}"
        return table[function], origin
    # The same kernel measured on another core with the same ISA features.
    for other, costs in sorted(KERNEL_COSTS.items()):
        if function in costs and _same_isa(other, core):
            return costs[function], f"measured on {other}"
    return FALLBACK_COST, "not measured: generic figure"


def _same_isa(a: str, b: str) -> bool:
    dsp = {"cortex-m4", "cortex-m7", "cortex-m33"}
    return (a in dsp) == (b in dsp)


# Kernels built without the DSP extension on a core that has it (`bench
# --portable`) run their portable C loops, which the M3's table measured.
PORTABLE_TABLE = "cortex-m3"


def cost_core(core: str, dsp: bool) -> str:
    """The core whose KERNEL_COSTS describe the kernels built for `core`, with or without DSP."""
    return PORTABLE_TABLE if not dsp and _same_isa(core, "cortex-m4") else core


# ---------------------------------------------------------------------------
# Estimates
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerEstimate:
    index: int                  # position in the generated invoke (the firmware's layer index)
    name: str                   # C name of the layer (the firmware's `layers` names)
    op: str
    kernel: str
    cost_name: str              # the kernel's KERNEL_COSTS key (kernel, or kernel:variant)
    macs: int
    input_elements: int         # elements of its activation inputs
    output_elements: int
    instructions: int | None
    cycles: int | None
    latency_ms: float | None
    energy_uj: float | None
    arena_bytes: int            # activation bytes alive while this layer runs (scratch included)
    source: str                 # "qemu", or where the static figure comes from


@dataclass(frozen=True)
class BatteryLife:
    rate_hz: float
    capacity_mah: float
    cell_voltage: float
    sleep_uw: float
    duty_cycle: float           # fraction of the time spent inferring
    average_uw: float
    hours: float
    assumptions: tuple[str, ...]

    @property
    def days(self) -> float:
        return self.hours / 24.0


@dataclass(frozen=True)
class Estimate:
    model: str
    board: str
    core: str | None
    clock_hz: int | None
    source: str                         # "qemu" (measured instructions) or "static"
    instructions: int | None
    macs: int
    cpi: Cpi | None
    active_mw: float | None
    power_source: str | None
    layers: tuple[LayerEstimate, ...]
    assumptions: tuple[str, ...]
    notes: tuple[str, ...] = ()         # what could not be estimated, and why

    @property
    def instructions_per_mac(self) -> float | None:
        return None if self.instructions is None or not self.macs else self.instructions / self.macs

    @property
    def cycles(self) -> int | None:
        if self.instructions is None or self.cpi is None:
            return None
        return round(self.instructions * self.cpi.value)

    @property
    def latency_ms(self) -> float | None:
        if self.cycles is None or not self.clock_hz:
            return None
        return self.cycles / self.clock_hz * 1e3

    @property
    def energy_uj(self) -> float | None:
        if self.latency_ms is None or self.active_mw is None:
            return None
        return self.active_mw * self.latency_ms

    def battery(self, rate_hz: float, capacity_mah: float, cell_voltage: float | None = None,
                sleep_uw: float | None = None) -> BatteryLife:
        """Battery life at `rate_hz` inferences per second; McuCompileError without an energy figure."""
        if self.energy_uj is None or self.latency_ms is None:
            why = "; ".join(self.notes) or "no energy figure"
            raise McuCompileError(f"no battery life for {self.board}: {why}")
        return battery_life(self.energy_uj, self.latency_ms, rate_hz, capacity_mah,
                            DEFAULT_CELL_VOLTAGE if cell_voltage is None else cell_voltage,
                            DEFAULT_SLEEP_UW if sleep_uw is None else sleep_uw)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "board": self.board, "core": self.core, "clock_hz": self.clock_hz,
            "source": self.source, "instructions": self.instructions, "macs": self.macs,
            "instructions_per_mac": self.instructions_per_mac,
            "cycles_per_instruction": None if self.cpi is None else round(self.cpi.value, 4),
            "cpi": None if self.cpi is None else asdict(self.cpi),
            "cycles": self.cycles, "latency_ms": self.latency_ms,
            "active_mw": self.active_mw, "power_source": self.power_source, "energy_uj": self.energy_uj,
            "layers": [asdict(layer) for layer in self.layers],
            "assumptions": list(self.assumptions), "notes": list(self.notes),
        }

    def summary(self) -> str:
        """Three or four lines for a build or bench report."""
        what = "measured in QEMU" if self.source == "qemu" else "estimated from MACs and kernel costs"
        lines = []
        if self.instructions is None:
            lines.append(f"instructions     - ({'; '.join(self.notes)})")
        else:
            per_mac = self.instructions_per_mac
            lines.append(f"instructions     {self.instructions:,} per inference ({what})"
                         + (f", {per_mac:.2f} per MAC" if per_mac is not None else ""))
        if self.latency_ms is not None:
            lines.append(f"latency          {self.latency_ms:.3f} ms at {self.clock_hz / 1e6:g} MHz "
                         f"({self.cycles:,} cycles, {self.cpi.value:.2f} cycles/instruction, "
                         f"{self.cpi.wait_states} flash wait states)")
        if self.energy_uj is not None:
            lines.append(f"energy           {self.energy_uj:,.1f} uJ per inference at {self.active_mw:g} mW")
        elif self.latency_ms is not None:
            lines.append(f"energy           - ({'; '.join(n for n in self.notes if 'power' in n)})")
        return "\n".join(lines)

    def layer_table(self) -> str:
        """Per layer: op, MACs, instructions, estimated cycles, uJ, arena bytes."""
        rows = [("#", "layer", "op", "MACs", "instructions", "est. cycles", "uJ", "arena B", "%")]
        total = sum(layer.instructions or 0 for layer in self.layers) or 1
        for layer in self.layers:
            rows.append((
                str(layer.index), layer.name, layer.op, f"{layer.macs:,}",
                _opt(layer.instructions, "{:,}"), _opt(layer.cycles, "{:,}"),
                _opt(layer.energy_uj, "{:,.2f}"), f"{layer.arena_bytes:,}",
                _opt(None if layer.instructions is None else 100.0 * layer.instructions / total, "{:.1f}")))
        numeric = {0, 3, 4, 5, 6, 7, 8}
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                           for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def _opt(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _layers_of(compiled) -> list[tuple[int, object, object]]:
    """(step, op, call) of every layer that runs code, in invoke order."""
    return [(step, op, compiled.calls[op.index]) for step, op in enumerate(compiled.graph.ops)
            if compiled.calls[op.index] is not None]


def layer_names(compiled) -> list[str]:
    """The C names the firmware reports per layer (codegen names each layer after its op)."""
    from .codegen import c_identifier
    return [c_identifier(op.name) for _, op, _ in _layers_of(compiled)]


def _timing(board, active_mw: float | None, wait_states: int | None):
    """The CPI, power and their stated assumptions and gaps for a board."""
    assumptions, notes = [], []
    core = board.core.mcpu if board.core is not None else None
    cpi = None
    if core is None:
        notes.append(f"board {board.name!r} is the host: no Cortex-M core to model")
    elif not board.clock_hz:
        notes.append(f"board {board.name!r} gives no clock_hz: no latency")
    else:
        # Wait states: given, else the board's clock configuration, else guessed from the clock.
        clock = getattr(board, "clock", None)
        board_ws = getattr(clock, "flash_wait_states", None)
        if wait_states is not None:
            ws_how = "given"
        elif board_ws is not None:
            wait_states, ws_how = board_ws, "the board file's clock configuration"
        else:
            ws_how = (f"assumed: one per {FLASH_HZ_PER_WAIT_STATE // 1_000_000} MHz above the first, typical "
                      "of STM32F4/F7 flash at 2.7-3.6 V")
        cpi = cpi_for(core, board.clock_hz, wait_states)
        if cpi is None:
            notes.append(f"no cycles-per-instruction figures for {core} (known: {', '.join(CORE_TIMINGS)})")
        else:
            assumptions.append(
                f"cycles = instructions x {cpi.value:.3f} cycles/instruction on the {core}: {cpi.base:.2f} "
                f"with zero-wait memory + {cpi.wait_states} flash wait states at "
                f"{board.clock_hz / 1e6:g} MHz ({ws_how}) x {cpi.stall_per_wait_state:.3f}. Basis: {cpi.basis}")
            assumptions.append("code and weights run from on-chip flash, activations from SRAM; caches and "
                               "the flash accelerator on" if cpi.wait_states else
                               "code, weights and activations in zero-wait memory: no flash stalls")
    power_source = None
    if active_mw is not None:
        power_source = "given (--active-mw)"
    elif core is not None and board.power is not None:
        active_mw, power_source = board.power.active_mw, board.power.source
    elif core is not None:
        notes.append(f"no power figure for this board ({board.name}: its board file has no "
                     "power.active_mw): no energy estimate")
    if active_mw is not None and cpi is not None:
        assumptions.append(f"energy = {active_mw:g} mW active power x latency ({power_source}); the whole "
                           "chip at the board clock, no peripherals, regulator losses or sensor")
    return core, cpi, active_mw, power_source, assumptions, notes


def _layer(index: int, name: str, op, call, step: int, compiled, instructions: int | None,
           cpi: Cpi | None, clock_hz: int | None, active_mw: float | None, source: str) -> LayerEstimate:
    cycles = latency = energy = None
    if instructions is not None and cpi is not None and clock_hz:
        cycles = round(instructions * cpi.value)
        latency = cycles / clock_hz * 1e3
        energy = None if active_mw is None else active_mw * latency
    inputs, outputs = activation_elements(op, compiled.graph)
    return LayerEstimate(index=index, name=name, op=op.label, kernel=call.function,
                         cost_name=call.cost_name, macs=int(call.macs),
                         input_elements=inputs, output_elements=outputs, instructions=instructions,
                         cycles=cycles, latency_ms=latency, energy_uj=energy,
                         arena_bytes=int(compiled.plan.live_bytes[step]), source=source)


def estimate_static(compiled, board, *, active_mw: float | None = None,
                    wait_states: int | None = None) -> Estimate:
    """Instructions, latency and energy of `compiled` on `board` without running it.

    Per layer: the kernel's measured instructions per MAC and per activation
    element on this core, plus its fixed cost per call (KERNEL_COSTS).
    """
    core, cpi, active_mw, power_source, assumptions, notes = _timing(board, active_mw, wait_states)
    costs_of = None if core is None else cost_core(core, bool(board.dsp))
    layers, origins = [], {}
    names = layer_names(compiled)
    for i, (step, op, call) in enumerate(_layers_of(compiled)):
        instructions, origin = None, "no core"
        if costs_of is not None:
            cost, origin = kernel_cost(costs_of, call.cost_name)
            instructions = round(cost.instructions(int(call.macs), *activation_elements(op, compiled.graph)))
            if origin != "measured":
                origins.setdefault(origin, set()).add(call.cost_name)
        layers.append(_layer(i, names[i], op, call, step, compiled, instructions, cpi, board.clock_hz,
                             active_mw, origin))
    total = None if core is None else sum(layer.instructions for layer in layers)
    if costs_of is not None:
        table_name, _ = _cost_table(costs_of)
        assumptions.insert(0, f"instructions estimated per layer from its MACs and activation elements "
                              f"with per-kernel costs measured on QEMU {table_name} "
                              f"({KERNEL_COSTS_PROVENANCE}); within 17% of QEMU on those models, more "
                              "on shapes unlike them (`mcucompile bench` measures)")
        for origin, functions in sorted(origins.items()):
            notes.append(f"{', '.join(sorted(functions))}: {origin}")
    return Estimate(model=compiled.report.model, board=board.name, core=core, clock_hz=board.clock_hz,
                    source="static", instructions=total, macs=int(compiled.report.macs), cpi=cpi,
                    active_mw=active_mw, power_source=power_source, layers=tuple(layers),
                    assumptions=tuple(assumptions), notes=tuple(notes))


def estimate_measured(compiled, board, instructions: int, layer_instructions: Sequence[int], *,
                      active_mw: float | None = None, wait_states: int | None = None) -> Estimate:
    """As estimate_static, with the instruction counts QEMU measured: `instructions` for the whole
    invoke and one count per layer in invoke order (the firmware's `layers` reply)."""
    core, cpi, active_mw, power_source, assumptions, notes = _timing(board, active_mw, wait_states)
    found = _layers_of(compiled)
    if len(layer_instructions) != len(found):
        raise McuCompileError(f"{len(layer_instructions)} per-layer counts for {len(found)} layers: "
                              "the firmware was not built from this compilation")
    names = layer_names(compiled)
    layers = tuple(_layer(i, names[i], op, call, step, compiled, int(n), cpi, board.clock_hz, active_mw, "qemu")
                   for i, ((step, op, call), n) in enumerate(zip(found, layer_instructions)))
    assumptions.insert(0, "instructions counted by QEMU (-icount shift=0: one virtual ns per guest "
                          "instruction, deterministic); the same machine code runs on the board")
    outside = instructions - sum(layer_instructions)
    assumptions.append(f"the per-layer counts leave {outside:,} instructions outside any layer (invoke "
                       "call, profiling hooks); every cycle is charged the same CPI")
    return Estimate(model=compiled.report.model, board=board.name, core=core, clock_hz=board.clock_hz,
                    source="qemu", instructions=int(instructions), macs=int(compiled.report.macs), cpi=cpi,
                    active_mw=active_mw, power_source=power_source, layers=layers,
                    assumptions=tuple(assumptions), notes=tuple(notes))


# ---------------------------------------------------------------------------
# Battery life
# ---------------------------------------------------------------------------

DEFAULT_CELL_VOLTAGE = 3.0   # CR2032 lithium coin cell, nominal
# Between inferences the MCU sleeps with SRAM kept and a timer running: 1-5 uA at
# 3 V on low-power parts (STM32L4 Stop 2, nRF52 System ON idle). High-performance
# parts draw far more (STM32F7 Stop mode: hundreds of uA): pass their figure.
DEFAULT_SLEEP_UW = 10.0


def battery_life(energy_uj: float, latency_ms: float, rate_hz: float, capacity_mah: float,
                 cell_voltage: float = DEFAULT_CELL_VOLTAGE, sleep_uw: float = DEFAULT_SLEEP_UW) -> BatteryLife:
    """Hours a cell lasts running `rate_hz` inferences per second and sleeping in between."""
    if rate_hz <= 0:
        raise McuCompileError(f"the inference rate must be positive, not {rate_hz:g}/s")
    if capacity_mah <= 0 or cell_voltage <= 0:
        raise McuCompileError("the battery capacity and cell voltage must be positive")
    if sleep_uw < 0:
        raise McuCompileError("the sleep power cannot be negative")
    duty = rate_hz * latency_ms * 1e-3
    if duty > 1.0:
        raise McuCompileError(f"{rate_hz:g} inferences/s cannot be met: one takes {latency_ms:.3f} ms, "
                              f"so at most {1e3 / latency_ms:.3g}/s")
    average_uw = energy_uj * rate_hz + sleep_uw * (1.0 - duty)   # uJ/s = uW
    capacity_uwh = capacity_mah * cell_voltage * 1e3              # mAh x V = mWh
    hours = capacity_uwh / average_uw if average_uw > 0 else math.inf
    assumptions = (
        f"battery {capacity_mah:g} mAh at {cell_voltage:g} V nominal = {capacity_mah * cell_voltage:g} mWh, "
        "all of it usable (no self-discharge, no cut-off voltage, no regulator loss)",
        f"{rate_hz:.4g} inferences/s, sleeping at {sleep_uw:g} uW in between "
        f"({duty:.3%} of the time inferring)",
    )
    return BatteryLife(rate_hz=rate_hz, capacity_mah=capacity_mah, cell_voltage=cell_voltage,
                       sleep_uw=sleep_uw, duty_cycle=duty, average_uw=average_uw, hours=hours,
                       assumptions=assumptions)


_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*(s|sec|second|min|minute|h|hour|day|d)|(hz))\s*$",
                   re.IGNORECASE)
_PER_SECOND = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
               "hour": 3600.0, "d": 86400.0, "day": 86400.0}


def parse_rate(text: str) -> float:
    """Inferences per second from `1/s`, `10/min`, `2/h`, `24/day` or `5Hz`."""
    m = _RATE.match(text)
    if m is None or float(m.group(1)) <= 0:
        raise McuCompileError(f"--rate {text!r}: write a positive count per time, e.g. 1/s, 10/min, "
                              "2/h, 24/day or 5Hz")
    count = float(m.group(1))
    return count if m.group(3) else count / _PER_SECOND[m.group(2).lower()]


_CAPACITY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(mah|ah)\s*$", re.IGNORECASE)


def parse_capacity(text: str) -> float:
    """Milliamp-hours from `220mAh` or `1.2Ah`."""
    m = _CAPACITY.match(text)
    if m is None or float(m.group(1)) <= 0:
        raise McuCompileError(f"--battery {text!r}: write a capacity such as 220mAh (a CR2032 coin cell) "
                              "or 2.6Ah")
    value = float(m.group(1))
    return value if m.group(2).lower() == "mah" else value * 1000.0
