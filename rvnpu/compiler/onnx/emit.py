"""The C text a layer writes: the sections of ``model.c`` and ``model_data.h`` that each layer
kind's ``emit_c`` appends to, and the literals they are written with."""

from dataclasses import dataclass, field

import numpy as np

from rvnpu.compiler.onnx.planner import ALIGN


__all__ = ["CContext", "c_array", "c_float", "c_comment", "CTYPE"]

#: The C type of each tensor element type.
CTYPE = {"int8": "int8_t", "uint8": "uint8_t", "int32": "int32_t"}


def c_comment(text):
    """``text`` made safe inside a C comment."""
    return str(text).replace("*/", "* /")


def c_array(ctype, name, values, per_line=16):
    """A ``static const`` array definition, aligned for the engine's bursts."""
    values = list(values)
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    body = ",\n    ".join(lines)
    return (f"static const {ctype} {name}[{len(values)}] __attribute__((aligned({ALIGN}))) = {{\n"
            f"    {body}\n}};\n")


def c_float(value):
    """A C literal of exactly this float32 (hexadecimal, so nothing is lost in decimal)."""
    return float(np.float32(value)).hex() + "f"


@dataclass
class CContext:
    """The program being written, at the layer ``index`` whose ``emit_c`` is called.

    A layer appends definitions to ``data`` (``model_data.h``: weights, constants), static
    variables to ``globals``, start-up statements to ``record`` (run once, before the first
    input) and its call to ``code`` (the body of ``infer``, run for every input). The call sets
    ``result`` (an ``RVNPU_GEMM_*`` code) and may set ``status`` (the engine's status word);
    ``generate_c`` checks both and counts the layer's cycles after it.
    """
    model: object
    plan: object
    engine: object
    index: int = 0
    data: list = field(default_factory=list)
    globals: list = field(default_factory=list)
    record: list = field(default_factory=list)
    code: list = field(default_factory=list)

    @property
    def prefix(self):
        """The prefix of this layer's C names (``l3`` for layer 3)."""
        return f"l{self.index}"

    @property
    def workspace(self):
        """The arena offset of this layer's workspace (0 if it has none)."""
        return self.plan.workspaces.get(self.index, (0, 0))[0]

    def buf(self, name):
        """A C expression of the address of tensor ``name``: in the arena, or the first input
        slot for the chip's input."""
        name = self.model.storage(name)
        if name == self.model.storage(self.model.chip_input):
            return "(rvnpu_model_inputs + 0)"
        return f"(arena + {self.plan.offsets[name]})"
