"""``rvnpu sim``: firmware on the whole simulated SoC, or one GEMM on the engine alone.

``rvnpu sim FILE.c`` is short for ``rvnpu sim firmware FILE.c`` (see :data:`WORKLOADS`).
"""

import argparse
import sys
from pathlib import Path

from rvnpu.cli.options import (add_engine_options, add_simulator_option, add_soc_options,
                               engine_config, soc_config)
from rvnpu.spec.config import ConfigError
from rvnpu.spec.requant import MODE_NAMES


HELP = "simulate firmware on the SoC, or a GEMM on the engine"

#: The words after ``rvnpu sim`` that are not a firmware source: anything else is one, and
#: ``firmware`` is put before it.
WORKLOADS = ("gemm", "firmware", "-h", "--help")


def add_arguments(parser):
    workloads = parser.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    g = workloads.add_parser("gemm", help="a random requantised GEMM of any shape")
    add_engine_options(g)
    g.add_argument("--m", type=int, default=32, help="rows of A and C (default: 32)")
    g.add_argument("--n", type=int, default=32, help="columns of B and C (default: 32)")
    g.add_argument("--k", type=int, default=32, help="the reduction dimension (default: 32)")
    g.add_argument("--flow", choices=("ws", "os"), default="ws",
                   help="dataflow used for this GEMM (default: ws)")
    g.add_argument("--requant", choices=(*MODE_NAMES, "raw"), default="tflite",
                   help="requantisation: gemmlowp, ONNX Runtime, or raw int32 (default: tflite)")
    g.add_argument("--relu", action="store_true", help="clamp outputs at zero")
    g.add_argument("--seed", type=int, default=0, help="random seed of the operands")
    g.add_argument("--waves", action="store_true", help="record a waveform")
    add_simulator_option(g)
    g.set_defaults(run_workload=run_gemm)

    f = workloads.add_parser(
        "firmware",
        help="build C firmware and run it on the whole SoC (`rvnpu sim FILE.c` for short)",
        description="Build the firmware with zig cc, run it on the SoC in Verilator until it "
                    "exits, and print its UART output, exit code, cycles and wall time. "
                    "The exit status is the firmware's exit code; a firmware that does not "
                    "exit within --max-cycles is stopped and reported with where the core "
                    "and the engine were, exit status 1.")
    add_engine_options(f)
    add_soc_options(f)
    f.add_argument("program", nargs="*", type=Path, metavar="SOURCE",
                   help="C or assembly sources, or one built .bin RAM image")
    f.add_argument("--example", metavar="NAME", default=None,
                   help="a firmware example shipped with rvnpu instead of SOURCE "
                        "(`rvnpu examples` lists them)")
    f.add_argument("-D", dest="define", action="append", type=_define, default=[],
                   metavar="NAME[=VALUE]", help="preprocessor definition for the build")
    f.add_argument("--max-cycles", type=int, default=20_000_000,
                   help="stop after this many cycles (default: 20000000)")
    f.add_argument("--waves", action="store_true",
                   help="record a waveform (FST; VCD where Verilator lacks lz4)")
    f.set_defaults(run_workload=run_firmware)


def run(args):
    return args.run_workload(args)


def _define(text):
    name, _, value = text.partition("=")
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=VALUE, not {text!r}")
    return name, (value if "=" in text else None)


# -- rvnpu sim gemm -------------------------------------------------------------------------------

def run_gemm(args):
    from rvnpu.sim.rtl import RtlEngine
    from rvnpu.sim.workloads import random_gemm

    config = engine_config(args)
    for name in ("m", "n", "k"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be at least 1, not {getattr(args, name)}")
    problem = random_gemm(args.m, args.n, args.k, config=config, dataflow=args.flow,
                          requant=args.requant, relu=args.relu, seed=args.seed)
    engine = RtlEngine(config, simulator=args.simulator)
    (got, result), = engine.run_gemms([problem.job], waves=args.waves)
    match = bool((got == problem.expected).all())
    util = problem.macs / (result.cycles * config.rows * config.cols)
    print(f"{args.m}x{args.n}x{args.k} GEMM, {args.flow}, {args.requant} requantisation, "
          f"seed {args.seed}, on a {config.rows}x{config.cols} array ({args.simulator})")
    print(f"cycles {result.cycles}, array busy {result.active_cycles}, "
          f"utilisation {100 * util:.1f}%")
    if args.waves:
        print(f"waves in {engine.build_dir}")
    if match:
        print("result matches the golden model bit for bit")
        return 0
    bad = (got != problem.expected).nonzero()
    print(f"MISMATCH: {len(bad[0])} elements differ; first at [{bad[0][0]}, {bad[1][0]}]: "
          f"got {got[bad[0][0], bad[1][0]]}, expected {problem.expected[bad[0][0], bad[1][0]]}")
    return 1


# -- rvnpu sim firmware ---------------------------------------------------------------------------

def _program(args):
    """The sources (or the ``.bin`` image) to run: one path, or a list of several."""
    if args.example is not None:
        if args.program:
            raise ConfigError("give firmware sources or --example NAME, not both")
        from rvnpu.firmware.build import find_example
        return find_example(args.example)
    if not args.program:
        raise ConfigError("no firmware given: name C or assembly sources, a .bin image, or "
                          "--example NAME")
    for program in args.program:
        if not program.is_file():
            raise ConfigError(f"no such firmware file: {program}")
    if len(args.program) > 1 and any(p.suffix == ".bin" for p in args.program):
        raise ConfigError("a .bin image runs alone, without other sources")
    return args.program[0] if len(args.program) == 1 else args.program


def run_firmware(args):
    """Build, run, print the UART output and a summary. The exit status is the firmware's
    exit code (masked to 0..255), or 1 when an example's checksums differ from its golden
    model's. When the cycle limit (the watchdog) comes first, :class:`FirmwareHang` says where
    the core was (its pc, symbolised from the ELF) and the engine's status word: one error
    line, exit status 1."""
    config = soc_config(args)
    if args.max_cycles < 1:
        raise ConfigError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    program = _program(args)
    defines = dict(args.define)

    from rvnpu.flows import firmware_run
    firmware, result = firmware_run.run_firmware(program, config=config, defines=defines,
                                                 max_cycles=args.max_cycles, waves=args.waves)
    out = sys.stdout
    text = result.text
    out.write(text if text.endswith("\n") or not text else text + "\n")
    summary = format_run(result, firmware)
    verdict = firmware_run.check_example(program, config, defines, text)
    if verdict is not None:
        summary += "\n" + verdict[1]
    out.write("-" * 40 + "\n" + summary + "\n")
    out.flush()
    result.raise_if_hung(args.max_cycles, firmware_run.symboliser(firmware))
    if verdict is not None and not verdict[0]:
        return 1
    return result.exit_code & 0xFF


def format_run(run, firmware=None):
    """The summary lines ``rvnpu sim`` prints after the UART output."""
    lines = []
    if firmware is not None:
        lines.append(f"firmware {firmware.name}: {firmware.image_bytes} bytes, "
                     f"{firmware.ram_bytes_used} of {firmware.config.ram_bytes} bytes of RAM "
                     f"with stack")
    if run.timed_out:
        lines.append(f"did not exit within {run.cycles} cycles")
    else:
        lines.append(f"exit code {run.exit_code}")
    lines.append(f"{run.cycles} cycles in {run.wall_time_s:.2f} s "
                 f"({run.cycles_per_second / 1e6:.2f} M cycles/s; "
                 f"{run.total_time_s:.2f} s in all"
                 + (f", {run.build_time_s:.1f} s of it building" if run.build_time_s else "")
                 + ")")
    if run.waves_path is not None:
        lines.append(f"waves in {run.waves_path}")
    return "\n".join(lines)
