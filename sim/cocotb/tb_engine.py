"""Runs command programs on the matrix engine's RTL (``EngineTestTop``) and records the results.

The testbench does no checking of its own: :mod:`rvnpu.sim.rtl` writes the programs and reads
back what they did, so one testbench serves the GEMM tests, the random-program tests, the error
tests and the benchmark, and the comparison with the golden model lives in pytest.

Per job it resets the design, writes main memory through the host port, pushes the commands
(letting the simulator run free while the engine cannot accept), collects the FENCE/STATUS
answers, waits for the last one, and reads the requested memory regions back.

With ``direct_memory`` (Verilator, whose build makes every signal visible) main memory is
written and read straight in the RAM's array through VPI, costing no clock cycle; otherwise
through the host port, a word a cycle.

Arguments (``test_args``): ``jobs_file`` and ``results_file``, JSON paths, and optionally
``direct_memory``. Each job is
``{"words": [[index, hex], ...], "program": [[funct, op1, op2], ...], "responses": n,
"dump": [[first_word, count], ...], "max_cycles": n, "preamble": [[funct, op1, op2], ...],
"zero_words": n}``; the preamble (ending in FENCE) clears the local memories before the image
is written and is not counted in the cycles. A job that does not finish within its
``max_cycles`` is recorded as ``{"hang": true, "responses": [answers so far]}`` (the next job
resets the engine), so that one hang does not cost the batch's other results.
"""

import json
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, with_timeout

from rvnpu.sim.runner import test_args

_PERIOD_NS = 10


async def _reset(dut):
    dut.rst.value = 1
    dut.cmd__valid.value = 0
    dut.rsp__ready.value = 1
    dut.host_we.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _write_words(dut, words, mask, mem=None):
    if mem is not None:
        for index, value in words:
            mem[index].value = int(value, 16)
        await RisingEdge(dut.clk)
        return
    for index, value in words:
        dut.host_addr.value = index
        dut.host_wdata.value = int(value, 16)
        dut.host_we.value = mask
        await RisingEdge(dut.clk)
    dut.host_we.value = 0


async def _read_words(dut, first, count, mem=None):
    if mem is not None:
        await ReadOnly()
        values = [mem[index].value.to_unsigned() for index in range(first, first + count)]
        await RisingEdge(dut.clk)
        return values
    values = []
    for index in range(first, first + count):
        dut.host_addr.value = index
        await RisingEdge(dut.clk)
        await ReadOnly()
        values.append(dut.host_rdata.value.to_unsigned())
        await RisingEdge(dut.clk)
    return values


async def _collect(dut, expected, answers):
    """Record every answer; ``rsp.ready`` is held high, so each cycle with valid is one."""
    while len(answers) < expected:
        await ReadOnly()
        if dut.rsp__valid.value:
            answers.append(dut.rsp__payload.value.to_unsigned())
            await RisingEdge(dut.clk)
        else:
            await RisingEdge(dut.rsp__valid)


async def _push(dut, program):
    for funct, op1, op2 in program:
        dut.cmd__payload.value = funct | (op1 << 7) | (op2 << 39)
        dut.cmd__valid.value = 1
        while True:
            await ReadOnly()
            if dut.cmd__ready.value:
                break
            await RisingEdge(dut.cmd__ready)
        await RisingEdge(dut.clk)
    dut.cmd__valid.value = 0


async def _run_job(dut, job, mask, answers, tasks, mem):
    """Run one job; ``answers`` fills as they come, ``tasks`` holds the collectors started
    (for the caller to cancel if the job is stopped)."""
    await _reset(dut)
    if job["preamble"]:
        # Zero the local memories (block RAM survives reset) from a zeroed row at address 0.
        await _write_words(dut, [[i, "0"] for i in range(job["zero_words"])], mask, mem)
        collector = cocotb.start_soon(_collect(dut, 1, []))
        tasks.append(collector)
        await _push(dut, job["preamble"])
        await collector
        await RisingEdge(dut.clk)
    await _write_words(dut, job["words"], mask, mem)
    await ReadOnly()
    start = dut.cycles.value.to_unsigned()
    start_active = dut.active_cycles.value.to_unsigned()
    await RisingEdge(dut.clk)
    collector = cocotb.start_soon(_collect(dut, job["responses"], answers))
    tasks.append(collector)
    await _push(dut, job["program"])
    await collector
    await ReadOnly()
    cycles = (dut.cycles.value.to_unsigned() - start) % 2**32
    active = (dut.active_cycles.value.to_unsigned() - start_active) % 2**32
    await RisingEdge(dut.clk)
    dumps = [await _read_words(dut, first, count, mem) for first, count in job["dump"]]
    return {"responses": answers, "cycles": cycles, "active_cycles": active,
            "dump": [[f"{v:x}" for v in values] for values in dumps]}


@cocotb.test()
async def run_jobs(dut):
    """Run every job of ``jobs_file`` and write what each did to ``results_file``."""
    args = test_args()
    jobs = json.loads(Path(args["jobs_file"]).read_text())
    cocotb.start_soon(Clock(dut.clk, _PERIOD_NS, unit="ns").start())
    mask = 2 ** len(dut.host_we.value) - 1
    mem = dut.ram.mem if args.get("direct_memory") else None
    results = []
    for job in jobs:
        answers, tasks = [], []
        try:
            results.append(await with_timeout(_run_job(dut, job, mask, answers, tasks, mem),
                                              job["max_cycles"] * _PERIOD_NS, "ns"))
        except cocotb.triggers.SimTimeoutError:
            for task in tasks:
                task.cancel()
            dut.cmd__valid.value = 0
            results.append({"hang": True, "responses": answers})
    Path(args["results_file"]).write_text(json.dumps(results))
