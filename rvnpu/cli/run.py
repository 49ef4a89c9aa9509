"""``rvnpu run``: an int8 ONNX model compiled, run on the simulated SoC and compared with
onnxruntime bit for bit.

Everything that can be refused (the model, the input file and its shape, the output paths)
is checked before the firmware is built or the simulator started, so a mistake costs no
minute-long simulator build.
"""

import io
import sys
from pathlib import Path

import numpy as np

from rvnpu.cli.compile import (add_model_arguments, check_model_file, compile_from_args,
                               describe, layer_table, output_directory)
from rvnpu.cli.options import soc_config
from rvnpu.compiler.onnx.ir import ModelError
from rvnpu.gen.files import write_file


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
    parser.add_argument("--save-outputs", type=Path, default=None, metavar="Y.npy",
                        help="save the model's outputs as the chip and the host computed them "
                             "(the dtype and shape onnxruntime gives; stacked along a new first "
                             "axis when --input is a stack)")
    parser.add_argument("--save-raw", type=Path, default=None, metavar="Q.npy",
                        help="save the integers the chip wrote (its last tensor, before the "
                             "host's dequantisation), stacked likewise")


#: First bytes of a .npy file and of a .npz archive (a zip file).
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def load_inputs(path, shape):
    """The float inputs in the ``.npy`` file ``path``: ``(inputs, stacked)``, ``stacked`` when
    the file holds several of the model's input ``shape`` along a new first axis rather than
    one of it. Anything else is a :class:`ModelError` saying what the file holds."""
    if path.is_dir():
        raise ModelError(f"the input {path} is a directory, not a .npy file")
    if not path.is_file():
        raise ModelError(f"no such input file: {path}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(_ZIP_MAGIC):
        raise ModelError(f"the input {path} is an .npz archive; give one array saved with "
                         f"numpy.save (a .npy file)")
    if magic != _NPY_MAGIC:
        raise ModelError(f"the input {path} is not a NumPy .npy file (numpy.save writes one)")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ModelError(f"the input {path} holds Python objects (an object array), not "
                             f"numbers") from None
        raise ModelError(f"cannot read the input {path}: {error}") from None
    except Exception as error:          # a truncated or damaged file
        raise ModelError(f"cannot read the input {path}: {error}") from None
    if x.dtype.kind not in "biuf":
        what = {"U": "strings", "S": "bytes", "c": "complex numbers", "V": "records",
                "M": "dates", "m": "time spans"}.get(x.dtype.kind, f"{x.dtype} values")
        raise ModelError(f"the input {path} holds {what} (dtype {x.dtype}), not real numbers")
    shape = tuple(int(n) for n in shape)
    with np.errstate(over="ignore"):        # float64 beyond float32's range: ±Inf, as ort
        if x.shape == shape:
            return [x.astype(np.float32)], False
        if x.shape[1:] == shape:
            if not x.shape[0]:
                raise ModelError(f"the input {path} holds no inputs (shape {list(x.shape)})")
            return list(x.astype(np.float32)), True
    stack = ", ".join(["N", *map(str, shape)])
    raise ModelError(f"the input {path} has shape {list(x.shape)}, but the model's input has "
                     f"shape {list(shape)}; give one of that shape or a stack of them, shape "
                     f"[{stack}]")


def _check_save_path(path, option):
    """Refuse a path to save to that is a directory or lies under a file."""
    if path is None:
        return
    if path.is_dir():
        raise ModelError(f"{option} {path} is a directory, not a file to write")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ModelError(f"{option} {path} cannot be written: {parent} is a file")
            break


def _save(path, arrays, stacked):
    """Write ``arrays`` (one an input) to ``path`` as a .npy file, as they were given."""
    data = np.stack(arrays) if stacked else arrays[0]
    buffer = io.BytesIO()
    np.save(buffer, data, allow_pickle=False)
    write_file(path, buffer.getvalue())
    return data


def _report_build(seconds):
    """Say on stderr why ``rvnpu run`` waits: the SoC's simulator is being built."""
    if seconds is None:
        print("building the SoC simulator (first run for this configuration, ~1 min)...",
              file=sys.stderr, flush=True)
    else:
        print(f"built the SoC simulator in {seconds:.0f} s", file=sys.stderr, flush=True)


def run(args):
    from rvnpu.flows.model import ort_run, ort_session, reference_output, run_model, same

    config = soc_config(args)
    if args.max_cycles < 1:
        raise ModelError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    check_model_file(args.model)
    output_directory(args)
    _check_save_path(args.save_outputs, "--save-outputs")
    _check_save_path(args.save_raw, "--save-raw")
    if args.save_outputs and args.save_raw and \
            args.save_outputs.resolve() == args.save_raw.resolve():
        raise ModelError(f"--save-outputs and --save-raw name the same file, {args.save_raw}")
    from rvnpu.compiler.onnx.importer import import_model
    shape = import_model(args.model).input_shape
    session = ort_session(args.model)
    inputs, stacked = load_inputs(args.input, shape)
    compiled = compile_from_args(args, config, min(len(inputs), 16))
    model = compiled.model
    results = run_model(compiled, inputs, max_cycles=args.max_cycles, on_build=_report_build)
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
    for path, arrays, what in ((args.save_outputs, [r.output for r in results], "outputs"),
                               (args.save_raw, [r.q_output for r in results],
                                "chip's integers")):
        if path is not None:
            data = _save(path, arrays, stacked)
            print(f"saved the {what} to {path} ({data.dtype} {list(data.shape)})")
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
