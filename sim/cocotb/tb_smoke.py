"""Smoke testbench for the simulation flow: a free-running counter with an enable.

It proves that a design built by :func:`rvnpu.sim.runner.run_cocotb` runs under cocotb, that
parameters reach the testbench, and that a wrong expectation fails. It also serves as the
template for rvnpu testbenches:

- parameters come from :func:`rvnpu.sim.runner.test_args`, never from module constants, so
  one testbench covers every configuration the pytest side parametrises over;
- inputs are driven just after a rising edge and outputs sampled in ``ReadOnly`` after one, so
  results do not depend on the simulator's ordering of edge callbacks (Verilator and Icarus
  differ there).

Arguments (all optional):

``width``
    Width of the counter's ``count`` port (default 8); the check wraps modulo ``2**width``.
``cycles``
    Enabled cycles to check (default 20).
``step``
    Expected increment per enabled cycle (default 1). Anything else makes ``test_counts``
    fail, which is how the flow's failure path is tested.
``echo_file``
    If set, ``test_args_reach_testbench`` writes the arguments it received to this file
    (relative to the build directory), for the pytest side to compare.
"""

import json
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from rvnpu.sim.runner import test_args


async def _start(dut):
    """Start the clock and hold the design in reset for two cycles, with ``en`` low."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.en.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


async def _sample(dut):
    """Wait for the next rising edge and return ``count`` once it has settled."""
    await RisingEdge(dut.clk)
    await ReadOnly()
    return dut.count.value.to_unsigned()


@cocotb.test()
async def test_counts(dut):
    """``count`` advances by one per enabled cycle, wraps, and holds while ``en`` is low."""
    args = test_args()
    width, cycles, step = args.get("width", 8), args.get("cycles", 20), args.get("step", 1)
    assert len(dut.count.value) == width, f"count is {len(dut.count.value)} bits, not {width}"

    await _start(dut)
    dut.en.value = 1
    previous = await _sample(dut)
    for cycle in range(cycles):
        current = await _sample(dut)
        expected = (previous + step) % 2**width
        assert current == expected, (
            f"after enabled cycle {cycle} count is {current}, expected {expected}")
        previous = current

    await RisingEdge(dut.clk)
    dut.en.value = 0
    held = await _sample(dut)
    for _ in range(3):
        assert await _sample(dut) == held, "count moved while en was low"


@cocotb.test()
async def test_args_reach_testbench(dut):
    """Echo the received arguments to a file so the pytest side can check the round trip."""
    args = test_args()
    if "echo_file" in args:
        Path(args["echo_file"]).write_text(json.dumps(args, sort_keys=True))
