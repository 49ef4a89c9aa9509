"""``rvnpu run``: an int8 ONNX model compiled, run on the simulated SoC and compared with
onnxruntime bit for bit."""

from pathlib import Path

import numpy as np

from rvnpu.cli.compile import add_model_arguments, compile_from_args, describe, layer_table
from rvnpu.cli.options import soc_config
from rvnpu.compiler.onnx.ir import ModelError


HELP = ("compile an int8 ONNX model, run it on the simulated SoC and compare with "
        "onnxruntime")
DESCRIPTION = (
    "Compile the model, simulate it on the SoC for each input, and print its output, cycles "
    "per layer and in total, and whether it matches onnxruntime (CPU execution provider, "
    "default session options) bit for bit. Exit status 1 on a mismatch.")


def add_arguments(parser):
    add_model_arguments(parser)
    parser.add_argument("--input", type=Path, required=True, metavar="X.npy",
                        help="float input: one of the model's input shape, or several "
                             "stacked along a new first axis")
    parser.add_argument("--max-cycles", type=int, default=200_000_000,
                        help="stop a simulation after this many cycles (default: 200000000)")


def _load_inputs(path, shape):
    if not path.is_file():
        raise ModelError(f"no such input file: {path}")
    try:
        x = np.load(path)
    except Exception as error:
        raise ModelError(f"cannot read {path}: {error}") from None
    size = int(np.prod(shape))
    if x.size % size:
        raise ModelError(f"{path} holds {x.size} values, not a multiple of the input's {size} "
                         f"(shape {list(shape)})")
    return list(np.asarray(x, np.float32).reshape(-1, *shape))


def run(args):
    from rvnpu.flows.model import ort_run, ort_session, reference_output, run_model, same

    config = soc_config(args)
    if args.max_cycles < 1:
        raise ModelError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    if not args.model.is_file():
        raise ModelError(f"no such model file: {args.model}")
    from rvnpu.compiler.onnx.importer import import_model
    inputs = _load_inputs(args.input, import_model(args.model).input_shape)
    session = ort_session(args.model)
    compiled = compile_from_args(args, config, min(len(inputs), 16))
    model = compiled.model
    results = run_model(compiled, inputs, max_cycles=args.max_cycles)
    print(f"{args.model}: {len(model.layers)} layers on the chip; {describe(model)}")
    mean = [int(round(np.mean([r.layer_cycles[i] for r in results])))
            for i in range(len(model.layers))]
    mean.append(int(round(np.mean([r.cycles for r in results]))))
    print(("cycles per layer" + (f" (mean of {len(results)} inputs)" if len(results) > 1
                                 else "") + ":"))
    print(layer_table(model, mean))
    mismatches = 0
    for i, (x, r) in enumerate(zip(inputs, results)):
        want = ort_run(session, model, x)
        ok = same(r.output, want)
        mismatches += not ok
        if len(results) <= 8 or not ok:
            text = np.array2string(np.asarray(r.output).ravel(), precision=5, max_line_width=92,
                                   threshold=64)
            print(f"output {i}: {text}" + ("" if ok else "  <- differs from onnxruntime"))
            if not ok:
                chip_is_model = np.array_equal(r.q_output, reference_output(model, x))
                print(f"  onnxruntime: {np.asarray(want).ravel()}")
                print("  the chip agrees with rvnpu's numpy model of it, so the model of "
                      "onnxruntime's arithmetic is what differs" if chip_is_model else
                      "  the chip also differs from rvnpu's numpy model of it")
    print(f"{results[0].cycles if len(results) == 1 else mean[-1]} cycles an inference "
          f"({config.clock_hz / max(mean[-1], 1):.0f} inferences/s at "
          f"{config.clock_hz / 1e6:g} MHz)")
    if mismatches:
        print(f"MISMATCH: {mismatches} of {len(results)} outputs differ from onnxruntime "
              f"(CPU execution provider, default session options)")
        return 1
    print(f"{'all ' + str(len(results)) + ' outputs match' if len(results) > 1 else 'matches'}"
          f" onnxruntime exactly, bit for bit (CPU execution provider, default session "
          f"options)")
    return 0
