"""``rvnpu demo``: the default engine built and checked on requantised GEMMs."""

from rvnpu.cli.options import add_engine_options, add_simulator_option, engine_config


HELP = "build the default engine and run requantised GEMMs in simulation"


def add_arguments(parser):
    add_engine_options(parser)
    add_simulator_option(parser)


def run(args):
    from rvnpu.flows.demo import run_demo
    return 0 if run_demo(engine_config(args), simulator=args.simulator) else 1
