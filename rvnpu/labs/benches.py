"""Simulation benches the lab autograders share, on Amaranth's simulator (no Verilator build).

Two benches, both able to leave a waveform (VCD) for the student to open in Surfer or GTKWave:

* :func:`run_cycles` drives any component cycle by cycle from a list of input values and
  returns what its outputs were in each cycle: for one processing element.
* :func:`run_computes` runs COMPUTE commands on the execute unit (the systolic array with its
  skew, de-skew and zero-point logic) beside scratchpads and an accumulator memory, and returns
  the accumulators and the cycle counts. :func:`golden_computes` runs the same commands on the
  numpy golden model of the engine, so a test compares the two.

The HDL is imported inside the functions: the student's modules must be in place (see
:mod:`rvnpu.labs.plugin`) before anything imports them.
"""

import contextlib
import dataclasses

import numpy as np


__all__ = ["ComputeRun", "run_cycles", "run_computes", "golden_computes", "EXEC_FIELDS"]

#: The fields of one command for :func:`run_computes`: CONFIG_EXEC's and COMPUTE's.
EXEC_FIELDS = ("dataflow", "a_signed", "b_signed", "a_zero", "b_zero",
               "a_row", "b_row", "c_row", "steps", "k_valid", "accumulate")


@dataclasses.dataclass
class ComputeRun:
    """What :func:`run_computes` measured: the accumulator memory afterwards, the cycles from
    the first command to the last retirement, and the cycles in which a step entered the
    array."""
    acc: np.ndarray
    cycles: int
    active_cycles: int


def _simulate(sim, vcd, until):
    """Run ``sim`` until ``until`` seconds, writing a VCD to ``vcd`` if given."""
    writer = sim.write_vcd(str(vcd)) if vcd else contextlib.nullcontext()
    with writer:
        sim.run_until(until)


def run_cycles(component, stimulus, *, vcd=None):
    """Drive ``component`` with ``stimulus`` (a list, one dict of input name -> value a
    cycle) and return a list of dicts of every output's value in that cycle, sampled after
    the inputs are applied and before the clock edge that ends the cycle."""
    from amaranth.lib import wiring
    from amaranth.sim import Simulator

    outputs = [name for name, member in component.signature.members.items()
               if member.is_port and member.flow == wiring.Out]
    trace = []

    async def testbench(ctx):
        for inputs in stimulus:
            for name, value in inputs.items():
                ctx.set(getattr(component, name), value)
            trace.append({name: ctx.get(getattr(component, name)) for name in outputs})
            await ctx.tick()

    sim = Simulator(component)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    _simulate(sim, vcd, (len(stimulus) + 2) * 1e-6)
    assert len(trace) == len(stimulus), "the simulation stopped early"
    return trace


def _execute_bench(config, spad_a, spad_b, acc_init):
    """The execute unit between its memories, with counters of cycles, active cycles and
    retired commands."""
    from amaranth.hdl import Module, Signal, signed, unsigned
    from amaranth.lib import data
    from amaranth.lib.memory import Memory
    from rvnpu.hdl.engine.execute import ExecuteUnit

    c = config
    m = Module()
    m.submodules.ex = ex = ExecuteUnit(c)
    mems = {}
    for name, table, width in (("spad_a", spad_a, c.rows), ("spad_b", spad_b, c.cols)):
        mems[name] = Memory(shape=data.ArrayLayout(unsigned(c.in_width), width),
                            depth=c.spad_depth, init=[list(map(int, row)) for row in table])
    mems["acc"] = Memory(shape=data.ArrayLayout(signed(c.acc_width), c.cols),
                         depth=c.acc_depth, init=[list(map(int, row)) for row in acc_init])
    for name, mem in mems.items():
        m.submodules[name] = mem
    spa_r, spb_r = mems["spad_a"].read_port(), mems["spad_b"].read_port()
    acc_w = mems["acc"].write_port()
    acc_r = mems["acc"].read_port(transparent_for=(acc_w,))
    m.d.comb += [
        spa_r.addr.eq(ex.spa_addr), ex.spa_data.eq(spa_r.data),
        spb_r.addr.eq(ex.spb_addr), ex.spb_data.eq(spb_r.data),
        acc_r.addr.eq(ex.acc_raddr), ex.acc_rdata.eq(acc_r.data),
        acc_w.addr.eq(ex.acc_waddr), acc_w.data.eq(ex.acc_wdata), acc_w.en.eq(ex.acc_we),
    ]
    counters = {name: Signal(32, name=name) for name in ("cycles", "active", "retired")}
    m.d.sync += [counters["cycles"].eq(counters["cycles"] + 1),
                 counters["active"].eq(counters["active"] + ex.active),
                 counters["retired"].eq(counters["retired"] + ex.retire)]
    return m, ex, mems["acc"], counters


def run_computes(config, spad_a, spad_b, commands, *, acc_init=None, vcd=None,
                 max_cycles=None):
    """Run ``commands`` (dicts of :data:`EXEC_FIELDS`) on the execute unit of ``config``,
    with scratchpads holding the raw ``in_width``-bit elements ``spad_a`` and ``spad_b``
    (arrays of ``spad_depth`` rows) and the accumulators ``acc_init`` (zero if None)."""
    from amaranth.sim import Simulator

    c = config
    acc_init = np.zeros((c.acc_depth, c.cols), np.int64) if acc_init is None else acc_init
    top, ex, acc_mem, counters = _execute_bench(c, spad_a, spad_b, acc_init)
    steps = sum(cmd["steps"] for cmd in commands)
    max_cycles = max_cycles or 200 + 4 * steps + (c.rows + c.cols + 8) * 2 * len(commands)
    out = {}

    async def testbench(ctx):
        start = None
        for cmd in commands:
            ctx.set(ex.cmd.payload, {name: cmd[name] for name in EXEC_FIELDS})
            ctx.set(ex.cmd.valid, 1)
            await ctx.tick().until(ex.cmd.ready)
            if start is None:
                start = ctx.get(counters["cycles"]) - 1
        ctx.set(ex.cmd.valid, 0)
        while ctx.get(counters["retired"]) < len(commands):
            await ctx.tick()
        out["cycles"] = ctx.get(counters["cycles"]) - (start or 0)
        out["active"] = ctx.get(counters["active"])
        out["acc"] = np.array([[int(v) for v in ctx.get(acc_mem.data[i])]
                               for i in range(c.acc_depth)], np.int64)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    _simulate(sim, vcd, max_cycles * 1e-6)
    assert "acc" in out, (f"the execute unit hung: {len(commands)} commands did not all retire "
                          f"within {max_cycles} cycles")
    return ComputeRun(acc=out["acc"], cycles=out["cycles"], active_cycles=out["active"])


def golden_computes(config, spad_a, spad_b, commands, *, acc_init=None):
    """The accumulators after ``commands`` on the engine's numpy golden model."""
    from rvnpu.sim.golden.engine import EngineModel
    from rvnpu.spec.commands import ErrorCode, Funct, encode

    model = EngineModel(config)
    model.spad_a[:] = spad_a
    model.spad_b[:] = spad_b
    if acc_init is not None:
        model.acc[:] = acc_init
    for cmd in commands:
        model.execute(*encode(Funct.CONFIG_EXEC, **{k: cmd[k] for k in EXEC_FIELDS[:5]}))
        model.execute(*encode(Funct.COMPUTE, **{k: cmd[k] for k in EXEC_FIELDS[5:]}))
        assert model.error_code == ErrorCode.NONE, f"the golden model refused {cmd}"
    return model.acc.copy()


def command(config, **fields):
    """One command for :func:`run_computes`: weight-stationary, signed, no zero points, one
    step over all rows, unless ``fields`` say otherwise."""
    cmd = dict(dataflow=1, a_signed=1, b_signed=1, a_zero=0, b_zero=0, a_row=0, b_row=0,
               c_row=0, steps=1, k_valid=config.rows, accumulate=0)
    unknown = set(fields) - set(cmd)
    assert not unknown, f"not command fields: {unknown}"
    cmd.update(fields)
    return cmd


def random_spads(rng, config, *, signed=True, edges=True):
    """Random raw scratchpads of ``in_width``-bit elements; with ``edges`` the first rows
    hold the extremes (-128 and 127 for int8, 0 and 255 for uint8)."""
    w = config.in_width
    low, high = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
    spads = []
    for width in (config.rows, config.cols):
        values = rng.integers(low, high + 1, (config.spad_depth, width))
        if edges:
            values[0] = low
            values[1, ::2], values[1, 1::2] = high, low
        spads.append(values & ((1 << w) - 1))
    return spads


def check_computes(config, spad_a, spad_b, commands, *, acc_init=None, wave=None):
    """Run ``commands`` on the execute unit and on the golden model; fail, naming the first
    wrong accumulator, unless they agree. Returns the RTL's :class:`ComputeRun`."""
    run = run_computes(config, spad_a, spad_b, commands, acc_init=acc_init, vcd=wave)
    want = golden_computes(config, spad_a, spad_b, commands, acc_init=acc_init)
    wrong = np.argwhere(run.acc != want)
    if len(wrong):
        r, c = wrong[0]
        raise AssertionError(f"ACC[{r}][{c}] is {run.acc[r, c]}, the golden model says "
                             f"{want[r, c]} ({len(wrong)} accumulators wrong)")
    return run


def gemm_computes(config, m, n, k, dataflow):
    """The COMPUTE commands (with their CONFIG_EXEC fields) the project's GEMM scheduler
    (:func:`rvnpu.compiler.gemm.compile_gemm`) issues for an ``m x k`` by ``k x n`` GEMM in
    ``dataflow`` ("os" or "ws"): the execute unit's share of the work, loads and stores left
    out."""
    from rvnpu.compiler.gemm import compile_gemm
    from rvnpu.spec.commands import Funct, decode

    job = compile_gemm(np.zeros((m, k), np.int64), np.zeros((k, n), np.int64), config=config,
                       dataflow=dataflow)
    commands, exec_config = [], {}
    for funct, op1, op2 in job.program:
        cmd, fields = decode(funct, op1, op2)
        if cmd.funct == Funct.CONFIG_EXEC:
            exec_config = fields
        elif cmd.funct == Funct.COMPUTE:
            commands.append({**exec_config, **fields})
    return commands


#: Cycles a LOAD or STORE command costs beyond its bus beats (issue, address, first answer):
#: calibrated on the whole engine's RTL (MatrixEngine beside a BusSram, on Amaranth's
#: simulator: a 1x16x16 GEMM on lab 3's 4x4 array took OS 209 and WS 313 cycles from the first
#: command to the FENCE's answer; execute cycles plus this model give 212 and 321). Simulating
#: the whole engine takes minutes a GEMM, too slow for a check.
TRANSFER_OVERHEAD = 3


def gemm_memory_cycles(config, m, n, k, dataflow):
    """The bus cycles of the LOADs and STOREs the project's GEMM scheduler issues for an
    ``m x k`` by ``k x n`` GEMM in ``dataflow``: one beat per ``bus_bytes`` of each row moved,
    plus :data:`TRANSFER_OVERHEAD` a command, as if none of it overlapped the computes. With
    :func:`run_computes`' cycles it prices a dataflow's memory traffic: on this engine the
    execute unit alone makes output-stationary look free."""
    from rvnpu.compiler.gemm import compile_gemm
    from rvnpu.spec.commands import Funct, decode

    job = compile_gemm(np.zeros((m, k), np.int64), np.zeros((k, n), np.int64), config=config,
                       dataflow=dataflow)
    cycles = 0
    for funct, op1, op2 in job.program:
        cmd, fields = decode(funct, op1, op2)
        if cmd.funct in (Funct.LOAD, Funct.STORE, Funct.STORE_ACC):
            row_bytes = fields["cols"] * (4 if cmd.funct == Funct.STORE_ACC else
                                          config.elem_bytes)
            cycles += fields["rows"] * -(-row_bytes // config.bus_bytes) + TRANSFER_OVERHEAD
    return cycles


def sim_build_root():
    """Where lab checks keep simulator builds: ``$RVNPU_SIM_BUILD``, else a per-user cache, so
    that the SoC's Verilator model is built once a machine, not once a lab copy."""
    import os
    from pathlib import Path
    return Path(os.environ.get("RVNPU_SIM_BUILD") or Path.home() / ".cache" / "rvnpu" / "sim")


def firmware_tree(copy_dir, dest):
    """The installed firmware tree (start-up code, library, headers, linker script) copied to
    ``dest``, with the lab copy's ``firmware/`` files in place of the package's (none if
    ``copy_dir`` is None); returns ``dest``, for
    :func:`rvnpu.firmware.build.build_firmware`'s ``tree``."""
    import shutil
    from pathlib import Path
    from rvnpu.firmware.build import FIRMWARE_DIR

    dest = Path(dest)
    shutil.copytree(FIRMWARE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    student = Path(copy_dir) / "firmware" if copy_dir else None
    for path in student.rglob("*") if student and student.is_dir() else ():
        if path.is_file():
            target = dest / path.relative_to(student)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return dest


def run_firmware_on_soc(sources, tree, out_dir, *, defines=None, config=None,
                        max_cycles=5_000_000):
    """Build ``sources`` against firmware ``tree`` (zig cc, the project's build) and run the
    image on the whole SoC in Verilator, as ``rvnpu sim`` does; returns the
    :class:`rvnpu.sim.soc_sim.SocRun` (UART text, exit code, cycles). A build error raises
    :class:`rvnpu.firmware.build.FirmwareError` with the compiler's message."""
    from rvnpu.firmware.build import build_firmware
    from rvnpu.sim.soc_sim import SocSimulator
    from rvnpu.spec.memory_map import SocConfig

    config = config or SocConfig()
    image = build_firmware(sources, out_dir, config, defines=defines, tree=tree)
    return SocSimulator(config, build_root=sim_build_root()).run(image.image,
                                                                 max_cycles=max_cycles)
