"""``rvnpu compile`` and ``rvnpu run``: the command-line face of :mod:`rvnpu.onnx`."""

from pathlib import Path

import numpy as np

from rvnpu.onnx.ir import ConvLayer, GemmLayer, ModelError


__all__ = ["add_compile_arguments", "add_run_arguments", "run_compile", "run_run",
           "layer_table"]


def _common(parser):
    parser.add_argument("model", type=Path, help="int8 ONNX model (QDQ or QOperator format)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="directory for model.c, model_data.h and the firmware "
                             "(default: build/onnx/<model name>)")


def add_compile_arguments(parser):
    _common(parser)
    parser.add_argument("--batch", type=int, default=1,
                        help="inputs the image holds room for, run one after the other "
                             "(default: 1)")


def add_run_arguments(parser):
    _common(parser)
    parser.add_argument("--input", type=Path, required=True, metavar="X.npy",
                        help="float input: one of the model's input shape, or several "
                             "stacked along a new first axis")
    parser.add_argument("--max-cycles", type=int, default=200_000_000,
                        help="stop a simulation after this many cycles (default: 200000000)")


def _out_dir(args):
    return args.output or Path("build") / "onnx" / args.model.stem


def _macs(model, layer):
    if isinstance(layer, GemmLayer):
        return model.tensors[layer.inputs[0]].shape[0] * layer.weights.size
    if isinstance(layer, ConvLayer):
        out = model.tensors[layer.output]
        return out.shape[2] * out.shape[3] * layer.weights.size
    return 0


def layer_table(model, cycles=None):
    """The layers as text: name, operator, output, MACs and, after a run, cycles."""
    rows = [("#", "node", "operator", "output", "MACs") + (("cycles",) if cycles else ())]
    for i, layer in enumerate(model.layers):
        t = model.tensors[layer.output]
        row = (str(i), layer.name[:28], layer.op, f"{t.dtype} {list(t.shape)}",
               str(_macs(model, layer)))
        rows.append(row + ((str(cycles[i]),) if cycles else ()))
    if cycles:
        rows.append(("", "total", "", "", str(sum(_macs(model, l) for l in model.layers)),
                     str(cycles[-1])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(c.ljust(w) if i < 4 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


def _describe(model):
    t_in, t_out = model.tensors[model.chip_input], model.tensors[model.chip_output]
    host_pre = ", ".join(op.op for op in model.pre) or "nothing"
    host_post = ", ".join(op.op for op in model.post) or "nothing"
    return (f"input {model.input_name} -> {t_in.dtype} {list(t_in.shape)} (host: {host_pre}); "
            f"output {t_out.dtype} {list(t_out.shape)} -> {model.output_name} "
            f"(host: {host_post})")


def _compile(args, config, batch):
    from rvnpu.onnx.runner import compile_model
    if not args.model.is_file():
        raise ModelError(f"no such model file: {args.model}")
    return compile_model(args.model, _out_dir(args), config, batch=batch)


def run_compile(args, config):
    compiled = _compile(args, config, args.batch)
    model, plan, fw = compiled.model, compiled.plan, compiled.firmware
    print(f"{args.model}: {len(model.layers)} layers on the chip; {_describe(model)}")
    print(layer_table(model))
    print(f"memory: {plan.weight_bytes} bytes of weights and constants, {plan.arena_bytes} "
          f"bytes of activations and workspaces (arena), image {fw.image_bytes} bytes; "
          f"{fw.ram_bytes_used} of {config.ram_bytes} bytes of RAM with the stack")
    for name in ("model.c", "model_data.h", "model.bin", "model.elf"):
        print(f"wrote {compiled.out_dir / name}")
    return 0


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


def run_run(args, config):
    from rvnpu.onnx.runner import ort_run, ort_session, reference_output, run_model, same

    if args.max_cycles < 1:
        raise ModelError(f"--max-cycles must be at least 1, not {args.max_cycles}")
    if not args.model.is_file():
        raise ModelError(f"no such model file: {args.model}")
    from rvnpu.onnx.importer import import_model
    inputs = _load_inputs(args.input, import_model(args.model).input_shape)
    session = ort_session(args.model)
    compiled = _compile(args, config, min(len(inputs), 16))
    model = compiled.model
    results = run_model(compiled, inputs, max_cycles=args.max_cycles)
    print(f"{args.model}: {len(model.layers)} layers on the chip; {_describe(model)}")
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
