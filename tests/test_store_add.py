"""STORE_ADD, the QLinearAdd fused into the store unit: the golden model against literal
per-element loops (requantise as STORE does, then ``qlinear_add_scaled`` with the skip tensor)
and against a STORE followed by the post unit's QLINEAR_ADD; its refusals, their order and
that a refused command writes nothing; engines built without it; and the engine's RTL on
Amaranth's simulator against the golden model byte for byte, with random programs mixing
STORE_ADD with its configuration, requantisation and plain STOREs (whose output a STORE_ADD
may read at once as its skip tensor, or add to in place).
"""

import copy
import dataclasses

import numpy as np
import pytest

from rvnpu.gen.soc_header import memory_map_header
from rvnpu.sim.engine_programs import BUSY_MASK
from rvnpu.sim.golden.eltwise import qlinear_add_scaled
from rvnpu.sim.golden.engine import EngineModel, output_range
from rvnpu.sim.golden.post import float_of_bits
from rvnpu.sim.golden.requant import quantize_multiplier
from rvnpu.spec.commands import (STORE_ADD_FUNCTS, ErrorCode, Funct, PostConstant, RequantMode,
                                 Space, decode, encode, is_built,
                                 unpack_status)
from rvnpu.spec.config import EngineConfig
from rvnpu.spec.memory_map import SocConfig

from long_runs import long_case
from test_engine_fetch import run_rtl
from test_store_pool import _setup


CONFIGS = {
    "4x4-bus32": EngineConfig(rows=4, cols=4, spad_depth=32, acc_depth=32, qp_depth=8,
                              bus_width=32, mem_bytes=1 << 12),
    "2x4-bus64-lanes2": EngineConfig(rows=2, cols=4, spad_depth=16, acc_depth=16, qp_depth=4,
                                     bus_width=64, mem_bytes=1 << 12, queue_depth=2,
                                     requant_lanes=2, command_fetch=False, post_unit=False),
    "3x3-ort-serial-lanes1": EngineConfig(rows=3, cols=3, spad_depth=16, acc_depth=16,
                                          qp_depth=4, bus_width=32, mem_bytes=1 << 12,
                                          requant_modes="ort", post_unit=False,
                                          command_fetch=False, hazards="serial",
                                          queue_depth=1, requant_lanes=1),
    # Larger, for long runs only: eight columns through four lanes, a 128-bit bus.
    "8x8-bus128-lanes4": EngineConfig(rows=8, cols=8, spad_depth=32, acc_depth=32,
                                      qp_depth=8, bus_width=128, mem_bytes=1 << 12,
                                      requant_lanes=4),
}

SEED = 1414
WRAP = 1 << 32
INF, NEG_INF, NAN = 0x7F800000, 0xFF800000, 0x7FC00000


def _bits(value):
    """The float32 bit pattern of ``value``."""
    return int(np.array([value], np.float32).view(np.uint32)[0])


def _signed8(values):
    values = np.asarray(values, np.int64)
    return np.where(values > 127, values - 256, values)


def _image(config, rng):
    """Random main memory holding ACC rows (some extreme) at 0 and a QP triple of the
    engine's first mode after them (test_store_pool's); the commands loading both; the mode;
    the first byte past them."""
    memory = rng.integers(0, 256, config.mem_bytes, dtype=np.uint8)
    qp_addr = config.acc_depth * config.cols * 4
    image, commands, mode = _setup(config, rng, 0, qp_addr)
    for addr, data in image:
        memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    return memory, commands, mode, qp_addr + 3 * config.cols * 4


def _model(config, memory, commands=()):
    model = EngineModel(config, memory.copy())
    model.run(list(commands))
    assert model.error_code == ErrorCode.NONE
    return model


def _constants(rng, kind):
    """Three float32 constants (ratio_a, ratio_b, fixed): random, large enough to saturate,
    or halves that make ties for the rounding."""
    if kind == "ties":
        return [0.5, 1.5, float(rng.choice([-0.5, 0.5, 2.5]))]
    if kind == "saturating":
        return [float(rng.choice([-1, 1]) * rng.uniform(2, 6)),
                float(rng.choice([-1, 1]) * rng.uniform(2, 6)), float(rng.uniform(-400, 400))]
    return [float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2)), float(rng.uniform(-60, 60))]


def _configure_add(constants, offset, clamp, elem_signed, skip_first):
    return [encode(Funct.CONFIG_STORE_ADD, value=_bits(v), index=k)
            for k, v in zip(PostConstant, constants)] + [
        encode(Funct.CONFIG_STORE_SKIP, offset=offset % WRAP, clamp_min=clamp[0],
               clamp_max=clamp[1], elem_signed=elem_signed, skip_first=skip_first)]


def _requantised_rows(model, acc_row, rows, cols):
    """STORE's output for ACC rows ``acc_row`` on, as integers: each row stored alone (on a
    copy of ``model``) and read back as the requantisation clamp's element type."""
    scratch = copy.deepcopy(model)
    scratch.execute(*encode(Funct.CONFIG_STORE, stride=cols, qp_row=model.qp_row))
    out = []
    for j in range(rows):
        scratch.execute(*encode(Funct.STORE, dram_addr=0, acc_row=acc_row + j, rows=1,
                                cols=cols))
        row = scratch.memory[:cols].astype(np.int64)
        out.append(_signed8(row) if model.clamp_min < 0 else row)
    assert scratch.error_code == ErrorCode.NONE
    return out


def _literal_store_add(model, dram_addr, acc_row, rows, cols):
    """The memory a STORE_ADD leaves, one element at a time: every skip element read before
    any output is written, rows written in order."""
    q = _requantised_rows(model, acc_row, rows, cols)
    ratio_a, ratio_b, fixed = (float_of_bits(v) for v in model.add_constants)
    clamp = (model.add_clamp_min, model.add_clamp_max)
    stride, before = model.store_stride, model.memory.copy()
    skip = (dram_addr + model.skip_offset) % WRAP
    want = before.copy()
    for j in range(rows):
        for i in range(cols):
            s = int(before[skip + j * stride + i])
            if model.add_elem_signed and s > 127:
                s -= 256
            a, b = (s, q[j][i]) if model.add_skip_first else (q[j][i], s)
            c = int(qlinear_add_scaled(a, b, ratio_a, ratio_b, fixed, clamp))
            assert clamp[0] <= c <= clamp[1]
            want[dram_addr + j * stride + i] = c & 0xFF
    return want


# -- The golden model --------------------------------------------------------------------------

#: Where the skip tensor is, cycled through the seeds below: ahead of the output, in place
#: (offset 0), or behind it, just or far (in the ACC image): an offset above 2**32 - dram_addr,
#: so that dram_addr + offset wraps past 2**32.
_PLACEMENTS = ("ahead", "behind", "in place", "far behind")


@pytest.mark.parametrize("seed", range(SEED, SEED + 16))
def test_golden_store_add_is_requantise_then_qlinear_add(seed):
    config = CONFIGS["4x4-bus32"]
    rng = np.random.default_rng(seed)
    memory, setup, mode, free = _image(config, rng)
    C = config.cols
    skip_first, elem_signed = seed % 2, (seed // 2) % 2
    placement = _PLACEMENTS[(seed // 4) % 4]
    rows, cols = int(rng.integers(1, 6)), int(rng.integers(1, C + 1))
    stride = int(rng.choice([cols, cols + int(rng.integers(1, 9)), 16]))
    if placement != "in place" and rng.random() < 0.3:
        stride = int(rng.integers(0, cols))             # output rows overlap one another
    span = (rows - 1) * stride + cols
    requant_signed = rng.random() < 0.5
    lo, hi = output_range(8, requant_signed)
    if rng.random() < 0.5:
        lo, hi = sorted(int(v) for v in rng.integers(lo, hi + 1, 2))
    e_lo, e_hi = (-128, 127) if elem_signed else (0, 255)
    clamp = [(e_lo, e_hi), (int(rng.integers(e_lo, 1 + e_hi // 2)), e_hi),      # a ReLU
             tuple(sorted(int(v) for v in rng.integers(e_lo, e_hi + 1, 2)))][seed % 3]
    kind = ("random", "saturating", "ties")[(seed // 3) % 3]
    dram_addr = int(rng.integers(free, 2000))
    skip = {"ahead": dram_addr + span + int(rng.integers(0, 40)),
            "behind": int(rng.integers(0, dram_addr - span + 1)),
            "in place": dram_addr,
            "far behind": int(rng.integers(0, free))}[placement]
    offset = (skip - dram_addr) % WRAP
    assert (dram_addr + offset >= WRAP) == placement.endswith("behind")
    model = _model(config, memory, setup + [
        encode(Funct.CONFIG_REQUANT, out_zero=int(rng.integers(-20, 20)), mode=mode,
               clamp_min=lo, clamp_max=hi),
        encode(Funct.CONFIG_STORE, stride=stride, qp_row=0)]
        + _configure_add(_constants(rng, kind), offset, clamp, elem_signed, skip_first))
    acc_row = int(rng.integers(0, config.acc_depth - rows + 1))
    want = _literal_store_add(model, dram_addr, acc_row, rows, cols)
    model.execute(*encode(Funct.STORE_ADD, dram_addr=dram_addr, acc_row=acc_row, rows=rows,
                          cols=cols))
    assert model.error_code == ErrorCode.NONE
    diff = np.argwhere(model.memory != want)
    assert not diff.size, (f"{placement}: byte {int(diff[0][0])} is "
                           f"{model.memory[diff[0][0]]}, expected {want[diff[0][0]]}")
    assert (model.memory != memory).any(), "the STORE_ADD should have changed something"


@pytest.mark.parametrize("elem_signed", [0, 1])
def test_golden_negative_extremes_saturate_at_the_clamp(elem_signed):
    """The most negative skip elements and requantised values, scaled up: every output is the
    clamp's low end, and the most positive ones its high end."""
    config = CONFIGS["4x4-bus32"]
    C = config.cols
    memory = np.zeros(config.mem_bytes, np.uint8)
    lo, hi = (-128, 127) if elem_signed else (0, 255)
    acc = np.array([[-(1 << 31)] * C, [(1 << 31) - 1] * C], np.int64)
    mult, shift = quantize_multiplier(0.5)
    qp = np.array([[0] * C, [mult] * C, [shift] * C], np.int64)
    for addr, values in ((0, acc), (64, qp)):
        data = values.astype("<u4").tobytes()
        memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    memory[1000:1000 + C] = lo & 0xFF
    memory[1000 + C:1000 + 2 * C] = hi & 0xFF
    model = _model(config, memory, [
        encode(Funct.CONFIG_LOAD, stride=C * 4),
        encode(Funct.LOAD, dram_addr=0, local_row=0, space=Space.ACC, rows=2, cols=C),
        encode(Funct.LOAD, dram_addr=64, local_row=0, space=Space.QP, rows=3, cols=C),
        encode(Funct.CONFIG_STORE, stride=C, qp_row=0),
        encode(Funct.CONFIG_REQUANT, out_zero=0, mode=RequantMode.TFLITE, clamp_min=lo,
               clamp_max=hi)] + _configure_add([3.0, 3.0, 0.0], 1000 - 2000, (lo + 1, hi - 1),
                                               elem_signed, 1))
    want = _literal_store_add(model, 2000, 0, 2, C)
    model.execute(*encode(Funct.STORE_ADD, dram_addr=2000, acc_row=0, rows=2, cols=C))
    assert model.error_code == ErrorCode.NONE
    assert (model.memory == want).all()
    got = model.memory[2000:2000 + 2 * C].astype(np.int64)
    got = _signed8(got) if elem_signed else got
    assert list(got) == [lo + 1] * C + [hi - 1] * C


@pytest.mark.parametrize("seed", range(SEED, SEED + 8))
def test_golden_store_add_is_a_store_then_the_post_units_qlinear_add(seed):
    """The same constants through the other path: STORE the requantised rows to a scratch
    area, then one QLINEAR_ADD (post unit) a row, writing where STORE_ADD writes."""
    config = CONFIGS["4x4-bus32"]
    rng = np.random.default_rng(seed)
    memory, setup, mode, free = _image(config, rng)
    C = config.cols
    elem_signed, skip_first = seed % 2, (seed // 2) % 2
    # The requantised bytes must read back as the Add's element type.
    lo, hi = (-128, 127) if elem_signed else (0, 255)
    r_lo, r_hi = sorted(int(v) for v in rng.integers(lo, hi + 1, 2))
    clamp = (int(rng.integers(lo, 1)) if elem_signed else 0, hi)
    constants = _constants(rng, ("random", "saturating")[seed % 2])
    rows, cols = int(rng.integers(2, 6)), int(rng.integers(1, C + 1))
    stride = cols + int(rng.integers(0, 6))
    in_place = seed % 4 == 3
    dram_addr = int(rng.integers(free, 1500))
    skip = dram_addr if in_place else int(rng.integers(2000, 3000))
    commands = setup + [
        encode(Funct.CONFIG_REQUANT, out_zero=int(rng.integers(-10, 10)), mode=mode,
               clamp_min=r_lo, clamp_max=r_hi),
        encode(Funct.CONFIG_STORE, stride=stride, qp_row=0)]
    fused = _model(config, memory, commands + _configure_add(
        constants, skip - dram_addr, clamp, elem_signed, skip_first))
    acc_row = int(rng.integers(0, config.acc_depth - rows + 1))
    fused.execute(*encode(Funct.STORE_ADD, dram_addr=dram_addr, acc_row=acc_row, rows=rows,
                          cols=cols))
    scratch = config.mem_bytes - 64
    two_step = [encode(Funct.CONFIG_STORE, stride=C, qp_row=0),
                encode(Funct.STORE, dram_addr=scratch, acc_row=acc_row, rows=rows, cols=cols),
                encode(Funct.CONFIG_POST, height=1, width=1, kernel_h=1, kernel_w=1,
                       channels=cols, stride_h=1, stride_w=1, elem_signed=elem_signed)]
    two_step += [encode(Funct.CONFIG_POST_ADD, value=_bits(v), index=k)
                 for k, v in zip(PostConstant, constants)]
    for j in range(rows):
        pair = (skip + j * stride, scratch + j * C)
        a, b = pair if skip_first else pair[::-1]
        two_step += [encode(Funct.CONFIG_POST_OUT, out_addr=dram_addr + j * stride,
                            clamp_min=clamp[0], clamp_max=clamp[1]),
                     encode(Funct.QLINEAR_ADD, a_addr=a, b_addr=b)]
    apart = _model(config, memory, commands + two_step)
    assert fused.error_code == ErrorCode.NONE
    diff = np.argwhere(fused.memory[:scratch] != apart.memory[:scratch])
    assert not diff.size, f"byte {int(diff[0][0])} differs"
    assert (fused.memory[:scratch] != memory[:scratch]).any()


def test_golden_empty_store_add_is_a_no_op_even_when_it_could_not_run():
    """Zero rows or zero columns: nothing written and nothing refused, whatever the constants,
    the clamp and the addresses."""
    config = CONFIGS["4x4-bus32"]
    memory = np.random.default_rng(SEED).integers(0, 256, config.mem_bytes, dtype=np.uint8)
    model = _model(config, memory, _configure_add([0.0, 0.0, 0.0], 1 << 31, (5, 4), 1, 0) + [
        encode(Funct.CONFIG_STORE_ADD, value=NAN, index=1)])
    model.run([encode(Funct.STORE_ADD, dram_addr=(1 << 32) - 1, acc_row=(1 << 14) - 1, rows=0,
                      cols=9),
               encode(Funct.STORE_ADD, dram_addr=100, acc_row=0, rows=5, cols=0)])
    assert model.error_code == ErrorCode.NONE and model.error_count == 0
    assert (model.memory == memory).all()


def _base(offset=100, clamp=(-128, 127), elem_signed=1, constants=(1.0, 1.0, 0.0)):
    return [encode(Funct.CONFIG_STORE, stride=8, qp_row=0)] + _configure_add(
        constants, offset, clamp, elem_signed, 0)


def _store_add(dram_addr=1000, acc_row=0, rows=2, cols=4):
    return encode(Funct.STORE_ADD, dram_addr=dram_addr, acc_row=acc_row, rows=rows, cols=cols)


# (label, configuration after _base, the command, its code): a 4x4 engine, 32 ACC rows, a
# 4 KiB window; _base's STORE_ADD (2 rows of 4 from 1000, stride 8, skip at 1100) runs.
_REFUSALS = [
    ("CONFIG_STORE_ADD index 3", [],
     encode(Funct.CONFIG_STORE_ADD, value=_bits(2.0), index=3), ErrorCode.BAD_CONFIG),
    ("ratio_a infinite", [encode(Funct.CONFIG_STORE_ADD, value=INF, index=0)], _store_add(),
     ErrorCode.BAD_CONFIG),
    ("ratio_b -infinite", [encode(Funct.CONFIG_STORE_ADD, value=NEG_INF, index=1)],
     _store_add(), ErrorCode.BAD_CONFIG),
    ("fixed NaN", [encode(Funct.CONFIG_STORE_ADD, value=NAN, index=2)], _store_add(),
     ErrorCode.BAD_CONFIG),
    ("clamp_min > clamp_max", _base(clamp=(6, 5))[-1:], _store_add(), ErrorCode.BAD_CONFIG),
    ("int8 clamp above 127", _base(clamp=(0, 128))[-1:], _store_add(), ErrorCode.BAD_CONFIG),
    ("int8 clamp below -128", _base(clamp=(-129, 0))[-1:], _store_add(),
     ErrorCode.BAD_CONFIG),
    ("uint8 clamp below 0", _base(clamp=(-1, 255), elem_signed=0)[-1:], _store_add(),
     ErrorCode.BAD_CONFIG),
    ("int8 clamp up to 255", _base(clamp=(0, 255), elem_signed=1)[-1:],
     _store_add(), ErrorCode.BAD_CONFIG),
    ("skip rows past the window", _base(offset=3085)[-1:], _store_add(),
     ErrorCode.BAD_MEMORY),                                     # 4089 + 8 + 4 = 4097
    ("skip wraps below 0", _base(offset=WRAP - 1004)[-1:], _store_add(),
     ErrorCode.BAD_MEMORY),
    ("skip a window's size past", _base(offset=4096 - 1000 + 4096 * 3)[-1:],
     _store_add(dram_addr=1000), ErrorCode.BAD_MEMORY),
    ("skip at 2**31", _base(offset=(1 << 31) - 1000)[-1:], _store_add(),
     ErrorCode.BAD_MEMORY),
    ("output past the window", [], _store_add(dram_addr=4096 - 11), ErrorCode.BAD_MEMORY),
    ("output far past the window", [], _store_add(dram_addr=1 << 31), ErrorCode.BAD_MEMORY),
    ("ACC rows past the end", [], _store_add(acc_row=31), ErrorCode.BAD_LOCAL),
    ("too many columns", [], _store_add(cols=5), ErrorCode.BAD_SIZE),
    # The order `EngineModel.check` has: BAD_LOCAL, BAD_SIZE, BAD_CONFIG, BAD_MEMORY.
    ("BAD_LOCAL before BAD_SIZE and BAD_CONFIG",
     [encode(Funct.CONFIG_STORE_ADD, value=NAN, index=0)], _store_add(acc_row=31, cols=5),
     ErrorCode.BAD_LOCAL),
    ("BAD_SIZE before BAD_CONFIG", _base(clamp=(3, 2))[-1:], _store_add(cols=5),
     ErrorCode.BAD_SIZE),
    ("BAD_CONFIG before BAD_MEMORY", _base(offset=WRAP - 1004, clamp=(3, 2))[-1:],
     _store_add(dram_addr=4096 - 11), ErrorCode.BAD_CONFIG),
]


@pytest.mark.parametrize("label, setup, bad, code", _REFUSALS, ids=[r[0] for r in _REFUSALS])
def test_golden_refusals(label, setup, bad, code):
    config = CONFIGS["4x4-bus32"]
    rng = np.random.default_rng(SEED)
    memory, load, _, _ = _image(config, rng)
    model = _model(config, memory, load + _base())
    model.run(setup)
    assert model.error_code == ErrorCode.NONE, label
    settings = (list(model.add_constants), model.skip_offset, model.add_clamp_min,
                model.add_clamp_max, model.add_elem_signed, model.add_skip_first)
    before = model.memory.copy()
    model.execute(*bad)
    assert (model.error_code, model.error_funct) == (code, bad[0]), label
    assert (model.memory == before).all(), "a refused command writes nothing"
    assert settings == (list(model.add_constants), model.skip_offset, model.add_clamp_min,
                        model.add_clamp_max, model.add_elem_signed, model.add_skip_first)


@pytest.mark.parametrize("label, setup, command", [
    ("skip ends at the window's end", _base(offset=3084)[-1:], _store_add()),
    ("output ends at the window's end", _base(offset=-1000)[-1:],
     _store_add(dram_addr=4096 - 12)),
    ("dram_addr + offset wraps to a low address", _base(offset=WRAP - 900)[-1:],
     _store_add()),
    ("the last ACC rows", [], _store_add(acc_row=30)),
    ("uint8 clamp to 255", _base(clamp=(0, 255), elem_signed=0)[-1:], _store_add()),
    ("int8 clamp from -128", _base(clamp=(-128, -128))[-1:], _store_add()),
    ("at reset: constants 0, clamp 0..0, in place", [], _store_add()),
])
def test_golden_edges_are_accepted(label, setup, command):
    config = CONFIGS["4x4-bus32"]
    memory, load, _, _ = _image(config, np.random.default_rng(SEED))
    model = _model(config, memory, load + ([] if label.startswith("at reset") else _base()))
    model.run(setup)
    _, f = decode(*command)
    want = _literal_store_add(model, f["dram_addr"], f["acc_row"], f["rows"], f["cols"])
    model.execute(*command)
    assert model.error_code == ErrorCode.NONE, label
    assert (model.memory == want).all(), label


_WITHOUT = {
    "store_add=0": dataclasses.replace(CONFIGS["4x4-bus32"], store_add=False),
    "in_width=16": dataclasses.replace(CONFIGS["4x4-bus32"], in_width=16),
    "requant_modes=none": dataclasses.replace(CONFIGS["4x4-bus32"], requant_modes="none"),
}


@pytest.mark.parametrize("name", _WITHOUT)
def test_engines_without_store_add_refuse_its_commands(name):
    config = _WITHOUT[name]
    assert not config.with_store_add
    assert not any(is_built(f, config) for f in STORE_ADD_FUNCTS)
    memory = np.random.default_rng(SEED).integers(0, 256, config.mem_bytes, dtype=np.uint8)
    model = _model(config, memory)
    model.run(_configure_add([1.0, 1.0, 0.0], 100, (-128, 127), 1, 0) + [_store_add()])
    assert model.error_code == ErrorCode.BAD_FUNCT
    assert model.error_funct == Funct.CONFIG_STORE_ADD and model.error_count == 5
    assert (model.memory == memory).all()
    assert (model.add_constants, model.skip_offset) == ([0, 0, 0], 0)
    header = memory_map_header(SocConfig(engine=dataclasses.replace(config, mem_bytes=1 << 16)))
    assert not any(f"X({f.name}," in header for f in STORE_ADD_FUNCTS)
    assert "X(STORE_ACC," in header


def test_the_c_header_lists_store_add_where_it_is_built():
    header = memory_map_header(SocConfig(engine=dataclasses.replace(CONFIGS["4x4-bus32"],
                                                                    mem_bytes=1 << 16)))
    for f in STORE_ADD_FUNCTS:
        assert f"X({f.name}, 0x{int(f):02X}, 0)" in header


# -- The RTL -----------------------------------------------------------------------------------

def _compare(config, image, program):
    mem, answers, _ = run_rtl(config, image, program)
    model = EngineModel(config)
    for addr, data in image:
        model.memory[addr:addr + len(data)] = np.frombuffer(bytes(data), np.uint8)
    want_answers = model.run(program)
    diff = np.argwhere(mem != model.memory)
    assert not diff.size, (f"{len(diff)} bytes differ; first at {int(diff[0][0])}: "
                           f"{mem[diff[0][0]]}, expected {model.memory[diff[0][0]]}")
    # A STATUS answers at once: its busy bit depends on the timing.
    assert [w & BUSY_MASK for w in answers] == [w & BUSY_MASK for w in want_answers], \
        [unpack_status(w) for w in answers]
    return want_answers


def _apart(a, n, b, m):
    return a + n <= b or b + m <= a


class _AddProgram:
    """Random STORE_ADD programs, made while running them on the golden model so that each
    choice sees the stride and skip offset in force. A STORE_ADD's output never overlaps its
    skip tensor, except exactly (offset 0) with rows that do not overlap one another."""

    def __init__(self, config, seed):
        self.c = config
        self.rng = np.random.default_rng(seed)
        memory, self.commands, self.mode, self.free = _image(config, self.rng)
        self.image = [(0, memory.tobytes())]
        self.model = _model(config, memory, self.commands)
        self.last_store = None          # (address, rows, cols) of the last plain STORE

    def pick(self, lo, hi):
        return int(self.rng.integers(lo, hi, endpoint=True)) if hi > lo else lo

    def chance(self, p):
        return self.rng.random() < p

    def emit(self, funct, **fields):
        command = encode(funct, **fields)
        self.commands.append(command)
        self.model.execute(*command)

    def config_requant(self):
        lo, hi = output_range(8, self.chance(0.5))
        if self.chance(0.4):
            lo, hi = sorted((self.pick(lo, hi), self.pick(lo, hi)))
        self.emit(Funct.CONFIG_REQUANT, out_zero=self.pick(-20, 20), mode=self.mode,
                  clamp_min=lo, clamp_max=hi)

    def config_store(self):
        C, bb = self.c.cols, self.c.bus_bytes
        stride = [C, C + self.pick(1, 9), self.pick(0, C - 1), bb * self.pick(1, 4),
                  self.pick(0, 40)][self.pick(0, 4)]
        self.emit(Funct.CONFIG_STORE, stride=stride, qp_row=self.pick(0, self.c.qp_depth - 3))

    def config_add(self):
        for k in PostConstant:
            if self.chance(0.6):
                value = _bits(_constants(self.rng, ("random", "saturating", "ties")[
                    self.pick(0, 2)])[k])
                if self.chance(0.04):
                    value = (INF, NEG_INF, NAN)[self.pick(0, 2)]             # refused later
                self.emit(Funct.CONFIG_STORE_ADD, value=value, index=k)
        if self.chance(0.08):
            self.emit(Funct.CONFIG_STORE_ADD, value=_bits(1.0), index=3)     # refused
        if any((v >> 23) & 0xFF == 0xFF for v in self.model.add_constants) \
                and self.chance(0.7):
            self.emit(Funct.CONFIG_STORE_ADD, value=_bits(0.75), index=self.pick(0, 2))

    def config_skip(self, offset):
        elem_signed = self.pick(0, 1)
        lo, hi = (-128, 127) if elem_signed else (0, 255)
        choice = self.pick(0, 9)
        if choice < 3:
            lo, hi = sorted((self.pick(lo, hi), self.pick(lo, hi)))
        elif choice < 5:
            lo = self.pick(lo, lo + 140)                                     # a ReLU
        elif choice == 5 and self.chance(0.4):
            lo, hi = [(hi, lo), (lo - 1, hi), (lo, hi + 1)][self.pick(0, 2 if elem_signed
                                                                     else 1)]  # refused
        self.emit(Funct.CONFIG_STORE_SKIP, offset=offset % WRAP, clamp_min=lo, clamp_max=hi,
                  elem_signed=elem_signed, skip_first=self.pick(0, 1))

    def store(self):
        m, C = self.model, self.c.cols
        rows, cols = self.pick(1, 5), self.pick(1, C)
        span = (rows - 1) * m.store_stride + cols
        addr = self.pick(self.free, self.c.mem_bytes - span)
        self.emit(Funct.STORE, dram_addr=addr, acc_row=self.pick(0, self.c.acc_depth - rows),
                  rows=rows, cols=cols)
        self.last_store = (addr, rows, cols)

    def load_acc(self):
        """A LOAD of ACC rows from anywhere, perhaps from what a STORE_ADD just wrote, into
        rows a STORE_ADD may be about to read."""
        C, A = self.c.cols, self.c.acc_depth
        rows = self.pick(1, 4)
        self.emit(Funct.CONFIG_LOAD, stride=C * 4)
        self.emit(Funct.LOAD, dram_addr=self.pick(0, self.c.mem_bytes - rows * C * 4),
                  local_row=self.pick(0, A - rows), space=Space.ACC, rows=rows, cols=C)

    def store_add(self):
        c, m = self.c, self.model
        C, A, mem = c.cols, c.acc_depth, c.mem_bytes
        rows, cols = self.pick(1, 5), self.pick(1, C)
        if self.chance(0.04):
            rows, cols = (0, cols) if self.chance(0.5) else (rows, 0)
        if self.chance(0.04):
            cols = C + 1                                                     # refused
        acc_row = self.pick(0, A - max(rows, 1))
        if self.chance(0.04):
            acc_row = A - rows + 1                                           # refused
        stride = m.store_stride
        span = max(0, rows - 1) * stride + cols
        in_place_ok = rows <= 1 or stride >= cols
        if self.chance(0.8) or (m.skip_offset == 0 and not in_place_ok):
            out = self.pick(self.free, mem - span)
            choice = self.pick(0, 9)
            if choice < 2 and in_place_ok:
                skip = out
            elif choice < 5 and self.last_store is not None:
                # The plain STORE just made (or where it was): its output read at once.
                skip = self.last_store[0]
            else:
                skip = self.pick(0, mem - span)
            if self.chance(0.05):
                skip = [mem - span + self.pick(1, 8), mem * self.pick(1, 4) + self.pick(0, 9),
                        WRAP - self.pick(1, 8)][self.pick(0, 2)]             # refused
            if skip != out and not _apart(out, span, skip, span):
                out = next((o for o in (self.pick(self.free, mem - span) for _ in range(30))
                            if _apart(o, span, skip, span)), 3 * mem)        # else refused
            self.config_skip(skip - out)
        else:
            offset = m.skip_offset
            outs = [self.pick(self.free, mem - span) for _ in range(30)]
            out = next((o for o in outs if offset == 0 or
                        _apart(o, span, (o + offset) % WRAP, span)), 3 * mem)
        self.emit(Funct.STORE_ADD, dram_addr=out, acc_row=acc_row, rows=rows, cols=cols)


def random_add_program(config, seed, n=24):
    """Random CONFIG_REQUANT, CONFIG_STORE, CONFIG_STORE_ADD, CONFIG_STORE_SKIP, STORE_ADD,
    STORE and ACC LOAD commands (some refused, some empty) after loading ACC and QP; ends with
    STATUS and FENCE."""
    gen = _AddProgram(config, seed)
    kinds = [(gen.config_requant, 2), (gen.config_store, 2), (gen.config_add, 2),
             (gen.store, 2), (gen.load_acc, 1), (gen.store_add, 8)]
    weights = np.array([w for _, w in kinds], float)
    for _ in range(n):
        kinds[int(gen.rng.choice(len(kinds), p=weights / weights.sum()))][0]()
    gen.emit(Funct.STATUS, clear=1)
    gen.emit(Funct.FENCE)
    return gen.image, gen.commands


@pytest.mark.parametrize("name, seeds", [
    ("4x4-bus32", range(SEED, SEED + 3)), ("2x4-bus64-lanes2", range(SEED + 3, SEED + 6)),
    ("3x3-ort-serial-lanes1", range(SEED + 6, SEED + 9)),
    long_case("4x4-bus32", range(SEED + 10, SEED + 20)),
    long_case("2x4-bus64-lanes2", range(SEED + 10, SEED + 20)),
    long_case("3x3-ort-serial-lanes1", range(SEED + 10, SEED + 20)),
    ("8x8-bus128-lanes4", range(SEED + 20, SEED + 24))],
    ids=lambda v: v if isinstance(v, str) else f"seeds{v[0]}-{v[-1]}")
def test_rtl_store_add_matches_golden(name, seeds):
    config = CONFIGS[name]
    refused = ran = 0
    for seed in seeds:
        image, program = random_add_program(config, seed)
        model = EngineModel(config, np.frombuffer(image[0][1], np.uint8).copy())
        for command in program:
            before = model.error_count
            model.execute(*command)
            ran += command[0] == Funct.STORE_ADD and model.error_count == before
        answers = _compare(config, image, program)
        refused += unpack_status(answers[0])["error_count"]
    assert ran >= 4 * len(seeds), "the programs should run STORE_ADDs"
    assert refused, "the programs should hold refused commands"


def test_rtl_store_add_reads_the_store_just_made_and_adds_in_place():
    """A STORE then, at once, a STORE_ADD whose skip tensor is that STORE's output (the store
    unit must have written it before it reads), then a STORE_ADD in place on the result,
    then a LOAD of it into ACC rows and a STORE_ADD of those rows."""
    config = CONFIGS["4x4-bus32"]
    C = config.cols
    rng = np.random.default_rng(SEED + 5)
    memory, program, mode, free = _image(config, rng)
    program += [
        encode(Funct.CONFIG_REQUANT, out_zero=2, mode=mode, clamp_min=-128, clamp_max=127),
        encode(Funct.CONFIG_STORE, stride=C + 3, qp_row=0),
        encode(Funct.STORE, dram_addr=1001, acc_row=3, rows=4, cols=C)]
    program += _configure_add([0.75, -1.25, 3.5], 1001 - 1203, (-100, 120), 1, 1)
    program += [encode(Funct.STORE_ADD, dram_addr=1203, acc_row=9, rows=4, cols=C)]
    program += _configure_add([1.5, 0.5, -7.0], 0, (0, 127), 1, 0)
    program += [encode(Funct.STORE_ADD, dram_addr=1203, acc_row=0, rows=4, cols=C - 1),
                encode(Funct.CONFIG_LOAD, stride=4),
                encode(Funct.LOAD, dram_addr=1203, local_row=20, space=Space.ACC, rows=4,
                       cols=C),
                encode(Funct.STORE_ADD, dram_addr=1203, acc_row=18, rows=4, cols=C),
                encode(Funct.STATUS, clear=0), encode(Funct.FENCE)]
    answers = _compare(config, [(0, memory.tobytes())], program)
    assert unpack_status(answers[0])["error_count"] == 0


@pytest.mark.parametrize("latency", [0, 3])
def test_rtl_long_store_add_beside_loads_waits_for_its_skip_rows(latency):
    """STORE_ADDs of many rows on one requantisation lane (a row every four cycles), each
    issued just after a long LOAD that keeps the bus busy, on a bus answering at once or
    three cycles late: the skip reader runs its whole row FIFO ahead, waits behind the load's
    reads and the store's own writes, and the store must issue no row before its skip row
    is in."""
    config = EngineConfig(rows=4, cols=4, spad_depth=64, acc_depth=64, qp_depth=8,
                          bus_width=32, mem_bytes=1 << 13, requant_lanes=1)
    C = config.cols
    rng = np.random.default_rng(SEED + 9)
    memory, program, mode, free = _image(config, rng)
    program += [encode(Funct.CONFIG_REQUANT, out_zero=-3, mode=mode, clamp_min=-128,
                       clamp_max=127),
                encode(Funct.CONFIG_STORE, stride=C + 1, qp_row=0)]
    program += _configure_add([0.8, -1.1, 5.0], 3000 - 5000, (-128, 127), 1, 0)
    for i, (rows, acc_row, out) in enumerate([(40, 2, 5000), (60, 0, 5400), (23, 33, 5800)]):
        program += [encode(Funct.CONFIG_LOAD, stride=C),
                    encode(Funct.LOAD, dram_addr=free + 64 * i, local_row=0,
                           space=Space.SPAD_A, rows=60, cols=C),
                    encode(Funct.STORE_ADD, dram_addr=out, acc_row=acc_row, rows=rows,
                           cols=C)]
    program += [encode(Funct.STATUS, clear=0), encode(Funct.FENCE)]
    image = [(0, memory.tobytes())]
    mem, answers, _ = run_rtl(config, image, program, latency=latency)
    model = _model(config, memory)
    want = model.run(program)
    assert unpack_status(want[0])["error_count"] == 0
    diff = np.argwhere(mem != model.memory)
    assert not diff.size, f"{len(diff)} bytes differ; first at {int(diff[0][0])}"


def test_rtl_engine_without_store_add_refuses_its_commands():
    config = dataclasses.replace(CONFIGS["3x3-ort-serial-lanes1"], store_add=False)
    rng = np.random.default_rng(SEED + 7)
    memory, program, mode, free = _image(config, rng)
    program += _configure_add([1.0, 1.0, 0.0], 200, (-128, 127), 1, 0) + [
        encode(Funct.STORE_ADD, dram_addr=2000, acc_row=0, rows=2, cols=3),
        encode(Funct.STORE, dram_addr=2100, acc_row=0, rows=2, cols=3),
        encode(Funct.STATUS, clear=1)]
    answers = _compare(config, [(0, memory.tobytes())], program)
    status = unpack_status(answers[0])
    assert (status["error_code"], status["error_count"]) == (ErrorCode.BAD_FUNCT, 5)
