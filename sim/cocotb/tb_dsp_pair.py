"""Testbench of :class:`rvnpu.hdl.engine.dsp_pair.SbMac16Pair` on Yosys's SB_MAC16 model.

Every pair of signed 8-bit operands, in both halves at once: the low half multiplies
``(x, y)`` while the high half multiplies ``(y, x)`` reversed in order, so that a half that took
the other's operands, or read them unsigned, or lagged a cycle too many or too few, differs
somewhere. The products are compared with Python's, ``registered`` (from the test's
arguments) cycles after their operands.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from rvnpu.sim.runner import test_args


def _operands():
    values = range(-128, 128)
    pairs = [(x, y) for x in values for y in values]
    return [(a, b, c, d) for (a, b), (c, d) in zip(pairs, reversed(pairs))]


@cocotb.test()
async def test_every_product(dut):
    lag = int(test_args()["registered"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    cases = _operands()
    mismatches = []
    for cycle in range(len(cases) + lag):
        await RisingEdge(dut.clk)
        if cycle < len(cases):
            a0, b0, a1, b1 = cases[cycle]
            dut.a0.value, dut.b0.value, dut.a1.value, dut.b1.value = a0, b0, a1, b1
        await ReadOnly()
        if cycle >= lag:
            a0, b0, a1, b1 = cases[cycle - lag]
            got = (dut.p0.value.to_signed(), dut.p1.value.to_signed())
            if got != (a0 * b0, a1 * b1) and len(mismatches) < 5:
                mismatches.append(f"{a0} * {b0}, {a1} * {b1}: got {got}")
    assert not mismatches, "; ".join(mismatches)
