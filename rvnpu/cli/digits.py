"""``rvnpu digits``: the end-to-end demo, from training to the simulated chip."""

from pathlib import Path

from rvnpu.cli.options import add_engine_options, add_soc_options, soc_config
from rvnpu.spec.config import ConfigError


HELP = ("demo: train digit classifiers (MLP, CNN), quantise them with onnxruntime and run "
        "them on the simulated chip")
DESCRIPTION = (
    "Train an MLP and a small CNN on scikit-learn's 8x8 digits, export them to ONNX, quantise "
    "them with onnxruntime's quantize_static, compile and run them on the simulated SoC, and "
    "report the accuracy of the float models, of onnxruntime int8 and of the chip (whose "
    "outputs must equal onnxruntime's bit for bit) and the cycles per inference. Exit status 1 "
    "if any output differs.")

#: Models print their outputs: a fast UART keeps that from costing cycles, and this SoC is the
#: one the tests build (as for ``rvnpu compile`` and ``rvnpu run``).
UART_BAUD = 3_000_000


def add_arguments(parser):
    add_engine_options(parser)
    add_soc_options(parser, uart_baud=UART_BAUD)
    parser.add_argument("--count", type=int, default=None,
                        help="test images to run on the chip (default: all 360)")
    parser.add_argument("-o", "--output", type=Path, default=Path("build/digits"),
                        help="directory for the models and firmware (default: build/digits)")


def run(args):
    from rvnpu.flows.digits import format_results, run_digits
    config = soc_config(args)
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count must be at least 1, not {args.count}")
    results = run_digits(args.output, count=args.count, config=config)
    print(format_results(results, config.clock_hz))
    return 0 if all(r.identical == r.chip_images for r in results) else 1
