"""``rvnpu bench``: the benchmarks, each writing its figures to a JSON file.

``rvnpu bench engine`` times GEMMs on the engine's RTL (:mod:`rvnpu.bench.engine`);
``rvnpu bench soc`` measures the whole SoC (:mod:`rvnpu.bench.soc`, which holds its own
options and report); ``rvnpu bench models`` runs whole networks against the roofline
(:mod:`rvnpu.bench.models`).
"""

import sys
from pathlib import Path

from rvnpu.bench import soc as bench_soc
from rvnpu.bench.model_zoo import model_names
from rvnpu.bench.models import MAX_CYCLES, SIM_RAM_BYTES
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

    b = benchmarks.add_parser(
        "models", help="networks (random weights) on the SoC against the roofline",
        description="Build the networks with seeded random weights (the MLPerf Tiny "
                    "architectures, not MLPerf results), quantise them with onnxruntime, "
                    "compile and run each on the simulated SoC, compare with onnxruntime and "
                    "report cycles against the roofline; writes models.json and "
                    "models_roofline.png.")
    add_engine_options(b, title="engine parameters (default: rvnpu run's engine, with "
                                f"--mem-bytes {SIM_RAM_BYTES})", show_defaults=False)
    b.add_argument("--models", default=",".join(model_names()), metavar="NAMES",
                   help=f"comma-separated networks (default: all: "
                        f"{', '.join(model_names())})")
    b.add_argument("--out", type=Path, default=Path("build/bench"), metavar="DIR",
                   help="directory for models.json, models_roofline.png and each network's "
                        "ONNX models and firmware (default: build/bench)")
    b.add_argument("--seed", type=int, default=0, help="weights, calibration and input seed "
                                                        "(default: 0)")
    b.add_argument("--max-cycles", type=int, default=MAX_CYCLES,
                   help=f"a model still running after this many cycles is reported as timed "
                        f"out (default: {MAX_CYCLES})")
    b.set_defaults(run_benchmark=run_models)


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


def run_models(args):
    from rvnpu.bench.models import (bench_config, bench_models, check_names, format_table,
                                    plot_roofline, write_results)
    from rvnpu.compiler.onnx.ir import ModelError

    names = check_names([n.strip() for n in args.models.split(",") if n.strip()])
    if args.max_cycles < 1:
        raise ModelError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    config = bench_config(engine_config(args, mem_bytes=SIM_RAM_BYTES))
    records = bench_models(names, args.out / "models", seed=args.seed, config=config,
                           max_cycles=args.max_cycles,
                           progress=lambda text: print(text, file=sys.stderr))
    print(format_table(records))
    print(f"\nwrote {write_results(records, args.out / 'models.json', config, seed=args.seed)}")
    print(f"wrote {plot_roofline(records, args.out / 'models_roofline.png')}")
    # Refusals and time-outs are figures; a wrong answer or a broken run is a failure.
    return 1 if any(r.status in ("mismatch", "failed") for r in records) else 0
