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
from rvnpu.compiler.onnx.codegen import generate_c
from rvnpu.compiler.onnx.importer import import_model
from rvnpu.compiler.onnx.ir import ModelError
from rvnpu.compiler.onnx.planner import ALIGN, plan_memory
from rvnpu.compiler.onnx.reference import apply_post, quantize_input, run_layers


__all__ = ["CompiledModel", "ChipResult", "compile_model", "run_model", "ort_session",
           "ort_run", "DEFAULT_SOC"]

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

    @property
    def input_stride(self):
        return -(-self.model.tensors[self.model.chip_input].nbytes // ALIGN) * ALIGN


@dataclasses.dataclass
class ChipResult:
    """One inference on the chip: the integers it computed, the host's float tail applied to
    them, and cycles a layer and in all (core clock, from the core's cycle counter)."""
    q_output: np.ndarray
    output: np.ndarray
    layer_cycles: list
    cycles: int


def _elf_symbols(path):
    """``{name: address}`` of an ELF32 little-endian file's symbols."""
    data = Path(path).read_bytes()
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize)
               for i in range(shnum)]
    symbols = {}
    for _, kind, _, _, offset, size, link, _, _, entsize in headers:
        if kind != 2:           # SHT_SYMTAB
            continue
        strtab = headers[link][4]
        for i in range(size // entsize):
            name_off, value = struct.unpack_from("<II", data, offset + i * entsize)
            if name_off:
                end = data.index(b"\0", strtab + name_off)
                symbols[data[strtab + name_off:end].decode()] = value
    return symbols


def compile_model(path, out_dir, config=DEFAULT_SOC, *, batch=1):
    """Import, plan and generate the C program of an ONNX model and build it for ``config``.

    Raises :class:`ModelError` when the model has what the chip cannot run, or when it does
    not fit the RAM (saying how many bytes are missing).
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
    out_dir.mkdir(parents=True, exist_ok=True)
    code, data = generate_c(model, plan, batch, config.engine)
    (out_dir / "model.c").write_text(code)
    (out_dir / "model_data.h").write_text(data)
    try:
        firmware = build_firmware(out_dir / "model.c", out_dir, config, name="model",
                                  include_dirs=[out_dir])
    except FirmwareError as error:
        needs = re.search(r"needs (\d+) bytes", str(error))
        if not needs:
            raise
        need, have = int(needs.group(1)), config.ram_bytes
        suggest = 1 << math.ceil(math.log2(need))
        raise ModelError(
            f"model needs {need} bytes of RAM ({plan.weight_bytes} of weights and constants, "
            f"{plan.arena_bytes} of activations and workspaces, the rest code, inputs and "
            f"stack), RAM has {have}: {need - have} bytes missing; try --mem-bytes {suggest}"
        ) from None
    symbols = _elf_symbols(firmware.elf)
    return CompiledModel(model=model, plan=plan, firmware=firmware, out_dir=out_dir,
                         batch=batch, inputs_addr=symbols["rvnpu_model_inputs"] - RAM_BASE,
                         count_addr=symbols["rvnpu_model_count"] - RAM_BASE, config=config)


def _storage_bytes(model, q):
    """The quantised input as the chip stores it (rank 4: NHWC)."""
    t = model.tensors[model.chip_input]
    q = np.asarray(q).reshape(t.shape)
    if q.ndim == 4:
        q = q.transpose(0, 2, 3, 1)
    return q.astype(t.dtype).tobytes()


def _from_storage(model, raw):
    t = model.tensors[model.chip_output]
    values = np.frombuffer(raw, dtype=np.dtype(t.dtype).newbyteorder("<"))
    if len(t.shape) == 4:
        n, c, h, w = t.shape
        return values.reshape(n, h, w, c).transpose(0, 3, 1, 2).copy()
    return values.reshape(t.shape).copy()


_OUT = re.compile(r"^out (\d+) ([0-9a-f]*)$", re.M)
_CYCLES = re.compile(r"^cycles (\d+) ([\d ]+)$", re.M)


def run_model(compiled, inputs, *, simulator=None, max_cycles=200_000_000):
    """Run float inputs (each of the model's input shape) on the simulated SoC; a list of
    :class:`ChipResult`, one an input."""
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
            raw = _storage_bytes(model, quantize_input(model, x))
            at = compiled.inputs_addr + i * compiled.input_stride
            image[at:at + len(raw)] = raw
        run = simulator.run(bytes(image), max_cycles=max_cycles)
        text = run.text
        if run.timed_out or run.exit_code != 0:
            tail = text.strip().splitlines()[-1:] or ["no output"]
            raise ModelError(f"the model did not run to the end on the SoC "
                             f"({'timed out' if run.timed_out else f'exit code {run.exit_code}'}"
                             f"): {tail[0]}")
        outs = {int(n): bytes.fromhex(h) for n, h in _OUT.findall(text)}
        cycles = {int(n): [int(v) for v in c.split()] for n, c in _CYCLES.findall(text)}
        for i in range(len(chunk)):
            q = _from_storage(model, outs[i])
            results.append(ChipResult(q_output=q, output=apply_post(model, q),
                                      layer_cycles=cycles[i][:-1], cycles=cycles[i][-1]))
    return results


def ort_session(path):
    """onnxruntime's CPU session with default options: what the chip is compared with."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("comparing with onnxruntime needs it installed: "
                         "pip install 'rvnpu[onnx]'") from None
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


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
