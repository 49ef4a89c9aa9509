"""``rvnpu bench``: the benchmarks, each writing its figures to a JSON file.

``rvnpu bench engine`` times GEMMs on the engine's RTL (:mod:`rvnpu.bench.engine`);
``rvnpu bench soc`` measures the whole SoC (:mod:`rvnpu.bench.soc`, which holds its own
options and report).
"""

import sys
from pathlib import Path

from rvnpu.bench import soc as bench_soc
from rvnpu.cli.options import add_engine_options, add_simulator_option, engine_config, \
    int_list, word_list
from rvnpu.spec.requant import MODE_NAMES


HELP = "benchmarks that write their figures to a file"


def add_arguments(parser):
    benchmarks = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    b = benchmarks.add_parser("engine", help="cycles and utilisation of square GEMMs, OS and WS")
    add_engine_options(b)
    b.add_argument("--sizes", type=int_list, default=[16, 64, 128],
                   help="GEMM sizes n for n x n x n (default: 16,64,128)")
    b.add_argument("--arrays", type=int_list, default=[4, 8, 16],
                   help="square array sizes (default: 4,8,16)")
    b.add_argument("--dataflows", type=word_list(("os", "ws")), default=["os", "ws"],
                   help="dataflows to measure (default: os,ws)")
    b.add_argument("--requant", choices=(*MODE_NAMES, "raw"), default="tflite")
    b.add_argument("-o", "--output", type=Path, default=Path("build/bench/engine.json"),
                   help="JSON results file (default: build/bench/engine.json)")
    add_simulator_option(b)
    b.set_defaults(run_benchmark=run_engine)

    b = benchmarks.add_parser("soc", help="firmware GEMM utilisation, SoC simulation speed and "
                                          "the core's iCE40 size")
    bench_soc.add_arguments(b)
    b.set_defaults(run_benchmark=bench_soc.run)


def run(args):
    return args.run_benchmark(args)


def run_engine(args):
    from rvnpu.bench.engine import bench_engine, format_table, write_results

    base = engine_config(args)
    records = bench_engine(sizes=args.sizes, arrays=args.arrays, dataflows=args.dataflows,
                           base=base, requant=args.requant, simulator=args.simulator,
                           progress=lambda text: print(text, file=sys.stderr))
    print(format_table(records))
    path = write_results(records, args.output, base)
    print(f"\nwrote {path}")
    return 0
