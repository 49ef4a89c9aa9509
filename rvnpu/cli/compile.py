"""``rvnpu compile``: an int8 ONNX model made into firmware for the SoC.

Also what ``rvnpu run`` shares with it: the model's arguments, the compile step and the layer
table both print.
"""

from pathlib import Path

from rvnpu.cli.options import add_engine_options, add_soc_options, soc_config
from rvnpu.compiler.onnx.ir import ConvLayer, GemmLayer, ModelError


HELP = "compile an int8 ONNX model into firmware for the SoC"
DESCRIPTION = (
    "Read an int8 ONNX model (QDQ or QOperator, as onnxruntime's quantisation writes them), "
    "plan its memory, generate model.c and model_data.h calling the firmware library, and "
    "build the firmware image.")

#: Models print their outputs: a fast UART keeps that from costing cycles, and this SoC is the
#: one the tests build.
UART_BAUD = 3_000_000


def add_model_arguments(parser):
    """The options ``rvnpu compile`` and ``rvnpu run`` share: the engine, the SoC, the model
    and the output directory."""
    add_engine_options(parser)
    add_soc_options(parser, uart_baud=UART_BAUD)
    parser.add_argument("model", type=Path, help="int8 ONNX model (QDQ or QOperator format)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="directory for model.c, model_data.h and the firmware, replaced "
                             "whole only when the build succeeds; a directory holding other "
                             "files is refused (default: build/onnx/<model name>)")


def add_arguments(parser):
    add_model_arguments(parser)
    parser.add_argument("--batch", type=int, default=1,
                        help="inputs the image holds room for, run one after the other "
                             "(default: 1)")


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


def describe(model):
    """One line: what goes in and comes out of the chip, and what the host does around it."""
    t_in, t_out = model.tensors[model.chip_input], model.tensors[model.chip_output]
    host_pre = ", ".join(op.op for op in model.pre) or "nothing"
    host_post = ", ".join(op.op for op in model.post) or "nothing"
    return (f"input {model.input_name} -> {t_in.dtype} {list(t_in.shape)} (host: {host_pre}); "
            f"output {t_out.dtype} {list(t_out.shape)} -> {model.output_name} "
            f"(host: {host_post})")


def check_model_file(path):
    """Refuse a model path that is not a file, before anything is read or built."""
    if path.is_dir():
        raise ModelError(f"{path} is a directory, not an ONNX model file")
    if not path.is_file():
        raise ModelError(f"no such model file: {path}")


def output_directory(args):
    """``-o`` or its default, checked (:func:`rvnpu.flows.model.check_output_directory`)."""
    from rvnpu.flows.model import check_output_directory
    out_dir = args.output or Path("build") / "onnx" / args.model.stem
    check_output_directory(out_dir)
    return out_dir


def compile_from_args(args, config, batch):
    """Compile ``args.model`` into ``args.output`` (or its default)."""
    from rvnpu.flows.model import compile_model
    check_model_file(args.model)
    return compile_model(args.model, output_directory(args), config, batch=batch)


def run(args):
    config = soc_config(args)
    compiled = compile_from_args(args, config, args.batch)
    model, plan, fw = compiled.model, compiled.plan, compiled.firmware
    print(f"{args.model}: {len(model.layers)} layers on the chip; {describe(model)}")
    print(layer_table(model))
    print(f"engine: {compiled.engine_layers} of {len(model.layers)} layers run from engine "
          f"command lists ({compiled.list_bytes} bytes), started by the core with one RUN a list")
    print(f"memory: {plan.weight_bytes} bytes of weights and constants, {plan.arena_bytes} "
          f"bytes of activations and workspaces (arena), image {fw.image_bytes} bytes; "
          f"{fw.ram_bytes_used} of {config.ram_bytes} bytes of RAM with the stack")
    for name in ("model.c", "model_data.h", "model.bin", "model.elf"):
        print(f"wrote {compiled.out_dir / name}")
    return 0
