"""The core's Fmax bench (rvnpu.bench.core_fmax): its harness keeps every core port behind
registers and two pins, and its table reads the results. The place-and-route itself runs in
``python -m rvnpu.bench.core_fmax``, minutes, not here."""

import re

from amaranth.back import verilog

from rvnpu.bench.core_fmax import CoreHarness, format_table
from rvnpu.bench.soc import _soc_ports
from rvnpu.hdl.core.cpu import RiscvCore


def test_harness_has_two_pins_and_keeps_the_core():
    harness = CoreHarness(with_m=False)
    text = verilog.convert(harness, name="top", ports=[harness.serial_in, harness.serial_out])
    header = re.search(r"module top\((.*?)\);", text, re.S).group(1)
    assert sorted(p.strip() for p in header.split(",")) == ["clk", "rst", "serial_in",
                                                            "serial_out"]
    assert "\\top.core" in re.findall(r"^module (\S+)", text, re.M)


def test_harness_builds_the_shifter_asked_for():
    """The bench measures the barrel shifter's core when asked: its one right shifter's
    ``shifted`` net is in that core only."""
    def core_text(shifter):
        harness = CoreHarness(with_m=False, shifter=shifter)
        return verilog.convert(harness, name="top", ports=[harness.serial_in, harness.serial_out])
    assert "shifted" in core_text("barrel") and "shifted" not in core_text("serial")


def test_harness_builds_the_memory_stage_asked_for():
    """The bench measures the core with its memory stage when asked: its ``bus_word``
    register is in that core only."""
    def core_text(memory_stage):
        harness = CoreHarness(with_m=False, memory_stage=memory_stage)
        return verilog.convert(harness, name="top", ports=[harness.serial_in, harness.serial_out])
    assert "bus_word" in core_text(True)
    assert "bus_word" not in core_text(False)


def test_area_counts_the_core_as_a_soc_connects_it():
    """The cells are counted without the retire trace (no board wires it up), as the harness
    places the core; every other port stays."""
    core = RiscvCore()
    ports = _soc_ports(core)
    names = {signal.name for port in ports for signal in port._rhs_signals()}
    assert not any("retire" in name for name in names)
    assert {"bus__addr", "bus__rdata", "cmd__valid", "rsp__payload", "irq_timer",
            "sleeping"} <= names
    text = verilog.convert(core, name="core", ports=ports)
    header = re.search(r"module core\((.*?)\);", text, re.S).group(1)
    assert "retire" not in header and "bus__addr" in header


def test_table_lists_cells_and_fmax_per_family_and_the_path():
    result = {"core": "RV32IM", "logic_cells": 1450, "logic_cells_with_trace": 1490, "fmax": {
        "ice40": {"fmax_mhz": 26.04, "critical_path": [
            {"type": "clk-to-q", "net": None, "ns": 1.39},
            {"type": "routing", "net": "core.ir", "ns": 3.0}]},
        "ecp5": {"fmax_mhz": 61.5, "critical_path": []}}}
    table = format_table([result])
    row = next(line for line in table.splitlines() if line.startswith("RV32IM "))
    assert row.split() == ["RV32IM", "1450", "1490", "26.0", "61.5"]
    assert "core.ir" in table and "RV32IM ice40 critical path (26.04 MHz)" in table
