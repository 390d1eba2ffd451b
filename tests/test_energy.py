"""The latency/energy/battery model: its arithmetic, its calibration against MLPerf Tiny, the static estimate."""
from __future__ import annotations

import dataclasses
import math

import pytest

from mcucompile import boards, energy
from mcucompile.boards import Power
from mcucompile.errors import McuCompileError
from mcucompile.pipeline import compile_model


@pytest.fixture(scope="module")
def hello(shared_models):
    """hello_world (three FULLY_CONNECTED layers) compiled for the QEMU Cortex-M7."""
    model = (shared_models / "hello_world_int8.tflite").read_bytes()
    return compile_model(model, boards.load("qemu-m7"), model_name="hello_world_int8")


def _kernel(compiled) -> str:
    """The one kernel hello_world's three layers call (which one depends on the kernel library)."""
    (function,) = {c.function for c in compiled.calls.values() if c is not None}
    return function


def _board(name: str = "qemu-m7", **changes):
    return dataclasses.replace(boards.load(name), **changes)


# ---------------------------------------------------------------------------
# Cycles per instruction
# ---------------------------------------------------------------------------

def test_flash_wait_states_follow_the_clock():
    # One wait state per 30 MHz above the first: 0 on the 25 MHz MPS2 machines,
    # 5 at 168 MHz (STM32F4) and 7 at 216 MHz (STM32F7), as their reference manuals say.
    assert [energy.flash_wait_states(f * 1_000_000) for f in (25, 30, 31, 64, 168, 216)] == [0, 0, 1, 2, 5, 7]


def test_cpi_is_base_plus_stall_per_wait_state():
    for core, timing in energy.CORE_TIMINGS.items():
        c = energy.cpi_for(core, 120_000_000, wait_states=5)
        assert c.value == pytest.approx(timing.cpi + 5 * timing.stall_per_wait_state)
        assert energy.cpi_for(core, 25_000_000).value == timing.cpi   # zero-wait MPS2 SSRAM
        assert timing.basis
    assert energy.cpi_for("cortex-m0plus", 48_000_000) is None
    # The dual-issue M7 needs the fewest cycles per instruction, the M3 the most.
    cpis = {core: t.cpi for core, t in energy.CORE_TIMINGS.items()}
    assert cpis["cortex-m7"] < cpis["cortex-m33"] < cpis["cortex-m4"] < cpis["cortex-m3"]


def test_measured_estimate_arithmetic(hello):
    board = _board(clock_hz=100_000_000, power=Power(active_mw=20.0, source="test figure"))
    layers = [1000, 2000, 3000]
    est = energy.estimate_measured(hello, board, 6100, layers)
    cpi = energy.cpi_for("cortex-m7", 100_000_000)
    assert cpi.wait_states == 3
    assert est.source == "qemu" and est.instructions == 6100 and est.macs == 288
    assert est.instructions_per_mac == pytest.approx(6100 / 288)
    assert est.cycles == round(6100 * cpi.value)
    assert est.latency_ms == pytest.approx(est.cycles / 100e6 * 1e3)
    assert est.energy_uj == pytest.approx(20.0 * est.latency_ms)      # 1 mW for 1 ms = 1 uJ
    assert [x.instructions for x in est.layers] == layers
    assert [x.name for x in est.layers] == ["fully_connected_0", "fully_connected_1", "fully_connected_2"]
    assert [x.macs for x in est.layers] == [16, 256, 16]
    for x in est.layers:
        assert x.cycles == round(x.instructions * cpi.value)
        assert x.energy_uj == pytest.approx(20.0 * x.cycles / 100e6 * 1e3)
        assert x.arena_bytes > 0 and x.kernel == _kernel(hello) and x.source == "qemu"
    text = " ".join(est.assumptions)
    assert "QEMU" in text and "20 mW" in text and "test figure" in text and "3 flash wait states" in text
    assert "100 instructions outside any layer" in text
    assert est.notes == ()
    # Given figures win over the board's.
    est2 = energy.estimate_measured(hello, board, 6100, layers, active_mw=40.0, wait_states=0)
    assert est2.cpi.value == energy.CORE_TIMINGS["cortex-m7"].cpi
    assert est2.energy_uj == pytest.approx(40.0 * est2.latency_ms)


def test_measured_estimate_needs_one_count_per_layer(hello):
    with pytest.raises(McuCompileError, match="2 per-layer counts for 3 layers"):
        energy.estimate_measured(hello, _board(), 100, [50, 50])


def test_a_board_without_power_gets_latency_and_a_note(hello):
    est = energy.estimate_measured(hello, _board(power=None), 6000, [1000, 2000, 3000])
    assert est.latency_ms is not None and est.energy_uj is None
    assert any("no power figure for this board" in n for n in est.notes)
    assert all(x.energy_uj is None for x in est.layers)
    assert "no power figure for this board" in est.summary()
    with pytest.raises(McuCompileError, match="no battery life for qemu-m7: no power figure"):
        est.battery(1.0, 220)


# ---------------------------------------------------------------------------
# Battery life
# ---------------------------------------------------------------------------

def test_battery_life_arithmetic():
    life = energy.battery_life(energy_uj=100.0, latency_ms=10.0, rate_hz=1.0, capacity_mah=220,
                               cell_voltage=3.0, sleep_uw=10.0)
    # 100 uJ/s inferring + 10 uW asleep for the other 99% of each second.
    assert life.duty_cycle == pytest.approx(0.01)
    assert life.average_uw == pytest.approx(100.0 + 10.0 * 0.99)
    assert life.hours == pytest.approx(220 * 3.0 * 1000 / 109.9)    # 660 mWh / 109.9 uW
    assert life.days == pytest.approx(life.hours / 24)
    assert any("220 mAh at 3 V" in a for a in life.assumptions)
    # Ten times the rate: nearly ten times the energy drain.
    fast = energy.battery_life(100.0, 10.0, 10.0, 220, 3.0, 10.0)
    assert fast.average_uw == pytest.approx(1000.0 + 10.0 * 0.9)


def test_battery_life_refuses_a_rate_the_board_cannot_keep():
    with pytest.raises(McuCompileError, match=r"20 inferences/s cannot be met: one takes 100.000 ms, so at most 10/s"):
        energy.battery_life(1000.0, 100.0, 20.0, 220)
    with pytest.raises(McuCompileError, match="must be positive"):
        energy.battery_life(1000.0, 100.0, 0.0, 220)


@pytest.mark.parametrize("text,hz", [("1/s", 1.0), ("10/min", 10 / 60), ("2/h", 2 / 3600), ("24/day", 24 / 86400),
                                     ("5Hz", 5.0), ("0.5 / s", 0.5), (".25/sec", 0.25)])
def test_parse_rate(text, hz):
    assert energy.parse_rate(text) == pytest.approx(hz)


@pytest.mark.parametrize("text", ["", "1", "1/week", "0/s", "-1/s", "fast"])
def test_parse_rate_errors(text):
    with pytest.raises(McuCompileError, match=r"--rate .*e\.g\. 1/s"):
        energy.parse_rate(text)


def test_parse_capacity():
    assert energy.parse_capacity("220mAh") == 220
    assert energy.parse_capacity("2.6 Ah") == 2600
    for bad in ("220", "0mAh", "3V", "lots"):
        with pytest.raises(McuCompileError, match=r"--battery .*220mAh"):
            energy.parse_capacity(bad)


# ---------------------------------------------------------------------------
# Calibration against MLPerf Tiny
# ---------------------------------------------------------------------------

L4R5 = [r for r in energy.MLPERF_TINY if r.core == "cortex-m4"]


@pytest.mark.parametrize("result", L4R5, ids=lambda r: r.benchmark)
def test_datasheet_power_times_published_latency_gives_published_energy(result):
    """energy = active power x latency: the STM32L4R5's datasheet power (110 uA/MHz x 120 MHz x 3.0 V
    = 39.6 mW) times MLPerf Tiny's latency reproduces its measured energy within 10%."""
    predicted = energy.L4R5_ACTIVE_MW * result.latency_ms
    assert abs(predicted - result.energy_uj) / result.energy_uj <= energy.CALIBRATION_TOLERANCE
    assert 39.0 < result.implied_mw < 42.0   # the ~40 mW the published energy / latency implies


def test_the_model_reproduces_mlperf_vww_latency_on_the_l4r5():
    # The fitted parameter (flash stall of small-cache parts): this guards it and CPI_M4.
    vww = next(r for r in L4R5 if r.benchmark == "VWW")
    cpi = energy.cpi_for("cortex-m4", vww.clock_hz, wait_states=vww.flash_wait_states)
    ms = energy.tflm_vww_instructions() * cpi.value / vww.clock_hz * 1e3
    assert ms == pytest.approx(vww.latency_ms, rel=0.01)
    assert 0.1 < cpi.stall_per_wait_state < 0.6


@pytest.mark.parametrize("result", [r for r in energy.MLPERF_TINY if r.core == "cortex-m7"],
                         ids=lambda r: r.benchmark)
def test_the_fastest_published_m7_results_are_possible_under_the_model(result):
    """SMLAD does two MACs, so no kernel runs below 0.5 instructions per MAC: at our Cortex-M7
    CPI (7 wait states at 216 MHz), even that floor must fit in the fastest published latency."""
    cpi = energy.cpi_for(result.core, result.clock_hz, wait_states=result.flash_wait_states)
    floor_ms = 0.5 * result.macs * cpi.value / result.clock_hz * 1e3
    assert floor_ms <= result.latency_ms


def test_board_power_figures_are_plausible():
    """Every board file's active power, per MHz, within what Cortex-M parts draw (the L4R5 of the
    calibration draws 0.33 mW/MHz): catches W/mW/uW and per-MHz mix-ups in board files."""
    for board in boards.list_boards():
        if board.power is not None:
            per_mhz = board.power.active_mw / (board.clock_hz / 1e6)
            assert 0.05 <= per_mhz <= 3.0, f"{board.name}: {board.power.active_mw} mW at {board.clock_hz} Hz"
            assert board.power.source.strip()
    assert 0.05 <= energy.L4R5_ACTIVE_MW / 120 <= 3.0


# ---------------------------------------------------------------------------
# Static estimate
# ---------------------------------------------------------------------------

def test_static_estimate_uses_the_measured_kernel_costs(hello, monkeypatch):
    costs = {"cortex-m7": {_kernel(hello): energy.KernelCost(2.0, 3.0, 5.0, 100.0, 5)}}
    monkeypatch.setattr(energy, "KERNEL_COSTS", costs)
    board = _board(clock_hz=50_000_000, power=Power(active_mw=10.0, source="test"))
    est = energy.estimate_static(hello, board)
    # FC layers 1 -> 16 -> 16 -> 1: (MACs, input elements, output elements).
    shapes = [(16, 1, 16), (256, 16, 16), (16, 16, 1)]
    assert [(x.macs, x.input_elements, x.output_elements) for x in est.layers] == shapes
    expected = [round(2.0 * m + 3.0 * i + 5.0 * o + 100) for m, i, o in shapes]
    assert [x.instructions for x in est.layers] == expected
    assert est.source == "static" and est.instructions == sum(expected)
    assert est.energy_uj == pytest.approx(10.0 * est.latency_ms)
    assert est.notes == ()
    assert "measured on QEMU cortex-m7" in est.assumptions[0]


def test_static_estimate_falls_back_and_says_so(hello, monkeypatch):
    kernel = _kernel(hello)
    monkeypatch.setattr(energy, "KERNEL_COSTS", {"cortex-m4": {kernel: energy.KernelCost(1.0, 0.0, 0.0, 0.0, 1)}})
    m7 = energy.estimate_static(hello, _board())
    assert [x.instructions for x in m7.layers] == [16, 256, 16]     # the M4's figure, same ISA
    assert f"{kernel}: measured on cortex-m4" in m7.notes
    m3 = energy.estimate_static(hello, _board("qemu-m3"))              # no DSP: not the M4's kernel costs
    assert f"{kernel}: not measured: generic figure" in m3.notes
    fb = energy.FALLBACK_COST
    assert m3.layers[0].instructions == round(fb.per_mac * 16 + fb.per_input * 1 + fb.per_output * 16 + fb.per_call)


def test_kernels_built_without_dsp_are_costed_as_the_portable_loops(hello, monkeypatch):
    """`bench --portable` builds an M7's kernels without DSP: their costs are the M3's
    table (the portable C loops), for the estimate and for ranking memory plans."""
    from mcucompile import pipeline
    kernel = _kernel(hello)
    monkeypatch.setattr(energy, "KERNEL_COSTS", {
        "cortex-m7": {kernel: energy.KernelCost(1.0, 0.0, 0.0, 0.0, 1)},
        "cortex-m3": {kernel: energy.KernelCost(3.0, 0.0, 0.0, 0.0, 1)}})
    dsp = energy.estimate_static(hello, _board())
    portable = energy.estimate_static(hello, _board(dsp=False))
    assert [x.instructions for x in dsp.layers] == [16, 256, 16]
    assert [x.instructions for x in portable.layers] == [48, 768, 48]
    assert "measured on QEMU cortex-m3" in portable.assumptions[0]
    assert portable.core == "cortex-m7"                 # the CPI is still the M7's
    assert pipeline._estimate_core(_board()) == "cortex-m7"
    assert pipeline._estimate_core(_board(dsp=False)) == "cortex-m3"
    assert pipeline._estimate_core(_board("qemu-m3")) == "cortex-m3"


def test_static_estimate_for_the_host_has_no_core(hello):
    est = energy.estimate_static(hello, boards.load("host"))
    assert est.instructions is None and est.latency_ms is None and est.energy_uj is None
    assert est.notes == ("board 'host' is the host: no Cortex-M core to model",)
    assert [x.macs for x in est.layers] == [16, 256, 16]
    assert "host" in est.summary()


def test_shipped_kernel_costs_are_well_formed():
    assert energy.KERNEL_COSTS_PROVENANCE
    for core, costs in energy.KERNEL_COSTS.items():
        assert core in energy.CORE_TIMINGS
        for function, cost in costs.items():
            assert function.startswith("mcc_") and cost.layers >= 1
            assert min(cost.per_mac, cost.per_input, cost.per_output, cost.per_call) >= 0
            assert math.isfinite(cost.instructions(1000, 100, 100))


def test_estimate_to_dict_and_layer_table(hello):
    board = _board(power=Power(active_mw=5.0, source="test"))
    est = energy.estimate_measured(hello, board, 6000, [1000, 2000, 2900])
    d = est.to_dict()
    assert d["instructions"] == 6000 and d["macs"] == 288 and d["energy_uj"] == pytest.approx(est.energy_uj)
    assert d["cpi"]["wait_states"] == 0 and len(d["layers"]) == 3 and d["layers"][1]["instructions"] == 2000
    table = est.layer_table().splitlines()
    assert table[0].split() == ["#", "layer", "op", "MACs", "instructions", "est.", "cycles", "uJ", "arena",
                                "B", "%"]
    assert "fully_connected_1" in table[3] and "2,000" in table[3]


def test_latency_per_layer_plot(hello, tmp_path):
    pytest.importorskip("matplotlib")
    from mcucompile.plot import latency_per_layer
    est = energy.estimate_measured(hello, _board(), 6000, [1000, 2000, 2900])
    for unit in ("auto", "instructions"):
        path = latency_per_layer(est, tmp_path / f"{unit}.png", unit=unit)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unit must be"):
        latency_per_layer(est, tmp_path / "x.png", unit="seconds")


def test_the_l4r5_board_file_power_matches_mlperf():
    """The MLPerf Tiny reference board's power figure, if the board file has one, reproduces the
    published energies from the published latencies (the same check as the datasheet figure)."""
    try:
        board = boards.load("stm32l4r5")
    except McuCompileError:
        pytest.skip("no stm32l4r5 board file")
    if board.power is None:
        pytest.skip("the stm32l4r5 board file has no power figure yet")
    assert board.clock_hz == 120_000_000
    for r in L4R5:
        predicted = board.power.active_mw * r.latency_ms
        assert abs(predicted - r.energy_uj) / r.energy_uj <= energy.CALIBRATION_TOLERANCE, r.benchmark


def test_an_unfitted_kernel_costs_what_the_kernel_whose_loops_it_runs_costs(monkeypatch):
    from mcucompile import energy
    table = {core: {f: c for f, c in costs.items() if f != "mcc_gemm_inplace_s8"}
             for core, costs in energy.KERNEL_COSTS.items()}
    monkeypatch.setattr(energy, "KERNEL_COSTS", table)
    cost, origin = energy.kernel_cost("cortex-m7", "mcc_gemm_inplace_s8")
    assert cost == table["cortex-m7"]["mcc_gemm_s8"] and "as mcc_gemm_s8" in origin


def test_a_kernel_path_with_its_own_speed_has_its_own_cost(monkeypatch):
    """The one-channel depthwise kernel runs 3-row filters in an unrolled loop
    (assembly on DSP cores) and others generically, 2-3x apart per MAC: the
    estimate keys them apart; a variant never measured costs what its function costs."""
    from mcucompile import energy
    from mcucompile.kernels import KernelCall
    call = KernelCall("mcc_depthwise_conv2d_1ch_s8", "mcc_conv", "p", (), (), cost_variant="3rows")
    assert call.cost_name == "mcc_depthwise_conv2d_1ch_s8:3rows"
    assert KernelCall("f", "mcc_conv", "p", (), ()).cost_name == "f"
    table = {"cortex-m7": {"mcc_depthwise_conv2d_1ch_s8": energy.KernelCost(4.0, 0, 0, 0, 1),
                           "mcc_depthwise_conv2d_1ch_s8:3rows": energy.KernelCost(2.5, 0, 0, 0, 1)}}
    monkeypatch.setattr(energy, "KERNEL_COSTS", table)
    assert energy.kernel_cost("cortex-m7", call.cost_name)[0].per_mac == 2.5
    del table["cortex-m7"]["mcc_depthwise_conv2d_1ch_s8:3rows"]
    cost, origin = energy.kernel_cost("cortex-m7", call.cost_name)
    assert cost.per_mac == 4.0 and origin == "measured"
