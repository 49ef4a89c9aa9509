"""The engine's RTL against the golden model, bit for bit.

For each configuration and simulator, one simulator run executes a batch of random GEMMs
(compared with ``gemm_reference``) and of random command programs (compared with
:class:`EngineModel`: the whole main memory afterwards, and every FENCE/STATUS answer with the
timing-dependent busy bit masked). The programs mix valid and refused commands of every kind and
aim most of them at a few local rows and a small window of main memory, so that loads, computes
and stores queued in different units overlap: that is what the front end's hazard checks must
keep in program order.

One test runs one configuration's whole batch, because every simulator run starts the
simulator afresh and pytest-xdist would otherwise repeat the batch in each worker. Its failure
message lists every failing case with the seed that rebuilds it (``random_program(
CONFIGS[name], seed)``, ``random_gemm_case(CONFIGS[name], seed)``); a failing program can be
rerun alone with ``RtlEngine(...).run([EngineRun(p.commands, p.image, [(0, mem_bytes)])])`` and
shrunk by deleting commands while it still fails.
"""

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from rvnpu.spec.config import EngineConfig
from rvnpu.hdl.engine.engine import MatrixEngine
from rvnpu.spec.commands import Funct, Space, decode, encode, unpack_status
from rvnpu.sim import toolchain
from rvnpu.compiler.gemm import compile_gemm
from rvnpu.sim.golden.gemm import Requant, gemm_reference
from rvnpu.sim.golden.engine import EngineModel, element_range, output_range
from rvnpu.sim.golden.requant import quantize_multiplier
from rvnpu.sim.rtl import EngineResult, EngineRun, RtlEngine
# The generator and the comparison live in the package, for `rvnpu fuzz engine` too.
from rvnpu.sim.engine_programs import (BUSY, BUSY_MASK, _Generator, check_program,
                                       first_difference, random_program)
from rvnpu.sim.runner import verilog_of


BUILD_ROOT = Path(os.environ.get("RVNPU_SIM_BUILD",
                                 Path(__file__).resolve().parents[1] / "build" / "sim"))

CONFIGS = {
    "4x4": EngineConfig(rows=4, cols=4, dataflow="both", spad_depth=256, acc_depth=64,
                        qp_depth=16, mem_bytes=1 << 14),
    # Cells 7..14 multiply in logic (shift and add), the rest with `*`.
    "3x5": EngineConfig(rows=3, cols=5, dataflow="both", spad_depth=128, acc_depth=32,
                        qp_depth=8, bus_width=32, mem_bytes=1 << 13, requant_lanes=1,
                        logic_macs=8),
    "8x8-ws": EngineConfig(rows=8, cols=8, dataflow="ws", spad_depth=64, acc_depth=32,
                           qp_depth=8, bus_width=128, mem_bytes=1 << 13, queue_depth=2,
                           requant_lanes=2, requant_modes="ort"),
    "2x2-int4": EngineConfig(rows=2, cols=2, in_width=4, acc_width=16, dataflow="both",
                             spad_depth=64, acc_depth=32, qp_depth=8, mem_bytes=1 << 12,
                             queue_depth=1, requant_modes="tflite", hazards="serial"),
    # Every cell multiplies in logic, 17 x 17 bits.
    "2x3-int16": EngineConfig(rows=2, cols=3, in_width=16, acc_width=32, dataflow="both",
                              spad_depth=64, acc_depth=32, qp_depth=8, mem_bytes=1 << 13,
                              logic_macs=6),
    # The iCEBreaker's shape: no requantisation (STORE refused), serial hazards, WS only, no
    # command fetcher (RUN refused), no post-processing unit (its commands refused).
    "1x1-bare": EngineConfig(rows=1, cols=1, dataflow="ws", spad_depth=64, acc_depth=32,
                             qp_depth=8, bus_width=32, mem_bytes=1 << 12, queue_depth=1,
                             requant_modes="none", hazards="serial", command_fetch=False,
                             post_unit=False),
    # Raw elements in the cells, the zero points off below the array (a zero step a COMPUTE).
    "4x6-ws-zero-point-sums": EngineConfig(rows=4, cols=6, dataflow="ws", spad_depth=64,
                                           acc_depth=32, qp_depth=8, mem_bytes=1 << 13,
                                           queue_depth=2, requant_lanes=3,
                                           zero_point_sums=True),
    "2x2-int4-zero-point-sums": EngineConfig(rows=2, cols=2, in_width=4, acc_width=16,
                                             dataflow="ws", spad_depth=64, acc_depth=32,
                                             qp_depth=8, mem_bytes=1 << 12, mac_latency=1,
                                             requant_modes="tflite", zero_point_sums=True),
    # 16-bit elements: the raw sums of 16 rows reach past 32 bits and wrap, as do the
    # corrections below the array, modulo 2**32 alike.
    "16x2-int16-zero-point-sums": EngineConfig(rows=16, cols=2, in_width=16, acc_width=32,
                                               dataflow="ws", spad_depth=64, acc_depth=32,
                                               qp_depth=8, mem_bytes=1 << 13,
                                               requant_lanes=1, zero_point_sums=True),
    # Two cells a SB_MAC16 (Yosys's model of the primitive), an odd column on its own, and
    # the products in the blocks' registers.
    "2x3-sb-mac16-pairs": EngineConfig(rows=2, cols=3, dataflow="ws", spad_depth=64,
                                       acc_depth=32, qp_depth=8, mem_bytes=1 << 12,
                                       requant_lanes=1, zero_point_sums=True,
                                       sb_mac16_pairs=True),
    # The iCEBreaker's cells: no registers around the multipliers.
    "2x2-sb-mac16-pairs-unregistered": EngineConfig(
        rows=2, cols=2, dataflow="ws", spad_depth=64, acc_depth=32, qp_depth=8,
        bus_width=32, mem_bytes=1 << 12, queue_depth=1, requant_modes="none",
        hazards="serial", command_fetch=False, post_unit=False, mac_latency=0,
        zero_point_sums=True, sb_mac16_pairs=True),
}

#: (configuration, simulator, GEMM jobs, random programs). Icarus is slower: fewer cases.
PLAN = [
    ("4x4", "verilator", 20, 60),
    ("3x5", "verilator", 14, 30),
    ("8x8-ws", "verilator", 12, 30),
    ("2x2-int4", "verilator", 12, 30),
    ("2x3-int16", "verilator", 12, 30),
    ("1x1-bare", "verilator", 10, 30),
    ("4x6-ws-zero-point-sums", "verilator", 12, 30),
    ("2x2-int4-zero-point-sums", "verilator", 10, 20),
    ("16x2-int16-zero-point-sums", "verilator", 10, 20),
    ("2x3-sb-mac16-pairs", "verilator", 10, 20),
    ("2x2-sb-mac16-pairs-unregistered", "verilator", 10, 20),
    ("4x4", "icarus", 5, 3),
    ("2x3-int16", "icarus", 4, 2),
]

SEED = 0x5EED_0000


def dataflows(config):
    return [d for d in ("os", "ws") if getattr(config, f"with_{d}")]


# -- Random GEMMs --------------------------------------------------------------------------------

@dataclasses.dataclass
class GemmCase:
    label: str
    job: object
    expected: np.ndarray


def random_gemm_case(config, seed, *, shape=None, dataflow=None, mode=None, extreme=False):
    """A random GEMM for ``config`` (shapes up to 20), with its reference result."""
    rng = np.random.default_rng(seed)
    w = config.in_width
    m, n, k = shape or (int(x) for x in rng.integers(1, 21, 3))
    dataflow = dataflow or str(rng.choice(dataflows(config)))
    modes = ["raw"] + (["tflite", "tflite-channel"] if config.with_tflite else []) + \
        (["ort"] if config.with_ort else [])
    mode = mode or str(rng.choice(modes))
    a_signed, b_signed = (bool(x) for x in rng.integers(0, 2, 2))
    a_lo, a_hi = element_range(w, a_signed)
    b_lo, b_hi = element_range(w, b_signed)
    zmax = (1 << 15) - 1          # zero points are signed 16-bit fields
    if extreme:
        # Every A element the minimum, B columns alternately minimum and maximum: every sum is
        # as large as it gets, of alternating sign, so every output saturates one way or the
        # other.
        a_signed = b_signed = True
        a_lo, a_hi = b_lo, b_hi = element_range(w, True)
        a = np.full((m, k), a_lo)
        b = np.where(np.arange(n) % 2 == 0, b_lo, b_hi)[None, :].repeat(k, 0)
        a_zero = b_zero = 0
    else:
        a = rng.integers(a_lo, a_hi, (m, k), endpoint=True)
        b = rng.integers(b_lo, b_hi, (k, n), endpoint=True)
        a_zero = int(rng.integers(a_lo, min(a_hi, zmax), endpoint=True)) \
            if rng.random() < 0.6 else 0
        b_zero = int(rng.integers(b_lo, min(b_hi, zmax), endpoint=True)) \
            if rng.random() < 0.4 else 0
    acc = (a - a_zero) @ (b - b_zero)
    spread = max(1.0, float(np.abs(acc).mean()))
    s_lo, s_hi = output_range(w, True)
    u_lo, u_hi = output_range(w, False)
    clamps = [(0, s_lo, s_hi), (0, 0, s_hi), ((u_hi + 1) // 2, u_lo, u_hi),
              (int(rng.integers(s_lo // 4, s_hi // 4 + 1)), s_lo, s_hi)]
    out_zero, cmin, cmax = clamps[int(rng.integers(len(clamps)))]
    scale = (cmax - cmin + 1) / (2 * spread) * (64 if extreme else 1)
    bias = rng.integers(-2 * spread, 2 * spread, n, endpoint=True) \
        if rng.random() < 0.7 and not extreme else None
    if mode == "raw":
        requant, bias = Requant(None), None
    elif mode == "tflite":
        mult, shift = quantize_multiplier(scale)
        requant = Requant("tflite", multiplier=mult, shift=shift, out_zero=out_zero,
                          clamp_min=cmin, clamp_max=cmax)
    elif mode == "tflite-channel":
        qm = [quantize_multiplier(scale * f * (-1 if rng.random() < 0.15 else 1))
              for f in rng.uniform(0.25, 4, n)]
        requant = Requant("tflite", multiplier=np.array([q for q, _ in qm]),
                          shift=np.array([s for _, s in qm]), out_zero=out_zero,
                          clamp_min=cmin, clamp_max=cmax)
    else:
        requant = Requant("ort", scale=(scale * rng.uniform(0.25, 4, n)).astype(np.float32),
                          out_zero=out_zero, clamp_min=cmin, clamp_max=cmax)
    kwargs = dict(a_zero=a_zero, b_zero=b_zero)
    job = compile_gemm(a, b, bias, requant, config=config, dataflow=dataflow,
                       a_signed=a_signed, b_signed=b_signed, **kwargs)
    expected = gemm_reference(a, b, bias, requant, **kwargs)
    label = (f"GEMM seed {seed}: M,N,K={m},{n},{k} dataflow={dataflow} mode={mode} "
             f"A {'s' if a_signed else 'u'} zero {a_zero}, B {'s' if b_signed else 'u'} zero "
             f"{b_zero}{' extreme' if extreme else ''}")
    return GemmCase(label, job, expected)


def gemm_batch(config, count, seed):
    cases = []
    flows = dataflows(config)
    scaled = "tflite" if config.with_tflite else "ort" if config.with_ort else "raw"
    # Fixed corners first: 1x1x1 in each dataflow, exact multiples of the array, extremes.
    for d in flows:
        cases.append(random_gemm_case(config, seed + len(cases), shape=(1, 1, 1), dataflow=d))
    cases.append(random_gemm_case(config, seed + len(cases), dataflow=flows[-1], mode=scaled,
                                  shape=(2 * config.rows, 2 * config.cols, 3 * config.rows)))
    for d in flows:
        cases.append(random_gemm_case(config, seed + len(cases), shape=(5, 6, 19), dataflow=d,
                                      mode=scaled, extreme=True))
    # A long reduction: many K chunks (WS), a long OS accumulation.
    long_k = min(120, config.spad_depth // 2 - config.rows)
    for d in flows:
        cases.append(random_gemm_case(config, seed + len(cases), shape=(5, 6, long_k),
                                      dataflow=d))
    while len(cases) < count:
        cases.append(random_gemm_case(config, seed + len(cases)))
    return cases


# -- Random command programs ---------------------------------------------------------------------

def program_batch(config, count, seed):
    return [random_program(config, seed + i) for i in range(count)]


# -- Comparison ----------------------------------------------------------------------------------

def _plan_param(name, simulator, n_gemm, n_prog):
    marks = []
    if simulator != "verilator":
        marks.append(pytest.mark.skipif(
            simulator not in toolchain.available_simulators(),
            reason=f"{simulator} not installed"))
    return pytest.param(name, simulator, n_gemm, n_prog, marks=marks,
                        id=f"{name}-{simulator}")


SMOKE = [encode(Funct.STATUS), encode(Funct.FENCE)]


@pytest.mark.parametrize("name, simulator, n_gemm, n_prog",
                         [_plan_param(*p) for p in PLAN])
def test_engine_matches_golden(name, simulator, n_gemm, n_prog):
    config = CONFIGS[name]
    base = SEED + 10_000 * list(CONFIGS).index(name)
    gemms = gemm_batch(config, n_gemm, base)
    programs = program_batch(config, n_prog, base + 5000)
    # First a STATUS: a simulator that leaves the engine's control undefined (X) fails on its
    # answer at once instead of timing out on the first FENCE.
    runs = [EngineRun(program=SMOKE)]
    runs += [EngineRun(program=g.job.program, image=g.job.image,
                       dump=[(g.job.out_addr, g.expected.size * g.job.out_bytes)])
             for g in gemms]
    runs += [EngineRun(program=p.commands, image=p.image, dump=[(0, config.mem_bytes)])
             for p in programs]
    results = RtlEngine(config, simulator=simulator, build_root=BUILD_ROOT).run(runs)
    assert len(results) == len(runs)
    smoke, results = results[0], results[1:]

    failures = []
    if [r & BUSY_MASK for r in smoke.responses] != [0, 0]:
        failures.append(f"STATUS, FENCE answered {smoke.responses}")
    where = f"{name} ({config.rows}x{config.cols} {config.dataflow}, in_width " \
            f"{config.in_width}) on {simulator}"
    for case, result in zip(gemms, results):
        got = case.job.read_output(result.memory)
        diff = first_difference(got, case.expected)
        if diff:
            failures.append(f"{where}: {case.label}: {diff}")
        elif result.responses != [0]:
            failures.append(f"{where}: {case.label}: FENCE answered "
                            f"{[unpack_status(r) for r in result.responses]}")
    for program, result in zip(programs, results[len(gemms):]):
        diff = check_program(program, result, config)
        if diff:
            failures.append(f"{where}: {program.label}: {diff}")
    assert not failures, f"{len(failures)} of {len(runs)} cases differ:\n" + "\n".join(failures)


# -- The generators themselves -------------------------------------------------------------------

def test_programs_exercise_everything():
    """The random programs reach every command, both dataflows, refusals and collisions; if
    the generator drifted into only valid (or only refused) commands, the RTL test above
    would lose its point without failing."""
    config = CONFIGS["4x4"]
    seen, refused, answers = set(), 0, 0
    for i in range(8):
        program = random_program(config, SEED + 5000 + i)
        seen |= {f for f, _, _ in program.commands}
        model = EngineModel(config, np.frombuffer(program.image[0][1], np.uint8).copy())
        for command in program.commands[:program.body]:
            before = model.error_count
            model.execute(*command)
            refused += model.error_count > before
        answers += len(program.responses)
        # The epilogue shows the local memories as they were.
        acc, spad_a, spad_b = model.acc.copy(), model.spad_a.copy(), model.spad_b.copy()
        model.run(program.commands[program.body:])
        assert np.array_equal(model.memory, program.memory), program.label
        gen = _Generator(config, np.random.default_rng(0))
        hot, cols = gen.dump_spad, config.cols

        def dump(addr, rows):
            return program.memory[addr:addr + rows * cols * 4].view("<i4").reshape(rows, cols)

        assert np.array_equal(dump(gen.acc_dump, config.acc_depth), acc), program.label
        assert np.array_equal(dump(gen.b_dump, hot), spad_b[:hot]), program.label
        assert np.array_equal(dump(gen.a_dump, hot)[:, :config.rows], spad_a[:hot]), \
            program.label
    assert {int(f) for f in Funct} <= seen, f"missing {set(Funct) - seen}"
    assert any(f not in {int(x) for x in Funct} for f in seen), "no unknown function codes"
    assert 10 <= refused, f"only {refused} refused commands"
    assert answers >= 16


def test_check_program_reports_differences():
    """The comparison itself: equal results pass; a changed byte, a changed answer, a busy
    FENCE or a missing answer are each reported (with the busy bit of STATUS ignored)."""
    config = CONFIGS["2x2-int4"]
    program = random_program(config, SEED)
    fine = EngineResult(memory=program.memory.copy(), responses=list(program.responses),
                        cycles=0, active_cycles=0)
    assert check_program(program, fine, config) is None
    answering = [f for f, _, _ in program.commands if f in (Funct.FENCE, Funct.STATUS)]
    busy = dataclasses.replace(fine, responses=list(fine.responses))
    busy.responses[answering.index(Funct.STATUS)] |= 1 << BUSY.lsb
    assert check_program(program, busy, config) is None

    memory = fine.memory.copy()
    memory[gen_limit(config) - 1] ^= 0x40
    message = check_program(program, dataclasses.replace(fine, memory=memory), config)
    assert message and f"byte {gen_limit(config) - 1:#x}" in message and "main memory" in message
    memory = fine.memory.copy()
    memory[-1] ^= 1
    assert "identities" in check_program(program, dataclasses.replace(fine, memory=memory),
                                         config)
    answers = list(fine.responses)
    answers[-1] |= 1 << BUSY.lsb                     # the final FENCE
    assert "busy set" in check_program(program, dataclasses.replace(fine, responses=answers),
                                       config)
    answers = list(fine.responses)
    answers[0] ^= 1 << 16                            # an error count
    assert "answer 0" in check_program(program, dataclasses.replace(fine, responses=answers),
                                       config)
    assert "answers, expected" in check_program(
        program, dataclasses.replace(fine, responses=fine.responses[:-1]), config)


def gen_limit(config):
    return _Generator(config, np.random.default_rng(0)).limit


def test_gemm_batches_compile_for_every_config():
    for name, config in CONFIGS.items():
        for case in gemm_batch(config, 12, SEED):
            assert case.expected.shape == case.job.out_shape, f"{name}: {case.label}"


# -- Reproducers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("simulator", [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        "icarus" not in toolchain.available_simulators(), reason="icarus not installed")),
])
def test_status_answers_after_reset(simulator):
    """The smallest program with an answer. On Icarus the engine's combinational logic stays X
    after reset (cocotb builds with ``iverilog -g2012``, where the ``always @*`` blocks Yosys
    writes never run at time zero), so this fails at once; with ``-g2005`` it passes."""
    config = CONFIGS["4x4"]
    (result,) = RtlEngine(config, simulator=simulator, build_root=BUILD_ROOT).run(
        [EngineRun(program=SMOKE)])
    assert [r & BUSY_MASK for r in result.responses] == [0, 0]
    assert result.responses[1] == 0, "FENCE answered busy"


def test_batch_jobs_start_from_clear_local_memories():
    """Each job of a batch must start as the golden model does, with zeroed local memories.
    The testbench resets the engine between jobs but keeps its memories, so the second job
    here reads back what the first loaded."""
    config = CONFIGS["4x4"]
    image = [(0, bytes(range(1, 17)))]
    first = [encode(Funct.LOAD, dram_addr=0, local_row=0, space=Space.ACC, rows=1, cols=4),
             encode(Funct.FENCE)]
    second = [encode(Funct.CONFIG_STORE, stride=16),
              encode(Funct.STORE_ACC, dram_addr=64, acc_row=0, rows=1, cols=4),
              encode(Funct.FENCE)]
    model = EngineModel(config)
    model.run(second)
    results = RtlEngine(config, build_root=BUILD_ROOT).run(
        [EngineRun(first, image, [(0, 128)]), EngineRun(second, [], [(0, 128)])])
    diff = first_difference(results[1].memory[64:80], model.memory[64:80])
    assert diff is None, f"STORE_ACC of ACC row 0 in the second job: {diff}"


def test_ws_only_engine_converts_without_warnings():
    """STYLE.md runs with warnings as errors. In a weight-stationary-only engine each PE
    writes ``mark_in & ~os`` with ``os`` the Python int 0, so ``~os`` is -1 and Amaranth warns
    about a signed If condition (hdl/engine/pe.py); the logic happens to be right."""
    config = EngineConfig(rows=2, cols=2, dataflow="ws", spad_depth=16, acc_depth=16,
                          qp_depth=4, mem_bytes=1 << 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verilog_of(MatrixEngine(config), "engine")


@pytest.mark.parametrize("name", ["8x8-ws", "4x6-ws-zero-point-sums"])
def test_the_array_is_busy_one_cycle_a_step(name):
    """The engine's ``active`` output (the SoC timer's ACTIVE count, `rvnpu sim`'s "array
    busy") counts the WS steps of A a GEMM's COMPUTEs stream, and not the zero step each
    COMPUTE takes first when the zero points come off below the array."""
    config = CONFIGS[name]
    case = random_gemm_case(config, SEED + 77, shape=(13, 9, 2 * config.rows + 3),
                            dataflow="ws", mode="raw")
    steps = sum(decode(*command)[1]["steps"] for command in case.job.program
                if command[0] == Funct.COMPUTE)
    (result,) = RtlEngine(config, build_root=BUILD_ROOT).run(
        [EngineRun(program=case.job.program, image=case.job.image,
                   dump=[(case.job.out_addr, case.expected.size * case.job.out_bytes)])])
    np.testing.assert_array_equal(case.job.read_output(result.memory), case.expected)
    assert steps > 0 and result.active_cycles == steps
