"""``rvnpu build``: the board registry, the board top level, the flow, its reports and the
table in docs/boards.md.

All but the last test run in seconds; the last synthesises and places the iCEBreaker's default
design with the pip-installed tools, as CI must. The Gowin flow is checked on a small design
with its PLL; the Tang Nano 9K's whole design is built by ``rvnpu build --board all``.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io

from rvnpu.boards import BOARDS, board, flow, report as reports
from rvnpu.boards.report import TABLE_COLUMNS
from rvnpu.cli import build as cli_build, make_parser
from rvnpu.gen.boards_doc import boards_markdown
from rvnpu.boards.top import (BoardTop, add_pll, ecp5_pll_params, fpga_family,
                              gowin_pll_params, ice40_pll_params)
from rvnpu.spec.config import ConfigError, EngineConfig
from rvnpu.spec.memory_map import SocConfig

from long_runs import long_case


def _args(*argv):
    """``rvnpu build``'s arguments, parsed as the command line parses them."""
    return make_parser().parse_args(["build", *argv])


def test_registry_holds_every_board_file():
    assert {"icebreaker", "ulx3s-85f", "ulx3s-25f", "orangecrab", "tang-nano-9k"} <= set(BOARDS)
    for b in BOARDS.values():
        assert isinstance(b.platform.device, str) and b.platform.default_clk
        assert b.bitstream in (".bin", ".bit", ".fs")
        assert "{bitstream}" in b.program


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown board 'nope'; known boards: .*icebreaker"):
        board("nope")
    with pytest.raises(ConfigError, match="unknown board"):
        cli_build.run(_args("--board", "nope"))


@pytest.mark.parametrize("argv, message", [
    (("--rows", "0"), "rows must be an integer from 1 to 32"),
    (("--dataflow", "diagonal"), "dataflow must be one of"),
    (("--clock-mhz", "0"), "--clock-mhz must be from 1 to 500"),
    (("--clock-mhz", "2"), "PLL cannot make 2 MHz; the nearest it can is 8.4"),
    (("--shifter", "fast"), "shifter must be one of serial, barrel, not 'fast'"),
    (("--seed", "-1"), "--seed must be from 0 to 2147483647, not -1"),
    (("--placements", "0"), "--placements must be from 1 to 100, not 0"),
    (("--memory-stage", "2"), r"memory_stage must be true or false \(1 or 0\), not 2"),
    (("--bus-register", "2"), r"^--bus-register must be 1 or 0, not 2$"),
    (("--bus-register", "1"), r"^--bus-register needs the engine on a clock of its own "
                              r"\(--engine-clock-hz\); icebreaker's RAM has one port for it$"),
])
def test_bad_parameters_are_config_errors(argv, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        cli_build.run(_args("--board", "icebreaker", "-o", str(tmp_path), *argv))


def test_options_override_the_board_design():
    engine = cli_build._engine(board("ulx3s-85f"), _args("--board", "ulx3s-85f", "--rows", "3"))
    assert engine.rows == 3 and engine.cols == board("ulx3s-85f").engine.cols
    assert board("icebreaker").soc_config().shifter == "serial"
    chosen = cli_build._board(board("icebreaker"), _args("--board", "icebreaker", "--shifter",
                                                         "barrel"))
    assert chosen.soc_config().shifter == "barrel" and chosen.name == "icebreaker"
    assert board("icebreaker").soc_config().memory_stage
    unstaged = cli_build._board(board("icebreaker"), _args("--board", "icebreaker",
                                                           "--memory-stage", "0"))
    assert not unstaged.soc_config().memory_stage
    assert not board("tang-nano-9k").soc_config().memory_stage
    staged = cli_build._board(board("tang-nano-9k"), _args("--board", "tang-nano-9k",
                                                           "--memory-stage", "1"))
    assert staged.soc_config().memory_stage
    # The engine's bus register, where the engine has a clock of its own.
    assert not board("ulx3s-85f").soc_config().bus_register
    registered = cli_build._board(board("ulx3s-85f"), _args("--board", "ulx3s-85f",
                                                            "--bus-register", "1"))
    assert registered.soc_config().bus_register
    unregistered = cli_build._board(board("ulx3s-25f"), _args("--board", "ulx3s-25f",
                                                              "--bus-register", "0"))
    assert board("ulx3s-25f").soc_config().bus_register
    assert not unregistered.soc_config().bus_register


def test_report_names_the_placement_seed():
    b = board("icebreaker")
    report = reports.parse_report(_ICE40_REPORT, board=b, engine=b.engine,
                                  clock_hz=24_000_000)
    report.update(toolchain={"summary": "the wheels"}, placement_seed=2)
    assert reports.format_table(report).endswith("\nbuilt with the wheels, placement seed 2")
    report["placement_seed"] = None
    assert reports.format_table(report).endswith("\nbuilt with the wheels")
    report.update(placement_seed=4, stalled_seeds=[2, 3])
    assert reports.format_table(report).endswith(
        "\nbuilt with the wheels, placement seed 4 (routing stalled from seeds 2, 3)")
    report.update(placement_seed=1, stalled_seeds=[None])
    assert reports.format_table(report).endswith(
        "\nbuilt with the wheels, placement seed 1 (routing stalled from seed nextpnr's own)")


def test_seed_option_reaches_nextpnr():
    """``--seed`` replaces the board's placement seed, passed to nextpnr as ``--seed``."""
    b = board("icebreaker")
    assert flow.nextpnr_options(b)[-2:] == ("--seed", str(b.placement_seed))
    assert "--seed" not in flow.nextpnr_options(replace(b, placement_seed=None))
    chosen = cli_build._board(b, _args("--board", "icebreaker", "--seed", "7"))
    assert flow.nextpnr_options(chosen)[-2:] == ("--seed", "7")
    options = flow.toolchain_options(chosen.platform(), flow.nextpnr_options(chosen))
    assert options["nextpnr_opts"][-2:] == ["--seed", "7"]


@pytest.mark.parametrize("f_in, f_out", [(12e6, 24e6), (12e6, 30e6), (12e6, 48e6)])
def test_ice40_pll(f_in, f_out):
    p, f = ice40_pll_params(f_in, f_out)
    f_pfd = f_in / (p["DIVR"] + 1)
    assert 533e6 <= f_pfd * (p["DIVF"] + 1) <= 1066e6
    assert abs(f - f_out) / f_out < 0.01


@pytest.mark.parametrize("f_in, f_out", [(25e6, 50e6), (25e6, 100e6), (48e6, 60e6)])
def test_ecp5_pll(f_in, f_out):
    p, f = ecp5_pll_params(f_in, f_out)
    assert 400e6 <= f * p["CLKOP_DIV"] <= 800e6
    assert abs(f - f_out) / f_out < 0.01


@pytest.mark.parametrize("f_in, f_out", [(27e6, 24e6), (27e6, 30e6), (27e6, 100e6),
                                         (27e6, 13.5e6)])
def test_gowin_pll(f_in, f_out):
    p, f = gowin_pll_params(f_in, f_out)
    f_pfd = f_in / (p["IDIV_SEL"] + 1)
    assert 3e6 <= f_pfd <= 400e6
    assert f == pytest.approx(f_pfd * (p["FBDIV_SEL"] + 1))
    assert 400e6 <= f * p["ODIV_SEL"] <= 1200e6 and p["ODIV_SEL"] in (2, 4, 8, 16, 32, 48, 64,
                                                                80, 96, 112, 128)
    assert abs(f - f_out) / f_out < 0.01


def test_gowin_clock_out_of_the_pll_range_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="tang-nano-9k's PLL cannot make 2 MHz; the nearest "
                                          "it can is 3.375"):
        cli_build.run(_args("--board", "tang-nano-9k", "-o", str(tmp_path), "--clock-mhz", "2"))
    assert list(tmp_path.iterdir()) == []


_PLLS = {"ice40": "SB_PLL40_PAD", "ecp5": "EHXPLLL", "gowin": "rPLL"}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_top_elaborates_with_pins_and_pll(name):
    b = board(name)
    tiny = EngineConfig(rows=1, cols=1, spad_depth=16, acc_depth=16, qp_depth=4,
                        mem_bytes=1 << 10)
    platform = b.platform()
    plan = platform.prepare(BoardTop(SocConfig(engine=tiny, clock_hz=b.clock_hz)),
                                name="top")
    files = plan.files
    assert "build_top.sh" in files
    pll = _PLLS[fpga_family(platform)]
    assert (pll in files["top.il"]) == (b.clock_hz != platform.default_clk_frequency)
    # The same board at another clock has its PLL.
    plan = b.platform().prepare(BoardTop(SocConfig(engine=tiny, clock_hz=20_000_000)),
                                name="top")
    assert pll in plan.files["top.il"]


_ICE40_REPORT = {
    "utilization": {
        "ICESTORM_LC": {"used": 4321, "available": 5280},
        "ICESTORM_RAM": {"used": 20, "available": 30},
        "ICESTORM_DSP": {"used": 8, "available": 8},
        "ICESTORM_SPRAM": {"used": 0, "available": 4},
        "SB_IO": {"used": 12, "available": 96},
    },
    "fmax": {"sync_clk": {"achieved": 31.25, "constraint": 24.0}},
}


def test_report_table_and_json():
    b = board("icebreaker")
    engine = EngineConfig(rows=2, cols=4)
    stat = {"design": {"num_cells_by_type": {"SB_DFF": 100, "SB_DFFE": 23, "SB_LUT4": 9}}}
    report = reports.parse_report(_ICE40_REPORT, board=b, engine=engine, clock_hz=24_000_000,
                                stat=stat)
    assert report["resources"]["LUTs / logic cells"] == {"used": 4321, "available": 5280,
                                                         "cell": "ICESTORM_LC"}
    assert report["resources"]["FFs"]["used"] == 123
    assert report["fmax_mhz"] == 31.25 and report["timing_met"]
    assert report["peak_gops_at_fmax"] == pytest.approx(2 * 8 * 31.25e6 / 1e9, abs=1e-3)
    assert json.loads(json.dumps(report)) == report
    table = reports.format_table(report)
    for text in ("2x4 array", "4321", "5280", "31.2", "24 target", "met", "peak GOPS"):
        assert text in table
    markdown = boards_markdown([report], TABLE_COLUMNS)
    assert "| icebreaker | iCE40UP5K | 2x4 | 4321 / 5280 |" in markdown


_GOWIN_REPORT = {
    "utilization": {
        "LUT4": {"used": 5536, "available": 8640},
        "DFF": {"used": 2242, "available": 6480},
        "BSRAM": {"used": 24, "available": 26},
        "MULT18X18": {"used": 1, "available": 20},
        "MULT9X9": {"used": 5, "available": 40},
        "IOB": {"used": 4, "available": 276},
    },
    "fmax": {"clk": {"achieved": 34.79, "constraint": 27}},
}


def test_gowin_report_counts_dsp_blocks():
    """A Gowin DSP block is one 18x18 or two 9x9 multipliers; the table counts blocks."""
    b = board("tang-nano-9k")
    report = reports.parse_report(_GOWIN_REPORT, board=b, engine=b.engine, clock_hz=27_000_000)
    assert report["device"] == "GW1NR-LV9QN88PC6/I5"
    assert report["resources"]["LUTs / logic cells"]["used"] == 5536
    assert report["resources"]["FFs"] == {"used": 2242, "available": 6480, "cell": "DFF"}
    assert report["resources"]["DSPs"]["used"] == 1 + 3
    assert report["resources"]["DSPs"]["available"] == 20
    assert report["resources"]["block RAMs"]["available"] == 26
    assert report["fmax_mhz"] == 34.79 and report["timing_met"]
    array = f"{b.engine.rows}x{b.engine.cols}"
    assert f"| tang-nano-9k | GW1NR-LV9QN88PC6/I5 | {array} | 5536 / 8640 |" in \
        boards_markdown([report], TABLE_COLUMNS)


def _segment(src, dst):
    return {"type": "logic", "delay": 1.0, "from": {"cell": src}, "to": {"cell": dst}}


def test_critical_path_names_the_blocks_in_order():
    paths = [
        # Paths to and from pins come first in nextpnr's list; they are not the clock's limit.
        {"from": "<async>", "to": "posedge clk", "path": [_segment("btn.buf", "soc.gpio.x_FF")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [
            _segment("soc.engine.frontend.cmd.op2_FF_Q", "soc.engine.load.first_LUT4_Z"),
            _segment("soc.engine.load.first_LUT4_Z", "$nextpnr_CCU2C_1$COMB"),
            _segment("$nextpnr_CCU2C_1$COMB", "soc.engine.execute.p_valid_LUT4"),
            _segment("soc.engine.execute.p_valid_LUT4", "soc.core.pc_FF"),
        ]},
    ]
    report = reports.parse_report(dict(_ICE40_REPORT, critical_paths=paths),
                                board=board("icebreaker"), engine=EngineConfig(),
                                clock_hz=24_000_000)
    assert report["critical_path"] == ["soc.engine.frontend", "soc.engine.load",
                                       "soc.engine.execute", "soc.core"]
    assert ("critical path: soc.engine.frontend -> soc.engine.load -> soc.engine.execute -> "
            "soc.core") in reports.format_table(report)
    assert "- **icebreaker**: `soc.engine.frontend` → `soc.engine.load`" in \
        boards_markdown([report], TABLE_COLUMNS)
    assert reports.critical_path({}) is None


def test_timing_failure_is_shown():
    slow = dict(_ICE40_REPORT, fmax={"sync_clk": {"achieved": 20.0, "constraint": 24.0}})
    report = reports.parse_report(slow, board=board("icebreaker"), engine=EngineConfig(),
                                clock_hz=24_000_000)
    assert not report["timing_met"]
    assert "NOT MET" in reports.format_table(report)


_NOT_FIT_LOG = """\
Info: Device utilisation:
Info: 	         ICESTORM_LC: 29844/ 5280   565%
Info: 	        ICESTORM_RAM:    19/   30    63%
Info: 	               SB_IO:    12/   96    12%
Info: 	         ICESTORM_DSP:    12/    8   150%
ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'
"""


def test_not_fit_message_says_what_ran_out_and_by_how_much():
    message = reports.fit_failure(_NOT_FIT_LOG, device="iCE40UP5K")
    assert message.startswith("the design does not fit the iCE40UP5K: ")
    assert "logic cells (ICESTORM_LC): 29844 needed, 5280 available (24564 too many" in message
    assert "DSPs (ICESTORM_DSP): 12 needed, 8 available (4 too many" in message
    assert message.endswith("(--logic-macs N builds the multipliers of N array cells from "
                            "logic instead)")
    assert "RAM" not in message
    log = "mapping memory top.a via $__ICE40_RAM4K_\nusing FF mapping for memory top.soc.ram.mem\n"
    assert reports.ff_memories(log) == ["top.soc.ram.mem"]
    assert reports.fit_failure(_NOT_FIT_LOG.replace("29844", "100").replace("12/", "2/"),
                             device="iCE40UP5K") is None
    assert "--logic-macs" not in reports.fit_failure(_NOT_FIT_LOG.replace("12/", "2/"),
                                                   device="iCE40UP5K")


class _Counter(Elaboratable):
    """The smallest design with the board's PLL, clock constraint and an LED."""

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain()
        locked = Signal()
        add_pll(m, platform, platform.request(platform.default_clk, dir="-"),
             platform.default_clk_frequency, 24e6, sync.clk, locked)
        platform.add_clock_constraint(sync.clk, 24e6)
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        count = Signal(24)
        m.d.sync += count.eq(count + locked)
        m.d.comb += led.o.eq(count[-1])
        return m


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
def test_ice40_flow_places_and_reports(tmp_path):
    """The pip-installed iCE40 flow end to end (seconds): bitstream, report, table."""
    b = board("icebreaker")
    nextpnr, stat = flow.implement(b.platform(), _Counter(), tmp_path)
    report = reports.parse_report(nextpnr, board=b, engine=b.engine, clock_hz=24_000_000,
                                stat=stat)
    lcs = report["resources"]["LUTs / logic cells"]
    assert 24 <= lcs["used"] < 200 and lcs["available"] == 5280
    assert report["resources"]["FFs"]["used"] >= 24
    assert report["fmax_mhz"] > 24 and report["timing_met"]
    assert (tmp_path / "top.bin").stat().st_size > 0
    # Placed and routed again with another seed, as after a stalled route: the real tools
    # take the script that leaves Yosys out, and the build script is left naming the seed.
    synthesised = (tmp_path / "top.rpt").stat().st_mtime_ns
    first = (tmp_path / "top.bin").read_bytes()
    (tmp_path / "top.bin").unlink()
    flow._reseed(tmp_path, 7, None)
    assert "Info: Routing" in (tmp_path / flow.stalled_log_name(None)).read_text()
    toolchain = flow.platform_toolchain(b.platform())
    result = flow._run_watched(tmp_path, "t", time.monotonic(), lambda text: None, toolchain,
                               flow.ROUTE_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "top.bin").stat().st_size > 0 and flow.script_seed(tmp_path) == 7
    assert (tmp_path / "top.rpt").stat().st_mtime_ns == synthesised
    # nextpnr is deterministic for a netlist and a seed: another seed, another placement.
    assert (tmp_path / "top.bin").read_bytes() != first
    assert "Fmax (MHz)" in reports.format_table(report)


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
def test_gowin_flow_places_and_reports(tmp_path):
    """The pip-installed Gowin flow (Yosys, nextpnr's Himbaechel, gowin_pack) end to end on
    the Tang Nano 9K with its PLL (seconds), timed against the PLL's clock."""
    b = board("tang-nano-9k")
    nextpnr, stat = flow.implement(b.platform(), _Counter(), tmp_path)
    assert "--freq 24" in (tmp_path / "build_top.sh").read_text()
    report = reports.parse_report(nextpnr, board=b, engine=b.engine, clock_hz=24_000_000,
                                stat=stat)
    luts = report["resources"]["LUTs / logic cells"]
    assert 0 < luts["used"] < 200 and luts["available"] == 8640
    assert report["resources"]["FFs"]["used"] >= 24
    assert nextpnr["utilization"]["rPLL"]["used"] == 1
    assert report["fmax_mhz"] > 24 and report["timing_met"]
    assert (tmp_path / "top.fs").stat().st_size > 0
    assert "synth_gowin -nowidelut" in (tmp_path / "top.ys").read_text()


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
def test_gowin_synthesis_without_wide_luts_takes_fewer_luts(tmp_path):
    """Why Gowin builds pass ``-nowidelut``: Yosys's wide-LUT mapping fills one side of many
    multiplexers with a constant LUT, so the RV32IM core takes about a quarter more LUTs with
    it (seconds each)."""
    from rvnpu.hdl.core.cpu import RiscvCore
    from synth_cells import cell_counts, of_kind

    def luts(options, directory):
        directory.mkdir()
        return of_kind(cell_counts(RiscvCore(with_m=True, shifter="barrel"),
                                   f"synth_gowin {options}", directory), "LUT")

    narrow, wide = luts("-nowidelut", tmp_path / "narrow"), luts("", tmp_path / "wide")
    assert narrow * 1.15 < wide, (narrow, wide)


def test_ecp5_designs_reach_synthesis_as_verilog():
    """Yosys's ABC9 fails an assertion on the ULX3S-85F design read as RTLIL; ECP5 builds
    read it back as Verilog first (the 25F's synthesis below runs that script)."""
    options = flow.toolchain_options(board("ulx3s-85f").platform())
    assert options["script_after_read"].endswith("design -reset\nread_verilog top.via.v")
    assert "script_after_read" not in flow.toolchain_options(board("icebreaker").platform())


def _fake_build(directory, script):
    """A build directory whose ``build_top.sh`` is ``script`` and whose ``top.ys`` reads the
    design as ECP5 builds do."""
    (directory / "top.ys").write_text(f"read_rtlil top.il\n{flow.THROUGH_VERILOG}\n"
                                      f"synth_ecp5 -top top\n")
    (directory / "build_top.sh").write_text(script)


_ASSERTS = (f"echo \"ERROR: Assert \\`{flow.REINTEGRATE_ASSERTION}' failed in rtlil.cc\" "
            f"> top.rpt; exit 1")


@pytest.mark.parametrize("fails_as", ["verilog", "both", "otherwise"])
def test_synthesis_reads_rtlil_when_yosys_asserts_on_the_verilog(tmp_path, monkeypatch,
                                                                   fails_as):
    """Yosys 0.70's ABC reintegration assertion: a build that fails it on the design read as
    Verilog is run again on the RTLIL, and says so; one that fails it both ways, or fails
    otherwise, stops with Yosys's own error line (which a quiet Yosys logs only to top.rpt)."""
    script = {"verilog": f"if grep -q read_verilog top.ys; then {_ASSERTS}; fi\n",
              "both": f"{_ASSERTS}\n",
              "otherwise": "echo 'ERROR: something else' > top.rpt; exit 1\n"}[fails_as]
    _fake_build(tmp_path, script)
    monkeypatch.setattr(flow, "_toolchain_env", lambda toolchain: dict(os.environ))
    seen = []

    def run():
        flow._run_script(tmp_path, "b", "LFE5U-25F", 0, seen.append, None)

    if fails_as == "verilog":
        run()
        assert flow.synthesis_input(tmp_path) == "rtlil"
        assert any("synthesising the RTLIL instead" in line for line in seen)
        return
    with pytest.raises(flow.BuildError) as failure:
        run()
    assert ("GetSize(conn.first)" if fails_as == "both" else "something else") in \
        str(failure.value)
    assert flow.synthesis_input(tmp_path) == ("rtlil" if fails_as == "both" else "verilog")


def test_board_adds_its_nextpnr_options():
    """router1 did not converge on the LFE5U-85F's default design; router2 does, from the
    placement of the board's seed, which the static placer makes in less time than HeAP."""
    b = board("ulx3s-85f")
    options = flow.toolchain_options(b.platform(), flow.nextpnr_options(b))
    assert options["nextpnr_opts"][-6:] == ["--router", "router2", "--placer", "static",
                                            "--seed", "4"]
    b = board("ulx3s-25f")
    assert "--router" not in flow.toolchain_options(b.platform(), b.nextpnr_options)[
        "nextpnr_opts"]


# Lines as Yosys and nextpnr write them (from the builds in docs/boards.md), one per stage.
_YOSYS = "2.19.3. Executing ABC9 pass."
_PACKING = "Info: Packing IOs.."
_PLACING = "Info: Running main analytical placer, max placement attempts per cell = 460424685."
_ROUTER1 = ["Info: Routing 68139 arcs.",
            "Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) "
            "total(sec)|",
            "Info:       1000 |      525        474 |  525   474 |     67762|       2.71"
            "       2.71|",
            "Info:       2000 |      672       1327 |  147   853 |     66947|       1.78"
            "       4.49|"]
_ROUTER2 = ["Info: Running router2...", "Info: Running main router loop...",
            "Info:     iter=1 wires=684875 overused=49886 overuse=61147 archfail=NA",
            "Info:     iter=2 wires=701759 overused=30943 overuse=33710 archfail=NA"]


@pytest.mark.parametrize("lines, stage", [
    ([], None),
    (["Warning: nothing to say"], None),
    ([_YOSYS], "synthesis: ABC9"),
    ([_YOSYS, _PACKING], "packing"),
    ([_PACKING, _PLACING, "Info:     at iteration #1, type ALL: wirelen solved = 10865"],
     "placing"),
    ([_PLACING, *_ROUTER1[:2]], "routing"),
    ([_PLACING, *_ROUTER1], "routing: 66947 arcs left"),
    (_ROUTER2[:2], "placing"),           # the watcher keeps "routing" once it has shown it
    (_ROUTER2[:3], "routing: pass 1, 49886 wires overused"),
    (_ROUTER2, "routing: pass 2, 30943 wires overused"),
])
def test_build_progress_names_the_stage_and_the_routers_progress(lines, stage):
    """``rvnpu build`` shows the stage the tools' log has reached; while routing, what each
    router says of its progress, so that a router that does not converge can be seen."""
    assert flow.log_stage("\n".join(lines)) == stage


# router2's overused wires pass by pass, from two routes of the ULX3S-85F's default design
# (2026-12-06): nextpnr's own placement, which did not converge, and seed 2's, which did.
_STALLED = [49988, 30704, 19389, 12373, 8327, 6403, 4842, 4064, 3471, 2837, 2398, 2085, 1953,
            1667, 1417, 1229, 1109, 969, 878, 770, 675, 622, 562, 525, 490, 431, 404, 334, 324,
            283, 255, 230, 218, 223, 204, 226, 216, 217, 193, 202, 192, 209, 196, 220, 229,
            232, 267, 263, 286, 257, 224, 220, 216, 211, 220, 199, 196, 201, 211, 210, 205,
            213, 264, 250, 282, 314, 291, 301, 289, 315, 287, 327, 326, 291, 309, 296, 291,
            353, 430, 424, 513]
_CONVERGED = [49601, 31276, 19281, 12298, 8191, 5999, 4586, 3571, 3087, 2512, 2050, 1727, 1531,
              1412, 1158, 1012, 887, 755, 664, 525, 480, 483, 455, 371, 327, 295, 257, 203,
              175, 162, 157, 183, 190, 154, 134, 147, 146, 126, 110, 99, 89, 79, 83, 76, 71,
              61, 59, 51, 44, 45, 49, 31, 36, 33, 33, 27, 30, 25, 19, 21, 23, 12, 18, 18, 23,
              20, 19, 15, 13, 12, 9, 9, 12, 8, 7, 6, 5, 9, 7, 9, 7, 6, 5, 4, 2, 4, 2, 1, 0]


def _router2_log(counts):
    return "\n".join([_PLACING, "Info: Routing globals...", "Info: Running router2..."]
                     + [f"Info:     iter={n} wires={700000 + n} overused={count} "
                        f"overuse={count} archfail=NA" for n, count in enumerate(counts, 1)])


def test_a_router_that_stops_converging_is_stopped():
    """A route whose overused wires fall no further for ROUTER2_PATIENCE passes will not
    finish; one whose count still reaches new lows, however unevenly, is left to run."""
    assert flow.routing_stall(_router2_log(_CONVERGED)) is None
    for passes in range(1, len(_CONVERGED) + 1):
        assert flow.routing_stall(_router2_log(_CONVERGED[:passes])) is None
    assert flow.routing_stall("Info: Routing 68139 arcs.") is None
    # The fewest, 192, came at pass 41: the stall is called 30 passes later.
    assert flow.routing_stall(_router2_log(_STALLED[:70])) is None
    assert flow.routing_stall(_router2_log(_STALLED[:71])) == (
        "router2's overused wires have not fallen below 192 (its pass 41) in 30 passes (287 "
        "at pass 71)")


def test_a_router_down_to_a_few_wires_is_given_longer():
    """Below ROUTER2_FEW overused wires the passes take seconds and router2 gets there:
    ROUTER2_FEW_PATIENCE passes without a new fewest, not ROUTER2_PATIENCE."""
    few = [*_CONVERGED[:-2], *[1] * flow.ROUTER2_FEW_PATIENCE]   # 1 from pass 88 to 237
    assert flow.routing_stall(_router2_log(few)) is None
    assert flow.routing_stall(_router2_log([*few, 2])) == (
        "router2's overused wires have not fallen below 1 (its pass 88) in 150 passes (2 at "
        "pass 238)")
    # 20 wires and more: the ordinary patience.
    level = [*_CONVERGED[:58], *[20] * 31]               # 20 from pass 59 to 89
    assert min(level) == 20 and flow.routing_stall(_router2_log(level[:-1])) is None
    assert flow.routing_stall(_router2_log(level)) is not None


# A route that climbs steeply after its fewest, as one of the 85F's did on 2026-12-07 (534
# wires at pass 38, 5,483 at pass 69; its log was not kept, so these passes after the 38th
# are made up in its shape).
_CLIMBING = [*_STALLED[:22], 610, 602, 596, 590, 583, 577, 570, 566, 561, 556, 551, 547, 543,
             540, 537, 534, 560, 620, 710, 850, 1060, 1100, 1400, 2200]


def test_a_router_that_climbs_far_above_its_fewest_is_stopped_at_once():
    """Overused wires past twice their fewest, and ROUTER2_MARGIN more, stop the route that
    pass, long before ROUTER2_PATIENCE passes; a climb of fewer wires than the margin, as
    at the end of a route that finishes, does not."""
    assert flow.routing_stall(_router2_log(_CLIMBING[:43])) is None     # 1,060 < 2 x 534
    assert flow.routing_stall(_router2_log(_CLIMBING[:44])) == (
        "router2's overused wires climbed from 534 (its pass 38) to 1,100 (pass 44)")
    assert flow.routing_stall(_router2_log(_CLIMBING)).endswith("to 1,100 (pass 44)")
    assert flow.routing_stall(_router2_log([900, 12, 23, 11, 111]), patience=99) == (
        "router2's overused wires climbed from 11 (its pass 4) to 111 (pass 5)")
    assert flow.routing_stall(_router2_log([900, 12, 23, 11, 110]), patience=99) is None
    assert flow.routing_stall(_router2_log([900, 400, 800]), patience=99) is None


# router1's arcs left every thousand iterations, from a route of the ULX3S-25F's default
# design that finished (2026-12-07): 19,597 at its 74th report, fewer again at its 79th.
_ROUTER1_FINISHED = [
    66761, 65904, 65084, 64398, 63625, 62945, 62289, 61646, 60922, 60246, 59628, 58869, 58126,
    57425, 56839, 56219, 55610, 54982, 54239, 53725, 53117, 52411, 51622, 51018, 50324, 49729,
    49092, 48605, 47954, 47365, 46739, 46032, 45325, 44728, 44254, 43735, 43067, 42505, 42035,
    41416, 40782, 40191, 39534, 38964, 38425, 37988, 37567, 36868, 36330, 35597, 35039, 34287,
    33625, 32878, 32218, 31816, 31047, 30310, 29925, 29179, 28527, 27773, 27142, 26371, 25597,
    24807, 24094, 23368, 22605, 21802, 21116, 20606, 19775, 19597, 19981, 20110, 19947, 19855,
    19120, 18342, 17573, 16944, 16176, 15441, 14776, 13949, 13266, 12637, 12002, 11160, 10339,
    9634, 8984, 8293, 7503, 6772, 6187, 5741, 5117, 4537, 3934, 2982, 2084, 1110, 209, 0]


def _router1_log(counts):
    return "\n".join([_PLACING, *_ROUTER1[:2]] +
                     [f"Info: {1000 * n:>10} | {n:>8} {2 * n:>10} | {5:>4} {7:>5} | {arcs:>9}|"
                      f" {1.0:>10.2f} {float(n):>10.2f}|" for n, arcs in enumerate(counts, 1)])


# The finished route's first 66 reports, then 50 that come no lower than its 66th.
_STUCK_ROUTER1 = [*_ROUTER1_FINISHED[:66], *[24807 + 13 * (n % 5) for n in range(50)]]


def test_a_router1_that_stops_converging_is_stopped():
    """router1 reaches fewer arcs left nearly every report while it converges; 50 reports
    (ROUTER1_PATIENCE) without a new fewest stop it, as a stalled router2 is stopped."""
    for reports in range(1, len(_ROUTER1_FINISHED) + 1):
        assert flow.routing_stall(_router1_log(_ROUTER1_FINISHED[:reports])) is None
    assert flow.log_stage(_router1_log(_ROUTER1_FINISHED[:74])) == "routing: 19597 arcs left"
    stuck = [*_ROUTER1_FINISHED[:66], *[24807 + 13 * (n % 5) for n in range(60)]]
    assert flow.routing_stall(_router1_log(stuck[:115])) is None
    assert flow.routing_stall(_router1_log(stuck[:116])) == (
        "router1's arcs left have not fallen below 24,807 (its iteration 66,000) in 50 "
        "reports (24,859 at iteration 116,000)")
    assert flow.routing_stall(_router1_log(stuck), router1_patience=61) is None


@pytest.mark.parametrize("log, why, shown_last", [
    (_router2_log(_STALLED[:71]), r"router2's overused wires .* pass 71\)",
     "routing: pass 71, 287 wires overused"),
    (_router1_log(_STUCK_ROUTER1), r"router1's arcs left .* iteration 116,000\)",
     "routing: 24859 arcs left"),
])
def test_a_stalled_build_is_ended_with_its_tools(tmp_path, log, why, shown_last):
    """The build script and the tools it started are stopped once router2 or router1
    stalls, and the build fails with why (seconds: a script stands in for the tools)."""
    (tmp_path / "build_top.sh").write_text(
        f"cat > top.tim <<'EOF'\n{log}\nEOF\n"
        "sleep 600 &\necho $! > tool.pid\nwait\n")
    toolchain = flow.platform_toolchain(board("ulx3s-25f").platform(), "yowasp")
    shown = []
    start = time.monotonic()
    with pytest.raises(flow.BuildError, match=r"^building t: routing did not converge: " + why):
        flow._run_watched(tmp_path, "t", start, shown.append, toolchain)
    assert time.monotonic() - start < 60
    assert any(shown_last in line for line in shown)
    assert _process_ended(int((tmp_path / "tool.pid").read_text()))


def _stand_in_tools(directory, seed, routes_from):
    """A build script as Amaranth writes it, with scripts standing in for Yosys (counting its
    runs) and nextpnr: router2 stalls unless nextpnr's seed is in ``routes_from``."""
    tools = {
        "yosys.sh": "echo run >> yosys.runs\n",
        "nextpnr.sh": (
            'seed=own\nwhile [ $# -gt 0 ]; do [ "$1" = --seed ] && seed=$2; shift; done\n'
            # nextpnr writes its log a while after it starts: a stale one must not be read.
            f'case " {" ".join(map(str, routes_from))} " in *" $seed "*) '
            "sleep 3; echo routed > top.tim; exit 0;; esac\n"
            f"cat > top.tim <<'EOF'\n{_router2_log(_STALLED[:71])}\nEOF\n"
            "sleep 600 &\nwait\n"),
    }
    for name, text in tools.items():
        (directory / name).write_text("#!/bin/sh\n" + text)
        (directory / name).chmod(0o755)
    seed_option = "" if seed is None else f" --seed {seed}"
    (directory / "build_top.sh").write_text(
        "set -e\nYOSYS=./yosys.sh\nNEXTPNR_ECP5=./nextpnr.sh\n"
        '"$YOSYS" -q -l top.rpt top.ys\n'
        f'"$NEXTPNR_ECP5" --quiet --report report.json{seed_option} --log top.tim --25k\n'
        "echo packed > top.bit\n")


@pytest.mark.parametrize("seed, stalled, routed", [(2, [2], 3), (None, [None, 1], 2)])
def test_a_stalled_route_is_placed_again_with_the_next_seed(tmp_path, seed, stalled, routed):
    """When router2 stalls, the netlist already synthesised is placed and routed again with
    the next seed, and the build script is left naming the seed that routed (seconds:
    scripts stand in for the tools)."""
    _stand_in_tools(tmp_path, seed, routes_from=[routed])
    toolchain = flow.platform_toolchain(board("ulx3s-25f").platform(), "yowasp")
    shown, seeds = [], []
    flow._run_script(tmp_path, "t", "LFE5U-25F", time.monotonic(), shown.append, toolchain,
                     placements=3, stalled_seeds=seeds)
    assert seeds == stalled and flow.script_seed(tmp_path) == routed
    assert (tmp_path / "yosys.runs").read_text() == "run\n"        # synthesised once
    assert (tmp_path / "top.bit").exists() and (tmp_path / "top.tim").read_text() == "routed\n"
    assert not (tmp_path / flow.ROUTE_SCRIPT).exists()
    for stalled_seed in stalled:             # each stalled route's log, kept to be read
        kept = (tmp_path / flow.stalled_log_name(stalled_seed)).read_text()
        assert "iter=71 wires=700071 overused=287" in kept
    assert sorted(path.name for path in tmp_path.glob("top.stalled-*")) == sorted(
        f"top.stalled-seed-{'own' if s is None else s}.tim" for s in stalled)
    assert any(line.endswith(f"t: routing did not converge (router2's overused wires have not "
                             f"fallen below 192 (its pass 41) in 30 passes (287 at pass 71)); "
                             f"placing again with seed {routed}") for line in shown)


def test_a_route_stalled_from_every_placement_fails_naming_the_seeds(tmp_path):
    _stand_in_tools(tmp_path, 5, routes_from=[])
    toolchain = flow.platform_toolchain(board("ulx3s-25f").platform(), "yowasp")
    seeds = []
    with pytest.raises(flow.RoutingStalled, match=(
            r"^building t: routing did not converge from the placements of seed 5 and seed 6 "
            r"\(the last: router2's overused wires have not fallen below 192 .*\); another "
            r"--seed places the design differently$")):
        flow._run_script(tmp_path, "t", "LFE5U-25F", time.monotonic(), lambda text: None,
                         toolchain, placements=2, stalled_seeds=seeds)
    assert seeds == [5, 6] and (tmp_path / "yosys.runs").read_text() == "run\n"
    with pytest.raises(flow.RoutingStalled, match=r"from the placement of seed 6: router2's"):
        flow._run_script(tmp_path, "t", "LFE5U-25F", time.monotonic(), lambda text: None,
                         toolchain)


def _process_ended(pid):
    """Gone, or a zombie no one has reaped yet (in a container, perhaps no one will)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP])
def test_a_build_told_to_stop_stops_its_tools(tmp_path, how):
    """``rvnpu build`` ended by SIGTERM or SIGHUP (a closed terminal) takes the tools it
    started with it: they run in a session of their own, out of the terminal's reach
    (seconds: a script stands in for the tools)."""
    (tmp_path / "build_top.sh").write_text("sleep 600 &\necho $! > tool.pid\nwait\n")
    driver = ("import sys, time\nfrom pathlib import Path\nfrom rvnpu.boards import board, flow\n"
              "toolchain = flow.platform_toolchain(board('ulx3s-25f').platform(), 'yowasp')\n"
              "flow._run_watched(Path(sys.argv[1]), 't', time.monotonic(), print, toolchain)\n")
    build = subprocess.Popen([sys.executable, "-c", driver, str(tmp_path)])
    pid_file = tmp_path / "tool.pid"
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and build.poll() is None
        time.sleep(0.1)
    tool = int(pid_file.read_text())
    build.send_signal(how)
    assert build.wait(timeout=60) == 128 + how
    for _ in range(50):
        if _process_ended(tool):
            break
        time.sleep(0.1)
    assert _process_ended(tool)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_while_the_tools_start_is_held_until_they_can_be_stopped(tmp_path, how):
    """A signal that arrives as the tools are being started, before the build could stop
    them, is held and acted on once it can: the build still ends with the signal's status
    and takes the tools with it. The driver sends the signal to itself right after the
    script has started and its tool has written its pid, where a loaded machine once
    delivered it."""
    (tmp_path / "build_top.sh").write_text("sleep 600 &\necho $! > tool.pid\nwait\n")
    driver = ("import os, signal, subprocess, sys, time\nfrom pathlib import Path\n"
              "from rvnpu.boards import board, flow\n"
              "real = subprocess.Popen\n"
              "def starting(*args, **kwargs):\n"
              "    process = real(*args, **kwargs)\n"
              "    pid = Path(sys.argv[1]) / 'tool.pid'\n"
              "    while not (pid.exists() and pid.read_text().strip()):\n"
              "        time.sleep(0.01)\n"
              f"    os.kill(os.getpid(), {int(how)})\n"
              "    return process\n"
              "flow.subprocess.Popen = starting\n"
              "toolchain = flow.platform_toolchain(board('ulx3s-25f').platform(), 'yowasp')\n"
              "flow._run_watched(Path(sys.argv[1]), 't', time.monotonic(), print, toolchain)\n")
    build = subprocess.Popen([sys.executable, "-c", driver, str(tmp_path)])
    assert build.wait(timeout=60) == 128 + how
    tool = int((tmp_path / "tool.pid").read_text())
    for _ in range(50):
        if _process_ended(tool):
            break
        time.sleep(0.1)
    assert _process_ended(tool)


def test_failed_build_leaves_nothing_behind(tmp_path):
    with pytest.raises(flow.BuildError, match="firmware source not found"):
        flow.build_board(board("icebreaker"), out_dir=tmp_path / "icebreaker",
                          firmware=[tmp_path / "missing.c"])
    assert list(tmp_path.iterdir()) == []


def test_doc_lists_built_and_failed_boards(tmp_path):
    b = board("icebreaker")
    report = reports.parse_report(_ICE40_REPORT, board=b, engine=EngineConfig(rows=2, cols=4),
                                clock_hz=24_000_000)
    failed = {"board": "orangecrab", "device": "LFE5U-25F", "array": "4x4", "target_mhz": 48.0,
              "error": "the design does not fit the LFE5U-25F: LUTs (TRELLIS_COMB): ..."}
    markdown = boards_markdown([report, failed], TABLE_COLUMNS)
    assert "| orangecrab | LFE5U-25F | 4x4 | - |" in markdown
    assert "**orangecrab** (4x4): the design does not fit the LFE5U-25F" in markdown
    page = "# Boards\n\nNotes before.\n\n" + markdown.split("\n", 2)[2] + "\nNotes after.\n"
    again = boards_markdown([failed], TABLE_COLUMNS, page)
    assert "Notes before." in again and "Notes after." in again
    assert "| icebreaker |" not in again and "| orangecrab |" in again



def test_doc_table_names_its_generator_and_replaces_an_older_table(tmp_path):
    """The markers may name an older generator; the table between them is still replaced, and
    every board gets a row, built or not."""
    import rvnpu.gen.boards_doc
    from rvnpu.gen.boards_doc import write_boards_doc
    path = tmp_path / "boards.md"
    path.write_text("# Boards\n\nBefore.\n\n<!-- begin table: generated by "
                    "rvnpu.boards.build.boards_table; do not edit -->\nstale\n"
                    "<!-- end table -->\nAfter.\n")
    write_boards_doc(path, flow.saved_reports(tmp_path / "nothing-built"), TABLE_COLUMNS)
    text = path.read_text()
    assert "<!-- begin table: generated by rvnpu/gen/boards_doc.py; do not edit -->" in text
    assert rvnpu.gen.boards_doc.__file__.endswith("rvnpu/gen/boards_doc.py")
    assert "Before." in text and "After." in text and "stale" not in text
    for name in BOARDS:
        assert f"| {name} | {board(name).platform.device} |" in text

def test_program_without_the_programmer_says_what_to_run(monkeypatch, capsys):
    monkeypatch.setattr(cli_build.shutil, "which", lambda name: None)
    assert cli_build._program(board("ulx3s-85f"), "out/top.bit") == 0
    assert "openFPGALoader --board ulx3s out/top.bit" in capsys.readouterr().out


def test_firmware_follows_the_bitstream_in_the_flash_image(tmp_path):
    bitstream = tmp_path / "top.bin"
    bitstream.write_bytes(b"\x7e\xaa\x99\x7e" + bytes(60))
    flow.append_firmware(bitstream, b"\x13\x00\x00\x00firmware", 0x100)
    data = bitstream.read_bytes()
    assert data[:64] == b"\x7e\xaa\x99\x7e" + bytes(60)
    assert data[64:0x100] == b"\xff" * (0x100 - 64)
    assert data[0x100:] == b"\x13\x00\x00\x00firmware"
    with pytest.raises(flow.BuildError, match=r"runs past the firmware's place in flash"):
        flow.append_firmware(bitstream, b"more", 0x80)
    assert bitstream.read_bytes() == data


def test_icebreaker_reads_its_firmware_from_flash_after_the_bitstream():
    b = board("icebreaker")
    config = b.soc_config()
    assert config.ram_style == "spram" and config.flash_offset == 0x2_0000
    # The UP5K's bitstream (104,090 bytes) ends before the firmware starts.
    assert config.flash_offset >= 104_090
    assert b.platform().resources["spi_flash", 0]


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
def test_icebreaker_default_design_fits_and_closes_timing(tmp_path):
    """What `rvnpu build --board icebreaker` makes with the pip-installed tools (a few
    minutes): the default design and demo firmware placed and routed on the UP5K, the report
    beside the image, the firmware in it after the bitstream."""
    b = board("icebreaker")
    out = tmp_path / "icebreaker"
    report = flow.build_board(b, out_dir=out)
    assert json.loads((out / "report.json").read_text()) == report
    for name, resource in report["resources"].items():
        assert 0 < resource["used"] <= resource["available"], name
    assert report["resources"]["LUTs / logic cells"]["available"] == 5280
    assert report["resources"]["block RAMs"]["available"] == 30
    # The flow is deterministic, so this guards the default design against growing slower.
    assert report["timing_met"] and report["fmax_mhz"] >= b.clock_hz / 1e6, report
    image = (out / "firmware" / "board_demo.bin").read_bytes()
    offset = report["firmware"]["flash_offset"]
    flash = (out / "top.bin").read_bytes()
    assert flash[offset:] == image and len(image) == report["firmware"]["image_bytes"]
    assert flash[:4] == b"\xff\x00\x00\xff"      # the iCE40 bitstream's preamble
    # Which tools ran (the wheels, unless native ones are installed), as the table says.
    tools = report["toolchain"]
    assert set(tools["commands"]) == {"YOSYS", "NEXTPNR_ICE40", "ICEPACK"}
    assert tools["kind"] in ("native", "yowasp") and tools["summary"].startswith(tools["kind"])
    seed = f", placement seed {b.placement_seed}" if b.placement_seed is not None else ""
    assert f"built with {tools['summary']}{seed}\n" in reports.format_table(report) + "\n"
    assert report["placement_seed"] == b.placement_seed and report["stalled_seeds"] == []
    assert report["core"] == {"shifter": b.shifter, "memory_stage": b.memory_stage}


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
@pytest.mark.parametrize("name, available", [("ulx3s-25f", 28), ("orangecrab", 28),
                                             long_case("ulx3s-85f", 156)])
def test_ecp5_default_design_fits_its_multipliers(tmp_path, name, available):
    """Each ECP5 board's design against its part's MULT18X18D, from Yosys alone (a minute
    or three; CI does not place and route the ECP5 boards). The post unit's arithmetic once
    took the LFE5U-25F's to 34 of 28, which only a board build had shown; their 8x6 arrays
    take every one, their other cells multiplying in logic, and the 85F's 16x8 leaves
    four. The 85F's count (three and a half minutes) waits for RVNPU_LONG=1, for CI's
    time: the 25F's two cover the same path."""
    from rvnpu.boards.top import BoardTop
    from rvnpu.firmware.build import EXAMPLES, build_firmware
    b = board(name)
    config = b.soc_config()
    image = build_firmware([EXAMPLES[flow.DEMO_FIRMWARE]], tmp_path / "fw", config)
    flow.synthesise(b.platform(), BoardTop(config, image=image.image), tmp_path / "synth")
    stat = json.loads((tmp_path / "synth" / "top.stat.json").read_text())
    multipliers = stat["design"]["num_cells_by_type"].get("MULT18X18D", 0)
    array = b.engine.rows * b.engine.cols - b.engine.logic_macs
    assert array <= multipliers <= available
