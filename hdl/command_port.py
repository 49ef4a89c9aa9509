"""The command port between the control core and the matrix engine.

A command is what one RISC-V custom-0 instruction carries: its ``funct7`` and the values of
``rs1`` and ``rs2``. The core sends it and the engine receives it, so the layout lives here,
beside the memory bus, rather than inside either of them: neither side imports the other.
The meaning of ``funct`` and of the operands' fields is the engine's command set,
:mod:`rvnpu.spec.commands`.
"""

from amaranth.lib import data


__all__ = ["CommandLayout"]


#: One command, as a ``stream.Signature(CommandLayout)`` payload.
CommandLayout = data.StructLayout({"funct": 7, "op1": 32, "op2": 32})
