"""The chip with its firmware as a bitstream for a board: Amaranth's own flow (Yosys,
nextpnr, icepack/ecppack/gowin_pack), with the tools taken from their ``yowasp-*`` wheels, so
nothing but pip is needed.

Everything is built in a staging directory beside the output and moved into place only when
the bitstream and the report exist (:func:`rvnpu.gen.files.replace_directory`), so a failed
build leaves no half-written result behind, nor an older one that could be mistaken for it.
The report (:mod:`rvnpu.boards.report`) is written as JSON beside the bitstream;
``docs/boards.md`` is made from those files.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from rvnpu.boards.report import ff_memories, fit_failure, parse_report
from rvnpu.boards.toolchain import find_toolchain
from rvnpu.gen.files import replace_directory, write_file
from rvnpu.spec.config import ConfigError


__all__ = ["BuildError", "DoesNotFit", "RoutingStalled", "build_board", "implement",
           "append_firmware", "check_clock", "toolchain_options", "platform_toolchain",
           "failure_path", "record_failure", "saved_reports", "synthesise", "DEFAULT_OUTPUT",
           "DEMO_FIRMWARE", "NETLIST", "THROUGH_VERILOG", "REINTEGRATE_ASSERTION",
           "synthesis_input", "PLACEMENTS", "script_seed", "stalled_log_name"]


#: Where ``rvnpu build`` puts each board's results: ``<DEFAULT_OUTPUT>/<board>/``.
DEFAULT_OUTPUT = Path("build/boards")

#: The demo firmware every board runs.
DEMO_FIRMWARE = "board_demo"

#: The post-synthesis netlist as Verilog, written beside the JSON netlist nextpnr reads when
#: asked for (``netlist=True``): what ``rvnpu build --gate-sim`` simulates.
NETLIST = "top.gate.v"

class BuildError(Exception):
    """A tool failed; the message says which, and where its log is."""


class DoesNotFit(BuildError):
    """The design needs more of some resource than the part has."""


class RoutingStalled(BuildError):
    """The router stopped converging from the placement it was given (:func:`routing_stall`,
    in ``reason``); another seed may place the same netlist so that it routes."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


#: How many placements a build tries, each with the next seed, when the router stalls on one:
#: the netlist is synthesised once and placed and routed again (the ULX3S-85F's design of
#: 2026-12-07 routed from two of its first three placements).
PLACEMENTS = 3


def check_clock(board, clock_hz, engine_clock_hz=None):
    """Refuse a clock the board's PLL cannot make: the UART divisor and the firmware's timings
    assume the clock is what was asked for. With ``engine_clock_hz``, refuse a pair of clocks
    the PLL cannot make together (one line saying why)."""
    from rvnpu.boards.top import pll_frequency
    if engine_clock_hz:
        try:
            pll_frequency(board.platform(), clock_hz, engine_clock_hz)
        except ValueError as error:
            raise ConfigError(f"{board.name}: {error}") from None
        return
    try:
        made = pll_frequency(board.platform(), clock_hz)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if abs(made - clock_hz) > clock_hz / 1000:
        raise ConfigError(f"{board.name}'s PLL cannot make {clock_hz / 1e6:g} MHz; the "
                          f"nearest it can is {made / 1e6:.4g} MHz")


# -- Results on disk ------------------------------------------------------------------------------

def failure_path(out_dir):
    """Where a design that did not fit is recorded for the docs: beside the results, never in
    them, so a failed build leaves the result directory as it was."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f"{out_dir.name}.failed.json")


def record_failure(out_dir, board, engine, clock_hz, error):
    """Record that ``engine`` did not fit ``board`` (``error`` says why), for the docs."""
    return write_file(failure_path(out_dir), json.dumps({
        "board": board.name, "device": board.platform.device,
        "array": f"{engine.rows}x{engine.cols}", "target_mhz": clock_hz / 1e6,
        "error": str(error), "engine": engine.to_dict()}, indent=2) + "\n")


def _unbuilt(board):
    e = board.engine
    return {"board": board.name, "device": board.platform.device,
            "array": f"{e.rows}x{e.cols}", "target_mhz": board.clock_hz / 1e6,
            "engine_target_mhz": (board.engine_clock_hz or board.clock_hz) / 1e6}


def saved_reports(root=DEFAULT_OUTPUT):
    """Every board's ``root/<board>/report.json``, or the record of a design that did not
    fit, or for a board never built its name, device, array and target clock alone. A
    report's ``demo`` is the board bench's measurement of the demo's GEMM on that build
    (``demo.json`` beside it, :mod:`rvnpu.bench.boards`), if it was made after the build."""
    from rvnpu.boards import BOARDS
    reports = []
    for name, b in BOARDS.items():
        directory = Path(root) / name
        for p in (directory / "report.json", failure_path(directory)):
            if p.is_file():
                reports.append(json.loads(p.read_text()))
                demo = directory / "demo.json"
                if p.name == "report.json" and demo.is_file() and \
                        demo.stat().st_mtime >= p.stat().st_mtime:
                    reports[-1]["demo"] = json.loads(demo.read_text())
                break
        else:
            reports.append(_unbuilt(b))
    return reports


# -- The flow -----------------------------------------------------------------------------------

def _toolchain_env(toolchain):
    env = toolchain.env()
    # The test suite makes every DeprecationWarning an error (PYTHONWARNINGS); the tools are
    # other projects' Python (gowin_pack uses a deprecated importlib API), not ours to hold to it.
    env.pop("PYTHONWARNINGS", None)
    return env


def platform_toolchain(platform, choice="auto"):
    """The tools (:func:`~rvnpu.boards.toolchain.find_toolchain`) for ``platform``'s family."""
    from rvnpu.boards.top import fpga_family
    return find_toolchain(fpga_family(platform), choice)


#: Yosys 0.70 fails an assertion when it puts ABC's mapped logic back
#: (``GetSize(conn.first) == GetSize(conn.second)``, in ``abc_ops -reintegrate``, with or
#: without ABC9) on some designs: the ULX3S-85F's read as RTLIL, not read as the Verilog
#: Amaranth's own backend writes (``proc``, ``memory_collect``, ``write_verilog``); the
#: ULX3S-25F's with the front end's range stage the other way round. ECP5 designs reach
#: ``synth_ecp5`` as Verilog, and as RTLIL if that fails so (:func:`_run_script`).
THROUGH_VERILOG = "\n".join(["proc -nomux -norom", "memory_collect",
                             "write_verilog -norename top.via.v", "design -reset",
                             "read_verilog top.via.v"])

#: How that assertion reads in Yosys's log.
REINTEGRATE_ASSERTION = "GetSize(conn.first) == GetSize(conn.second)"


def synthesis_input(directory):
    """What the build in ``directory`` synthesised: ``"verilog"`` (:data:`THROUGH_VERILOG`)
    or ``"rtlil"``, as its ``top.ys`` says."""
    return "verilog" if THROUGH_VERILOG in _read_text(Path(directory) / "top.ys") else "rtlil"


def _read_rtlil_instead(directory):
    """Take :data:`THROUGH_VERILOG` out of ``top.ys``; False if it was not there."""
    script = directory / "top.ys"
    text = _read_text(script)
    if THROUGH_VERILOG + "\n" not in text:
        return False
    script.write_text(text.replace(THROUGH_VERILOG + "\n", "", 1))
    return True


def nextpnr_options(board):
    """The options ``board``'s builds add to nextpnr's command line: its own, and its seed."""
    seed = () if board.placement_seed is None else ("--seed", str(board.placement_seed))
    return (*board.nextpnr_options, *seed)


def toolchain_options(platform, nextpnr_options=(), *, netlist=False):
    """Amaranth's build options for ``platform``'s family: reports on, ``nextpnr_options``
    (a board's own) added, and with ``netlist`` the netlist also written as Verilog
    (:data:`NETLIST`), from the same design Yosys hands to nextpnr."""
    # The report gives utilisation and Fmax; timing is checked against the target here, not
    # by nextpnr, so that a slow design still gets its figures.
    nextpnr = ["--report", "report.json", "--timing-allow-fail", *nextpnr_options]
    stat = "tee -q -o top.stat.json stat -json"
    if netlist:
        # -noattr: the cells' source locations would only slow the simulator's parser.
        stat += f"\nwrite_verilog -noattr {NETLIST}"
    from rvnpu.boards.top import fpga_family
    family = fpga_family(platform)
    if family == "ice40":
        # -spram lets Yosys put a single-port RAM (ram_style "spram") into the UP5K's SPRAM.
        return dict(synth_opts="-dsp -spram", nextpnr_opts=nextpnr, script_after_synth=stat)
    if family == "gowin":
        # -nowidelut: Yosys's wide-LUT mapping (MUX2_LUT5 to LUT8) fills one side of many of
        # its multiplexers with a constant LUT1; without it the RV32IM core takes 1,592 LUTs
        # instead of 2,111, and LUT positions are what bounds the Tang Nano 9K's design.
        return dict(synth_opts="-nowidelut", nextpnr_opts=nextpnr, script_after_synth=stat)
    return dict(nextpnr_opts=nextpnr, script_after_synth=stat, ecppack_opts="--compress",
                script_after_read=THROUGH_VERILOG)


def build_board(board, engine=None, *, clock_hz=None, engine_clock_hz=None, out_dir=None,
                firmware=None, progress=None, netlist=False, toolchain=None,
                placements=PLACEMENTS):
    """Build ``board``'s bitstream with the demo firmware (or ``firmware``) in RAM; with
    ``netlist``, write the synthesised netlist as Verilog too (``out_dir/top.gate.v``).
    ``engine_clock_hz``: the engine's own clock (``None``: the board's; 0: the SoC's clock).
    ``toolchain``: the tools (:func:`platform_toolchain`; default: ``auto``'s choice), named in
    the progress and the report. ``placements``: how many seeds to try, the board's first,
    while the router stalls (:func:`implement`).

    Returns the report (the dictionary :func:`~rvnpu.boards.report.parse_report` makes), also
    written to ``out_dir/report.json``. Raises :class:`DoesNotFit` if the design is too large
    for the part, :class:`RoutingStalled` if no placement tried routes, :class:`BuildError` if
    a tool fails or the firmware does not build or fit the RAM.
    """
    from rvnpu.boards.top import BoardTop
    from rvnpu.firmware.build import EXAMPLES, FirmwareError, build_firmware

    engine = board.engine if engine is None else engine
    clock_hz = board.clock_hz if clock_hz is None else clock_hz
    out_dir = Path(out_dir if out_dir is not None else DEFAULT_OUTPUT / board.name)
    progress = progress or (lambda text: None)
    config = board.soc_config(engine, clock_hz, engine_clock_hz)
    sources = firmware or [EXAMPLES[DEMO_FIRMWARE]]
    engine_clock = ("" if not config.split_clocks
                    else f", engine at {config.engine_clock_hz / 1e6:g} MHz")

    toolchain = toolchain or platform_toolchain(board.platform())
    stalled = []
    with replace_directory(out_dir) as staging:
        start = time.monotonic()
        progress(f"[{0:5.0f}s] {board.name}: {toolchain.describe()}")
        progress(f"[{0:5.0f}s] {board.name}: firmware")
        try:
            image = build_firmware(sources, staging / "firmware", config)
        except FirmwareError as error:
            raise BuildError(str(error)) from None
        progress(f"[{time.monotonic() - start:5.0f}s] {board.name}: elaborating "
                 f"{engine.rows}x{engine.cols} array at {clock_hz / 1e6:g} MHz{engine_clock}")
        nextpnr_report, stat = implement(board.platform(), BoardTop(config, image=image.image),
                                         staging, label=board.name, start=start,
                                         progress=progress,
                                         nextpnr_options=nextpnr_options(board),
                                         netlist=netlist, toolchain=toolchain,
                                         placements=placements, stalled_seeds=stalled)
        report = parse_report(nextpnr_report, board=board, engine=engine, clock_hz=clock_hz,
                              engine_clock_hz=config.engine_clock_hz, stat=stat)
        report["firmware"] = {"name": image.name, "image_bytes": image.image_bytes,
                              "ram_bytes_used": image.ram_bytes_used}
        if config.flash_offset is not None:
            append_firmware(staging / ("top" + board.bitstream), image.image,
                            config.flash_offset)
            report["firmware"]["flash_offset"] = config.flash_offset
        report["ff_memories"] = ff_memories(_read_text(staging / "top.rpt"))
        report["toolchain"] = toolchain.to_dict()
        report["core"] = {"shifter": config.shifter, "memory_stage": config.memory_stage}
        report["placement_seed"] = script_seed(staging)
        report["stalled_seeds"] = stalled
        report["synthesis_input"] = synthesis_input(staging)
        report["build_seconds"] = round(time.monotonic() - start)
        (staging / "report.json").replace(staging / "nextpnr-report.json")
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def append_firmware(bitstream, image, offset):
    """Put ``image`` after the bitstream in its file, at byte ``offset``, with erased flash
    (0xFF) between: one file for the programmer, which the SoC reads its firmware from."""
    bitstream = Path(bitstream)
    data = bitstream.read_bytes()
    if len(data) > offset:
        raise BuildError(f"the bitstream ({len(data)} bytes) runs past the firmware's place in "
                         f"flash ({offset:#x})")
    bitstream.write_bytes(data + b"\xff" * (offset - len(data)) + bytes(image))


def implement(platform, top, directory, *, label="top", start=None, progress=None,
              nextpnr_options=(), netlist=False, toolchain=None, placements=1,
              stalled_seeds=None):
    """Synthesise, place, route and pack ``top`` for ``platform`` in ``directory``, with
    ``toolchain``'s tools (default: ``auto``'s choice, :func:`platform_toolchain`).

    Should the router stall (:func:`routing_stall`), the synthesised netlist is placed and routed
    again with the next seed, up to ``placements`` placements in all; each seed it stalled
    from is appended to ``stalled_seeds`` (``None`` for nextpnr's own), and ``build_top.sh``
    is left naming the seed that routed, so that it rebuilds the same bitstream.

    Returns nextpnr's ``--report`` and Yosys's ``stat -json`` (or ``None``), both parsed.
    """
    start = time.monotonic() if start is None else start
    progress = progress or (lambda text: None)
    plan = platform.prepare(top, name="top", **toolchain_options(platform, nextpnr_options,
                                                                 netlist=netlist))
    plan.extract(directory)
    _run_script(directory, label, platform.device, start, progress,
                toolchain or platform_toolchain(platform), placements, stalled_seeds)
    return (json.loads((directory / "report.json").read_text()),
            _read_json(directory / "top.stat.json"))


def synthesise(platform, top, directory, toolchain=None):
    """Synthesise ``top`` for ``platform`` in ``directory`` and stop there: Yosys alone, as
    :func:`implement` runs it, writing the netlist as Verilog. Returns the netlist's path.

    A gate-level simulation needs no placement, so its tests skip nextpnr's minutes.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plan = platform.prepare(top, name="top", **toolchain_options(platform, netlist=True))
    plan.extract(directory)
    env = _toolchain_env(toolchain or platform_toolchain(platform))

    def run():
        return subprocess.run([env["YOSYS"], "-q", "-l", "top.rpt", "top.ys"], cwd=directory,
                              env=env, capture_output=True, text=True)

    result = run()
    if _switched_to_rtlil(result, directory):
        result = run()
    (directory / "build.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = _failure_tail(result, directory)
        raise BuildError(f"synthesis failed (exit status {result.returncode}):\n{tail}")
    return directory / NETLIST


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_text(path):
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# router2's line after each pass: the pass, and the wires still shared by more than one net.
_ROUTER2_PASS = re.compile(r"^Info:\s+iter=(\d+) wires=\d+ overused=(\d+)", re.MULTILINE)
# router1's line every thousand iterations: the iterations so far, and the arcs left.
_ROUTER1_REPORT = re.compile(r"^Info:\s+(\d+) \|[^|]*\|[^|]*\|\s*(\d+)\|", re.MULTILINE)

_STAGES = (          # (log line pattern, stage shown, its detail), in the order the tools run
    (re.compile(r"^\d+(?:\.\d+)*\.? Executing (\w+)"), "synthesis", "{0}"),
    (re.compile(r"^Info: Packing"), "packing", None),
    (re.compile(r"^Info: (?:Running|Placed|Creating initial|HeAP)"), "placing", None),
    # router2 counts its passes and the wires still shared by nets; router1 the arcs left.
    # Whether a large design's routing converges is the one thing worth watching in it.
    (_ROUTER2_PASS, "routing", "pass {0}, {1} wires overused"),
    (_ROUTER1_REPORT, "routing", "{1} arcs left"),
    (re.compile(r"^Info: Routing"), "routing", None),
)


def log_stage(text):
    """The flow's stage as the tools' log ``text`` shows it (its last line that names one),
    with what the tool reports of its progress there; ``None`` if no line names a stage."""
    for line in reversed(text.splitlines()):
        for pattern, name, detail in _STAGES:
            match = pattern.match(line)
            if match:
                return f"{name}: {detail.format(*match.groups())}" if detail else name
    return None


# Passes router2 may go without routing to fewer overused wires before the build stops it.
# Its routes of the ULX3S-85F's design that finished went at most 10 passes between new
# fewest while 20 wires or more were overused; one that did not stopped falling at 192
# wires by its 41st pass and had climbed past 500 by its 81st, and would have run on for
# hours.
ROUTER2_PATIENCE = 30

# How far the overused wires may climb back above their fewest before the build stops the
# route at once: to more than ROUTER2_GROWTH times the fewest and ROUTER2_MARGIN wires more.
# A route that climbs far does so with ever slower passes (one of the 85F, 2026-12-07, went
# from 534 wires at its 38th pass to 5,483 at its 69th, its passes from seconds to three
# minutes each), so counting passes alone let it grind 40 minutes before a reseed. The
# 85F's routes that finished climbed at most 33 wires above their fewest (190 over 157).
ROUTER2_GROWTH = 2
ROUTER2_MARGIN = 100

# Once the fewest is below ROUTER2_FEW wires, the passes take seconds and router2 finishes
# from there, however slowly: one of the 85F's routes that finished went 18 passes from 2
# wires to 1, another (bus_register, seed 2, 2026-12-07) was stopped after 31 passes at one
# overused wire. So few wires get ROUTER2_FEW_PATIENCE passes (minutes).
ROUTER2_FEW = 20
ROUTER2_FEW_PATIENCE = 150


# Reports (one every thousand iterations) router1 may go without fewer arcs left before the
# build stops it. Its routes that finished (every board's, 2026-12-07) nearly always reached
# a new fewest at every report; one of the ULX3S-25F's (with the accumulator stage, seed 3)
# hovered between 34,700 and 36,400 arcs for 18 reports, then fell to the end. One that
# ground on had 24,000 arcs left after 10 minutes (its log was not kept).
ROUTER1_PATIENCE = 50


def routing_stall(text, patience=ROUTER2_PATIENCE, growth=ROUTER2_GROWTH,
                  margin=ROUTER2_MARGIN, router1_patience=ROUTER1_PATIENCE):
    """Why the router, as its log ``text`` shows it, will not finish. router2: its overused
    wires have climbed to more than ``growth`` times their fewest (and ``margin`` more), or
    have not fallen below their fewest for ``patience`` passes (:data:`ROUTER2_FEW_PATIENCE`
    once the fewest is below :data:`ROUTER2_FEW`). router1: its arcs left have not fallen
    below their fewest for ``router1_patience`` reports. ``None`` while they still fall."""
    if not _ROUTER2_PASS.search(text):
        return _router1_stall(text, router1_patience)
    fewest = fewest_at = last = None
    for match in _ROUTER2_PASS.finditer(text):
        last, overused = int(match[1]), int(match[2])
        if fewest is None or overused < fewest:
            fewest, fewest_at = overused, last
        elif overused > growth * fewest and overused - fewest >= margin:
            return (f"router2's overused wires climbed from {fewest:,} (its pass {fewest_at})"
                    f" to {overused:,} (pass {last})")
    if fewest is not None and fewest < ROUTER2_FEW:
        patience = max(patience, ROUTER2_FEW_PATIENCE)
    if last is None or last - fewest_at < patience:
        return None
    return (f"router2's overused wires have not fallen below {fewest:,} (its pass "
            f"{fewest_at}) in {last - fewest_at} passes ({overused:,} at pass {last})")


def _router1_stall(text, patience):
    fewest = fewest_at = None
    reports = 0
    for match in _ROUTER1_REPORT.finditer(text):
        reports += 1
        iterations, arcs = int(match[1]), int(match[2])
        if fewest is None or arcs < fewest:
            fewest, fewest_at, fewest_reports = arcs, iterations, reports
    if fewest is None or reports - fewest_reports < patience:
        return None
    return (f"router1's arcs left have not fallen below {fewest:,} (its iteration "
            f"{fewest_at:,}) in {reports - fewest_reports} reports ({arcs:,} at iteration "
            f"{iterations:,})")


def _watch(directory, label, start, progress, done, on_stall=None):
    """Report the flow's stage (from the tools' logs) until ``done`` is set. Stages only move
    forward: once routing has begun, a later log line that looks like placement is not.
    If the router stops converging (:func:`routing_stall`), tell ``on_stall`` why and return."""
    order = list(dict.fromkeys(name for _, name, _ in _STAGES))
    shown, shown_at = None, 0
    while not done.wait(2):
        log = directory / ("top.tim" if (directory / "top.tim").exists() else "top.rpt")
        stage = log_stage(_tail(log))
        if log.name == "top.tim" and stage is None:
            stage = "placing"
        if stage and shown and order.index(stage.split(":")[0]) < order.index(
                shown.split(":")[0]):
            stage = shown
        now = time.monotonic()
        # A new tool at once; a new pass of the same tool at most every 20 seconds.
        if stage and stage != shown and (stage.split(":")[0] != (shown or "").split(":")[0]
                                         or now - shown_at >= 20):
            shown, shown_at = stage, now
            progress(f"[{now - start:5.0f}s] {label}: {stage}")
        if on_stall and stage and stage.startswith("routing"):
            reason = routing_stall(_read_text(log))
            if reason:
                on_stall(reason)
                return


def _tail(path, size=16384):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _run_script(directory, label, device, start, progress, toolchain, placements=1,
                stalled_seeds=None):
    stalled_seeds = [] if stalled_seeds is None else stalled_seeds
    result = _place_until_routed(directory, label, start, progress, toolchain, placements,
                                 stalled_seeds)
    if _switched_to_rtlil(result, directory):
        progress(f"[{time.monotonic() - start:5.0f}s] {label}: Yosys failed its ABC "
                 f"reintegration assertion on the design read as Verilog; synthesising the "
                 f"RTLIL instead")
        result = _place_until_routed(directory, label, start, progress, toolchain, placements,
                                     stalled_seeds)
    (directory / "build.log").write_text(result.stdout + result.stderr)
    if result.returncode == 0:
        progress(f"[{time.monotonic() - start:5.0f}s] {label}: done")
        return
    note = ""
    memories = ff_memories(_read_text(directory / "top.rpt"))
    if memories:
        note = (f"\n(Yosys built these memories from flip-flops, not block RAM: "
                f"{', '.join(memories)})")
    failure = fit_failure(_read_text(directory / "top.tim"), device=device)
    if failure:
        raise DoesNotFit(failure + note)
    raise BuildError(f"building {label} failed:\n{_failure_tail(result, directory)}{note}")


# The nextpnr command in Amaranth's build script, the seed on it, and the Yosys command.
_NEXTPNR_COMMAND = re.compile(r'^"\$NEXTPNR_\w+".*$', re.MULTILINE)
_SEED_OPTION = re.compile(r" --seed (\d+)")
_YOSYS_COMMAND = re.compile(r'^"\$YOSYS".*\n', re.MULTILINE)
SCRIPT, ROUTE_SCRIPT = "build_top.sh", "route_top.sh"


def script_seed(directory):
    """The placement seed ``directory``'s build script gives nextpnr (``None``: its own)."""
    command = _NEXTPNR_COMMAND.search(_read_text(Path(directory) / SCRIPT))
    seed = command and _SEED_OPTION.search(command[0])
    return int(seed[1]) if seed else None


def stalled_log_name(seed):
    """The name a stalled route's nextpnr log is kept under, beside the bitstream, once the
    build places again: ``top.stalled-seed-2.tim``, ``top.stalled-seed-own.tim``."""
    return f"top.stalled-seed-{'own' if seed is None else seed}.tim"


def _reseed(directory, seed, stalled_seed):
    """Make the build script place with ``seed``, and write :data:`ROUTE_SCRIPT`: the same
    without Yosys, which places and routes the netlist already synthesised. The log of the
    route that stalled from ``stalled_seed`` is kept (:func:`stalled_log_name`)."""
    script = directory / SCRIPT
    text = _NEXTPNR_COMMAND.sub(
        lambda command: f"{_SEED_OPTION.sub('', command[0])} --seed {seed}", script.read_text())
    script.write_text(text)
    (directory / ROUTE_SCRIPT).write_text(_YOSYS_COMMAND.sub("", text))
    # The stalled route's log would be read as the new one's until nextpnr rewrites it.
    if (directory / "top.tim").exists():
        (directory / "top.tim").replace(directory / stalled_log_name(stalled_seed))
    (directory / "report.json").unlink(missing_ok=True)


def _place_until_routed(directory, label, start, progress, toolchain, placements,
                        stalled_seeds):
    """Run the build script; while the router stalls and ``placements`` allow, place and route
    the synthesised netlist again with the next seed."""
    script = SCRIPT
    try:
        for placement in range(1, placements + 1):
            try:
                return _run_watched(directory, label, start, progress, toolchain, script)
            except RoutingStalled as stall:
                stalled = script_seed(directory)
                stalled_seeds.append(stalled)
                if placement == placements or not _NEXTPNR_COMMAND.search(
                        _read_text(directory / SCRIPT)):
                    raise _stalled_error(label, stalled_seeds, stall.reason) from None
                seed = 1 if stalled is None else (stalled + 1) % (1 << 31)
                progress(f"[{time.monotonic() - start:5.0f}s] {label}: routing did not "
                         f"converge ({stall.reason}); placing again with seed {seed}")
                _reseed(directory, seed, stalled)
                script = ROUTE_SCRIPT
    finally:
        (directory / ROUTE_SCRIPT).unlink(missing_ok=True)


def _stalled_error(label, seeds, reason):
    named = ["nextpnr's own seed" if seed is None else f"seed {seed}" for seed in seeds]
    if len(named) == 1:
        tried = f"the placement of {named[0]}: {reason}"
    else:
        tried = (f"the placements of {', '.join(named[:-1])} and {named[-1]} (the last: "
                 f"{reason})")
    return RoutingStalled(f"building {label}: routing did not converge from {tried}; another "
                          f"--seed places the design differently", reason)


def _switched_to_rtlil(result, directory):
    """If Yosys failed :data:`REINTEGRATE_ASSERTION` on the design read as Verilog, rewrite
    ``top.ys`` to read the RTLIL (:func:`_read_rtlil_instead`) and return True: the caller
    runs the script again."""
    return (result.returncode != 0
            and REINTEGRATE_ASSERTION in _read_text(directory / "top.rpt")
            and _read_rtlil_instead(directory))


def _failure_tail(result, directory):
    """The tools' last lines, and Yosys's error, which a quiet Yosys logs to top.rpt alone."""
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
    errors = [line for line in _read_text(directory / "top.rpt").splitlines()
              if line.startswith("ERROR:")]
    if errors and errors[-1] not in tail:
        tail = f"{tail}\n{errors[-1]}".strip()
    return tail


@contextlib.contextmanager
def _signals_raise():
    """SIGTERM and SIGHUP raise :class:`SystemExit` meanwhile (in the main thread, where
    Python takes signals), so that the caller can stop the tools it started before the
    process ends, and its staging directory is removed, as on Ctrl-C.

    Yields ``armed``: call it once the tools can be stopped. A signal before that is held
    and raised then, so that none arrives while the tools are being started, when the
    caller could not yet stop them (a build told to stop then left them running)."""
    held = []
    state = {"armed": False}

    def armed():
        state["armed"] = True
        if held:
            raise SystemExit(128 + held[0])

    if threading.current_thread() is not threading.main_thread():
        yield armed
        return

    def leave(signum, frame):
        if not state["armed"]:
            held.append(signum)
            return
        raise SystemExit(128 + signum)

    before = {s: signal.signal(s, leave) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield armed
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _run_watched(directory, label, start, progress, toolchain, script=SCRIPT):
    """Run the build ``script``, reporting its stages meanwhile; stop it, raising
    :class:`RoutingStalled`, if the router stops converging."""
    done = threading.Event()
    stalled = []
    process = None

    def kill(how):
        try:
            os.killpg(process.pid, how)
        except ProcessLookupError:          # it had finished
            pass

    def stop(reason):
        stalled.append(reason)
        kill(signal.SIGTERM)

    watcher = threading.Thread(target=_watch, args=(directory, label, start, progress, done,
                                                    stop), daemon=True)
    try:
        with _signals_raise() as armed:
            # A session of its own, so that stopping the script stops the tools it started.
            process = subprocess.Popen(["sh", script], cwd=directory,
                                       env=_toolchain_env(toolchain), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True,
                                       start_new_session=True)
            watcher.start()
            armed()
            stdout, stderr = process.communicate()
    except BaseException:   # Ctrl-C, SIGTERM, SIGHUP: the tools are in a session of their own
        if process is not None:
            kill(signal.SIGKILL)
            process.wait()
        raise
    finally:
        done.set()
        if watcher.ident is not None:       # started
            watcher.join()
    if stalled:
        raise RoutingStalled(f"building {label}: routing did not converge: {stalled[0]}",
                             stalled[0])
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
