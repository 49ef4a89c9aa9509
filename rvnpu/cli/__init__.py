"""The ``rvnpu`` command line.

Each subcommand is a module of this package, as Glasgow's applets are: a docstring, ``HELP``
(its line in ``rvnpu --help``), an optional ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args)`` returning the exit status. What several share (the engine and SoC options, the
error reporting) is in :mod:`rvnpu.cli.options`.
"""

import argparse
import importlib
import sys

from rvnpu.cli.options import run_reporting_errors


__all__ = ["main", "make_parser", "SUBCOMMANDS"]

#: The subcommands, in the order ``rvnpu --help`` lists them: ``rvnpu.cli.<name>``.
SUBCOMMANDS = ("generate", "demo", "sim", "examples", "compile", "run", "digits", "bench",
               "fuzz", "build", "report", "formal", "lab", "mutate")


def make_parser():
    parser = argparse.ArgumentParser(
        prog="rvnpu", description="Generate, simulate and measure the rvnpu inference chip.")
    from rvnpu import __version__
    parser.add_argument("--version", action="version", version=f"rvnpu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        command = importlib.import_module(f"rvnpu.cli.{name}")
        p = sub.add_parser(name, help=command.HELP,
                           description=getattr(command, "DESCRIPTION", None))
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv=None):
    """The ``rvnpu`` console script; returns the exit status."""
    from rvnpu.cli import sim
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "sim" and argv[1] not in sim.WORKLOADS:
        argv.insert(1, "firmware")
    args = parser.parse_args(argv)
    return run_reporting_errors(parser, args)
