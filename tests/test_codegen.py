"""The generated invoke: repeated patterns of kernel calls become loops.

A patch stage is the same few kernels once per patch; unrolled, person_detect's
8x8 patches were 410 calls and as many parameter structs (about 40 KB of
flash). codegen._blocks folds them into loops whose table gives each pass its
struct and the arena offsets that differ. These tests check that the folding
loses nothing: expanding the loops again gives back every layer, in order.
"""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from harness import host_board
from mcucompile import codegen, pipeline
from mcucompile.codegen import FieldView, LayerView, Ptr


def _layer(index: int, function: str, fields: dict | None = None, offsets=(0, 0), ctype="int8_t"):
    return LayerView(index, f"layer_{index}", f"op {index}", function, f"{function}_params",
                     tuple(FieldView(k, str(v)) for k, v in (fields or {}).items()),
                     tuple(Ptr(ctype, o) for o in offsets))


def _expand(blocks) -> list[tuple]:
    """The calls the rendered invoke makes, in order: (profiling id, function, fields, offsets)."""
    calls = []
    for b in blocks:
        if b.kind == "layer":
            calls.append((b.index, b.function, b.fields, tuple(a.offset for a in b.args)))
            continue
        assert len(b.table) in (0, b.count)
        for i in range(b.count):
            for s in b.steps:
                fields = s.params[0 if s.pick is None else b.table[i][s.pick]]
                offsets = tuple(a.offset if a.column is None else b.table[i][a.column] for a in s.args)
                calls.append((s.index + b.period * i, s.function, fields, offsets))
    return calls


def _flat(layers) -> list[tuple]:
    return [(x.index, x.function, x.fields, tuple(a.offset for a in x.args)) for x in layers]


def test_a_repeated_pattern_becomes_one_loop_with_a_table_of_what_differs():
    layers = [_layer(0, "pad")]
    for p in range(4):   # four patches: crop, conv, paste
        first = 1 + 3 * p
        layers += [_layer(first, "crop", {"y": 8 * p}, (0, 100)),
                   _layer(first + 1, "conv", {"pad": int(p == 0)}, (100, 200 + 16 * p)),
                   _layer(first + 2, "paste", {"n": 1}, (200 + 16 * p, 0))]
    layers.append(_layer(13, "softmax"))
    blocks = codegen._blocks(layers)
    assert [b.kind for b in blocks] == ["layer", "loop", "layer"]
    loop = blocks[1]
    assert (loop.first, loop.last, loop.count, loop.period) == (1, 12, 4, 3)
    crop, conv, paste = loop.steps
    # Each distinct struct once: four crops, an edge and an interior conv, one paste.
    assert (len(crop.params), len(conv.params), len(paste.params)) == (4, 2, 1)
    assert paste.pick is None and crop.pick is not None and conv.pick is not None
    # What every pass shares stays out of the table.
    assert [a.column is None for a in crop.args] == [True, True]
    assert [a.column is None for a in conv.args] == [True, False]
    assert [a.column is None for a in paste.args] == [False, True]
    assert len(loop.table[0]) == 4 and loop.table_ctype == "uint16_t"
    assert _expand(blocks) == _flat(layers)


def test_the_shortest_body_wins_and_two_passes_stay_unrolled():
    same = [_layer(i, "relu", offsets=(4 * i, 4 * i + 4)) for i in range(5)]
    (loop,) = codegen._blocks(same)
    assert (loop.period, loop.count) == (1, 5)
    two = [_layer(0, "a"), _layer(1, "b"), _layer(2, "a"), _layer(3, "b")]
    assert [b.kind for b in codegen._blocks(two)] == ["layer"] * 4
    # A different pointer type is a different call: it ends the pattern.
    mixed = [_layer(0, "c"), _layer(1, "c"), _layer(2, "c", ctype="int16_t")]
    assert [b.kind for b in codegen._blocks(mixed)] == ["layer"] * 3


def test_offsets_past_64k_get_a_wide_table():
    layers = [_layer(i, "add", offsets=(0, 70_000 + i)) for i in range(3)]
    (loop,) = codegen._blocks(layers)
    assert loop.table_ctype == "uint32_t" and _expand([loop]) == _flat(layers)


_FUNCTIONS = st.sampled_from(["crop", "conv", "dw", "paste"])


@st.composite
def _sequences(draw):
    """Random call sequences, with repeated bodies spliced in so that loops occur."""
    layers: list[LayerView] = []
    for _ in range(draw(st.integers(1, 6))):
        body = draw(st.lists(_FUNCTIONS, min_size=1, max_size=5))
        for _ in range(draw(st.integers(1, 6))):
            for f in body:
                i = len(layers)
                layers.append(_layer(i, f, {"k": draw(st.integers(0, 2))},
                                     (draw(st.sampled_from([0, 64, 70_000])), draw(st.integers(0, 3)) * 8)))
    return layers


@settings(max_examples=300, deadline=None)
@given(_sequences())
def test_loops_expand_back_to_every_call_in_order(layers):
    blocks = codegen._blocks(layers)
    assert _expand(blocks) == _flat(layers)
    for b in blocks:
        if b.kind == "loop":
            assert b.count >= codegen.LOOP_MIN_PASSES
            for s in b.steps:   # each distinct struct once
                assert len(set(s.params)) == len(s.params)


def test_person_detect_patch_stage_is_a_few_loops(shared_models):
    c = pipeline.compile_model((shared_models / "person_detect.tflite").read_bytes(), host_board())
    assert c.report.memory_strategy == "patch"
    text = c.files["model.c"]
    layers = int(re.search(r"_num_layers\(void\) \{ return (\d+); \}", text).group(1))
    invoke = text[text.index("int model_invoke(void)"):]
    call_sites = len(re.findall(r"status = mcc_\w+\(", invoke))
    loops = re.findall(r"for \(int i = 0; i < (\d+); i\+\+\)", invoke)
    assert layers > 400 and call_sites < 80 and len(loops) >= 2
    # Each struct at most once in the whole file.
    structs = re.findall(r"^static const mcc_\w+_params \w+(?:\[\d+\])? = \{$", text, re.M)
    assert len(structs) < layers / 4
