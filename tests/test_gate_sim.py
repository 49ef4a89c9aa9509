"""Gate-level simulation (``rvnpu build --gate-sim``): the netlist Yosys writes for the
bitstream, with the family's cell models, running the board demo to its self-test's verdict."""

import os
import re
import struct

import pytest

from rvnpu.boards import board
from rvnpu.boards import gate_sim
from rvnpu.boards.flow import toolchain_options
from rvnpu.cli import build as cli_build
from rvnpu.cli import make_parser
from rvnpu.sim import toolchain
from rvnpu.sim.gate_level import (BenchPins, GateSimError, cell_types, modelled_cells,
                                  netlist_ports, run_bench, write_wrapper)
from rvnpu.spec.config import ConfigError


_NETLIST = """\
module top(clk12_0__io, uart_0__tx__io, button_0__io, led_0__io);
  inout clk12_0__io;
  wire clk12_0__io;
  inout uart_0__tx__io;
  inout [1:0] button_0__io;
  output led_0__io;
  wire _1_;
  SB_LUT4 #(
    .LUT_INIT(16'h0001)
  ) _2_ (
    .I0(_1_)
  );
  SB_DFF \\soc.core.pc[0]  (
    .C(clk12_0__io)
  );
  MULT18X18D _3_ (
    .A0(_1_)
  );
endmodule
"""


def test_netlist_ports_and_cells_are_read_from_the_verilog():
    assert netlist_ports(_NETLIST) == {
        "clk12_0__io": ("inout", 1), "uart_0__tx__io": ("inout", 1),
        "button_0__io": ("inout", 2), "led_0__io": ("output", 1)}
    assert cell_types(_NETLIST) == {"SB_LUT4": 1, "SB_DFF": 1, "MULT18X18D": 1}
    with pytest.raises(GateSimError, match="no module 'chip'"):
        netlist_ports(_NETLIST, "chip")


def test_ice40_models_simulate_every_cell_and_bypass_the_pll():
    models = gate_sim.cell_models("ice40")
    cells = modelled_cells(models)
    assert {"SB_LUT4", "SB_CARRY", "SB_DFFESR", "SB_RAM40_4K", "SB_SPRAM256KA", "SB_MAC16",
            "SB_IO", "SB_GB_IO", "SB_PLL40_PAD"} <= cells
    assert "CLOCK_ENABLE === 1'bz" not in models    # Verilator has no high impedance
    pll = models[models.index("module SB_PLL40_PAD"):]
    pll = pll[:pll.index("endmodule")]
    assert "assign PLLOUTGLOBAL = PACKAGEPIN;" in pll and "assign LOCK = 1'b1;" in pll
    assert modelled_cells("(* blackbox *)\nmodule A(); endmodule\nmodule B(); endmodule") == {"B"}


def test_icebreaker_pins_meet_the_bench(tmp_path):
    ports = {f"{name}__io": ("inout", 1) for name in (
        "clk12_0", "uart_0__tx", "uart_0__rx", "led_0", "button_0", "button_1",
        "spi_flash_0__cs_n", "spi_flash_0__clk", "spi_flash_0__copi", "spi_flash_0__cipo")}
    pins = gate_sim.bench_pins(board("icebreaker").platform(), ports)
    # The main board's button is active low (PinsN), the PMOD's active high: both at rest.
    assert pins == BenchPins(clock="clk12_0__io", uart_tx="uart_0__tx__io",
                             uart_rx="uart_0__rx__io", flash_cs_n="spi_flash_0__cs_n__io",
                             flash_sck="spi_flash_0__clk__io",
                             flash_copi="spi_flash_0__copi__io",
                             flash_cipo="spi_flash_0__cipo__io",
                             inputs={"button_0__io": 1, "button_1__io": 0})
    write_wrapper(tmp_path / "gate_tb.v", ports, pins)
    wrapper = (tmp_path / "gate_tb.v").read_text()
    assert "wire [0:0] button_0__io_w = 1'd1;" in wrapper
    assert ".uart_0__tx__io(uart_tx)" in wrapper and ".led_0__io" not in wrapper


def test_a_cell_without_a_model_is_refused_in_one_line(tmp_path):
    """The ECP5 and Gowin models in the Yosys wheel leave the DSPs and block RAMs as black
    boxes: a netlist using them cannot be simulated, and says so."""
    netlist = tmp_path / "top.gate.v"
    netlist.write_text(_NETLIST)
    b = board("ulx3s-25f")
    with pytest.raises(GateSimError, match=r"^the ecp5 cell models shipped with Yosys do not "
                                           r"simulate MULT18X18D \(1 in the netlist\)") as e:
        gate_sim.gate_simulate(b, b.soc_config(), tmp_path / "sim", netlist=netlist,
                               image=netlist)
    assert "\n" not in str(e.value)


def test_a_small_self_test_needs_a_board_that_boots_from_flash(tmp_path):
    """Where the firmware is in the netlist's RAM, another firmware is another netlist."""
    assert board("ulx3s-25f").soc_config().flash_offset is None
    with pytest.raises(GateSimError, match=r"^ulx3s-25f keeps its firmware in the netlist's "
                                           r"RAM: a small self-test would need a netlist"):
        gate_sim.gate_sim_board(board("ulx3s-25f"), out_dir=tmp_path, small=True)
    assert not any(tmp_path.iterdir())


def test_netlist_is_written_only_when_asked_for():
    platform = board("icebreaker").platform()
    assert "write_verilog" not in toolchain_options(platform)["script_after_synth"]
    assert toolchain_options(platform, netlist=True)["script_after_synth"].endswith(
        "write_verilog -noattr top.gate.v")


def test_gate_sim_cycles_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="--gate-sim-cycles must be at least 1, not 0"):
        cli_build.run(make_parser().parse_args(
            ["build", "--board", "icebreaker", "-o", str(tmp_path), "--gate-sim",
             "--gate-sim-cycles", "0"]))


# -- The iCEBreaker's netlist, simulated ---------------------------------------------------------

_no_gate_sim = (os.environ.get("RVNPU_SKIP_SYNTH") == "1" or
                "verilator" not in toolchain.available_simulators())

#: Synthesis, the Verilator build and the small self-test take a few minutes of CPU: they run
#: by default (not with RVNPU_SKIP_SYNTH=1, and only with Verilator).
_gate = pytest.mark.skipif(_no_gate_sim, reason="needs Yosys synthesis and Verilator")

#: The full demo's self-test takes about 17 million cycles of netlist simulation (10-25
#: minutes), too long for the test suite: these run when RVNPU_GATE_SIM=1.
_slow = pytest.mark.skipif(
    os.environ.get("RVNPU_GATE_SIM") != "1" or _no_gate_sim,
    reason="a gate-level run takes 10-25 minutes: set RVNPU_GATE_SIM=1 (needs Verilator)")


@pytest.fixture(scope="module")
def icebreaker_small_run(tmp_path_factory):
    """The iCEBreaker's default design synthesised (with the demo, as for the bitstream), its
    netlist built in Verilator, and the demo's small self-test run on it from the simulated
    flash: once for the tests below (minutes)."""
    out = tmp_path_factory.mktemp("icebreaker")
    result = gate_sim.gate_sim_board(board("icebreaker"), out_dir=out, small=True)
    return out, result


@pytest.fixture(scope="module")
def icebreaker_run(icebreaker_small_run):
    """The full demo, the bitstream's own firmware, run on the same model (10-25 minutes)."""
    out, _ = icebreaker_small_run
    return out, _rerun(out, out / "firmware" / "board_demo.bin")


@_gate
def test_icebreaker_netlist_passes_the_small_self_test(icebreaker_small_run):
    out, result = icebreaker_small_run
    assert result.passed, result.reason + "\n" + result.text
    assert result.text.strip().splitlines() == [
        "rvnpu board demo", "ok   gemm 1x1x1", "ok   gemm 3x5x2", "ok   gemm 5x2x3",
        "ok   gemm 4x4x4", gate_sim.PASSED]
    # The flash boot alone (the demo's length, built into the netlist) takes over 150,000
    # cycles; the self-test about 650,000 more at RTL.
    assert 700_000 < result.cycles < gate_sim.SMALL_MAX_CYCLES
    assert (out / "gate_sim" / "uart.txt").read_text() == result.text
    # The netlist simulated is the one nextpnr reads: the same Yosys run wrote both, with the
    # demo's image (its length) in it; the flash served the small self-test's.
    netlist = (out / "top.gate.v").read_text()
    assert cell_types(netlist)["SB_SPRAM256KA"] == 2 and "SB_MAC16" in cell_types(netlist)
    small = (out / "gate_sim" / "firmware" / "board_demo.bin").read_bytes()
    assert small != (out / "firmware" / "board_demo.bin").read_bytes()


@_slow
def test_icebreaker_netlist_passes_the_demo_self_test(icebreaker_run):
    out, result = icebreaker_run
    assert result.passed, result.reason + "\n" + result.text
    assert result.reason == ""
    lines = result.text.strip().splitlines()
    assert lines[0] == "rvnpu board demo"
    assert lines[1:5] == ["ok   gemm 1x1x1", "ok   gemm 5x7x3", "ok   gemm 16x9x20",
                          "ok   gemm 16x16x16"]
    assert lines[-1] == gate_sim.PASSED
    # The flash boot alone takes over 150,000 cycles; the watchdog was not reached.
    assert 150_000 < result.cycles < gate_sim.DEFAULT_MAX_CYCLES


def _patched_image(firmware, symbol, words):
    """The demo's image in ``firmware`` with ``words`` written over the start of function
    ``symbol``."""
    address = int(re.search(rf"^\s+([0-9a-f]+)\s+[0-9a-f]+\s+[0-9a-f]+\s+\d+\s+{symbol}$",
                            (firmware / "board_demo.map").read_text(), re.MULTILINE).group(1),
                  16)
    image = bytearray((firmware / "board_demo.bin").read_bytes())
    image[address:address + 4 * len(words)] = struct.pack(f"<{len(words)}I", *words)
    patched = firmware / f"board_demo-{symbol}.bin"
    patched.write_bytes(image)
    return patched


def _rerun(out, image, max_cycles=gate_sim.DEFAULT_MAX_CYCLES):
    config = board("icebreaker").soc_config()
    return run_bench(out / "gate_sim" / "obj" / "Vgate_tb", image=image,
                     flash_offset=config.flash_offset, divisor=config.uart_divisor,
                     max_cycles=max_cycles, verdict=gate_sim.VERDICT, passed=gate_sim.PASSED,
                     failed=(gate_sim.FAILED,))


@_gate
def test_a_wrong_reference_fails_the_gate_level_run(icebreaker_small_run):
    """The core's reference GEMM made to return at once (``li a0, 0; ret``): its result is
    not written, the engine's (computed by the gates) no longer matches, the demo says FAIL
    and the run stops there."""
    out, _ = icebreaker_small_run
    result = _rerun(out, _patched_image(out / "gate_sim" / "firmware", "rvnpu_gemm_cpu",
                                        [0x00000513, 0x00008067]),
                    max_cycles=gate_sim.SMALL_MAX_CYCLES)
    assert not result.passed
    assert result.reason == "the firmware reported 'FAIL gemm 1x1x1'"
    assert result.text.strip().splitlines() == ["rvnpu board demo", "FAIL gemm 1x1x1"]


@_slow
def test_the_watchdog_ends_a_run_without_a_verdict(icebreaker_small_run):
    """A firmware that never prints its verdict (the self-test made an endless loop,
    ``j .``) fails at the cycle limit, with the last line the UART printed."""
    out, _ = icebreaker_small_run
    result = _rerun(out, _patched_image(out / "gate_sim" / "firmware", "rvnpu_gemm_cpu",
                                        [0x0000006F]),
                    max_cycles=600_000)
    assert not result.passed and result.cycles == 600_000
    assert result.reason == ("no verdict ('self-test:') within 600,000 cycles (watchdog); "
                             "last UART line: 'rvnpu board demo'")


@_slow
def test_build_command_reports_a_failed_gate_level_run_in_one_line(icebreaker_small_run,
                                                                  capsys):
    """``rvnpu build --gate-sim``'s step after the build, on the netlist above (its model is
    not built again): a watchdog too short for the demo fails with exit status 1."""
    out, _ = icebreaker_small_run
    b = board("icebreaker")
    args = make_parser().parse_args(["build", "--board", "icebreaker", "--gate-sim",
                                     "--gate-sim-cycles", "300000"])
    assert cli_build._gate_sim(b, b.engine, b.clock_hz, out, args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"rvnpu: error: gate-level simulation of icebreaker: FAIL, no verdict "
                        r"\('self-test:'\) within 300,000 cycles \(watchdog\); last UART line: "
                        r"'[^']*' \(300,000 cycles in \d+ s \(Verilator build 0 s\); "
                        r"UART output in .*uart.txt\)", err), err
