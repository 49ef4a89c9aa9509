"""``rvnpu build``: the chip with its demo firmware as a bitstream for a board, and the table
of what it uses; the flow is :mod:`rvnpu.boards.flow`, the figures :mod:`rvnpu.boards.report`.
"""

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from rvnpu.boards.flow import DEFAULT_OUTPUT, DEMO_FIRMWARE, PLACEMENTS
from rvnpu.boards.toolchain import TOOL_CHOICES
from rvnpu.cli.options import (add_engine_options, add_memory_stage_option, add_shifter_option,
                               engine_options_given)
from rvnpu.spec.config import ConfigError


HELP = "synthesise, place and route the SoC for an FPGA board, with its resource table"


def add_arguments(parser):
    from rvnpu.boards import BOARDS
    add_engine_options(parser, "engine parameters (default: the board's design)",
                       show_defaults=False)
    parser.add_argument("--board", required=True, metavar="BOARD",
                        help=f"one of: {', '.join(BOARDS)}; or 'all' to build every board")
    parser.add_argument("--clock-mhz", type=float, default=None,
                        help="target clock in MHz (default: the board's)")
    parser.add_argument("--engine-clock-hz", type=int, default=None, metavar="HZ",
                        help="the engine's own clock, from a second output of the board's PLL "
                             "(ECP5, Gowin); 0 puts it on the SoC's clock (default: the "
                             "board's)")
    add_shifter_option(parser, default=None, default_text="the board's")
    add_memory_stage_option(parser, default=None, default_text="the board's")
    parser.add_argument("--bus-register", type=int, default=None, metavar="{0,1}",
                        help="1: the engine's bus requests pass a register before the RAM, "
                             "its reads answered and its writes landing a cycle later; needs "
                             "the engine on a clock of its own (default: the board's)")
    parser.add_argument("--firmware", type=Path, nargs="+", default=None, metavar="SOURCE",
                        help=f"C sources baked into RAM (default: the {DEMO_FIRMWARE} example)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help=f"output directory (default: {DEFAULT_OUTPUT}/BOARD)")
    parser.add_argument("--program", action="store_true",
                        help="program the board afterwards with its usual programmer")
    parser.add_argument("--gate-sim", action="store_true",
                        help="afterwards simulate the netlist Yosys wrote for the bitstream, with "
                             "the family's cell models, running the demo firmware in Verilator, "
                             "and check its self-test passes")
    parser.add_argument("--gate-sim-cycles", type=int, default=None, metavar="N",
                        help="clock cycles the gate-level simulation may take before it fails "
                             "(default: 30 million)")
    parser.add_argument("--tools", choices=TOOL_CHOICES, default="auto",
                        help="Yosys and nextpnr: native ones where all of the family's are on "
                             "PATH, else the yowasp wheels (auto, the default); or only one "
                             "kind. The report says which ran")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="nextpnr's placement seed (default: the board's, else nextpnr's "
                             "own); a design the router does not finish may route from "
                             "another placement")
    parser.add_argument("--placements", type=int, default=PLACEMENTS, metavar="N",
                        help="placements to try, each with the next seed, while the router "
                             f"stalls; the netlist is synthesised once (default: {PLACEMENTS})")
    parser.add_argument("--doc", type=Path, default=None, metavar="PATH",
                        help="afterwards write the table of every built board to PATH "
                             "(docs/boards.md)")


def _board(board, args):
    """The board with the SoC and flow options given on the command line."""
    if args.shifter is not None:
        board = replace(board, shifter=args.shifter)
    if args.memory_stage is not None:
        board = replace(board, memory_stage=args.memory_stage)
    if args.seed is not None:
        board = replace(board, placement_seed=args.seed)
    if args.bus_register is not None:
        if args.bus_register not in (0, 1):
            raise ConfigError(f"--bus-register must be 1 or 0, not {args.bus_register}")
        board = replace(board, bus_register=bool(args.bus_register))
    return board


def _engine(board, args):
    """The board's design with the options given on the command line."""
    return replace(board.engine, **engine_options_given(args))


def run(args):
    """``rvnpu build``; returns the exit status. Bad options raise :class:`ConfigError`
    before anything is built."""
    from rvnpu.boards import BOARDS, board as find_board
    from rvnpu.boards.flow import BuildError, DoesNotFit, build_board, check_clock, \
        failure_path, platform_toolchain, record_failure
    from rvnpu.boards.report import format_table

    names = list(BOARDS) if args.board == "all" else [args.board]
    if args.seed is not None and not 0 <= args.seed < 1 << 31:
        raise ConfigError(f"--seed must be from 0 to {(1 << 31) - 1}, not {args.seed}")
    if not 1 <= args.placements <= 100:
        raise ConfigError(f"--placements must be from 1 to 100, not {args.placements}")
    chosen = [_board(find_board(name), args) for name in names]
    if args.gate_sim_cycles is not None and args.gate_sim_cycles < 1:
        raise ConfigError(f"--gate-sim-cycles must be at least 1, not {args.gate_sim_cycles}")
    plans = []
    for b in chosen:
        clock_hz = b.clock_hz if args.clock_mhz is None else round(args.clock_mhz * 1e6)
        if args.clock_mhz is not None and not 1 <= args.clock_mhz <= 500:
            raise ConfigError(f"--clock-mhz must be from 1 to 500, not {args.clock_mhz:g}")
        engine_clock_hz = (b.engine_clock_hz if args.engine_clock_hz is None
                           else args.engine_clock_hz)
        if engine_clock_hz and engine_clock_hz < 0:
            raise ConfigError(f"--engine-clock-hz must be positive (or 0: the SoC's clock), "
                              f"not {engine_clock_hz}")
        if args.bus_register and not b.dual_port_ram(engine_clock_hz):
            raise ConfigError(f"--bus-register needs the engine on a clock of its own "
                              f"(--engine-clock-hz); {b.name}'s RAM has one port for it")
        # The SoC's own checks (a second clock needs block RAM ...), before any PLL search.
        b.soc_config(_engine(b, args), clock_hz, engine_clock_hz)
        check_clock(b, clock_hz, engine_clock_hz)
        out = (args.output / b.name if args.output and len(chosen) > 1
               else args.output or DEFAULT_OUTPUT / b.name)
        # Missing native tools (--tools native) are refused before anything is built.
        toolchain = platform_toolchain(b.platform(), args.tools)
        plans.append((b, _engine(b, args), clock_hz, engine_clock_hz or 0, out, toolchain))
    status = 0
    for b, engine, clock_hz, engine_clock_hz, out, toolchain in plans:
        try:
            result = build_board(b, engine, clock_hz=clock_hz, engine_clock_hz=engine_clock_hz,
                                 out_dir=out,
                                 firmware=args.firmware, progress=_progress,
                                 netlist=args.gate_sim, toolchain=toolchain,
                                 placements=args.placements)
        except BuildError as error:
            print(f"rvnpu: error: {error}", file=sys.stderr)
            if isinstance(error, DoesNotFit):
                record_failure(out, b, engine, clock_hz, error)
            status = 1
            continue
        failure_path(out).unlink(missing_ok=True)
        print(format_table(result))
        for domain in result["clock_domains"]:
            if domain["met"] is False:
                option = "--engine-clock-hz" if domain["name"] == "engine" else "--clock-mhz"
                print(f"rvnpu: warning: the {domain['name']} domain's Fmax "
                      f"{domain['fmax_mhz']:.1f} MHz is below its {domain['target_mhz']:g} MHz "
                      f"target; the board may not work at that clock (try {option})",
                      file=sys.stderr)
        print(f"\nwrote {out / ('top' + b.bitstream)} and {out / 'report.json'}")
        if args.gate_sim:
            status = max(status, _gate_sim(b, engine, clock_hz, engine_clock_hz, out, args))
        if args.program:
            status = max(status, _program(b, out / ("top" + b.bitstream)))
    if args.doc:
        from rvnpu.boards.flow import saved_reports
        from rvnpu.boards.report import TABLE_COLUMNS
        from rvnpu.gen.boards_doc import write_boards_doc
        root = args.output if args.output and len(chosen) > 1 else DEFAULT_OUTPUT
        print(f"wrote {write_boards_doc(args.doc, saved_reports(root), TABLE_COLUMNS)}")
    return status


def _gate_sim(board, engine, clock_hz, engine_clock_hz, out, args):
    """Simulate the netlist just built; prints the verdict, returns the exit status."""
    from rvnpu.boards.flow import NETLIST
    from rvnpu.boards.gate_sim import DEFAULT_MAX_CYCLES, GateSimError, gate_simulate
    images = sorted((out / "firmware").glob("*.bin"))
    try:
        result = gate_simulate(board, board.soc_config(engine, clock_hz, engine_clock_hz),
                               out / "gate_sim",
                               netlist=out / NETLIST, image=images[0],
                               max_cycles=args.gate_sim_cycles or DEFAULT_MAX_CYCLES,
                               progress=_progress)
    except GateSimError as error:
        print(f"rvnpu: error: gate-level simulation of {board.name}: {error}", file=sys.stderr)
        return 1
    figures = (f"{result.cycles:,} cycles in {result.seconds:.0f} s "
               f"(Verilator build {result.build_seconds:.0f} s)")
    if result.passed:
        print(f"gate-level simulation of {board.name}: PASS, the demo's self-test passed on "
              f"the netlist after {figures}")
        return 0
    print(f"rvnpu: error: gate-level simulation of {board.name}: FAIL, {result.reason} "
          f"({figures}; UART output in {out / 'gate_sim' / 'uart.txt'})", file=sys.stderr)
    return 1


def _progress(text):
    print(text, file=sys.stderr, flush=True)


def _program(board, bitstream):
    command = board.program_command(str(bitstream))
    if shutil.which(command[0]) is None:
        print(f"{command[0]} is not installed; to program the board run:\n  "
              + " ".join(command))
        return 0
    print("running " + " ".join(command), flush=True)
    return subprocess.run(command).returncode
