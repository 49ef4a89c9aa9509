"""``rvnpu generate``: the engine's (or the whole SoC's) Verilog and what describes it."""

from pathlib import Path

from rvnpu.cli.options import add_engine_options, add_soc_options, engine_config, soc_config


HELP = "write the matrix engine's Verilog, JSON description and C header"


def add_arguments(parser):
    add_engine_options(parser)
    add_soc_options(parser)
    parser.add_argument("-o", "--output", type=Path, default=Path("build"),
                        help="output directory (default: build)")
    parser.add_argument("--soc", action="store_true",
                        help="the whole SoC instead: Verilog, JSON, C headers, linker fragment "
                             "and memory map")


def run(args):
    from rvnpu.gen.verilog import generate_engine, generate_soc
    if args.soc:
        paths = generate_soc(soc_config(args), args.output)
    else:
        paths = generate_engine(engine_config(args), args.output)
    for path in paths:
        print(f"wrote {path}")
    return 0
