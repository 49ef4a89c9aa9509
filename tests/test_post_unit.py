"""The post-processing unit (hdl/engine/post.py) against the golden model (sim/golden/post.py),
in Amaranth's simulator: random max-pools and QLinearAdds on a Python memory that answers the
unit's bus requests after random delays, with random back-pressure. The test plays the front
end: it absorbs the configuration commands and hands the unit each operation with the
registers it runs with."""

from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from rvnpu.hdl.engine.post import PostUnit
from rvnpu.hdl.engine.qadd import QLinearAddPipeline
from rvnpu.hdl.engine.unit_ops import post_op
from rvnpu.sim.golden.eltwise import fma32, qlinear_add_scaled
from rvnpu.sim.golden.post import PostRegisters, check_post, run_post, float_of_bits
from rvnpu.spec.commands import ErrorCode, Funct, PostConstant, decode, encode
from rvnpu.spec.config import EngineConfig

MEM_BYTES = 1 << 14


def bits_of(value):
    return int(np.array([value], np.float32).view(np.uint32)[0])


def payload(regs, funct, fields):
    """What the front end hands the unit for an operation (``post_op``)."""
    add = funct == Funct.QLINEAR_ADD
    return {
        "add": int(add), "in_addr": fields["a_addr" if add else "in_addr"],
        "b_addr": fields["b_addr"] if add else 0,
        **{name: getattr(regs, name) for name in (
            "height", "width", "kernel_h", "kernel_w", "channels", "stride_h", "stride_w",
            "elem_signed", "out_addr", "clamp_min", "clamp_max")},
        "constants": list(regs.constants),
    }


def run_unit(config, commands, memory, seed, ready_rate=0.75, max_latency=5, min_latency=0,
             stall_chance=0.0, stall_cycles=0):
    """Run ``commands`` on the unit over ``memory`` (changed in place): the memory accepts a
    request with probability ``ready_rate`` and answers a read ``min_latency + 1`` to
    ``max_latency + 1`` cycles later; offered a write, with ``stall_chance`` it refuses every
    request for ``stall_cycles`` (another unit holding the bus). Returns the retire pulses
    counted, the cycles taken and the operations run."""
    dut = PostUnit(config)
    layout = post_op(config)
    bb = config.bus_bytes
    rng = np.random.default_rng(seed)
    ops, regs = [], PostRegisters()
    for funct, op1, op2 in commands:
        cmd, fields = decode(funct, op1, op2)
        assert check_post(regs, cmd.funct, fields, MEM_BYTES) == ErrorCode.NONE
        if cmd.funct in (Funct.MAXPOOL, Funct.QLINEAR_ADD):
            ops.append(layout.const(payload(regs, cmd.funct, fields)))
        else:
            regs.update(cmd.funct, fields)
    counts = {"retired": 0, "cycles": 0}

    async def bus(ctx):
        now, due, queue, stalled = 0, 0, [], 0
        while True:
            valid = ctx.get(dut.req.valid)
            req = ctx.get(dut.req.payload)
            if stalled == 0 and valid and req.write and rng.random() < stall_chance:
                stalled = stall_cycles
            ready = stalled == 0 and bool(rng.random() < ready_rate)
            stalled = max(stalled - 1, 0)
            ctx.set(dut.req.ready, ready)
            answer = bool(queue) and queue[0][0] <= now
            ctx.set(dut.rsp.valid, answer)
            if answer:
                ctx.set(dut.rsp.payload, queue.pop(0)[1])
            await ctx.tick()
            now += 1
            if not (valid and ready):
                continue
            base = req.addr * bb
            assert 0 <= base and base + bb <= len(memory), f"address {base} outside memory"
            if req.write:
                for i in range(bb):
                    if req.mask >> i & 1:
                        memory[base + i] = req.data >> (8 * i) & 0xFF
            else:
                due = max(due, now + int(rng.integers(min_latency, max_latency + 1)))
                queue.append((due, int.from_bytes(memory[base:base + bb], "little")))

    async def retires(ctx):
        while True:
            await ctx.tick()
            counts["retired"] += ctx.get(dut.retire)

    limit = 40 * len(memory)

    async def commander(ctx):
        for const in ops:
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, const)
            while True:
                ready = ctx.get(dut.cmd.ready)
                await ctx.tick()
                counts["cycles"] += 1
                assert counts["cycles"] < limit, "the unit hangs"
                if ready:
                    break
            ctx.set(dut.cmd.valid, 0)
        while ctx.get(dut.busy):
            await ctx.tick()
            counts["cycles"] += 1
            assert counts["cycles"] < limit, "the unit hangs"
        await ctx.tick().repeat(2)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bus, background=True)
    sim.add_testbench(retires, background=True)
    sim.add_testbench(commander)
    sim.run()
    return counts["retired"], counts["cycles"], sum(1 for _ in ops)


def check_against_golden(config, commands, memory, seed, **bus):
    want = bytearray(memory)
    _, refusals = run_post(commands, want)
    assert not refusals
    got = bytearray(memory)
    retired, cycles, n_ops = run_unit(config, commands, got, seed, **bus)
    assert retired == n_ops
    diff = [i for i in range(len(got)) if got[i] != want[i]]
    assert not diff, f"{len(diff)} bytes differ, first at {diff[0]}: {got[diff[0]]} " \
                     f"!= {want[diff[0]]}"
    return cycles


def random_memory(rng, extreme=False):
    memory = bytearray(rng.integers(0, 256, MEM_BYTES, dtype=np.uint8).tobytes())
    if extreme:     # runs of the extremes and of equal values: all-equal windows, saturation
        for _ in range(40):
            at = int(rng.integers(0, MEM_BYTES - 64))
            n = int(rng.integers(4, 64))
            memory[at:at + n] = bytes([int(rng.choice([0x80, 0x7F, 0, 0xFF]))]) * n
    return memory


def clamp_for(rng, signed):
    lo, hi = (-128, 127) if signed else (0, 255)
    if rng.random() < 0.5:
        return lo, hi
    a, b = sorted(int(v) for v in rng.integers(lo, hi + 1, 2))
    return a, b


# -- Max-pooling ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bus_width", [32, 64, 128])
def test_maxpool_random_shapes(bus_width):
    config = EngineConfig(bus_width=bus_width, mem_bytes=MEM_BYTES)
    rng = np.random.default_rng(1000 + bus_width)
    memory = random_memory(rng, extreme=True)
    commands, elements = [], 0
    while elements < 1500:
        kh, kw, sh, sw = (int(v) for v in rng.integers(1, 4, 4))
        h, w = int(rng.integers(kh, 10)), int(rng.integers(kw, 10))
        ch = int(rng.integers(1, 7))
        signed = int(rng.integers(0, 2))
        lo, hi = clamp_for(rng, signed)
        in_addr = int(rng.integers(0, MEM_BYTES // 2 - h * w * ch))
        out_addr = int(rng.integers(MEM_BYTES // 2, MEM_BYTES - h * w * ch))
        commands += [
            encode(Funct.CONFIG_POST, height=h, width=w, kernel_h=kh, kernel_w=kw, channels=ch,
                   stride_h=sh, stride_w=sw, elem_signed=signed),
            encode(Funct.CONFIG_POST_OUT, out_addr=out_addr, clamp_min=lo, clamp_max=hi),
            encode(Funct.MAXPOOL, in_addr=in_addr),
        ]
        elements += h * w * ch
    check_against_golden(config, commands, memory, seed=bus_width)


def test_maxpool_output_waits_for_room_in_long_stalls():
    """Slow reads (a credit's worth in flight) and the bus then held for a while: the answers
    all arrive, and each 1x1 window's output must wait for room in the output queue, which
    also holds the word on its way in."""
    config = EngineConfig(mem_bytes=MEM_BYTES)
    rng = np.random.default_rng(77)
    memory = random_memory(rng)
    commands = []
    for signed in (0, 1):
        commands += [
            encode(Funct.CONFIG_POST, height=8, width=16, kernel_h=1, kernel_w=1,
                   channels=1, stride_h=1, stride_w=1, elem_signed=signed),
            encode(Funct.CONFIG_POST_OUT, out_addr=MEM_BYTES // 2 + 3,
                   clamp_min=-128 if signed else 0, clamp_max=127 if signed else 255),
            encode(Funct.MAXPOOL, in_addr=5),
        ]
    check_against_golden(config, commands, memory, seed=3, ready_rate=1, min_latency=10,
                         max_latency=12, stall_chance=0.5, stall_cycles=16)


def test_maxpool_edges_and_empty_commands():
    """Whole-input windows, 1x1 windows, strides wider than the kernel, a single channel,
    all-equal inputs of both extremes, and a command with no channels (nothing written, but
    it still retires)."""
    config = EngineConfig(mem_bytes=MEM_BYTES)
    rng = np.random.default_rng(5)
    memory = random_memory(rng)
    memory[0:512] = bytes([0x80]) * 256 + bytes([0x7F]) * 256
    cases = [  # h, w, c, kh, kw, sh, sw, signed, in_addr
        (5, 7, 3, 5, 7, 1, 1, 1, 1000), (4, 4, 5, 1, 1, 1, 1, 0, 2001),
        (9, 9, 2, 2, 2, 3, 3, 1, 3003), (6, 5, 1, 3, 2, 2, 1, 0, 4005),
        (8, 8, 4, 3, 3, 2, 2, 1, 0), (8, 8, 4, 3, 3, 2, 2, 0, 0),
        (8, 8, 4, 2, 2, 2, 2, 1, 256), (8, 8, 4, 2, 2, 2, 2, 0, 256),
        (15, 1, 3, 15, 1, 15, 15, 1, 5000), (3, 3, 0, 2, 2, 1, 1, 1, 0),
    ]
    commands, out = [], 8192
    for h, w, c, kh, kw, sh, sw, signed, in_addr in cases:
        commands += [
            encode(Funct.CONFIG_POST, height=h, width=w, kernel_h=kh, kernel_w=kw, channels=c,
                   stride_h=sh, stride_w=sw, elem_signed=signed),
            encode(Funct.CONFIG_POST_OUT, out_addr=out, clamp_min=-128 if signed else 0,
                   clamp_max=127 if signed else 255),
            encode(Funct.MAXPOOL, in_addr=in_addr),
        ]
        out += h * w * max(c, 1)
    check_against_golden(config, commands, memory, seed=5)


# -- QLinearAdd -----------------------------------------------------------------------------------

def random_constants(rng, ties, signed):
    """ratio_a, ratio_b, fixed as the ONNX compiler derives them from random scales and zero
    points (``qlinear_add_constants``'s arithmetic); with ``ties``, scales that are small
    fractions of each other, whose sums land on exact halves (as in tests/test_eltwise.py)."""
    f32 = np.float32
    lo, hi = (-128, 127) if signed else (0, 255)
    if ties:
        sc = f32(rng.uniform(0.01, 0.1))
        sa, sb = (f32(sc * rng.integers(1, 8) / rng.choice([2, 3, 4, 6, 8])) for _ in range(2))
    else:
        sa, sb, sc = (f32(10.0 ** rng.uniform(-4, 2)) for _ in range(3))
    za, zb, zc = (int(v) for v in rng.integers(lo, hi + 1, 3))
    ratio_a, ratio_b = f32(sa / sc), f32(sb / sc)
    fixed = f32(f32(zc) - fma32(ratio_a, f32(za), f32(ratio_b * f32(zb))))
    return ratio_a, ratio_b, fixed


def count_ties(a, b, ratio_a, ratio_b, fixed):
    v = fma32(np.asarray(a, np.float32), ratio_a,
              fma32(np.asarray(b, np.float32), ratio_b, fixed)).astype(np.float64)
    return int(np.sum(np.abs(v - np.floor(v) - 0.5) == 0))


def add_commands(rng, signed, constants, clamp, count, a_addr, b_addr, out_addr):
    h, w = 1, 1
    if rng.random() < 0.5 and count % 4 == 0:
        h, w = 2, 2
    c = count // (h * w)
    return [
        encode(Funct.CONFIG_POST, height=h, width=w, channels=c, elem_signed=signed),
        *(encode(Funct.CONFIG_POST_ADD, value=bits_of(v), index=int(k))
          for k, v in zip(PostConstant, constants)),
        encode(Funct.CONFIG_POST_OUT, out_addr=out_addr, clamp_min=clamp[0],
               clamp_max=clamp[1]),
        encode(Funct.QLINEAR_ADD, a_addr=a_addr, b_addr=b_addr),
    ]


@pytest.mark.parametrize("bus_width", [32, 64])
def test_qlinear_add_random(bus_width):
    config = EngineConfig(bus_width=bus_width, mem_bytes=MEM_BYTES)
    rng = np.random.default_rng(2000 + bus_width)
    memory = random_memory(rng, extreme=True)
    commands, ties = [], 0
    for trial in range(12):
        signed = trial % 2
        constants = random_constants(rng, ties=trial % 3 == 0, signed=signed)
        count = 4 * int(rng.integers(10, 50))
        a_addr, b_addr = (int(v) for v in rng.integers(0, MEM_BYTES // 2 - count, 2))
        # Now and then in place: the output is the first or the second operand.
        out_addr = [int(rng.integers(MEM_BYTES // 2, MEM_BYTES - count)), a_addr,
                    b_addr][trial % 4 if trial % 4 < 3 else 0]
        commands += add_commands(rng, signed, constants, clamp_for(rng, signed), count,
                                 a_addr, b_addr, out_addr)
        a, b = (np.frombuffer(bytes(memory[at:at + count]),
                              np.int8 if signed else np.uint8) for at in (a_addr, b_addr))
        ties += count_ties(a, b, *constants)
    check_against_golden(config, commands, memory, seed=bus_width)
    assert ties > 0, "no exact ties exercised"


def test_qlinear_add_over_the_whole_window():
    """One row as long as the engine's whole memory window: the count of bytes left in the
    row needs a bit more than an address (a run of exactly ``mem_bytes``)."""
    mem_bytes = 1 << 10
    config = EngineConfig(bus_width=32, mem_bytes=mem_bytes)
    rng = np.random.default_rng(2100)
    memory = bytearray(rng.integers(0, 256, mem_bytes, dtype=np.uint8).tobytes())
    constants = random_constants(rng, ties=False, signed=1)
    commands = [
        encode(Funct.CONFIG_POST, height=1, width=64, channels=mem_bytes // 64, elem_signed=1),
        *(encode(Funct.CONFIG_POST_ADD, value=bits_of(v), index=int(k))
          for k, v in zip(PostConstant, constants)),
        encode(Funct.CONFIG_POST_OUT, out_addr=0, clamp_min=-128, clamp_max=127),
        encode(Funct.QLINEAR_ADD, a_addr=0, b_addr=0),
    ]
    check_against_golden(config, commands, memory, seed=2100)


def shaped_add_commands(rng, signed, count, a_addr, b_addr, out_addr):
    """A QLINEAR_ADD of ``count`` elements (0 for an empty one) as a random (H, W, C) shape,
    with random constants and clamp."""
    divisors = [d for d in range(1, count + 1) if count % d == 0] or [0]
    c = int(rng.choice(divisors))
    h = int(rng.choice([d for d in range(1, count // max(c, 1) + 1)
                        if count // max(c, 1) % d == 0])) if count else int(rng.integers(0, 3))
    w = count // (h * c) if count else int(rng.integers(0, 3))
    if count == 0 and h and w:
        c = 0
    assert h * w * c == count
    constants = random_constants(rng, ties=bool(rng.integers(0, 2)), signed=signed)
    commands = add_commands(rng, signed, constants, clamp_for(rng, signed), 0, a_addr, b_addr,
                            out_addr)
    commands[0] = encode(Funct.CONFIG_POST, height=h, width=w, channels=c, elem_signed=signed)
    return commands


@pytest.mark.parametrize("bus_width", [32, 64, 128])
def test_qlinear_add_random_lengths_and_alignments(bus_width):
    """Lengths from 0 to a few words and beyond (odd ones, single elements), every alignment
    of a, b and the output against the bus word, rows that end mid-word, in place on either
    input, on memory with runs of the extremes."""
    config = EngineConfig(bus_width=bus_width, mem_bytes=MEM_BYTES)
    bb = config.bus_bytes
    rng = np.random.default_rng(3000 + bus_width)
    memory = random_memory(rng, extreme=True)
    commands = []
    for trial in range(40):
        count = int(rng.choice([0, 1, 2, 3, bb - 1, bb, bb + 1, 2 * bb + 3,
                                int(rng.integers(1, 8 * bb))]))
        base = int(rng.integers(0, 64)) * bb
        a_addr, b_addr = base + int(rng.integers(0, bb)), base + 512 + int(rng.integers(0, bb))
        out_addr = [base + 8192 + int(rng.integers(0, bb)), a_addr, b_addr][trial % 3]
        commands += shaped_add_commands(rng, trial % 2, count, a_addr, b_addr, out_addr)
    check_against_golden(config, commands, memory, seed=bus_width)


@pytest.mark.parametrize("bus_width", [32, 64, 128])
def test_maxpool_wide_channels_and_alignments(bus_width):
    """Channel runs shorter and longer than a bus word, at every alignment of input and output,
    so that taps span two words and chunks end mid-word."""
    config = EngineConfig(bus_width=bus_width, mem_bytes=MEM_BYTES)
    bb = config.bus_bytes
    rng = np.random.default_rng(4000 + bus_width)
    memory = random_memory(rng, extreme=True)
    commands = []
    for trial in range(14):
        kh, kw, sh, sw = (int(v) for v in rng.integers(1, 4, 4))
        h, w = int(rng.integers(kh, 7)), int(rng.integers(kw, 7))
        ch = int(rng.choice([1, bb - 1, bb, bb + 1, int(rng.integers(2, 3 * bb))]))
        signed = int(rng.integers(0, 2))
        lo, hi = clamp_for(rng, signed)
        in_addr = int(rng.integers(0, 256)) * bb + int(rng.integers(0, bb))
        out_addr = MEM_BYTES // 2 + int(rng.integers(0, 256)) * bb + int(rng.integers(0, bb))
        commands += [
            encode(Funct.CONFIG_POST, height=h, width=w, kernel_h=kh, kernel_w=kw, channels=ch,
                   stride_h=sh, stride_w=sw, elem_signed=signed),
            encode(Funct.CONFIG_POST_OUT, out_addr=out_addr, clamp_min=lo, clamp_max=hi),
            encode(Funct.MAXPOOL, in_addr=in_addr),
        ]
    check_against_golden(config, commands, memory, seed=bus_width)


def test_cycles_per_element():
    """With a memory that never pushes back and answers in two cycles, a QLINEAR_ADD takes
    about a cycle an element, aligned or not (its arithmetic's rate; the bus needs at most
    five accesses a word of elements); a max-pool takes a cycle a word read and one a word
    written: (kernel_h * kernel_w + 1) cycles a word of channels when they are aligned, one
    more a tap when each tap spans two words."""
    config = EngineConfig(mem_bytes=MEM_BYTES)
    bb = config.bus_bytes
    rng = np.random.default_rng(9)
    memory = random_memory(rng)
    constants = random_constants(rng, ties=False, signed=1)
    n = 600
    for a_addr, b_addr, out_addr in ((0, 2000, 8000), (3, 2005, 8001)):
        commands = add_commands(rng, 1, constants, (-128, 127), n, a_addr, b_addr, out_addr)
        cycles = check_against_golden(config, commands, memory, seed=9, ready_rate=1,
                                      max_latency=1)
        # A cycle an element, plus the pipeline's filling and a few cycles of set-up.
        assert n <= cycles <= n + QLinearAddPipeline.latency + 15, cycles
    outputs = 8 * 8 * 8
    for in_addr, taps_words in ((96, 4), (100, 8)):
        commands = [encode(Funct.CONFIG_POST, height=16, width=16, kernel_h=2, kernel_w=2,
                           channels=8, stride_h=2, stride_w=2, elem_signed=0),
                    encode(Funct.CONFIG_POST_OUT, out_addr=8000, clamp_min=0, clamp_max=255),
                    encode(Funct.MAXPOOL, in_addr=in_addr)]
        cycles = check_against_golden(config, commands, memory, seed=9, ready_rate=1,
                                      max_latency=1)
        bus = outputs // bb * (taps_words + 1)
        assert bus <= cycles <= bus + 30, cycles


# -- The arithmetic alone, at one pair a cycle ----------------------------------------------------

def exact_reference(a, b, ratio_a, ratio_b, fixed, clamp):
    """True float32 fused multiply-adds in exact rationals (no float64 shortcut), for
    constants whose exponents lie too far apart for :func:`fma32`."""
    def round32(q):
        if q == 0:
            return q
        e = abs(q.numerator).bit_length() - abs(q.denominator).bit_length()
        while abs(q) >= Fraction(2) ** (e + 1):
            e += 1
        while abs(q) < Fraction(2) ** e:
            e -= 1
        ulp = Fraction(2) ** (max(e, -126) - 23)
        return round(q / ulp) * ulp          # Python rounds half to even
    ra, rb, f = (Fraction(float(v)) for v in (ratio_a, ratio_b, fixed))
    out = []
    for x, y in zip(a, b):
        v = round32(int(x) * ra + round32(int(y) * rb + f))
        out.append(min(max(round(v), clamp[0]), clamp[1]))
    return out


def run_pipeline(pairs, constants, clamp):
    dut = QLinearAddPipeline()
    got = []

    async def bench(ctx):
        for i, v in enumerate(constants):
            ctx.set(dut.constants[i], bits_of(v))
        ctx.set(dut.clamp_min, clamp[0])
        ctx.set(dut.clamp_max, clamp[1])
        await ctx.tick()
        for step in range(len(pairs) + dut.latency):
            if step < len(pairs):
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.a, int(pairs[step][0]))
                ctx.set(dut.b, int(pairs[step][1]))
            else:
                ctx.set(dut.i_valid, 0)
            await ctx.tick()
            if ctx.get(dut.o_valid):
                got.append(ctx.get(dut.value))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_pipeline_ties_and_extremes():
    """Every pair of a grid over the element range for constant sets whose sums hit exact
    halves (both ways of breaking them), plus the elements' extremes."""
    f32 = np.float32
    rng = np.random.default_rng(11)
    grid = [-128, -127, -1, 0, 1, 2, 3, 127, 128, 254, 255] + \
        [int(v) for v in rng.integers(-128, 256, 22)]
    pairs = [(x, y) for x in grid for y in grid]
    sets = [(f32(0.5), f32(0.5), f32(0.0)), (f32(1.5), f32(0.25), f32(-0.5)),
            (f32(0.75), f32(-1.25), f32(3.5)), (f32(2.0), f32(1.0), f32(-300.5)),
            (f32(0.375), f32(0.125), f32(0.0625))]
    ties = 0
    for constants in sets:
        a, b = (np.array(v) for v in zip(*pairs))
        ties += count_ties(a, b, *constants)
        want = qlinear_add_scaled(a, b, *constants, (-128, 255))
        assert run_pipeline(pairs, constants, (-128, 255)) == list(want), constants
    assert ties > 500


def test_pipeline_far_apart_exponents():
    """Constants whose magnitudes are far apart (tiny ratios, huge or tiny offsets), where an
    addend falls below the sum's rounding point: checked against exact rationals."""
    f32 = np.float32
    rng = np.random.default_rng(12)
    pairs = [(int(x), int(y)) for x, y in rng.integers(-128, 256, (60, 2))]
    pairs += [(255, 255), (-128, -128), (0, 0), (1, -1), (-1, 3), (1, -3)]
    sets = [(f32(1e-30), f32(3.0), f32(0.5)), (f32(0.5), f32(1e-25), f32(-0.5)),
            (f32(1.0), f32(1.0), f32(1e-30)), (f32(2.0 ** -20), f32(2.0 ** 10), f32(100.5)),
            (f32(0.5), f32(0.5), f32(-(2.0 ** 25))), (f32(3.0), f32(-7.0), f32(2.0 ** -149)),
            (f32(-0.5), f32(1e-40), f32(0.0)), (f32(1e20), f32(-1e20), f32(1.5)),
            # b * ratio_b = 3 * (1 + 2**-23) lies halfway between two float32 values and a tiny
            # `fixed` decides which one (float64 alone would round twice and miss it); the
            # first operand makes the difference an integer: -(2.5 + 2**-22) + t is 0.5 or more.
            (f32(2.5 + 2.0 ** -22), f32(1 + 2.0 ** -23), f32(-1e-30)),
            (f32(2.5 + 2.0 ** -22), f32(1 + 2.0 ** -23), f32(1e-30))]
    for constants in sets:
        a, b = zip(*pairs)
        want = exact_reference(a, b, *constants, (-128, 255))
        assert run_pipeline(pairs, constants, (-128, 255)) == want, constants


# -- The golden model's refusals ------------------------------------------------------------------

def test_golden_refusals():
    memory = bytearray(256)
    config = encode(Funct.CONFIG_POST, height=4, width=4, kernel_h=2, kernel_w=2, channels=4,
                    stride_h=2, stride_w=2, elem_signed=1)
    out = encode(Funct.CONFIG_POST_OUT, out_addr=200, clamp_min=-128, clamp_max=127)
    cases = [
        ([config, out, encode(Funct.MAXPOOL, in_addr=0)], []),
        ([config, out, encode(Funct.MAXPOOL, in_addr=250)], [ErrorCode.BAD_MEMORY]),
        ([config, encode(Funct.CONFIG_POST_OUT, out_addr=0, clamp_min=0, clamp_max=255),
          encode(Funct.MAXPOOL, in_addr=100)], [ErrorCode.BAD_CONFIG]),
        ([encode(Funct.CONFIG_POST, height=2, width=4, kernel_h=3, kernel_w=1, channels=1,
                 stride_h=1, stride_w=1), out, encode(Funct.MAXPOOL, in_addr=0)],
         [ErrorCode.BAD_CONFIG]),
        ([config, out, encode(Funct.CONFIG_POST_ADD, value=0, index=3)],
         [ErrorCode.BAD_CONFIG]),
        ([config, out, encode(Funct.CONFIG_POST_ADD, value=0x7F800000, index=1),
          encode(Funct.QLINEAR_ADD, a_addr=0, b_addr=64)], [ErrorCode.BAD_CONFIG]),
        ([config, encode(Funct.CONFIG_POST_OUT, out_addr=0, clamp_min=-128, clamp_max=127),
          encode(Funct.QLINEAR_ADD, a_addr=0, b_addr=64)], []),
    ]
    for commands, errors in cases:
        _, refusals = run_post(commands, bytearray(memory))
        assert [e for _, _, e in refusals] == errors, commands
    assert float_of_bits(0x3FC00000) == 1.5
