"""The post-processing unit inside the whole engine (hdl/engine/engine.py), on Amaranth's
simulator beside a RAM, against the golden model (sim/golden/engine.py) bit for bit.

A max-pool and a QLinearAdd issued right after a GEMM that writes their input must see its
output (the front end's barrier), issued by the core and inside a RUN list; random programs
mixing post commands (valid and refused) with everything else must leave the golden model's
memory and answers, with both hazard schemes and with answers delayed on the bus (the arbiter
routes each answer to the reader that asked); an engine built without the unit refuses the five
commands as unknown.
"""

import dataclasses

import numpy as np
import pytest

from rvnpu.compiler.command_list import list_commands
from rvnpu.compiler.gemm import compile_gemm
from rvnpu.sim.engine_programs import check_program, random_program
from rvnpu.sim.golden.gemm import Requant, gemm_reference
from rvnpu.sim.golden.requant import quantize_multiplier
from rvnpu.spec.commands import (ErrorCode, Funct, LIST_ENTRY_BYTES, PostConstant, Space,
                                 decode, encode, pack_list, unpack_status)
from rvnpu.spec.config import EngineConfig

from test_engine_fetch import run_golden, run_rtl


CONFIGS = {
    "4x4-bus32": EngineConfig(rows=4, cols=4, spad_depth=64, acc_depth=32, qp_depth=8,
                              bus_width=32, mem_bytes=1 << 12),
    "2x4-bus128-serial": EngineConfig(rows=2, cols=4, spad_depth=64, acc_depth=32,
                                      qp_depth=8, bus_width=128, mem_bytes=1 << 12,
                                      queue_depth=1, hazards="serial", requant_lanes=2),
    "3x3-bus64-nofetch": EngineConfig(rows=3, cols=3, spad_depth=32, acc_depth=16,
                                      qp_depth=4, mem_bytes=1 << 12, command_fetch=False),
}


def bits_of(value):
    return int(np.array([value], np.float32).view(np.uint32)[0])


def gemm_then_post(config, seed):
    """A GEMM writing an int8 (M, N) matrix, then at once a QLinearAdd whose first read is the
    first byte of the GEMM's last STORE (the last rows it writes) and a 2x2 max-pool of the
    matrix read as an (M/2, 2, N) NHWC tensor; the post-processing registers are set before
    the GEMM. Returns ``(image, commands, out_addrs)``: the commands hold no FENCE or STATUS,
    ``out_addrs`` are where the two post commands write."""
    rng = np.random.default_rng(seed)
    m, n, k = 6, 5, 7
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    mult, shift = quantize_multiplier(1 / 400)
    requant = Requant("tflite", multiplier=mult, shift=shift, out_zero=-3, clamp_min=-128,
                      clamp_max=127)
    job = compile_gemm(a, b, None, requant, config=config,
                       dataflow="ws" if config.with_ws else "os")
    assert job.out_bytes == 1
    expected = gemm_reference(a, b, None, requant)
    assert expected.std() > 10, "the GEMM's output should not be all clamped"
    out = job.out_addr
    last_store = [decode(*c)[1]["dram_addr"] for c in job.program if c[0] == Funct.STORE][-1]
    assert last_store > out
    add_addr = (out + m * n + 64) // 16 * 16
    pool_addr = add_addr + m * n + 16
    setup = [
        encode(Funct.CONFIG_POST, height=m // 2, width=2, kernel_h=2, kernel_w=2, channels=n,
               stride_h=1, stride_w=1, elem_signed=1),
        encode(Funct.CONFIG_POST_ADD, index=PostConstant.RATIO_A, value=bits_of(0.75)),
        encode(Funct.CONFIG_POST_ADD, index=PostConstant.RATIO_B, value=bits_of(-0.375)),
        encode(Funct.CONFIG_POST_ADD, index=PostConstant.FIXED, value=bits_of(4.5)),
        encode(Funct.CONFIG_POST_OUT, out_addr=add_addr, clamp_min=-128, clamp_max=100),
    ]
    post = [
        encode(Funct.QLINEAR_ADD, a_addr=last_store, b_addr=out),
        encode(Funct.CONFIG_POST_OUT, out_addr=pool_addr, clamp_min=-20, clamp_max=127),
        encode(Funct.MAXPOOL, in_addr=out),
        # And at once a LOAD of the pooled bytes, which must wait for the max-pool, shown in
        # main memory by a STORE_ACC.
        encode(Funct.CONFIG_LOAD, stride=0),
        encode(Funct.LOAD, dram_addr=pool_addr, local_row=0, space=Space.ACC, rows=1, cols=2),
        encode(Funct.CONFIG_STORE, stride=0, qp_row=0),
        encode(Funct.STORE_ACC, dram_addr=pool_addr + 32, acc_row=0, rows=1, cols=2),
    ]
    return job.image, setup + list_commands(job.program) + post, (add_addr, pool_addr,
                                                                  pool_addr + 32)


def compare(config, image, program, **kwargs):
    mem, answers, _ = run_rtl(config, image, program, **kwargs)
    want_mem, want_answers = run_golden(config, image, program)
    diff = np.argwhere(mem != want_mem)
    assert not diff.size, (f"{len(diff)} bytes differ; first at {int(diff[0][0]):#x}: "
                           f"{mem[diff[0][0]]}, expected {want_mem[diff[0][0]]}")
    assert answers == want_answers, [unpack_status(w) for w in answers]
    return mem


@pytest.mark.parametrize("name", list(CONFIGS))
def test_post_commands_after_a_gemm_see_its_output(name):
    config = CONFIGS[name]
    image, commands, out_addrs = gemm_then_post(config, 1)
    program = commands + [encode(Funct.FENCE)]
    mem = compare(config, image, program)
    # The post commands really ran: both outputs differ from what memory held before.
    before = np.zeros(config.mem_bytes, np.uint8)
    for addr, data in image:
        before[addr:addr + len(data)] = np.frombuffer(bytes(data), np.uint8)
    for addr in out_addrs:
        assert (mem[addr:addr + 8] != before[addr:addr + 8]).any()


@pytest.mark.parametrize("name, latency", [("4x4-bus32", 0), ("4x4-bus32", 2),
                                           ("2x4-bus128-serial", 1)])
def test_post_commands_inside_a_run_list(name, latency):
    """The GEMM and the post commands as one list: the post unit's reads race the fetcher's
    read-ahead on the bus."""
    config = CONFIGS[name]
    image, commands, _ = gemm_then_post(config, 2)
    list_addr = config.mem_bytes - (len(commands) + 1) * LIST_ENTRY_BYTES
    list_addr -= list_addr % LIST_ENTRY_BYTES
    image = image + [(list_addr, pack_list(commands))]
    program = [encode(Funct.RUN, list_addr=list_addr, count=len(commands)),
               encode(Funct.FENCE), encode(Funct.STATUS, clear_done=1)]
    compare(config, image, program, latency=latency)


def test_refusals_match_the_golden_model():
    """Each refusal of check_post once, between valid commands, answered by STATUS."""
    config = CONFIGS["4x4-bus32"]
    mb = config.mem_bytes
    shape = dict(height=3, width=4, kernel_h=2, kernel_w=2, channels=3, stride_h=1,
                 stride_w=2, elem_signed=0)
    nan, inf = 0x7FC00000, 0xFF800000
    cases = [
        [encode(Funct.CONFIG_POST_ADD, index=3, value=0)],
        [encode(Funct.CONFIG_POST, **{**shape, "kernel_h": 4}), encode(Funct.MAXPOOL)],
        [encode(Funct.CONFIG_POST, **{**shape, "kernel_w": 0}), encode(Funct.MAXPOOL)],
        [encode(Funct.CONFIG_POST, **{**shape, "stride_h": 0}), encode(Funct.MAXPOOL)],
        [encode(Funct.CONFIG_POST_OUT, out_addr=0x800, clamp_min=-1, clamp_max=255),
         encode(Funct.QLINEAR_ADD)],
        [encode(Funct.CONFIG_POST_OUT, out_addr=0x800, clamp_min=9, clamp_max=8),
         encode(Funct.MAXPOOL)],
        [encode(Funct.CONFIG_POST_ADD, index=1, value=nan), encode(Funct.QLINEAR_ADD)],
        [encode(Funct.CONFIG_POST_ADD, index=2, value=inf), encode(Funct.QLINEAR_ADD)],
        [encode(Funct.CONFIG_POST_ADD, index=1, value=bits_of(1.0)),
         encode(Funct.CONFIG_POST_ADD, index=2, value=0)],
        [encode(Funct.MAXPOOL, in_addr=mb - 35)],                  # one byte past
        [encode(Funct.MAXPOOL, in_addr=mb - 36)],                  # fits exactly
        [encode(Funct.MAXPOOL, in_addr=mb * 5)],                   # far beyond
        [encode(Funct.QLINEAR_ADD, a_addr=0x10, b_addr=mb - 30)],
        [encode(Funct.CONFIG_POST_OUT, out_addr=mb - 11, clamp_min=0, clamp_max=255),
         encode(Funct.MAXPOOL, in_addr=0)],                        # 2x2x3 output, 1 past
        [encode(Funct.CONFIG_POST_OUT, out_addr=mb - 12, clamp_min=0, clamp_max=255),
         encode(Funct.MAXPOOL, in_addr=0)],
        [encode(Funct.CONFIG_POST_OUT, out_addr=1 << 31, clamp_min=0, clamp_max=255),
         encode(Funct.QLINEAR_ADD, a_addr=0, b_addr=0)],
        [encode(Funct.CONFIG_POST, **{**shape, "channels": 0}),
         encode(Funct.QLINEAR_ADD, a_addr=mb * 3, b_addr=mb * 7)],  # empty: runs
    ]
    program = [encode(Funct.CONFIG_POST, **shape),
               encode(Funct.CONFIG_POST_OUT, out_addr=0x800, clamp_min=0, clamp_max=255)]
    for case in cases:
        program += case + [encode(Funct.STATUS, clear=1)]
    program.append(encode(Funct.FENCE))
    rng = np.random.default_rng(3)
    image = [(0, rng.integers(0, 256, config.mem_bytes, dtype=np.uint8).tobytes())]
    compare(config, image, program)
    _, answers = run_golden(config, image, program)
    codes = [unpack_status(w)["error_code"] for w in answers[:-1]]
    assert set(codes) == {ErrorCode.NONE, ErrorCode.BAD_CONFIG, ErrorCode.BAD_MEMORY}


def test_engine_without_the_post_unit_refuses_its_commands():
    config = dataclasses.replace(CONFIGS["4x4-bus32"], post_unit=False)
    program = []
    for funct in (Funct.CONFIG_POST, Funct.CONFIG_POST_ADD, Funct.CONFIG_POST_OUT,
                  Funct.MAXPOOL, Funct.QLINEAR_ADD):
        program += [encode(funct), encode(Funct.STATUS, clear=1)]
    program.append(encode(Funct.FENCE))
    compare(config, [], program)
    _, answers = run_golden(config, [], program)
    assert [(unpack_status(w)["error_code"], unpack_status(w)["error_funct"])
            for w in answers[:-1]] == [
        (ErrorCode.BAD_FUNCT, f) for f in (0x28, 0x29, 0x2A, 0x2B, 0x2C)]


def post_rich_program(config, seed):
    """The first random program from ``seed`` on with at least four MAXPOOLs and
    QLINEAR_ADDs (most programs have a few; short ones may have none)."""
    while True:
        program = random_program(config, seed, length=40)
        ops = [f for f, _, _ in program.commands if f in (Funct.MAXPOOL, Funct.QLINEAR_ADD)]
        if len(ops) >= 4:
            return program
        seed += 1


@pytest.mark.parametrize("name, seed, latency", [("4x4-bus32", 11, 0),
                                                 ("2x4-bus128-serial", 12, 1),
                                                 ("3x3-bus64-nofetch", 13, 2)])
def test_random_programs_with_post_commands_match_the_golden_model(name, seed, latency):
    config = CONFIGS[name]
    program = post_rich_program(config, seed)
    mem, answers, _ = run_rtl(config, program.image, program.commands, latency=latency)
    result = dataclasses.make_dataclass("Result", ["memory", "responses"])(mem, answers)
    diff = check_program(program, result, config)
    assert diff is None, f"{program.label}: {diff}"


def test_post_unit_takes_a_flag_or_its_number():
    assert EngineConfig().post_unit is True
    assert EngineConfig(post_unit=0).post_unit is False
    assert EngineConfig(post_unit=1).post_unit is True
    for bad in (2, "yes", None):
        with pytest.raises(ValueError, match="post_unit must be true or false"):
            EngineConfig(post_unit=bad)


@pytest.mark.parametrize("name", ["4x4-bus32", "2x4-bus128-serial"])
def test_unaligned_odd_post_commands_match_the_golden_model(name):
    """The word-wide unit inside the engine: odd lengths at addresses off the bus word, rows
    ending mid-word, a QLinearAdd in place, a max-pool whose channel runs span two words, an
    empty command, each read back in time by the next command."""
    config = CONFIGS[name]
    bb = config.bus_bytes
    rng = np.random.default_rng(21)
    image = [(0, rng.integers(0, 256, config.mem_bytes, dtype=np.uint8).tobytes())]
    constants = [encode(Funct.CONFIG_POST_ADD, index=k, value=bits_of(v))
                 for k, v in zip(PostConstant, (0.625, -1.375, 2.5))]
    program = constants + [
        encode(Funct.CONFIG_POST, height=3, width=1, kernel_h=1, kernel_w=1, channels=7,
               stride_h=1, stride_w=1, elem_signed=1),
        encode(Funct.CONFIG_POST_OUT, out_addr=0x901, clamp_min=-100, clamp_max=90),
        encode(Funct.QLINEAR_ADD, a_addr=0x103, b_addr=0x20E),
        encode(Funct.CONFIG_POST_OUT, out_addr=0x103, clamp_min=-128, clamp_max=127),
        encode(Funct.QLINEAR_ADD, a_addr=0x103, b_addr=0x901),      # in place, reads the last
        encode(Funct.CONFIG_POST, height=5, width=4, kernel_h=2, kernel_w=2, channels=bb + 3,
               stride_h=1, stride_w=2, elem_signed=0),
        encode(Funct.CONFIG_POST_OUT, out_addr=0xA03, clamp_min=3, clamp_max=250),
        encode(Funct.MAXPOOL, in_addr=0x102),                       # reads the in-place sum
        encode(Funct.CONFIG_POST, height=2, width=0, kernel_h=1, kernel_w=1, channels=5,
               stride_h=1, stride_w=1, elem_signed=0),
        encode(Funct.QLINEAR_ADD, a_addr=0x305, b_addr=0x407),      # empty
        encode(Funct.FENCE),
    ]
    mem = compare(config, image, program)
    before = np.frombuffer(image[0][1], np.uint8)
    for addr, count in ((0x901, 21), (0x103, 21), (0xA03, 4 * 2 * (bb + 3))):
        assert (mem[addr:addr + count] != before[addr:addr + count]).any()
