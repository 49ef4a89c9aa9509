"""RUN: the engine fetching its own command list from main memory.

On Amaranth's simulator, the engine beside a RAM: a compiled GEMM run as one list must leave
exactly the bytes the same commands issued one by one leave (and what the golden model and the
numpy GEMM compute); lists with refused entries, refused RUNs and empty lists must end as the
golden model says, to the last status bit; the interrupt line follows list_done.
"""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out, connect
from amaranth.sim import Simulator

from rvnpu.compiler.command_list import as_command_list, list_commands
from rvnpu.compiler.gemm import GemmError, compile_gemm
from rvnpu.hdl.engine.engine import MatrixEngine
from rvnpu.hdl.soc.sram import BusSram
from rvnpu.sim.golden.engine import EngineModel
from rvnpu.sim.golden.gemm import Requant, gemm_reference
from rvnpu.sim.golden.requant import quantize_multiplier
from rvnpu.spec.commands import (ErrorCode, Funct, LIST_ENTRY, LIST_ENTRY_BYTES, Space, encode,
                                 pack_list, unpack_list, unpack_status)
from rvnpu.spec.config import EngineConfig

from sim_until import run_until_done


CONFIGS = {
    "4x4-bus32": EngineConfig(rows=4, cols=4, spad_depth=64, acc_depth=32, qp_depth=8,
                              bus_width=32, mem_bytes=1 << 12),
    "2x4-bus128-serial": EngineConfig(rows=2, cols=4, spad_depth=64, acc_depth=32,
                                      qp_depth=8, bus_width=128, mem_bytes=1 << 12,
                                      queue_depth=1, hazards="serial", requant_lanes=2),
    "3x2-bus64-os": EngineConfig(rows=3, cols=2, dataflow="os", spad_depth=32, acc_depth=16,
                                 qp_depth=4, mem_bytes=1 << 12, requant_modes="tflite"),
}

STATUS_MASK_BUSY = ~1 & 0xffffffff


class _Bench(wiring.Component):
    """The engine, a RAM on its bus (with a host port for the testbench) and its irq.

    ``latency`` extra cycles delay every read answer: with the RAM's one cycle alone, a
    register of who asked last would route answers right by chance."""

    def __init__(self, config, latency=0):
        self.config, self.latency = config, latency
        self.engine = MatrixEngine(config)
        self.ram = BusSram(depth=config.mem_bytes // config.bus_bytes,
                           data_width=config.bus_width,
                           addr_width=self.engine.bus_signature.addr_width, with_host=True)
        super().__init__({"irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine, m.submodules.ram = self.engine, self.ram
        if not self.latency:
            connect(m, self.engine.bus, self.ram.bus)
        else:
            m.d.comb += [self.ram.bus.req.payload.eq(self.engine.bus.req.payload),
                         self.ram.bus.req.valid.eq(self.engine.bus.req.valid),
                         self.engine.bus.req.ready.eq(self.ram.bus.req.ready),
                         self.ram.bus.rsp.ready.eq(1)]
            valid, payload = self.ram.bus.rsp.valid, self.ram.bus.rsp.payload
            for i in range(self.latency):
                v, p = Signal(name=f"rsp_valid{i}"), Signal.like(payload, name=f"rsp{i}")
                m.d.sync += [v.eq(valid), p.eq(payload)]
                valid, payload = v, p
            m.d.comb += [self.engine.bus.rsp.valid.eq(valid),
                         self.engine.bus.rsp.payload.eq(payload)]
        m.d.comb += self.irq.eq(self.engine.irq)
        return m


def program_testbench(bench, config, image, program):
    """A testbench that writes the RAM, issues ``program`` (taking the answers of FENCE and
    STATUS a cycle later, as the core does), and reads the RAM back, all in ``sync``; and the
    dictionary it fills: ``answers``, ``irq`` (the level at each answer, and just before the
    first command) and ``memory`` (``None`` until the end)."""
    eng, ram = bench.engine, bench.ram
    bb = config.bus_bytes
    memory = np.zeros(config.mem_bytes, np.uint8)
    for addr, data in image:
        memory[addr:addr + len(data)] = np.frombuffer(bytes(data), np.uint8)
    out = {"answers": [], "irq": [], "memory": None}

    async def testbench(ctx):
        for w in range(config.mem_bytes // bb):
            chunk = memory[w * bb:(w + 1) * bb]
            if chunk.any():
                ctx.set(ram.host_addr, w)
                ctx.set(ram.host_wdata, int.from_bytes(chunk.tobytes(), "little"))
                ctx.set(ram.host_we, (1 << bb) - 1)
                await ctx.tick()
        ctx.set(ram.host_we, 0)
        out["irq"].append(ctx.get(bench.irq))
        for funct, op1, op2 in program:
            ctx.set(eng.cmd.payload, {"funct": funct, "op1": op1, "op2": op2})
            ctx.set(eng.cmd.valid, 1)
            await ctx.tick().until(eng.cmd.ready)
            ctx.set(eng.cmd.valid, 0)
            if funct in (Funct.FENCE, Funct.STATUS):
                await ctx.tick()          # the core asks for the answer a cycle later
                ctx.set(eng.rsp.ready, 1)
                (word,) = await ctx.tick().sample(eng.rsp.payload).until(eng.rsp.valid)
                ctx.set(eng.rsp.ready, 0)
                out["answers"].append(word)
                out["irq"].append(ctx.get(bench.irq))
        words = []
        for w in range(config.mem_bytes // bb):
            ctx.set(ram.host_addr, w)
            await ctx.tick()
            words.append(ctx.get(ram.host_rdata).to_bytes(bb, "little"))
        out["memory"] = np.frombuffer(b"".join(words), np.uint8)

    return testbench, out


def run_rtl(config, image, program, *, latency=0):
    """Run ``program`` from reset with main memory ``image``; returns ``(memory, answers,
    irq trace)``: the irq level at each answer, and just before the first command."""
    bench = _Bench(config, latency)
    testbench, out = program_testbench(bench, config, image, program)
    sim = Simulator(bench)
    sim.add_clock(1e-6)
    max_cycles = 20_000 + 2_000 * len(program)
    run_until_done(sim, testbench, max_cycles * 1e-6, 1000e-6)
    assert out["memory"] is not None, f"the engine hung: no end within {max_cycles} cycles"
    return out["memory"], out["answers"], out["irq"]


def run_golden(config, image, program):
    model = EngineModel(config)
    for addr, data in image:
        model.memory[addr:addr + len(data)] = np.frombuffer(bytes(data), np.uint8)
    return model.memory, model.run(program)


def gemm_job(config, seed, shape):
    rng = np.random.default_rng(seed)
    m, n, k = shape
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    bias = rng.integers(-500, 500, n)
    mult, shift = quantize_multiplier(1 / 300)
    requant = Requant("tflite", multiplier=mult, shift=shift, out_zero=3,
                      clamp_min=-128, clamp_max=127)
    dataflow = "ws" if config.with_ws else "os"
    job = compile_gemm(a, b, bias, requant, config=config, dataflow=dataflow, a_zero=5,
                       b_zero=-2)
    return job, gemm_reference(a, b, bias, requant, a_zero=5, b_zero=-2)


# -- The list format -------------------------------------------------------------------------

def test_list_entries_round_trip_in_the_spec_layout():
    commands = [encode(Funct.LOAD, dram_addr=0x123, local_row=5, space=Space.SPAD_B, rows=3,
                       cols=4), (0x7f, 0xffffffff, 1), encode(Funct.FENCE)]
    data = pack_list(commands)
    assert len(data) == len(commands) * LIST_ENTRY_BYTES == 4 * len(LIST_ENTRY) * 3
    words = np.frombuffer(data, "<u4").reshape(3, len(LIST_ENTRY))
    assert list(words[0]) == [commands[0][0], commands[0][1], commands[0][2], 0]
    assert unpack_list(data) == [tuple(int(x) for x in c) for c in commands]
    # Only the low 7 bits of the first word are the function code.
    high = bytearray(data)
    high[1] = 0xff
    assert unpack_list(bytes(high))[0] == unpack_list(data)[0]


def test_as_command_list_refuses_what_does_not_fit():
    config = CONFIGS["4x4-bus32"]
    job, _ = gemm_job(config, 1, (5, 5, 5))
    with pytest.raises(GemmError, match="multiple of 16"):
        as_command_list(job, list_addr=8)
    with pytest.raises(GemmError, match="needs"):
        as_command_list(job, list_addr=config.mem_bytes - 16)


# -- A compiled GEMM as one list ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONFIGS))
def test_gemm_run_as_a_list_equals_the_core_issued_gemm(name):
    config = CONFIGS[name]
    job, expected = gemm_job(config, 7, (2 * config.rows + 1, config.cols + 3, 11))
    listed = as_command_list(job)
    assert len(unpack_list(listed.image[-1][1])) == len(list_commands(job.program)) > 10

    direct_mem, direct_answers, _ = run_rtl(config, job.image, job.program)
    list_mem, list_answers, irq = run_rtl(config, listed.image,
                                          listed.program + [encode(Funct.STATUS, clear_done=1),
                                                            encode(Funct.STATUS)])
    gold_mem, gold_answers = run_golden(config, listed.image, listed.program
                                        + [encode(Funct.STATUS, clear_done=1),
                                           encode(Funct.STATUS)])
    np.testing.assert_array_equal(job.read_output(direct_mem), expected)
    # Bit for bit, everywhere but the list itself (which the direct run does not hold).
    list_at = listed.image[-1][0]
    np.testing.assert_array_equal(list_mem[:list_at], direct_mem[:list_at])
    np.testing.assert_array_equal(list_mem, gold_mem)
    assert list_answers == gold_answers
    assert direct_answers == [0]
    fence, ack, after = (unpack_status(w) for w in list_answers)
    assert fence["list_done"] == 1 and fence["list_busy"] == 0 and fence["error"] == 0
    assert ack["list_done"] == 1 and after["list_done"] == 0
    # The interrupt: low before RUN, high once the list is done, low after the acknowledgement.
    assert irq == [0, 1, 0, 0]


def test_status_answers_while_a_list_runs():
    """A STATUS from the core is answered during the list (list_busy set); other commands
    wait for the end, and FENCE for everything the list issued."""
    config = CONFIGS["4x4-bus32"]
    job, expected = gemm_job(config, 3, (9, 7, 13))
    listed = as_command_list(job)
    run, fence = listed.program
    program = [run, encode(Funct.STATUS), encode(Funct.CONFIG_LOAD, stride=4), fence]
    mem, answers, irq = run_rtl(config, listed.image, program)
    during, after = (unpack_status(w) for w in answers)
    assert during["list_busy"] == 1 and during["list_done"] == 0 and irq[1] == 0
    assert after["list_busy"] == 0 and after["list_done"] == 1 and after["busy"] == 0
    np.testing.assert_array_equal(job.read_output(mem), expected)


# -- Refusals ----------------------------------------------------------------------------------

def _refusal_program(config):
    """Lists with refused entries among good ones, refused and empty RUNs, each answered."""
    R, C = config.rows, config.cols
    good = [encode(Funct.CONFIG_LOAD, stride=C * 4),
            encode(Funct.LOAD, dram_addr=0, local_row=0, space=Space.ACC, rows=2, cols=C),
            encode(Funct.CONFIG_STORE, stride=C * 4),
            encode(Funct.STORE_ACC, dram_addr=1024, acc_row=0, rows=2, cols=C)]
    bad = [encode(Funct.FENCE), encode(Funct.STATUS, clear=1, clear_done=1),
           encode(Funct.RUN, list_addr=0, count=1), (0x55, 1, 2),
           encode(Funct.LOAD, dram_addr=config.mem_bytes - 4, local_row=0, space=Space.ACC,
                  rows=1, cols=C)]
    mixed = [bad[0], good[0], bad[2], good[1], bad[1], bad[3], good[2], bad[4], good[3]]
    lists = {512: pack_list(mixed), 768: pack_list(good), 896: pack_list(bad)}
    image = [(0, bytes(range(1, 2 * C * 4 + 1)))] + list(lists.items())
    program = [
        encode(Funct.RUN, list_addr=512, count=len(mixed)), encode(Funct.FENCE),
        encode(Funct.STATUS, clear=1, clear_done=1),
        encode(Funct.RUN, list_addr=520, count=2),                        # misaligned
        encode(Funct.RUN, list_addr=config.mem_bytes - 32, count=3),      # past the window
        encode(Funct.RUN, list_addr=1 << 31, count=1),
        encode(Funct.RUN, list_addr=768, count=(1 << 32) - 1),
        encode(Funct.STATUS, clear=1),
        encode(Funct.RUN, list_addr=4, count=0),                          # empty: done at once
        encode(Funct.STATUS, clear_done=1),
        encode(Funct.RUN, list_addr=896, count=len(bad)),                 # nothing but refusals
        encode(Funct.FENCE),
        encode(Funct.RUN, list_addr=768, count=len(good)),
        encode(Funct.FENCE),
        encode(Funct.STATUS, clear=1, clear_done=1),
    ]
    return image, program


@pytest.mark.parametrize("name", ["4x4-bus32", "2x4-bus128-serial"])
def test_refused_entries_and_runs_match_the_golden_model(name):
    config = CONFIGS[name]
    image, program = _refusal_program(config)
    gold_mem, gold_answers = run_golden(config, image, program)
    mem, answers, irq = run_rtl(config, image, program)
    # The golden model's answers all come after the work they follow finished.
    assert [w & STATUS_MASK_BUSY for w in answers] == gold_answers
    np.testing.assert_array_equal(mem, gold_mem)
    words = [unpack_status(w) for w in gold_answers]
    # The mixed list: five refused entries, the first a FENCE; the good ones still ran.
    assert (words[0]["error_code"], words[0]["error_funct"], words[0]["error_count"],
            words[0]["list_done"]) == (ErrorCode.BAD_IN_LIST, Funct.FENCE, 5, 1)
    assert np.array_equal(gold_mem[1024:1024 + 2 * config.cols * 4],
                          np.arange(1, 2 * config.cols * 4 + 1, dtype=np.uint8))
    # Four refused RUNs set no list_done; the empty list does.
    assert (words[2]["error_code"], words[2]["error_count"], words[2]["list_done"]) == \
        (ErrorCode.BAD_MEMORY, 4, 0)
    assert (words[3]["error"], words[3]["list_done"]) == (0, 1)
    assert (words[4]["error_count"], words[4]["list_done"]) == (5, 1)
    assert (words[6]["error_count"], words[6]["list_done"]) == (5, 1)
    # The interrupt follows list_done: acknowledged by STATUS clear_done only.
    assert irq == [0, 1, 0, 0, 0, 1, 1, 0]


def test_engine_without_command_fetch_refuses_run():
    config = EngineConfig(rows=2, cols=2, spad_depth=16, acc_depth=16, qp_depth=4,
                          mem_bytes=1 << 10, command_fetch=False)
    image = [(0, pack_list([encode(Funct.CONFIG_LOAD, stride=4)]))]
    program = [encode(Funct.RUN, list_addr=0, count=1), encode(Funct.STATUS, clear=1)]
    gold_mem, gold_answers = run_golden(config, image, program)
    mem, answers, irq = run_rtl(config, image, program)
    word = unpack_status(answers[0])
    assert answers == gold_answers
    assert (word["error_code"], word["error_funct"], word["list_done"]) == \
        (ErrorCode.BAD_FUNCT, Funct.RUN, 0)
    assert irq == [0, 0]


def _busy_list(config, rng, count):
    """Long LOADs of different rows (which the front end lets overlap, so the fetcher reads
    while the load unit streams), computes and stores, with an occasional refused entry."""
    R, C = config.rows, config.cols
    commands = [encode(Funct.CONFIG_LOAD, stride=C * 4),
                encode(Funct.CONFIG_STORE, stride=C * 4)]
    for _ in range(count):
        kind = rng.integers(0, 10)
        if kind < 6:
            space = Space(int(rng.integers(0, 3)))
            depth = config.spad_depth if space != Space.ACC else config.acc_depth
            width = R if space == Space.SPAD_A else C
            rows = int(rng.integers(1, 9))
            commands.append(encode(Funct.LOAD, dram_addr=int(rng.integers(0, 1024)),
                                   local_row=int(rng.integers(0, depth - rows + 1)),
                                   space=space, rows=rows, cols=int(rng.integers(1, width + 1))))
        elif kind < 8:
            commands.append(encode(Funct.COMPUTE, a_row=int(rng.integers(0, 8)),
                                   b_row=int(rng.integers(0, 8)), c_row=int(rng.integers(0, 8)),
                                   steps=int(rng.integers(1, R + 1)),
                                   k_valid=int(rng.integers(0, R + 1)),
                                   accumulate=int(rng.integers(0, 2))))
        elif kind < 9:
            rows = int(rng.integers(1, 5))
            commands.append(encode(Funct.STORE_ACC, dram_addr=int(rng.integers(1024, 1536)),
                                   acc_row=int(rng.integers(0, config.acc_depth - rows + 1)),
                                   rows=rows, cols=C))
        else:
            commands.append([encode(Funct.FENCE), (0x33, 0, 0)][int(rng.integers(0, 2))])
    return commands


@pytest.mark.parametrize("name, latency", [("4x4-bus32", 0), ("4x4-bus32", 2),
                                           ("3x2-bus64-os", 1), ("2x4-bus128-serial", 2)])
def test_lists_racing_the_load_unit_match_the_golden_model(name, latency):
    """The fetcher and the load unit share the bus: reads of one must never be answered to
    the other."""
    config = CONFIGS[name]
    rng = np.random.default_rng(0xF37C + len(name))
    commands = _busy_list(config, rng, 60)
    image = [(0, rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()),
             (2048, pack_list(commands))]
    program = [encode(Funct.LOAD, dram_addr=5, local_row=0, space=Space.SPAD_B, rows=9,
                      cols=config.cols),
               encode(Funct.RUN, list_addr=2048, count=len(commands)),
               encode(Funct.STORE_ACC, dram_addr=1600, acc_row=0, rows=config.acc_depth,
                      cols=config.cols),
               encode(Funct.FENCE)]
    gold_mem, gold_answers = run_golden(config, image, program)
    mem, answers, _ = run_rtl(config, image, program, latency=latency)
    assert answers == gold_answers
    assert unpack_status(answers[0])["error_count"] > 0
    np.testing.assert_array_equal(mem, gold_mem)
