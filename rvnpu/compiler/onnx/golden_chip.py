"""A compiled model on the golden engine, without the core: a quick, exact check of the command
lists the compiler writes.

The lists run on :class:`~rvnpu.sim.golden.engine.EngineModel` over the compiler's virtual
layout; the layers the firmware runs are stood in for by their numpy references, reading and
writing the same memory. The result must equal :func:`.reference.run_layers` bit for bit.
"""

import dataclasses

import numpy as np

from rvnpu.compiler.onnx.codegen import input_bytes, input_storage, plan_lists
from rvnpu.sim.golden.engine import EngineModel


__all__ = ["run_on_golden_engine"]


def _read(memory, model, name, addr):
    t = model.tensors[name]
    stored = model.tensors[model.storage(name)]
    raw = memory[addr:addr + stored.nbytes].tobytes()
    values = np.frombuffer(raw, np.dtype(stored.dtype).newbyteorder("<")).astype(np.int64)
    if len(stored.shape) == 4:
        n, c, h, w = stored.shape
        values = values.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return values.reshape(t.shape)


def _write(memory, model, name, addr, values):
    t = model.tensors[name]
    values = np.asarray(values).reshape(t.shape)
    if values.ndim == 4:
        values = values.transpose(0, 2, 3, 1)
    raw = values.astype(np.dtype(t.dtype).newbyteorder("<")).tobytes()
    memory[addr:addr + len(raw)] = np.frombuffer(raw, np.uint8)


def run_on_golden_engine(model, plan, engine, q_input):
    """The chip output integers for the quantised input ``q_input`` and the layers that ran
    from lists: ``(output, engine_layer_indices)``."""
    steps, space, border = plan_lists(model, plan, engine)
    size = 1 << max(10, (space.end - 1).bit_length())
    golden = EngineModel(dataclasses.replace(engine, mem_bytes=size))
    memory = golden.memory
    arena, inputs = space.base("arena"), space.base("rvnpu_model_inputs")
    for step in steps.values():
        for symbol, data in step.constants.items():
            at = space.base(symbol)
            memory[at:at + len(data)] = np.frombuffer(data, np.uint8)
    raw = input_storage(model, q_input, border)
    assert len(raw) == input_bytes(model, border)
    memory[inputs:inputs + len(raw)] = np.frombuffer(raw, np.uint8)
    chip_input = model.storage(model.chip_input)

    def addr_of(name):
        name = model.storage(name)
        return inputs if name == chip_input else arena + plan.offsets[name]

    for i, layer in enumerate(model.layers):
        if i in steps:
            golden.run(steps[i].commands)
            if golden.error_count:
                raise AssertionError(f"layer {i}: the engine refused a command "
                                     f"(error code {golden.error_code})")
            continue
        values = [_read(memory, model, name, addr_of(name)) for name in layer.inputs]
        _write(memory, model, layer.output, addr_of(layer.output),
               layer.reference(model, values))
    out = model.chip_output
    return _read(memory, model, out, addr_of(out)), sorted(steps)
