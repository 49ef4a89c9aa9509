"""The engine on a clock of its own on the boards: the PLL settings that make both clocks
from one VCO, the refusals where a PLL cannot, the board top's second domain, and the build
report's Fmax for each domain.

The report tests read ``tests/fixtures/ecp5_two_clocks_report.json``: nextpnr-ecp5's
``--report`` of :class:`TwoCounters` on the ULX3S-25F (core counter at 30 MHz, engine counter
at 90 MHz from the PLL's CLKOS), its paths trimmed to three segments each.
"""

import json
import os
from pathlib import Path

import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io

from rvnpu.boards import board, flow, report as reports
from rvnpu.boards.top import (GOWIN_SECOND_DIVISORS, BoardTop, add_pll, ecp5_pll_params,
                              gowin_pll_params, pll_frequency)
from rvnpu.cli import build as cli_build, make_parser
from rvnpu.spec.config import ConfigError, EngineConfig
from rvnpu.spec.memory_map import SocConfig


FIXTURE = Path(__file__).parent / "fixtures" / "ecp5_two_clocks_report.json"


def _args(*argv):
    return make_parser().parse_args(["build", *argv])


# -- The PLL settings -------------------------------------------------------------------------

@pytest.mark.parametrize("f_in, f_op, f_os", [
    (25e6, 30e6, 90e6), (25e6, 30e6, 125e6), (25e6, 40e6, 100e6), (48e6, 30e6, 100e6),
    (25e6, 30e6, 30e6), (25e6, 50e6, 75e6), (48e6, 48e6, 120e6), (25e6, 30e6, 15e6),
])
def test_ecp5_pll_pair_shares_one_vco(f_in, f_op, f_os):
    p, f, f2 = ecp5_pll_params(f_in, f_op, f_os)
    f_pfd = f_in / p["CLKI_DIV"]
    assert 3.125e6 <= f_pfd <= 400e6
    assert f == pytest.approx(f_pfd * p["CLKFB_DIV"])      # feedback from CLKOP
    vco = f * p["CLKOP_DIV"]
    assert 400e6 <= vco <= 800e6
    assert f2 == pytest.approx(vco / p["CLKOS_DIV"])
    assert 1 <= p["CLKOP_DIV"] <= 128 and 1 <= p["CLKOS_DIV"] <= 128
    assert 1 <= p["CLKI_DIV"] <= 128 and 1 <= p["CLKFB_DIV"] <= 80
    assert abs(f - f_op) / f_op <= 0.001 and abs(f2 - f_os) / f_os <= 0.001


def test_ecp5_pll_pair_takes_the_nearest_within_a_looser_tolerance():
    # 77.7777 MHz beside 30 MHz: no VCO hits it within 0.1%, 78 MHz (600 / ... ) is within 1%.
    p, f, f2 = ecp5_pll_params(25e6, 30e6, 77.7777e6, tolerance=0.01)
    assert f == pytest.approx(30e6) and abs(f2 - 77.7777e6) / 77.7777e6 <= 0.01


@pytest.mark.parametrize("f_op, f_os, nearest", [
    (30e6, 450e6, "the nearest pair is 33.33 and 400 MHz"),     # above an output's range
    (30e6, 77.7777e6, "the nearest pair is 30 and 78 MHz"),    # no VCO serves both
])
def test_ecp5_unreachable_pair_is_refused_in_one_line(f_op, f_os, nearest):
    with pytest.raises(ValueError) as error:
        ecp5_pll_params(25e6, f_op, f_os)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"no ECP5 PLL setting makes both {f_op / 1e6:g} MHz and "
                              f"{f_os / 1e6:g} MHz from 25 MHz within 0.1%")
    assert message.endswith(nearest)


def test_ecp5_single_output_search_is_unchanged():
    p, f = ecp5_pll_params(25e6, 30e6)
    assert "CLKOS_DIV" not in p and f == pytest.approx(30e6)


@pytest.mark.parametrize("f_fast, f_slow, sdiv", [
    (60e6, 30e6, 2), (90e6, 30e6, 3), (120e6, 30e6, 4), (108e6, 27e6, 4),
])
def test_gowin_pll_pair_divides_clkout(f_fast, f_slow, sdiv):
    p, f, f2 = gowin_pll_params(27e6, f_fast, f_slow)
    assert p["SDIV"] == sdiv and sdiv in GOWIN_SECOND_DIVISORS
    f_pfd = 27e6 / (p["IDIV_SEL"] + 1)
    assert f == pytest.approx(f_pfd * (p["FBDIV_SEL"] + 1))
    assert 400e6 <= f * p["ODIV_SEL"] <= 1200e6
    assert f2 == pytest.approx(f / sdiv)
    assert abs(f - f_fast) / f_fast <= 0.001 and abs(f2 - f_slow) / f_slow <= 0.001


def test_gowin_pair_not_a_divisor_apart_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^a Gowin rPLL makes a second clock only as its "
                                         r"first divided by 2, 3, 4, 6, \.\.\., 128 "
                                         r"\(CLKOUTD, CLKOUTD3\): it cannot make both 45 MHz "
                                         r"and 30 MHz from 27 MHz within 0\.1%$"):
        gowin_pll_params(27e6, 45e6, 30e6)


def test_pll_frequency_of_a_pair_per_family():
    assert pll_frequency(board("ulx3s-85f").platform(), 30e6, 90e6) == \
        pytest.approx((30e6, 90e6))
    # On Gowin either clock may be the faster: the faster comes from CLKOUT.
    assert pll_frequency(board("tang-nano-9k").platform(), 30e6, 60e6) == \
        pytest.approx((30e6, 60e6))
    assert pll_frequency(board("tang-nano-9k").platform(), 60e6, 30e6) == \
        pytest.approx((60e6, 30e6))
    with pytest.raises(ValueError, match="^the iCE40 PLL here makes one clock: the engine "
                                         "cannot have a clock of its own on this board$"):
        pll_frequency(board("icebreaker").platform(), 24e6, 48e6)


# -- The command line's refusals --------------------------------------------------------------

@pytest.mark.parametrize("name, argv, message", [
    ("ulx3s-85f", ("--engine-clock-hz", "450000000"),
     r"^ulx3s-85f: no ECP5 PLL setting makes both 45 MHz and 450 MHz from 25 MHz"),
    ("tang-nano-9k", ("--engine-clock-hz", "45000000"),
     r"^tang-nano-9k: a Gowin rPLL makes a second clock only as its first divided by"),
    ("icebreaker", ("--engine-clock-hz", "24000000"),
     r"^engine_clock_hz \(a clock of the engine's own\) needs ram_style 'block'"),
    ("ulx3s-85f", ("--engine-clock-hz", "-5"),
     r"^--engine-clock-hz must be positive \(or 0: the SoC's clock\), not -5$"),
])
def test_split_clock_the_pll_cannot_make_is_refused_before_building(name, argv, message,
                                                                    tmp_path):
    with pytest.raises(ConfigError, match=message):
        cli_build.run(_args("--board", name, "-o", str(tmp_path), *argv))
    assert list(tmp_path.iterdir()) == []


def test_board_soc_config_takes_the_engine_clock():
    b = board("ulx3s-85f")
    assert b.soc_config(engine_clock_hz=90_000_000).engine_clock_hz == 90_000_000
    # 0: the engine on the SoC's clock, whatever the board's default.
    assert not b.soc_config(engine_clock_hz=0).split_clocks
    assert b.soc_config().engine_clock_hz == b.engine_clock_hz


# -- The board top ----------------------------------------------------------------------------

_TINY = EngineConfig(rows=1, cols=1, spad_depth=16, acc_depth=16, qp_depth=4,
                     mem_bytes=1 << 10)


@pytest.mark.parametrize("name, port", [("ulx3s-85f", "CLKOS"), ("orangecrab", "CLKOS"),
                                        ("tang-nano-9k", "CLKOUTD")])
def test_board_top_makes_the_engine_clock_from_a_second_pll_output(name, port):
    b = board(name)
    engine_hz = 60_000_000
    plan = b.platform().prepare(BoardTop(SocConfig(engine=_TINY, clock_hz=30_000_000,
                                                   engine_clock_hz=engine_hz)), name="top")
    il = plan.files["top.il"]
    assert f"connect \\{port} \\engine_clk" in il or \
        f"connect \\{port} \\clk" in il        # Gowin: the slower (core) clock is divided
    assert "engine_clk" in il
    # Both clocks are constrained, so nextpnr times each domain at its own target (the
    # Himbaechel Gowin flow takes one target, --freq: the engine's, the faster).
    constraints = "".join(text for file, text in plan.files.items()
                          if file.endswith((".lpf", ".sdc")))
    assert ("engine_clk" in constraints if name != "tang-nano-9k"
            else "--freq 60 " in plan.files["build_top.sh"])
    # The engine's reset is synchronised to its clock from the core's reset.
    assert "engine_reset_sync" in il


def test_board_top_refuses_a_second_clock_on_ice40():
    b = board("icebreaker")
    config = SocConfig(engine=_TINY, clock_hz=24_000_000, engine_clock_hz=48_000_000)
    with pytest.raises(ValueError, match="^the iCE40 PLL here makes one clock"):
        b.platform().prepare(BoardTop(config), name="top")


# -- The report -------------------------------------------------------------------------------

def _fixture():
    return json.loads(FIXTURE.read_text())


def test_report_gives_each_domain_its_target_and_fmax():
    b = board("ulx3s-25f")
    engine = EngineConfig(rows=4, cols=4)
    report = reports.parse_report(_fixture(), board=b, engine=engine, clock_hz=30_000_000,
                                  engine_clock_hz=90_000_000)
    core, fast = report["clock_domains"]
    assert (core["name"], core["net"], core["target_mhz"]) == ("sync", "clk", 30)
    assert (fast["name"], fast["net"], fast["target_mhz"]) == ("engine", "engine_clk", 90)
    assert core["fmax_mhz"] == fast["fmax_mhz"] == 320.51
    assert core["met"] and fast["met"] and report["timing_met"] and report["misses"] == []
    assert report["split_clocks"]
    assert (report["fmax_mhz"], report["engine_fmax_mhz"]) == (320.51, 320.51)
    # Peak throughput is the engine's: 2 x 16 MACs at its Fmax and at its target.
    assert report["peak_gops_at_fmax"] == pytest.approx(2 * 16 * 320.51e6 / 1e9, abs=1e-3)
    assert report["peak_gops_at_target"] == pytest.approx(2 * 16 * 90e6 / 1e9, abs=1e-3)
    # Each domain's critical path is the one within its clock: its own counter.
    assert core["critical_path"] == ["core_counter"]
    assert fast["critical_path"] == ["engine_counter"]
    assert json.loads(json.dumps(report)) == report
    table = reports.format_table(report)
    assert "Fmax sync (MHz)" in table and "Fmax engine (MHz)" in table
    assert "90 target" in table and "30 target" in table and "misses" not in table


def test_report_says_which_domain_misses():
    slow = _fixture()
    slow["fmax"]["$glbnet$engine_clk"]["achieved"] = 71.5
    report = reports.parse_report(slow, board=board("ulx3s-25f"), engine=EngineConfig(),
                                  clock_hz=30_000_000, engine_clock_hz=90_000_000)
    assert report["misses"] == ["engine"] and report["timing_met"] is False
    assert [d["met"] for d in report["clock_domains"]] == [True, False]
    # The domain that misses is the one whose path limits the design.
    assert report["critical_path"] == ["engine_counter"]
    table = reports.format_table(report)
    assert "misses timing: the engine domain" in table
    assert "71.5" in table and "NOT MET" in table


def test_one_clock_report_keeps_its_figures():
    """Without an engine clock the report reads the one clock net, whatever its name."""
    one = {"fmax": {"$glbnet$clk": {"achieved": 41.0, "constraint": 30.0}}}
    report = reports.parse_report(one, board=board("ulx3s-85f"), engine=EngineConfig(),
                                  clock_hz=30_000_000)
    assert [d["name"] for d in report["clock_domains"]] == ["sync"]
    assert report["engine_fmax_mhz"] == report["fmax_mhz"] == 41.0
    assert not report["split_clocks"] and report["misses"] == []
    assert "Fmax (MHz)" in reports.format_table(report)


def test_domains_found_by_constraint_when_the_nets_have_other_names():
    renamed = {"fmax": {"a": {"achieved": 50.0, "constraint": 30.0},
                        "b": {"achieved": 80.0, "constraint": 90.0}}}
    domains = reports.clock_domains(renamed, {"sync": 30e6, "engine": 90e6})
    assert [(d["net"], d["fmax_mhz"], d["met"]) for d in domains] == \
        [("a", 50.0, True), ("b", 80.0, False)]
    missing = reports.clock_domains({}, {"sync": 30e6, "engine": 90e6})
    assert [(d["net"], d["fmax_mhz"], d["met"]) for d in missing] == \
        [(None, None, None), (None, None, None)]


# -- The flow, end to end ---------------------------------------------------------------------

class TwoCounters(Elaboratable):
    """A counter in each clock domain of the board's PLL: the core's at 30 MHz, the engine's
    at 90 MHz (the fixture's design)."""

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain()
        m.domains.engine = engine = ClockDomain("engine")
        locked = Signal()
        add_pll(m, platform, platform.request(platform.default_clk, dir="-"),
                platform.default_clk_frequency, 30e6, sync.clk, locked,
                f_second=90e6, clk_second=engine.clk)
        platform.add_clock_constraint(sync.clk, 30e6)
        platform.add_clock_constraint(engine.clk, 90e6)
        for i, (domain, block) in enumerate((("sync", "core_counter"),
                                             ("engine", "engine_counter"))):
            m.submodules[block] = counter = _Counter(domain, locked)
            m.submodules[f"led_{i}"] = led = io.Buffer("o", platform.request("led", i,
                                                                             dir="-"))
            m.d.comb += led.o.eq(counter.top)
        return m


class _Counter(Elaboratable):
    def __init__(self, domain, enable):
        self.domain, self.enable, self.top = domain, enable, Signal()

    def elaborate(self, platform):
        m = Module()
        count = Signal(24)
        m.d[self.domain] += count.eq(count + self.enable)
        m.d.comb += self.top.eq(count[-1])
        return m


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
def test_ecp5_flow_times_both_pll_outputs(tmp_path):
    """The pip-installed ECP5 flow on the two-counter design (about half a minute): the PLL
    with CLKOS places, and nextpnr's report times each domain against its own clock."""
    b = board("ulx3s-25f")
    nextpnr, stat = flow.implement(b.platform(), TwoCounters(), tmp_path)
    assert nextpnr["utilization"]["EHXPLLL"]["used"] == 1
    report = reports.parse_report(nextpnr, board=b, engine=EngineConfig(), clock_hz=30_000_000,
                                  engine_clock_hz=90_000_000, stat=stat)
    core, fast = report["clock_domains"]
    assert core["net"] == "clk" and fast["net"] == "engine_clk"
    assert round(core["target_mhz"]) == 30 and round(fast["target_mhz"]) == 90
    assert core["fmax_mhz"] > 90 and fast["fmax_mhz"] > 90 and report["timing_met"]
    assert (core["critical_path"], fast["critical_path"]) == (["core_counter"],
                                                              ["engine_counter"])
    assert (tmp_path / "top.bit").stat().st_size > 0


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
def test_gowin_flow_routes_clkout_and_its_divided_output(tmp_path):
    """The Gowin flow on the two-counter design (seconds): 90 MHz from CLKOUT and 30 MHz from
    CLKOUTD3 route as two clocks, each with its Fmax."""
    b = board("tang-nano-9k")
    nextpnr, _ = flow.implement(b.platform(), TwoCounters(), tmp_path)
    assert nextpnr["utilization"]["rPLL"]["used"] == 1
    assert "CLKOUTD3" in (tmp_path / "top.il").read_text()
    core, fast = reports.clock_domains(nextpnr, {"sync": 30e6, "engine": 90e6})
    assert (core["net"], fast["net"]) == ("clk", "engine_clk")
    assert core["met"] and fast["met"]
    assert (tmp_path / "top.fs").stat().st_size > 0


# -- The table in docs/boards.md and the board bench ------------------------------------------

def _split_report(engine_fmax=95.0):
    fixture = _fixture()
    fixture["fmax"]["$glbnet$clk"]["achieved"] = 36.7
    fixture["fmax"]["$glbnet$engine_clk"]["achieved"] = engine_fmax
    return reports.parse_report(fixture, board=board("ulx3s-85f"),
                                engine=board("ulx3s-85f").engine, clock_hz=30_000_000,
                                engine_clock_hz=90_000_000)


def test_doc_table_gives_both_domains_and_achieved_gops():
    from rvnpu.bench.boards import DemoGemm, achieved_gops
    from rvnpu.boards.report import TABLE_COLUMNS
    from rvnpu.gen.boards_doc import boards_markdown
    report = _split_report()
    # 32x32x32 in 6,000 core cycles at 30 MHz beside a 90 MHz engine: 18,000 engine cycles.
    report["demo"] = achieved_gops(DemoGemm(32, 32, 32, 8, 8, 6000), report)
    demo = report["demo"]
    assert demo["engine_cycles"] == 18000
    assert demo["macs_per_engine_cycle"] == pytest.approx(32 ** 3 / 18000, abs=1e-3)
    assert demo["achieved_gops_at_fmax"] == pytest.approx(2 * 32 ** 3 / 18000 * 95e6 / 1e9,
                                                          abs=1e-3)
    markdown = boards_markdown([report], TABLE_COLUMNS)
    assert "| Core Fmax / target (MHz) | Engine Fmax / target (MHz) | Peak GOPS | Achieved " \
           "GOPS (demo GEMM) |" in markdown
    # 6,000 core cycles at the core's 30 MHz: 200 microseconds; the peak is two operations a
    # cell each engine cycle at 95 MHz.
    e = board("ulx3s-85f").engine
    peak = 2 * e.rows * e.cols * 95e6 / 1e9
    assert f"| 36.7 / 30 | 95.0 / 90 | {peak:.2f} | 0.35 (32x32x32) | 200 us |" in markdown
    assert "- **ulx3s-85f** (engine clock): `engine_counter`" in markdown
    assert "Below their targets" not in markdown
    slow = _split_report(engine_fmax=70.0)
    markdown = boards_markdown([slow], TABLE_COLUMNS)
    assert "| 36.7 / 30 | 70.0 / 90 |" in markdown and "| - |" in markdown
    assert "- **ulx3s-85f**: the engine domain" in markdown


def test_doc_table_shows_small_throughputs_in_significant_digits():
    """A 1x1 array requantising on the core achieves about 1e-4 GOPS: not "0.00"."""
    from rvnpu.bench.boards import DemoGemm, achieved_gops
    from rvnpu.boards.report import TABLE_COLUMNS
    from rvnpu.gen.boards_doc import boards_markdown
    report = _split_report()
    report["demo"] = achieved_gops(DemoGemm(16, 16, 16, 1, 1, 1_144_484), report)
    achieved = report["demo"]["achieved_gops_at_fmax"]
    assert achieved == pytest.approx(2 * 16 ** 3 / (3 * 1_144_484) * 95e6 / 1e9, rel=1e-3)
    assert 1e-4 < achieved < 1e-3
    # 1,144,484 core cycles at 30 MHz: 38.1 milliseconds.
    assert f"| {achieved:.2g} (16x16x16) | 38.1 ms |" in boards_markdown([report],
                                                                         TABLE_COLUMNS)


def test_doc_reads_the_demo_measured_after_the_build(tmp_path):
    directory = tmp_path / "ulx3s-85f"
    directory.mkdir()
    demo, report = directory / "demo.json", directory / "report.json"
    demo.write_text(json.dumps({"gemm": "32x32x32"}))
    report.write_text(json.dumps(_split_report()))
    # A measurement older than the build is of another design.
    os.utime(demo, (1_000, 1_000))
    os.utime(report, (2_000, 2_000))
    saved = {r["board"]: r for r in flow.saved_reports(tmp_path)}
    assert "demo" not in saved["ulx3s-85f"]
    os.utime(demo, (3_000, 3_000))
    saved = {r["board"]: r for r in flow.saved_reports(tmp_path)}
    assert saved["ulx3s-85f"]["demo"] == {"gemm": "32x32x32"}
    assert saved["ulx3s-25f"]["engine_target_mhz"] == \
        (board("ulx3s-25f").engine_clock_hz or board("ulx3s-25f").clock_hz) / 1e6


_DEMO_TEXT = """\
rvnpu board demo
ok   gemm 8x8x8
ok   gemm 17x9x33
self-test: PASS (0 failed)
gemm 32x32x32 int8 on a 8x8 array: 12345 cycles (411 us at 30000000 Hz), engine active 4000, \
utilisation 41.4%
"""


def test_bench_reads_the_demo_gemm_and_refuses_a_failed_self_test():
    from rvnpu.bench.boards import BenchBoardsError, DemoGemm, parse_demo_output
    assert parse_demo_output(_DEMO_TEXT) == DemoGemm(32, 32, 32, 8, 8, 12345)
    with pytest.raises(BenchBoardsError, match="self-test did not pass"):
        parse_demo_output(_DEMO_TEXT.replace("ok   gemm 8x8x8", "FAIL gemm 8x8x8"))
    with pytest.raises(BenchBoardsError, match="printed no benchmark line"):
        parse_demo_output(_DEMO_TEXT.splitlines()[3])


def test_bench_reads_the_replayed_gemm_and_refuses_a_wrong_replay():
    from rvnpu.bench.boards import BenchBoardsError, DemoGemm, achieved_gops, parse_demo_output
    from rvnpu.boards.report import TABLE_COLUMNS
    from rvnpu.gen.boards_doc import boards_markdown
    text = _DEMO_TEXT + "ok   replayed from a list of 97 commands: 4100 cycles, utilisation 12.5%\n"
    demo = parse_demo_output(text)
    assert demo == DemoGemm(32, 32, 32, 8, 8, 12345, replayed_cycles=4100)
    skipped = _DEMO_TEXT + "replayed: skipped, the core requantises on this engine\n"
    assert parse_demo_output(skipped).replayed_cycles is None
    with pytest.raises(BenchBoardsError, match="self-test did not pass"):
        parse_demo_output(text.replace("ok   replayed", "FAIL replayed"))
    report = _split_report()
    report["demo"] = figures = achieved_gops(demo, report)
    # 4,100 core cycles at 30 MHz beside the engine's 90: 12,300 engine cycles.
    assert figures["replayed_engine_cycles"] == 12300
    assert figures["replayed_gops_at_fmax"] == pytest.approx(2 * 32 ** 3 / 12300 * 95e6 / 1e9,
                                                           rel=1e-3)
    assert figures["replayed_gops_at_fmax"] > figures["achieved_gops_at_fmax"]
    # 12,345 and 4,100 core cycles at 30 MHz.
    assert (f"| {figures['achieved_gops_at_fmax']:.2f} (32x32x32); "
            f"{figures['replayed_gops_at_fmax']:.2f} replayed | 412 us; 137 us replayed |"
            ) in boards_markdown([report], TABLE_COLUMNS)


def test_bench_of_some_boards_keeps_the_others_in_its_summary(tmp_path, monkeypatch):
    """``--board X`` measures X and leaves the other boards' figures in the output file."""
    from rvnpu.bench import boards as bench
    (tmp_path / "ulx3s-85f").mkdir()
    (tmp_path / "ulx3s-85f" / "report.json").write_text(json.dumps(_split_report()))
    output = tmp_path / "boards.json"
    output.write_text(json.dumps({"orangecrab": {"gemm": "32x32x32"},
                                  "ulx3s-85f": {"gemm": "old"}}))
    monkeypatch.setattr(bench, "measure_demo",
                        lambda b, report, work_dir: bench.DemoGemm(32, 32, 32, 8, 8, 6000))
    assert bench.main(["--board", "ulx3s-85f", "--root", str(tmp_path), "-o", str(output)]) == 0
    summary = json.loads(output.read_text())
    assert summary["orangecrab"] == {"gemm": "32x32x32"}
    assert summary["ulx3s-85f"]["engine_cycles"] == 18000
    assert json.loads((tmp_path / "ulx3s-85f" / "demo.json").read_text()) == \
        summary["ulx3s-85f"]
    output.write_text("not json")
    assert bench.main(["--board", "ulx3s-85f", "--root", str(tmp_path), "-o", str(output)]) == 0
    assert list(json.loads(output.read_text())) == ["ulx3s-85f"]


def test_bench_simulates_the_design_as_built():
    from rvnpu.bench.boards import demo_config
    config = demo_config(board("ulx3s-85f"), _split_report())
    assert (config.clock_hz, config.engine_clock_hz) == (30_000_000, 90_000_000)
    assert config.engine == board("ulx3s-85f").engine
    one = dict(_split_report(), split_clocks=False)
    assert not demo_config(board("ulx3s-85f"), one).split_clocks
    # The core as built (rvnpu build --shifter, --memory-stage), not the board's.
    assert config.shifter == board("ulx3s-85f").shifter
    core = {"shifter": "serial", "memory_stage": not board("ulx3s-85f").memory_stage}
    built = demo_config(board("ulx3s-85f"), dict(_split_report(), core=core))
    assert (built.shifter, built.memory_stage) == ("serial", core["memory_stage"])


_OLD_TABLE = """\
# Boards

<!-- begin table: generated by rvnpu/gen/boards_doc.py; do not edit -->
| Board | Device | Array | LUTs / logic cells | FFs | DSPs | block RAMs | SPRAMs | Fmax / target (MHz) | Peak GOPS |
|---|---|---|---|---|---|---|---|---|---|
| icebreaker | iCE40UP5K | 1x1 | 4771 / 5280 | 1950 / 5280 | 3 / 8 | 16 / 30 | 2 / 4 | 14.3 / 12 | 0.03 |
| ulx3s-85f | LFE5U-85F | 8x8 | 29459 / 83640 | 16360 / 83640 | 76 / 156 | 90 / 208 | - | 36.7 / 30 | 4.69 |

Critical paths (what limits Fmax):

- **icebreaker**: `soc.core` → `soc.uart`
- **ulx3s-85f**: `soc.core.regs` → `soc.core`
<!-- end table -->
Prose.
"""


def test_doc_keeps_the_previous_row_of_a_board_not_rebuilt(tmp_path):
    """A board built elsewhere keeps its figures (marked), in the new columns; a rebuilt one
    gets its new row and paths."""
    from rvnpu.boards.report import TABLE_COLUMNS
    from rvnpu.gen.boards_doc import boards_markdown, previous_rows
    rows = previous_rows(_OLD_TABLE)
    assert rows["icebreaker"]["cells"]["Fmax / target (MHz)"] == "14.3 / 12"
    assert rows["ulx3s-85f"]["paths"] == ["- **ulx3s-85f**: `soc.core.regs` → `soc.core`"]
    directory = tmp_path / "ulx3s-85f"
    directory.mkdir()
    (directory / "report.json").write_text(json.dumps(_split_report()))
    page = boards_markdown(flow.saved_reports(tmp_path), TABLE_COLUMNS, _OLD_TABLE)
    assert ("| icebreaker (kept) | iCE40UP5K | 1x1 | 4771 / 5280 | 1950 / 5280 | 3 / 8 | "
            "16 / 30 | 2 / 4 | 14.3 / 12 | 14.3 / 12 | 0.03 | - | - |") in page
    assert "- **icebreaker**: `soc.core` → `soc.uart`" in page
    e = board("ulx3s-85f").engine
    assert f"| ulx3s-85f | LFE5U-85F | {e.rows}x{e.cols} |" in page
    assert "36.7 / 30 | 95.0 / 90 |" in page
    assert "`soc.core.regs` → `soc.core`" not in page
    # A board in neither keeps the row of one never built.
    assert "| ulx3s-25f | LFE5U-25F | 8x6 | - |" in page
    assert page.endswith("Prose.\n")
    # Regenerating the page from itself changes nothing.
    assert boards_markdown(flow.saved_reports(tmp_path), TABLE_COLUMNS, page) == page


_TWO_DOMAIN_TABLE = """\
<!-- begin table: generated by rvnpu/gen/boards_doc.py; do not edit -->
| Board | Device | Array | Core Fmax / target (MHz) | Engine Fmax / target (MHz) |
|---|---|---|---|---|
| icebreaker | iCE40UP5K | 4x1 | 19.9 / 18 | 19.9 / 18 |
| ulx3s-25f | LFE5U-25F | 8x6 | 61.5 / 60 | 70.5 / 75 |

Critical paths (what limits Fmax):

- **icebreaker**: `soc.core`
- **ulx3s-25f** (sync clock): `soc.core.regs` → `soc.core`
- **ulx3s-25f** (engine clock): `soc.engine.engine`

Below their targets:

- **ulx3s-25f**: the engine domain

Designs that did not fit:

- **icebreaker** (2x2): needs `6045` logic cells of 5280
<!-- end table -->
"""


def test_doc_keeps_the_critical_paths_inside_one_block():
    """A kept board's path inside one block (no arrow) stays with its row, each clock's; the
    lists of misses and failures below are not paths."""
    from rvnpu.gen.boards_doc import previous_rows
    rows = previous_rows(_TWO_DOMAIN_TABLE)
    assert rows["icebreaker"]["paths"] == ["- **icebreaker**: `soc.core`"]
    assert rows["ulx3s-25f"]["paths"] == [
        "- **ulx3s-25f** (sync clock): `soc.core.regs` → `soc.core`",
        "- **ulx3s-25f** (engine clock): `soc.engine.engine`"]


def test_bench_plots_every_board_in_its_summary(tmp_path, monkeypatch):
    """``--plot`` draws the summary's boards (those measured before too); a summary without
    achieved figures is a one-line error."""
    from rvnpu.bench import boards as bench
    (tmp_path / "ulx3s-85f").mkdir()
    (tmp_path / "ulx3s-85f" / "report.json").write_text(json.dumps(_split_report()))
    output = tmp_path / "boards.json"
    # A board measured before, without a replayed figure (its core requantises).
    output.write_text(json.dumps({"icebreaker": {"gemm": "16x16x16",
                                                 "achieved_gops_at_fmax": 9.3e-05,
                                                 "peak_gops_at_fmax": 0.026}}))
    monkeypatch.setattr(bench, "measure_demo",
                        lambda b, report, work_dir: bench.DemoGemm(32, 32, 32, 8, 8, 6000, 900))
    png = tmp_path / "boards.png"
    assert bench.main(["--board", "ulx3s-85f", "--root", str(tmp_path), "-o", str(output),
                       "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one = tmp_path / "one.png"
    bench.plot_boards({"ulx3s-85f": json.loads(output.read_text())["ulx3s-85f"]}, one)
    assert 0 < one.stat().st_size != png.stat().st_size
    with pytest.raises(bench.BenchBoardsError, match="no board in the summary"):
        bench.plot_boards({"orangecrab": {"gemm": "32x32x32"}}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
