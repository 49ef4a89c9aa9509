"""Random command programs, and every front-end check at its bound, on small engines on
Amaranth's simulator, against the golden model.

The random programs are the quickest check that reaches every engine block at once: the
front end's decoding, refusals, queues and hazard checks, loads, both dataflows' execution,
requantised stores in both modes (on one engine through a single lane, three slices a row),
pooled stores, the post unit and command lists (``random_program`` mixes them all, valid and
refused, aimed at a few rows so that units overlap). They refuse a command only now and
then, so a second test puts each of the front end's checks one step either side of its
bound. Main memory afterwards and every FENCE/STATUS answer must equal the golden model's.
The engines are 2x2 (2x3) to keep each run short, which is what the
mutation campaign (``rvnpu mutate``, docs/mutation.md) needs to run these tests once per
planted fault.
"""

import dataclasses
import gc

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rvnpu.hdl.engine.engine import MatrixEngine
from rvnpu.sim.engine_programs import BUSY_MASK, check_program, random_program
from rvnpu.spec.commands import (Dataflow, ErrorCode, Funct, LIST_ENTRY_BYTES, QP_ROWS, Space,
                                 encode, pack_list, unpack_status)
from rvnpu.spec.config import EngineConfig

from test_engine_fetch import run_golden, run_rtl


CONFIGS = {
    # Range-checked hazards, both dataflows, both requantisation modes, two lanes.
    "2x2-ranges": EngineConfig(rows=2, cols=2, dataflow="both", spad_depth=16, acc_depth=16,
                               qp_depth=4, bus_width=32, mem_bytes=1 << 11, requant_lanes=2),
    # Serial hazards, one-deep queues, a wider bus (unaligned rows cross words).
    "2x2-serial-bus64": EngineConfig(rows=2, cols=2, dataflow="both", spad_depth=16,
                                     acc_depth=16, qp_depth=4, bus_width=64,
                                     mem_bytes=1 << 11, queue_depth=1, hazards="serial"),
    # One requantisation lane for three columns: each row passes it in three slices.
    "2x3-one-lane": EngineConfig(rows=2, cols=3, dataflow="both", spad_depth=16,
                                 acc_depth=16, qp_depth=4, bus_width=32, mem_bytes=1 << 11,
                                 requant_lanes=1),
    # The cells' multipliers unregistered (mac_latency=0, as on the iCEBreaker): the array's
    # results two cycles earlier.
    "2x2-unregistered-macs": EngineConfig(rows=2, cols=2, dataflow="both", spad_depth=16,
                                          acc_depth=16, qp_depth=4, bus_width=32,
                                          mem_bytes=1 << 11, requant_lanes=2, mac_latency=0),
    # Operands registered, the product not (mac_latency=1, as on the Tang Nano 9K).
    "2x2-registered-operands": EngineConfig(rows=2, cols=2, dataflow="both", spad_depth=16,
                                            acc_depth=16, qp_depth=4, bus_width=32,
                                            mem_bytes=1 << 11, requant_lanes=2,
                                            mac_latency=1),
    # The front end's range arithmetic in cycles of its own and the deep requantisation
    # lanes (as on the ECP5 boards).
    "2x2-range-stage": EngineConfig(rows=2, cols=2, dataflow="both", spad_depth=16,
                                    acc_depth=16, qp_depth=4, bus_width=32, mem_bytes=1 << 11,
                                    requant_lanes=2, range_stage=True, deep_lane=True),
    # And the load unit's writes registered before each memory (as on the ULX3S-85F), and
    # the accumulator's row held before the sum (as on the LFE5U-25F boards).
    "2x2-load-stage": EngineConfig(rows=2, cols=2, dataflow="both", spad_depth=16,
                                   acc_depth=16, qp_depth=4, bus_width=32, mem_bytes=1 << 11,
                                   requant_lanes=2, range_stage=True, deep_lane=True,
                                   load_stage=True, acc_stage=True),
    # The accumulator's row held before the sum beside unregistered multipliers: the
    # shortest line from the scratchpads to the accumulator's read.
    "1x2-acc-stage": EngineConfig(rows=1, cols=2, dataflow="both", spad_depth=16,
                                  acc_depth=16, qp_depth=4, bus_width=32, mem_bytes=1 << 11,
                                  requant_lanes=2, mac_latency=0, acc_stage=True),
    # The cells multiply raw elements; the zero points come off below the array, a zero step
    # a COMPUTE (weight-stationary only).
    "2x2-zero-point-sums": EngineConfig(rows=2, cols=2, dataflow="ws", spad_depth=16,
                                        acc_depth=16, qp_depth=4, bus_width=32,
                                        mem_bytes=1 << 11, requant_lanes=2,
                                        zero_point_sums=True),
    # And the shortest line to the correction: unregistered multipliers, one row, the
    # accumulator's row held before the sum, one command in flight a unit.
    "1x3-zero-point-sums": EngineConfig(rows=1, cols=3, dataflow="ws", spad_depth=16,
                                        acc_depth=16, qp_depth=4, bus_width=32,
                                        mem_bytes=1 << 11, requant_lanes=1, mac_latency=0,
                                        acc_stage=True, queue_depth=1, hazards="serial",
                                        zero_point_sums=True),
    # No slices between the front end and the units: every unit, the post unit and an
    # execute unit with commands queued included, takes its commands from the front end.
    "2x2-no-slices": EngineConfig(rows=2, cols=2, dataflow="both", spad_depth=16,
                                  acc_depth=16, qp_depth=4, bus_width=32, mem_bytes=1 << 11,
                                  requant_lanes=2, unit_slices=False),
    # The iCEBreaker's engine, a column of four: serial hazards, one command a unit, no
    # slices, no fetcher, post unit or requantisation (a STORE is refused).
    "4x1-no-slices": EngineConfig(rows=4, cols=1, dataflow="ws", spad_depth=16,
                                  acc_depth=16, qp_depth=4, bus_width=32, mem_bytes=1 << 11,
                                  queue_depth=1, requant_modes="none", hazards="serial",
                                  command_fetch=False, post_unit=False, store_pool=False,
                                  mac_latency=0, unit_slices=False),
    # Three rows, weight-stationary only: an output-stationary extent would be a division by
    # the row count, which the front end leaves out where the dataflow cannot be chosen.
    "3x2-ws-only": EngineConfig(rows=3, cols=2, dataflow="ws", spad_depth=16, acc_depth=16,
                                qp_depth=4, bus_width=32, mem_bytes=1 << 11, requant_lanes=2),
}


@pytest.mark.parametrize("name, seed, latency", [("2x2-ranges", 101, 0),
                                                 ("2x2-ranges", 102, 1),
                                                 ("2x2-serial-bus64", 103, 0),
                                                 ("2x3-one-lane", 104, 0),
                                                 ("2x2-unregistered-macs", 105, 0),
                                                 ("2x2-unregistered-macs", 106, 1),
                                                 ("2x2-registered-operands", 107, 0),
                                                 ("2x2-registered-operands", 108, 1),
                                                 ("2x2-range-stage", 109, 0),
                                                 ("2x2-range-stage", 110, 1),
                                                 ("2x2-load-stage", 111, 0),
                                                 ("2x2-load-stage", 112, 1),
                                                 ("1x2-acc-stage", 114, 0),
                                                 ("1x2-acc-stage", 115, 1),
                                                 ("2x2-zero-point-sums", 116, 0),
                                                 ("2x2-zero-point-sums", 117, 1),
                                                 ("1x3-zero-point-sums", 118, 0),
                                                 ("1x3-zero-point-sums", 119, 1),
                                                 ("2x2-no-slices", 120, 0),
                                                 ("2x2-no-slices", 121, 1),
                                                 ("4x1-no-slices", 122, 0),
                                                 ("4x1-no-slices", 123, 1),
                                                 ("3x2-ws-only", 124, 0),
                                                 ("3x2-ws-only", 125, 1)])
def test_random_programs_on_a_small_engine(name, seed, latency):
    config = CONFIGS[name]
    assert config.mac_latency == {"2x2-unregistered-macs": 0, "1x2-acc-stage": 0,
                                  "1x3-zero-point-sums": 0, "4x1-no-slices": 0,
                                  "2x2-registered-operands": 1}.get(name, 2)
    program = random_program(config, seed, length=24)
    mem, answers, _ = run_rtl(config, program.image, program.commands, latency=latency)
    result = dataclasses.make_dataclass("Result", ["memory", "responses"])(mem, answers)
    diff = check_program(program, result, config)
    assert diff is None, f"{name}: {program.label}: {diff}"


def edge_probes(config):
    """Commands at the edges of each of the front end's checks, in pairs: the last value a
    check takes, then the first it refuses, then a STATUS that answers and clears (the first
    refusal's code and the count tell which of the two was refused). They cover local rows,
    row widths, main-memory bytes (address, stride and length), zero points, clamps,
    requantisation rows and command lists; the random programs reach a refusal only now and
    then. Returns ``(image, program)``."""
    c, R, C = config, config.rows, config.cols
    mem, es, S, A = c.mem_bytes, c.elem_bytes, c.spad_depth, c.acc_depth

    def load(addr=64, row=0, space=Space.SPAD_A, rows=1, cols=1):
        return encode(Funct.LOAD, dram_addr=addr, local_row=row, space=space, rows=rows,
                      cols=cols)

    def compute(a=0, b=0, cr=0, steps=1, k=R):
        return encode(Funct.COMPUTE, a_row=a, b_row=b, c_row=cr, steps=steps, k_valid=k)

    pairs = [([encode(Funct.CONFIG_LOAD, stride=8)], [])]
    for space, depth, cap, size in ((Space.SPAD_A, S, R, es), (Space.SPAD_B, S, C, es),
                                    (Space.ACC, A, C, 4), (Space.QP, c.qp_depth, C, 4)):
        end = mem - cap * size
        pairs += [([load(row=depth - 1, space=space)], [load(row=depth, space=space)]),
                  ([load(space=space, cols=cap)], [load(space=space, cols=cap + 1)]),
                  ([load(end, space=space, cols=cap)], [load(end + 1, space=space, cols=cap)])]
    pairs += [([load(row=S + 3, rows=0), load(cols=R + 1, rows=0)], [load(rows=255)])]
    # A stride reaching past the window matters only for more than one row.
    near = mem - C * es - 8
    pairs += [([encode(Funct.CONFIG_LOAD, stride=mem), load(space=Space.SPAD_B, cols=C)],
               [load(space=Space.SPAD_B, rows=2, cols=C)]),
              ([encode(Funct.CONFIG_LOAD, stride=near), load(8, space=Space.SPAD_B, rows=2,
                                                             cols=C)],
               [encode(Funct.CONFIG_LOAD, stride=near + 1),
                load(8, space=Space.SPAD_B, rows=2, cols=C)])]
    pairs.append(([encode(Funct.CONFIG_STORE, stride=16, qp_row=c.qp_depth - QP_ROWS)],
                  [encode(Funct.CONFIG_STORE, stride=16, qp_row=c.qp_depth - QP_ROWS + 1)]))
    for funct, size in ((Funct.STORE, es), (Funct.STORE_ACC, 4)):
        def store(addr=1024, row=0, rows=1, cols=C):
            return encode(funct, dram_addr=addr, acc_row=row, rows=rows, cols=cols)
        pairs += [([store(row=A - 1)], [store(row=A)]),
                  ([store(row=A - 2, rows=2)], [store(row=A - 1, rows=2)]),
                  ([store(cols=C)], [store(cols=C + 1)]),
                  ([store(mem - C * size)], [store(mem - C * size + 1)])]
    for dataflow in (Dataflow.WS, Dataflow.OS):
        pairs += [([encode(Funct.CONFIG_EXEC, dataflow=dataflow), compute(a=S - 1)],
                   [compute(a=S)]),
                  ([compute(b=S - R, steps=R)], [compute(b=S - R + 1, steps=R)]),
                  ([compute(cr=A - R, steps=R)], [compute(cr=A - R + 1, steps=R)]),
                  ([compute(k=R)], [compute(k=R + 1)]),
                  ([compute(a=S - 2 * R, steps=R + 1, k=1)],
                   [compute(a=S - 2 * R + 1, steps=R + 1, k=1)])]
    w = c.in_width
    s_lo, s_hi, u_hi = -(1 << (w - 1)), (1 << (w - 1)) - 1, (1 << w) - 1

    def exec_(**fields):
        return encode(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, **fields)

    pairs += [([exec_(a_signed=1, a_zero=s_lo)], [exec_(a_signed=1, a_zero=s_lo - 1)]),
              ([exec_(a_signed=1, a_zero=s_hi)], [exec_(a_signed=1, a_zero=s_hi + 1)]),
              ([exec_(b_signed=0, b_zero=0)], [exec_(b_signed=0, b_zero=-1)]),
              ([exec_(b_signed=0, b_zero=u_hi)], [exec_(b_signed=0, b_zero=u_hi + 1)])]

    def requant(cmin, cmax, mode=0):
        return encode(Funct.CONFIG_REQUANT, mode=mode, clamp_min=cmin, clamp_max=cmax)

    pairs += [([requant(s_lo, s_hi)], [requant(s_lo - 1, 0)]),
              ([requant(0, u_hi, mode=1)], [requant(0, u_hi + 1, mode=1)]),
              ([requant(-1, s_hi)], [requant(-1, u_hi)]),
              ([requant(5, 5)], [requant(6, 5)])]
    # Command lists: aligned and inside the window, or empty.
    list_at = mem - 2 * LIST_ENTRY_BYTES
    fence = encode(Funct.FENCE)
    pairs += [([encode(Funct.RUN, list_addr=list_at, count=2), fence],
               [encode(Funct.RUN, list_addr=list_at, count=3), fence]),
              ([encode(Funct.RUN, list_addr=list_at + 4, count=0), fence],
               [encode(Funct.RUN, list_addr=list_at + 4, count=1), fence]),
              ([encode(Funct.RUN, list_addr=mem, count=0), fence],
               [encode(Funct.RUN, list_addr=mem, count=1), fence]),
              ([], [(0x05, 0, 0), (0x7F, 0, 0)])]
    image = [(0, bytes(range(256)) * 4),
             (list_at, pack_list([encode(Funct.CONFIG_LOAD, stride=4),
                                  load(0, 1, Space.SPAD_A)]))]
    program = []
    for good, bad in pairs:
        program += good + bad + [encode(Funct.STATUS, clear=1)]
    # Show the accumulators (what the valid probes loaded and computed) in main memory.
    program += [encode(Funct.CONFIG_STORE, stride=C * 4, qp_row=0),
                encode(Funct.STORE_ACC, dram_addr=1024, acc_row=0, rows=A, cols=C), fence]
    return image, program


@pytest.mark.parametrize("name", ["2x2-ranges", "2x2-serial-bus64", "2x2-range-stage"])
def test_refusals_at_their_edges_on_a_small_engine(name):
    config = CONFIGS[name]
    image, program = edge_probes(config)
    mem, answers, _ = run_rtl(config, image, program)
    want_mem, want_answers = run_golden(config, image, program)
    words = [unpack_status(w) for w in want_answers]
    # The probes reach every kind of refusal, and are taken as often.
    codes = {w["error_code"] for w in words}
    assert {ErrorCode.NONE, ErrorCode.BAD_LOCAL, ErrorCode.BAD_SIZE, ErrorCode.BAD_MEMORY,
            ErrorCode.BAD_CONFIG, ErrorCode.BAD_FUNCT} <= codes
    assert sum(w["error_count"] == 1 for w in words) > len(words) // 2
    for i, (got, want) in enumerate(zip(answers, want_answers)):
        assert got & BUSY_MASK == want & BUSY_MASK, \
            f"{name}: answer {i}: {unpack_status(got)}, expected {unpack_status(want)}"
    assert len(answers) == len(want_answers)
    diff = np.argwhere(mem != want_mem)
    assert not diff.size, f"{name}: {len(diff)} bytes differ, first at {int(diff[0][0]):#x}"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_deep_lane_is_a_flag_the_store_units_lanes_follow():
    """``deep_lane`` is a flag (1 or 0 as on the command line) and builds the store unit's
    lanes two stages deeper (the random programs above run the 2x2-range-stage engine with
    it, checking that the store keeps up with them)."""
    from rvnpu.hdl.engine.requant import RequantLane
    from rvnpu.hdl.engine.store import StoreUnit

    assert EngineConfig(deep_lane=1).deep_lane is True
    assert EngineConfig().deep_lane is False
    for bad in (2, "yes", None):
        with pytest.raises(ValueError, match="deep_lane must be true or false"):
            EngineConfig(deep_lane=bad)
    shallow = RequantLane().latency
    for deep in (False, True):
        config = dataclasses.replace(CONFIGS["2x2-ranges"], deep_lane=deep)
        m = StoreUnit(config).elaborate(None)
        lanes = [m.submodules[f"lane{i}"] for i in range(config.requant_lanes)]
        assert [lane.latency for lane in lanes] == [shallow + 2 * deep] * len(lanes)
    del m, lanes
    gc.collect()    # the components never elaborated, while their warning is filtered


def test_range_stage_takes_a_flag_and_a_cycle_a_command():
    """``range_stage`` is a flag (1 or 0 as on the command line), and the front end with it
    takes two cycles more between commands: here CONFIG_LOADs, handed on back to back."""
    from amaranth.sim import Simulator

    from rvnpu.hdl.engine.frontend import Frontend

    assert EngineConfig(range_stage=1).range_stage is True
    assert EngineConfig().range_stage is False
    for bad in (2, "yes", None):
        with pytest.raises(ValueError, match="range_stage must be true or false"):
            EngineConfig(range_stage=bad)

    def cycles_between_commands(stage):
        config = dataclasses.replace(CONFIGS["2x2-ranges"], range_stage=stage)
        dut = Frontend(config)
        taken = []

        async def testbench(ctx):
            funct, op1, op2 = encode(Funct.CONFIG_LOAD, stride=16)
            ctx.set(dut.cmd.payload, {"funct": funct, "op1": op1, "op2": op2})
            ctx.set(dut.cmd.valid, 1)
            for cycle in range(30):
                if ctx.get(dut.cmd.ready):
                    taken.append(cycle)
                await ctx.tick()

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(testbench)
        sim.run()
        gaps = {b - a for a, b in zip(taken, taken[1:])}
        assert len(taken) > 5 and len(gaps) == 1, taken
        return gaps.pop()

    assert cycles_between_commands(True) == cycles_between_commands(False) + 2


@pytest.mark.parametrize("flag", ["load_stage", "acc_stage"])
def test_load_and_accumulator_stages_are_flags(flag):
    """``load_stage`` and ``acc_stage`` are flags (1 or 0 as on the command line), off by
    default; the tests above and below run engines with them."""
    assert getattr(EngineConfig(**{flag: 1}), flag) is True
    assert getattr(EngineConfig(), flag) is False
    for bad in (2, "yes", None):
        with pytest.raises(ValueError, match=f"{flag} must be true or false"):
            EngineConfig(**{flag: bad})


def test_unit_slices_are_a_flag_on_by_default():
    """``unit_slices`` is a flag (1 or 0 as on the command line), on by default; without it
    the engine has no slice between its front end and any unit."""
    assert EngineConfig().unit_slices is True
    assert EngineConfig(unit_slices=0).unit_slices is False
    for bad in (2, "no", None):
        with pytest.raises(ValueError, match="unit_slices must be true or false"):
            EngineConfig(unit_slices=bad)
    for flag in (True, False):
        config = dataclasses.replace(CONFIGS["2x2-ranges"], unit_slices=flag)
        fragment = Fragment.get(MatrixEngine(config), None)
        names = {entry[1] for entry in fragment.subfragments}
        assert {"load_slice", "store_slice", "exec_slice", "post_slice"} & names == (
            {"load_slice", "store_slice", "exec_slice", "post_slice"} if flag else set())


def directed_image(config, seed):
    """Random main memory for a directed program, its upper half clear for what it stores:
    returns the image (as :func:`run_rtl` takes it) and where that half starts."""
    image = np.random.default_rng(seed).integers(0, 256, config.mem_bytes, dtype=np.uint8)
    dump = config.mem_bytes // 2
    image[dump:] = 0
    return [(0, image.tobytes())], dump


def assert_runs_as_the_model(name, config, image, program):
    """``program`` runs on the RTL as on the golden model, refusing nothing."""
    got_mem, got_answers, _ = run_rtl(config, image, program)
    want_mem, want_answers = run_golden(config, image, program)
    assert unpack_status(want_answers[-1])["error_count"] == 0
    assert [a & BUSY_MASK for a in got_answers] == [a & BUSY_MASK for a in want_answers]
    diff = np.argwhere(got_mem != want_mem)
    assert not diff.size, f"{name}: {len(diff)} bytes differ, first at {int(diff[0][0]):#x}"


@pytest.mark.parametrize("name", ["2x2-ranges", "2x2-load-stage"])
def test_accumulator_loads_beside_computes_that_write_it(name):
    """LOADs into accumulator rows land while COMPUTEs write other rows, at every offset a
    few SPAD_A rows loaded first shift them by, and a COMPUTE reads SPAD_A rows a LOAD has
    only just written. With ``load_stage`` the load unit's write lands a cycle after the
    handshake, so it must be held back by what the execute unit writes then, not now (a
    mutant holding it back by the execute unit's write now fails here)."""
    config = CONFIGS[name]
    image, dump = directed_image(config, 113)
    program = [encode(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, a_signed=1, b_signed=1)]
    for offset in range(6):
        program += [
            encode(Funct.CONFIG_LOAD, stride=2),
            encode(Funct.LOAD, dram_addr=64, local_row=0, space=Space.SPAD_B, rows=2,
                   cols=2),
            encode(Funct.LOAD, dram_addr=96 + 2 * offset, local_row=0, space=Space.SPAD_A,
                   rows=8, cols=2),
            encode(Funct.COMPUTE, a_row=0, b_row=0, c_row=0, steps=8, k_valid=2),
            encode(Funct.LOAD, dram_addr=160 + 4 * offset, local_row=8, space=Space.SPAD_A,
                   rows=offset, cols=2),
            encode(Funct.CONFIG_LOAD, stride=8),
            encode(Funct.LOAD, dram_addr=256 + 64 * offset, local_row=8, space=Space.ACC,
                   rows=8, cols=2),
            encode(Funct.COMPUTE, a_row=8, b_row=0, c_row=0, steps=max(offset, 1),
                   k_valid=2, accumulate=1),
            encode(Funct.CONFIG_STORE, stride=8, qp_row=0),
            encode(Funct.STORE_ACC, dram_addr=dump + 128 * offset, acc_row=0, rows=16,
                   cols=2),
        ]
    program.append(encode(Funct.FENCE))
    assert_runs_as_the_model(name, config, image, program)


@pytest.mark.parametrize("name", ["2x2-ranges", "1x2-acc-stage", "2x2-load-stage"])
@pytest.mark.parametrize("dataflow", [Dataflow.WS, Dataflow.OS])
def test_back_to_back_sums_into_one_row(name, dataflow):
    """COMPUTEs of one step each adding to the same accumulator rows, issued back to back,
    and longer ones overlapping them by a row: each step's read of the row must see the
    writes of the steps before it, the latest of which may land in the cycle of the read
    (with ``acc_stage``, a mutant whose read port is not transparent to it fails here)."""
    config = CONFIGS[name]
    image, dump = directed_image(config, 116)
    R, C = config.rows, config.cols
    program = [encode(Funct.CONFIG_EXEC, dataflow=dataflow, a_signed=1, b_signed=0),
               encode(Funct.CONFIG_LOAD, stride=C),
               encode(Funct.LOAD, dram_addr=64, local_row=0, space=Space.SPAD_B, rows=8,
                      cols=C),
               encode(Funct.CONFIG_LOAD, stride=R),
               encode(Funct.LOAD, dram_addr=160, local_row=0, space=Space.SPAD_A, rows=8,
                      cols=R)]
    for first, steps in ((0, 1), (0, 1), (0, 1), (1, 1), (0, 2), (1, 3), (2, 1), (0, 1)):
        program.append(encode(Funct.COMPUTE, a_row=first, b_row=first, c_row=first,
                              steps=steps, k_valid=R, accumulate=1))
    program += [encode(Funct.CONFIG_STORE, stride=C * 4, qp_row=0),
                encode(Funct.STORE_ACC, dram_addr=dump, acc_row=0, rows=8, cols=C),
                encode(Funct.FENCE)]
    assert_runs_as_the_model(name, config, image, program)
