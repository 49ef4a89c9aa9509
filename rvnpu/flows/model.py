"""Compile an ONNX model to firmware, run it on the simulated SoC, compare with onnxruntime.

One firmware image serves every input: ``model.c`` reads its inputs from an initialised array,
so :func:`run_model` writes each batch of quantised inputs into the built image at that
array's address (read from the ELF's symbol table) and simulates the image again, without
compiling. The SoC's Verilator model is built once per SoC configuration and cached.
"""

import dataclasses
import math
import re
import struct
from pathlib import Path

import numpy as np

from rvnpu.spec.memory_map import RAM_BASE, SocConfig
from rvnpu.gen.files import replace_directory
from rvnpu.compiler.gemm import GemmError
from rvnpu.compiler.onnx.codegen import generate_c, input_bytes, input_storage
from rvnpu.compiler.onnx.importer import import_model
from rvnpu.compiler.onnx.ir import ModelError
from rvnpu.compiler.onnx.planner import ALIGN, plan_memory
from rvnpu.compiler.onnx.reference import apply_post, quantize_input, run_layers
from rvnpu.firmware.elf import elf_symbols, function_finder


__all__ = ["CompiledModel", "ChipResult", "compile_model", "check_output_directory",
           "run_model", "ort_session", "ort_run", "DEFAULT_SOC", "QDQ_INT8_FUSION"]

#: The SoC ``rvnpu run`` simulates by default: the default engine and a fast UART, so that
#: printing outputs costs few cycles (and the same Verilator build as the SoC tests).
DEFAULT_SOC = SocConfig(uart_baud=3_000_000)


@dataclasses.dataclass
class CompiledModel:
    """A model built into firmware: the IR, the memory plan and the image."""
    model: object
    plan: object
    firmware: object
    out_dir: Path
    batch: int
    inputs_addr: int
    count_addr: int
    config: SocConfig
    input_border: tuple = (0, 0, 0, 0)     # pixels around the input the host fills
    engine_layers: int = 0                  # layers that run from command lists
    list_bytes: int = 0                     # bytes of those lists

    @property
    def input_stride(self):
        return -(-input_bytes(self.model, self.input_border) // ALIGN) * ALIGN


@dataclasses.dataclass
class ChipResult:
    """One inference on the chip: the integers it computed, the host's float tail applied to
    them, and cycles a layer and in all (core clock, from the core's cycle counter)."""
    q_output: np.ndarray
    output: np.ndarray
    layer_cycles: list
    cycles: int
    sleep_cycles: int = 0       # of ``cycles``, those the core spent waiting in WFI


def compile_model(path, out_dir, config=DEFAULT_SOC, *, batch=1):
    """Import, plan and generate the C program of an ONNX model and build it for ``config``.

    Raises :class:`ModelError` when the model has what the chip cannot run, or when it does
    not fit the RAM (saying how many bytes are missing). The files are made in a folder beside
    ``out_dir`` that replaces it only when all of them are built, so a refusal leaves an
    earlier build there as it was; a directory holding anything but an earlier build (no
    ``model.c``) is refused rather than replaced.
    """
    from rvnpu.firmware.build import FirmwareError, build_firmware

    if config.engine.in_width != 8:
        raise ModelError(f"int8 models need an engine with 8-bit operands, not "
                         f"{config.engine.in_width}-bit")
    if not isinstance(batch, int) or batch < 1:
        raise ModelError(f"the batch must be a positive integer, not {batch!r}")
    model = import_model(path)
    if not config.engine.with_ort and any(getattr(layer, "scale", None) is not None
                                          for layer in model.layers):
        raise ModelError(f"the model's requantisation follows ONNX Runtime, which this engine "
                         f"was built without (requant_modes={config.engine.requant_modes!r}); "
                         f"use --requant-modes ort or both")
    plan = plan_memory(model, config.engine)
    out_dir = Path(out_dir)
    check_output_directory(out_dir)
    try:
        program = generate_c(model, plan, batch, config.engine)
    except GemmError as error:
        raise ModelError(f"the model cannot be mapped onto this engine: {error}") from None
    with replace_directory(out_dir) as staging:
        staging.chmod(0o755)        # as mkdir would have made it, not mkdtemp's 0700
        (staging / "model.c").write_text(program.model_c)
        (staging / "model_data.h").write_text(program.model_data_h)
        try:
            firmware = build_firmware(staging / "model.c", staging, config, name="model",
                                      include_dirs=[staging])
        except FirmwareError as error:
            needs = re.search(r"needs (\d+) bytes", str(error))
            if not needs:
                raise
            need, have = int(needs.group(1)), config.ram_bytes
            suggest = 1 << math.ceil(math.log2(need))
            raise ModelError(
                f"model needs {need} bytes of RAM ({plan.weight_bytes} of weights and "
                f"constants, {program.list_bytes} of engine command lists, "
                f"{plan.arena_bytes} of activations and workspaces, the rest code, "
                f"inputs and stack), RAM has {have}: {need - have} bytes missing; try "
                f"--mem-bytes {suggest}") from None
        symbols = elf_symbols(firmware.elf)
    firmware = dataclasses.replace(firmware, elf=out_dir / firmware.elf.name,
                                   bin=out_dir / firmware.bin.name)
    return CompiledModel(model=model, plan=plan, firmware=firmware, out_dir=out_dir,
                         batch=batch, inputs_addr=symbols["rvnpu_model_inputs"] - RAM_BASE,
                         count_addr=symbols["rvnpu_model_count"] - RAM_BASE, config=config,
                         input_border=program.input_border,
                         engine_layers=program.engine_layers,
                         list_bytes=program.list_bytes)


def check_output_directory(out_dir):
    """Refuse an output directory that cannot be made, or that holds something other than an
    earlier build (which :func:`compile_model` would replace whole)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelError(f"the output directory {out_dir} is a file")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ModelError(f"the output directory {out_dir} cannot be made: {parent} is "
                                 f"a file")
            break
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "model.c").is_file():
        raise ModelError(f"the output directory {out_dir} holds other files than an earlier "
                         f"build of a model (it would be replaced whole); give a new or empty "
                         f"directory")


def _from_storage(model, raw):
    t = model.tensors[model.chip_output]
    values = np.frombuffer(raw, dtype=np.dtype(t.dtype).newbyteorder("<"))
    if len(t.shape) == 4:
        n, c, h, w = t.shape
        return values.reshape(n, h, w, c).transpose(0, 3, 1, 2).copy()
    return values.reshape(t.shape).copy()


_OUT = re.compile(r"^out (\d+) ([0-9a-f]*)$", re.M)
_CYCLES = re.compile(r"^cycles (\d+) ([\d ]+)$", re.M)
_SLEEP = re.compile(r"^sleep (\d+) (\d+)$", re.M)


def run_model(compiled, inputs, *, simulator=None, max_cycles=200_000_000, on_build=None):
    """Run float inputs (each of the model's input shape) on the simulated SoC; a list of
    :class:`ChipResult`, one an input. ``on_build`` is told when the SoC's simulator is built
    (see :meth:`rvnpu.sim.soc_sim.SocSimulator.run`). A run that reaches ``max_cycles`` raises
    :class:`~rvnpu.sim.soc_sim.FirmwareHang`, saying where the core (its function, from the
    ELF) and the engine were."""
    from rvnpu.sim.soc_sim import SocSimulator

    model = compiled.model
    simulator = simulator or SocSimulator(compiled.config)
    base = bytearray(compiled.firmware.image)
    results = []
    inputs = list(inputs)
    for start in range(0, len(inputs), compiled.batch):
        chunk = inputs[start:start + compiled.batch]
        image = bytearray(base)
        struct.pack_into("<I", image, compiled.count_addr, len(chunk))
        for i, x in enumerate(chunk):
            raw = input_storage(model, quantize_input(model, x), compiled.input_border)
            at = compiled.inputs_addr + i * compiled.input_stride
            image[at:at + len(raw)] = raw
        run = simulator.run(bytes(image), max_cycles=max_cycles,
                            **({"on_build": on_build} if on_build else {}))
        run.raise_if_hung(max_cycles, function_finder(compiled.firmware.elf))
        text = run.text
        if run.timed_out or run.exit_code != 0:
            tail = text.strip().splitlines()[-1:] or ["no output"]
            raise ModelError(f"the model did not run to the end on the SoC "
                             f"({'timed out' if run.timed_out else f'exit code {run.exit_code}'}"
                             f"): {tail[0]}")
        outs = {int(n): bytes.fromhex(h) for n, h in _OUT.findall(text)}
        cycles = {int(n): [int(v) for v in c.split()] for n, c in _CYCLES.findall(text)}
        sleep = {int(n): int(v) for n, v in _SLEEP.findall(text)}
        for i in range(len(chunk)):
            q = _from_storage(model, outs[i])
            results.append(ChipResult(q_output=q, output=apply_post(model, q),
                                      layer_cycles=cycles[i][:-1], cycles=cycles[i][-1],
                                      sleep_cycles=sleep[i]))
    return results


#: onnxruntime's session option that lets its optimiser fuse QDQ groups with int8 activations
#: into the int8 QLinear kernels. It is on by default on ARM only: on x86 onnxruntime turns a
#: quantised tensor to uint8 (zero point + 128) where one DequantizeLinear reads it and leaves
#: the Conv or Add reading any other int8 tensor (a residual branch's) in float32 between
#: DequantizeLinear and QuantizeLinear, which integer hardware cannot reproduce (see
#: docs/onnx.md, "Int8 activations on x86").
QDQ_INT8_FUSION = ("session.qdqisint8allowed", "1")


def ort_session(path):
    """onnxruntime's CPU session, all graph optimisations, with the QDQ groups of int8
    activations fused into the int8 kernels (:data:`QDQ_INT8_FUSION`), as on ARM: what the chip
    is compared with."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("comparing with onnxruntime needs it installed: "
                         "pip install 'rvnpu[onnx]'") from None
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry(*QDQ_INT8_FUSION)
    try:
        return onnxruntime.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
    except Exception as error:      # onnxruntime's errors have no common base but Exception
        raise ModelError(f"onnxruntime cannot load {path}: {_ort_reason(error)}") from None


def _ort_reason(error):
    """onnxruntime's message without its status prefix and C++ source location."""
    text = " ".join(str(error).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .*? failed:", "", text)
    return re.sub(r"^\S+\.(?:cc|cpp|h):\d+ \S+?\(.*?\) (?=\S)", "", text)


def ort_run(session, model, x):
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.asarray(x, np.float32).reshape(model.input_shape)})[0]


def same(a, b):
    """Bit for bit equal (floats by their bit patterns, so -0.0 and NaNs count too)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return a.tobytes() == b.tobytes()
    return bool(np.array_equal(a, b))


def reference_output(model, x):
    """The numpy model of the chip's computation for one input (the integers it computes)."""
    return run_layers(model, quantize_input(model, x))[model.chip_output]
