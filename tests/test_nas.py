"""TinyNAS: the search space, the efficiency predictor against the compiler, evolution,
Early-Bird tickets, data loading, and search -> build -> verify -> emulator end to end.

The fast tests need no TensorFlow. The slow ones share two runs (module fixtures):
one `mcucompile search` at the tiny budget on a tight board (16 KB SRAM, 128 KB
flash), and one `mcucompile train --compare-full`.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcucompile import boards
from mcucompile.errors import BoardError, McuCompileError
from mcucompile.ir import verify as verify_graph
from mcucompile.nas import data as datamod
from mcucompile.nas.earlybird import EarlyBird, channel_masks, mask_distance
from mcucompile.nas.efficiency import (CODE_FLASH_BYTES, EfficiencyModel, constraints_for,
                                       graph_of)
from mcucompile.nas.evolution import (EvolutionSettings, crossover, evolve, mutate, pareto_front,
                                      random_search)
from mcucompile.nas.space import STAGES, Arch, Block, SearchSpace, SubnetConfig
from mcucompile.nas.spaceopt import choose_space

REPO = Path(__file__).resolve().parents[1]


def mcucompile(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcucompile", *args], capture_output=True, text=True,
                          timeout=timeout)


def board_file(directory: Path, name: str, sram: str, flash: str) -> Path:
    """The stm32f746 board cut down to other memory sizes (same core, same QEMU stand-in)."""
    data = yaml.safe_load((REPO / "boards" / "stm32f746.yaml").read_text())
    data["name"], data["description"] = name, f"stm32f746 with {sram} SRAM and {flash} flash (test board)"
    data["memory"]["sram"]["size"], data["memory"]["flash"]["size"] = sram, flash
    for optional in ("platformio", "renode"):
        data.pop(optional, None)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def stm32():
    return boards.load("stm32f746")


# --- space and efficiency (no TensorFlow) --------------------------------------------

def test_space_samples_stay_in_the_space_and_build_consistent_archs():
    space = SearchSpace(0.5, 24, 1, 10)
    rng = np.random.default_rng(0)
    for _ in range(50):
        cfg = space.sample(rng)
        assert space.contains(cfg)
        arch = space.arch(cfg)
        arch.check()
        assert len(arch.blocks) == 1 + sum(cfg.depths)
        assert Arch.from_json(json.loads(json.dumps(arch.to_json()))) == arch
        assert SubnetConfig.from_json(cfg.to_json()) == cfg
    big, small = space.arch(space.largest()), space.arch(space.smallest())
    assert all(b.kernel == 7 and b.hidden == 6 * b.in_channels for b in big.blocks[1:])
    # Every stage's first block changes the width, later ones add a residual.
    assert [b.residual for b in small.blocks] == [False] + [False, True] * 4
    with pytest.raises(McuCompileError, match="not in the search space"):
        space.arch(SubnetConfig(((Block(9, 6),) * 2,) * 4))


def test_efficiency_graph_is_valid_and_cost_grows_with_the_subnet(stm32):
    space = SearchSpace(0.5, 24, 1, 10)
    em = EfficiencyModel(stm32)
    for cfg in (space.smallest(), space.largest()):
        verify_graph(graph_of(space.arch(cfg)))
    small, big = em.cost(space.arch(space.smallest())), em.cost(space.arch(space.largest()))
    assert 0 < small.peak_sram < big.peak_sram
    assert 0 < small.weights < big.weights and small.flash == small.weights + CODE_FLASH_BYTES
    assert 0 < small.macs < big.macs
    assert small.latency_ms is not None and small.latency_ms < big.latency_ms
    assert em.cost(space.arch(space.smallest())) is small       # memoized


def test_a_board_too_small_for_any_subnet_says_what_the_smallest_needs(tmp_path, stm32):
    board = boards.load(board_file(tmp_path, "crumb", "13K", "1M"))     # 1 KiB left for the arena
    constraints = constraints_for(board)
    assert constraints.sram_bytes == 13 * 1024 - board.stack_bytes - 4096
    with pytest.raises(BoardError) as e:
        choose_space((0.35, 0.5), (24, 32), 1, 10, EfficiencyModel(board), constraints, 10,
                     np.random.default_rng(0))
    smallest = EfficiencyModel(board).cost(SearchSpace(0.35, 24, 1, 10).arch(
        SearchSpace(0.35, 24, 1, 10).smallest()))
    msg = str(e.value)
    assert "no subnet of the search space fits board 'crumb'" in msg
    assert f"needs {smallest.peak_sram:,} B of SRAM" in msg and "1,024 B for the arena" in msg
    with pytest.raises(BoardError, match="no memory sizes"):
        constraints_for(boards.load("host"))
    with pytest.raises(BoardError, match="active power"):
        constraints_for(stm32, energy_uj=10.0)                # stm32f746.yaml gives no power


def test_stage1_prefers_the_space_whose_fitting_subnets_have_more_macs(stm32):
    em = EfficiencyModel(stm32)
    c = constraints_for(stm32)
    choice = choose_space((0.35, 0.5), (16, 24), 1, 10, em, c, 20, np.random.default_rng(0))
    # Everything fits on 320 KB: the widest, highest-resolution space has the most MACs.
    assert (choice.chosen.width, choice.chosen.resolution) == (0.5, 24)
    assert all(s.fit_fraction == 1.0 for s in choice.stats)
    tight = type(c)(sram_bytes=c.sram_bytes, flash_bytes=70 * 1024 + CODE_FLASH_BYTES)
    choice = choose_space((0.35, 0.5), (16, 24), 1, 10, em, tight, 20, np.random.default_rng(0))
    assert any(s.fit_fraction < 1.0 for s in choice.stats)
    best = next(s for s in choice.stats if s.space == choice.chosen)
    assert best.mean_macs == max(s.mean_macs for s in choice.stats if s.fit_fraction >= 0.05)


# --- evolution (no TensorFlow) ----------------------------------------------------------

def test_mutation_and_crossover_stay_in_the_space():
    space = SearchSpace(0.5, 24, 1, 10)
    rng = np.random.default_rng(1)
    a, b = space.sample(rng), space.sample(rng)
    for _ in range(100):
        assert space.contains(mutate(a, space, rng, 0.5))
        child = crossover(a, b, rng)
        assert space.contains(child)
        for s, (sa, sb, sc) in enumerate(zip(a.stages, b.stages, child.stages)):
            assert len(sc) in (len(sa), len(sb))
            assert all(blk in {*sa[j:j + 1], *sb[j:j + 1]} for j, blk in enumerate(sc))


def test_evolution_beats_random_search_on_a_known_objective():
    """On a black box whose optimum is known, at the same number of scored subnets:
    'accuracy' grows with capacity but a parameter limit caps it, so the best subnets
    sit on the constraint's boundary, as real ones do. (Costs are a closed form here,
    to keep the test fast; the search itself uses EfficiencyModel.)"""
    from mcucompile.nas.efficiency import Constraints, Cost
    from mcucompile.nas.models import count_params
    space = SearchSpace(0.5, 24, 1, 10)

    def cost(cfg):
        arch = space.arch(cfg)
        size, macs = arch.resolution // 2, 0
        for b in arch.blocks:
            macs += size * size * b.in_channels * b.hidden * b.expand_conv
            size = -(-size // b.stride)
            macs += size * size * b.hidden * (b.kernel ** 2 + b.out_channels)
        params = count_params(arch)
        return Cost(0, params, params, macs, None, None, "layer")

    limit = Constraints(sram_bytes=1, flash_bytes=60_000)

    def accuracy(cfg):
        k = cost(cfg)
        return float(np.log(k.macs) + 0.5 * np.log(k.weights))

    evo_best, rand_best = [], []
    for seed in range(4):
        evo = evolve(space, cost, accuracy, limit, EvolutionSettings(8, 4), np.random.default_rng(seed))
        rnd = random_search(space, cost, accuracy, limit, len(evo.scored), np.random.default_rng(100 + seed))
        assert len(rnd.scored) == len(evo.scored)
        assert all(limit.fits(x.cost) for x in evo.scored + rnd.scored)
        evo_best.append(evo.best.accuracy)
        rand_best.append(rnd.best.accuracy)
    assert np.mean(evo_best) > np.mean(rand_best)
    assert sum(e >= r for e, r in zip(evo_best, rand_best)) >= 3


def test_pareto_front():
    pts = [(1, 0.5), (2, 0.4), (2, 0.7), (3, 0.7), (4, 0.9), (0.5, 0.1)]
    assert pareto_front(pts) == [5, 0, 2, 4]


# --- Early-Bird detection (no TensorFlow) ---------------------------------------------

def test_channel_masks_prune_the_smallest_gammas_globally():
    g = [np.array([0.1, 2.0, 0.3]), np.array([1.0, 0.05, 0.2, 3.0])]
    m = channel_masks(g, 0.5)
    assert [list(x) for x in m] == [[False, True, True], [True, False, False, True]]
    assert mask_distance(m, [np.ones(3, bool), np.ones(4, bool)]) == pytest.approx(3 / 7)


def test_early_bird_is_drawn_when_the_masks_settle():
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 1, 64)
    eb = EarlyBird(ratio=0.5, threshold=0.1, window=3)
    drawn_at = None
    for epoch in range(1, 13):
        noise = rng.normal(0, 1.0 / epoch ** 2, 64)       # the gammas converge
        if eb.update([target + noise]) and drawn_at is None:
            drawn_at = epoch
    assert drawn_at is not None and drawn_at == eb.epoch and 4 <= drawn_at < 12
    assert max(eb.history[drawn_at - 4:drawn_at - 1]) < 0.1
    never = EarlyBird(window=3)
    for _ in range(8):
        never.update([rng.uniform(0, 1, 64)])               # masks that keep changing
    assert not never.drawn


# --- data ---------------------------------------------------------------------------------

def test_builtin_data_and_stratified_split():
    ds = datamod.load("digits")
    assert (len(ds), ds.channels, ds.num_classes, ds.image_size) == (1797, 1, 10, (8, 8))
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
    s = datamod.split(ds, seed=3)
    assert len(s.train) + len(s.val) + len(s.test) == len(ds)
    assert set(np.unique(s.val.y)) == set(range(10))
    syn = datamod.synthetic(n_per_class=5)
    assert syn.x.shape == (30, 32, 32, 1) and syn.num_classes == 6
    np.testing.assert_array_equal(syn.x, datamod.synthetic(n_per_class=5).x)


def test_npz_and_image_folder_data(tmp_path):
    from PIL import Image
    x = (np.random.default_rng(0).uniform(0, 255, (12, 10, 10))).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(12) % 3)
    ds = datamod.load(tmp_path / "d.npz")
    assert ds.x.shape == (12, 10, 10, 1) and ds.x.max() <= 1.0 and ds.num_classes == 3
    for c in ("cat", "dog"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(x[i]).convert("RGB").save(tmp_path / "img" / c / f"{i}.png")
    ds = datamod.load(tmp_path / "img")
    assert ds.x.shape == (6, 10, 10, 3) and ds.class_names == ("cat", "dog")


@pytest.mark.parametrize("arrays, message", [
    ({"y": np.zeros(3)}, "no array 'x'"),
    ({"x": np.zeros((0, 8, 8))}, "holds no samples"),
    ({"x": np.zeros((4, 8))}, "expected \\(N,H,W\\)"),
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(5, int)}, "one integer label per image"),
    ({"x": np.zeros((4, 8, 8)), "y": np.array([0.5, 1, 0, 1])}, "integer class labels"),
    ({"x": np.zeros((4, 8, 8)), "y": np.zeros(4, int)}, "single class"),
    ({"x": np.zeros((4, 8, 8)), "y": np.array([0, 0, 0, 1])}, "fewer than 3 samples"),
])
def test_malformed_npz_data_is_refused_clearly(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(datamod.DataError, match=message):
        datamod.load(tmp_path / "bad.npz")


def test_empty_and_missing_data_are_refused_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(datamod.DataError, match="no class sub-folders and no images"):
        datamod.load(tmp_path / "empty")
    (tmp_path / "classes" / "a").mkdir(parents=True)
    with pytest.raises(datamod.DataError, match="class folder 'a' holds no images"):
        datamod.load(tmp_path / "classes")
    with pytest.raises(datamod.DataError, match="no such file or directory"):
        datamod.load(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(datamod.DataError, match="expected an image folder"):
        datamod.load(tmp_path / "notes.txt")


def test_cli_refuses_the_host_board_and_bad_data_before_training(tmp_path):
    r = mcucompile("search", "--board", "host", "--data", "digits", "-o", str(tmp_path / "o"))
    assert r.returncode == 1 and "error: board 'host' has no memory sizes" in r.stderr
    r = mcucompile("search", "--board", "stm32f746", "--data", str(tmp_path / "missing"),
                   "-o", str(tmp_path / "o"))
    assert r.returncode == 1 and "no such file or directory" in r.stderr
    assert "Traceback" not in r.stderr


def test_build_path_does_not_import_tensorflow():
    code = ("import sys; from mcucompile.cli import _parser; _parser(); "
            "import mcucompile.pipeline, mcucompile.nas.efficiency, mcucompile.nas.spaceopt, "
            "mcucompile.nas.evolution, mcucompile.nas.search; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False False", r.stderr


# --- the supernet (TensorFlow) -----------------------------------------------------------

@pytest.mark.tf
def test_masked_supernet_equals_the_extracted_subnet():
    """Masking the largest graph (kernel, channels, depth) computes exactly what the
    extracted plain Keras model of the subnet computes."""
    from mcucompile.nas._tf import seed_everything, strategy
    from mcucompile.nas.supernet import SupernetTrainer
    seed_everything(0)
    space = SearchSpace(0.35, 16, 1, 4, stages=STAGES[:2])      # small: quick to trace
    trainer = SupernetTrainer(space, strategy(), 0, 16)
    rng = np.random.default_rng(0)
    for v in trainer.net.trainable_variables:          # not the identity transforms and unit gammas
        v.assign(v.numpy() + rng.normal(0, 0.2, v.shape).astype(np.float32))
    x = rng.uniform(0, 1, (32, 16, 16, 1)).astype(np.float32)
    for cfg in (space.smallest(), space.largest(), space.sample(rng), space.sample(rng)):
        trainer.recalibrate(cfg, x, 2, 16)
        logits = trainer.predict(cfg, x)
        probs = trainer.net.extract(cfg).predict(x, verbose=0)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probs, atol=2e-5)


@pytest.mark.tf
def test_pruning_channels_with_zero_gamma_keeps_the_output():
    from mcucompile.nas._tf import seed_everything
    from mcucompile.nas.models import build_model, prunable_blocks, prune
    seed_everything(0)
    space = SearchSpace(0.35, 16, 1, 4)
    arch = space.arch(space.smallest())
    model = build_model(arch)
    rng = np.random.default_rng(0)
    keep = []
    for i in prunable_blocks(arch):
        bn = model.get_layer(f"b{i}_dw_bn")
        gamma, beta, mean, var = (w.copy() for w in bn.get_weights())
        mask = rng.uniform(size=gamma.size) < 0.6
        mask[0] = True
        bn.set_weights([np.where(mask, gamma, 0.0), rng.uniform(-1, 1, beta.size).astype(np.float32),
                        rng.normal(0, 1, mean.size).astype(np.float32), var])
        keep.append(mask)
    small_arch, small = prune(model, arch, keep)
    assert [b.hidden for b in small_arch.blocks[1:]] == [int(m.sum()) for m in keep]
    x = rng.uniform(0, 1, (8, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), small.predict(x, verbose=0), atol=1e-5)


# --- search, end to end (TensorFlow, slow) -----------------------------------------------

@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """`mcucompile search` at the tiny budget on a board with 16 KB of SRAM and 128 KB of flash."""
    pytest.importorskip("tensorflow")
    d = tmp_path_factory.mktemp("search")
    board = board_file(d, "tight16k", "16K", "128K")
    out = d / "out"
    r = mcucompile("search", "--board", str(board), "--data", "digits", "--budget", "tiny",
                   "--widths", "0.35,0.5", "--resolutions", "16,24", "--seed", "0",
                   "--compare-random", "-o", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return board, out, json.loads((out / "search_report.json").read_text()), r.stdout


@pytest.mark.tf
@pytest.mark.slow
def test_search_output_fits_the_tight_board(searched):
    board_path, out, report, stdout = searched
    board = boards.load(board_path)
    from mcucompile.pipeline import CompileOptions, compile_model
    model = (out / "best_int8.tflite").read_bytes()
    limit = report["constraints"]
    assert limit["arena_sram_bytes"] == 16 * 1024 - board.stack_bytes - limit["runtime_sram_bytes"]
    compiled = compile_model(model, board, CompileOptions(memory="inplace")).report
    assert compiled.arena_bytes <= limit["arena_sram_bytes"]
    assert compiled.weights_bytes + CODE_FLASH_BYTES <= limit["flash_bytes"] == 128 * 1024
    # `build`'s default strategy can only do better.
    assert compile_model(model, board).report.arena_bytes <= compiled.arena_bytes
    # Every subnet the search scored met the limits, and the limits did bind: the space
    # has subnets that do not fit.
    for c in report["evolution"]["scored"] + report["random_search"]["scored"]:
        assert c["peak_sram_bytes"] <= limit["arena_sram_bytes"] and c["flash_bytes"] <= limit["flash_bytes"]
    assert any(s["fit_fraction"] < 1.0 for s in report["stage1"]["candidates"])
    for name in ("pareto_sram.png", "pareto_macs.png", "stage1_macs_cdf.png", "best_float.keras"):
        assert (out / name).stat().st_size > 1000
    assert report["best"]["test_accuracy_int8"] > 0.5 and "best subnet" in stdout


@pytest.mark.tf
@pytest.mark.slow
def test_predicted_cost_equals_the_compilers_on_the_searched_model(searched):
    board_path, out, report, _ = searched
    board = boards.load(board_path)
    from mcucompile.pipeline import CompileOptions, compile_model
    arch = Arch.from_json(report["best"]["arch"])
    model = (out / "best_int8.tflite").read_bytes()
    for memory in ("layer", "inplace"):
        compiled = compile_model(model, board, CompileOptions(memory=memory)).report
        predicted = EfficiencyModel(board, memory).cost(arch)
        assert predicted.peak_sram == compiled.arena_bytes
        assert predicted.macs == compiled.macs
        # Our stand-in arrays never coincide; a real model's shift arrays sometimes do.
        assert 0 <= predicted.weights - compiled.weights_bytes <= 0.005 * compiled.weights_bytes


@pytest.mark.tf
@pytest.mark.slow
def test_search_beats_random_sampling_at_equal_budget(searched):
    """Same supernet, same scoring, same constraints, the same number of distinct
    subnets scored; random search draws from the feasible subnets uniformly."""
    _, _, report, _ = searched
    evo, rnd = report["evolution"], report["random_search"]
    assert evo["evaluations"] == rnd["evaluations"] >= 20
    # The five best of each: a single best of ~24 subnets is decided by one validation
    # image either way (TensorFlow versions differ in it), five are not.
    top = [sorted((c["accuracy"] for c in r["scored"]), reverse=True)[:5] for r in (evo, rnd)]
    assert top[0][0] == evo["best_accuracy"] and np.mean(top[0]) > np.mean(top[1]), top
    scores = sorted(c["accuracy"] for c in rnd["scored"])
    assert evo["best_accuracy"] > scores[len(scores) // 2]
    assert evo["best_per_generation"] == sorted(evo["best_per_generation"])     # elitist


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.reference
def test_searched_model_builds_for_stm32f746_and_is_bit_exact(searched, stm32, tmp_path):
    from mcucompile.pipeline import build
    from mcucompile.verify import verify
    _, out, _, _ = searched
    compiled = build(out / "best_int8.tflite", stm32, tmp_path / "build")
    assert compiled.report.fits_sram and compiled.report.fits_flash
    assert (tmp_path / "build" / "firmware").is_dir()
    result = verify((out / "best_int8.tflite").read_bytes(), runs=1, board=boards.load("host"),
                    check_layers=True)
    assert result.bit_exact, str(result.first_bad_layer)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.arm_gcc
@pytest.mark.reference
def test_searched_model_runs_bit_exactly_in_the_emulator_of_the_tight_board(searched):
    """The QEMU firmware is linked into the board's own 16 KB of SRAM: it links and runs only
    if the model really fits."""
    board_path, out, _, _ = searched
    r = mcucompile("run", str(out / "best_int8.tflite"), "--board", str(board_path), "--runs", "2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


# --- Early-Bird training and quantization (TensorFlow, slow) ------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("tensorflow")
    out = tmp_path_factory.mktemp("train")
    r = mcucompile("train", "--data", "digits", "--width", "0.35", "--resolution", "16",
                   "--depth", "2", "--expand", "6", "--epochs", "8", "--compare-full",
                   "--board", "stm32f746", "--seed", "0", "-o", str(out))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, json.loads((out / "train_report.json").read_text()), r.stdout


@pytest.mark.tf
@pytest.mark.slow
def test_early_bird_ticket_is_found_and_the_pruned_network_trains(trained):
    out, report, stdout = trained
    eb = report["early_bird"]
    assert eb["ticket_epoch"] is not None and eb["ticket_epoch"] < report["epochs"]
    assert max(eb["mask_distances"][eb["ticket_epoch"] - 1 - eb["window"]:eb["ticket_epoch"] - 1]) < eb["threshold"]
    dense, ticket = Arch.from_json(report["dense_arch"]), Arch.from_json(report["ticket_arch"])
    assert sum(b.hidden for b in ticket.blocks) < sum(b.hidden for b in dense.blocks)
    assert report["ticket_macs"] < report["dense_macs"]
    run = report["early_bird_run"]
    after = [e for e in run if e["network"] == "ticket"]
    assert after and after[-1]["val_accuracy"] > 0.8             # the ticket trained
    s = report["savings"]
    assert s["train_flops_full"] > 0 and s["full_cpu_seconds"] > 0
    if s["eb_epochs"] is not None:
        assert s["eb_train_macs"] <= s["full_train_macs"] or s["eb_epochs"] > s["full_epochs"]
    assert "Early-Bird ticket after epoch" in stdout


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.reference
def test_quantize_cli_reports_accuracy_and_the_predictor_matches_the_pruned_net(trained, stm32, tmp_path):
    """The ticket has a different hidden width in every block: a second subnet for the
    efficiency predictor, this one not from the search space's grid."""
    out, report, _ = trained
    tflite = tmp_path / "ticket.tflite"
    r = mcucompile("quantize", str(out / "model.keras"), "--calib", "digits", "-o", str(tflite))
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"accuracy on \d+ labeled samples: float ([0-9.]+), int8 ([0-9.]+) \(TFLM\)", r.stdout)
    assert m, r.stdout
    f, q = float(m.group(1)), float(m.group(2))
    assert f > 0.8 and abs(f - q) < 0.05
    from mcucompile.pipeline import CompileOptions, compile_model
    ticket = Arch.from_json(report["ticket_arch"])
    compiled = compile_model(tflite.read_bytes(), stm32, CompileOptions(memory="inplace")).report
    predicted = EfficiencyModel(stm32).cost(ticket)
    assert predicted.peak_sram == compiled.arena_bytes and predicted.macs == compiled.macs
    assert 0 <= predicted.weights - compiled.weights_bytes <= 0.005 * compiled.weights_bytes
    assert report["board"]["predicted"]["peak_sram_bytes"] == predicted.peak_sram


def test_quantize_cli_refuses_a_missing_model(tmp_path):
    r = mcucompile("quantize", str(tmp_path / "none.keras"), "--calib", "digits", "-o",
                   str(tmp_path / "m.tflite"))
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.reference
def test_build_quantizes_a_keras_model_on_the_way_with_calib(trained, tmp_path):
    """`build MODEL.keras --calib DATA` equals `quantize` then `build` on the .tflite."""
    out, _, _ = trained
    direct, two_step = tmp_path / "direct", tmp_path / "two"
    r = mcucompile("build", str(out / "model.keras"), "--calib", "digits", "--board", "host",
                   "-o", str(direct))
    assert r.returncode == 0, r.stderr[-3000:]
    kept = direct / "model_int8.tflite"
    assert kept.is_file()
    tflite = tmp_path / "q.tflite"
    assert mcucompile("quantize", str(out / "model.keras"), "--calib", "digits",
                      "-o", str(tflite)).returncode == 0
    assert tflite.read_bytes() == kept.read_bytes()      # same calibration sample, same bytes
    r2 = mcucompile("build", str(tflite), "--board", "host", "-o", str(two_step))
    assert r2.returncode == 0, r2.stderr[-3000:]
    for f in (direct / "model").iterdir():
        assert f.read_bytes() == (two_step / "model" / f.name).read_bytes(), f.name
    r3 = mcucompile("verify", str(kept), "--runs", "2", "--no-sanitize")
    assert r3.returncode == 0, r3.stderr[-3000:]


def test_build_of_a_keras_model_without_calib_says_how(tmp_path):
    model = tmp_path / "net.keras"
    model.write_bytes(b"not really")
    r = mcucompile("build", str(model), "--board", "host", "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and "--calib" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    r = mcucompile("build", str(REPO / "examples" / "person_detect.tflite"), "--calib", "digits",
                   "--board", "host", "-o", str(tmp_path / "out"))
    assert r.returncode == 1 and "drop --calib" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.tf
@pytest.mark.slow
def test_training_runs_mirrored_over_two_replicas(tmp_path):
    """The multi-GPU path (MirroredStrategy: mirrored variables, per-replica steps,
    cross-replica sums), on two logical CPU devices: every variable must be made in
    the strategy's scope, which a single device never checks."""
    import os
    out = tmp_path / "train"
    env = dict(os.environ, MCUCOMPILE_CPU_REPLICAS="2")
    r = subprocess.run([sys.executable, "-m", "mcucompile", "train", "--data", "digits", "--width", "0.35",
                        "--resolution", "16", "--depth", "2", "--expand", "6", "--epochs", "5",
                        "--compare-full", "--board", "stm32f746", "--seed", "0", "-o", str(out)],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "train_report.json").read_text())
    assert report["replicas"] == 2
    assert report["early_bird"]["ticket_epoch"] is not None and report["ticket_arch"] is not None
    assert report["val_accuracy"] > 0.3                          # learned: 10 classes
    assert (out / "model.keras").is_file()


@pytest.mark.slow
def test_evolution_honours_latency_and_energy_budgets():
    """Budgets from the project's static speed/energy model, on the board with a power
    figure: every scored subnet meets them, and a tighter budget gives a cheaper winner."""
    l4 = boards.load("stm32l4r5")
    space = SearchSpace(0.35, 24, 1, 10)
    em = EfficiencyModel(l4)
    costs = [em.cost(space.arch(space.sample(np.random.default_rng(s)))) for s in range(6)]
    mid_ms = float(np.median([c.latency_ms for c in costs]))
    mid_uj = float(np.median([c.energy_uj for c in costs]))
    assert all(c.energy_uj > 0 for c in costs)

    def cost(cfg):
        return em.cost(space.arch(cfg))

    def accuracy(cfg):                          # bigger is better, as on real data
        return float(np.log(cost(cfg).macs))

    winners = {}
    for name, limit in (("latency", constraints_for(l4, latency_ms=mid_ms)),
                        ("energy", constraints_for(l4, energy_uj=mid_uj)),
                        ("tight", constraints_for(l4, latency_ms=0.6 * mid_ms))):
        evo = evolve(space, cost, accuracy, limit, EvolutionSettings(6, 2), np.random.default_rng(0))
        assert evo.scored and all(limit.fits(c.cost) for c in evo.scored), name
        winners[name] = evo.best.cost
    assert winners["latency"].latency_ms <= mid_ms and winners["energy"].energy_uj <= mid_uj
    assert winners["tight"].latency_ms <= 0.6 * mid_ms < winners["latency"].latency_ms
