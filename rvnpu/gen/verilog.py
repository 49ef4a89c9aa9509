"""``rvnpu generate``: the engine's (or the whole SoC's) Verilog with a machine-readable
description and the C headers beside it."""

import json

from amaranth.hdl import Shape

from rvnpu import __version__
from rvnpu.gen.engine_header import HEADER_NAME, c_header
from rvnpu.gen.files import write_files
from rvnpu.hdl.engine.engine import MatrixEngine, engine_signature
from rvnpu.spec import commands as isa
from rvnpu.spec.config import EngineConfig


__all__ = ["engine_description", "soc_description", "generate_engine", "generate_soc",
           "TOP_NAME", "SOC_TOP_NAME"]

TOP_NAME = "rvnpu_engine"
SOC_TOP_NAME = "rvnpu_soc"


def _port_list(config):
    """Top-level ports as Amaranth names them in Verilog (``cmd__valid`` ...)."""
    signature = engine_signature(config)
    return [{"name": "__".join(str(p) for p in path),
             "direction": "input" if member.flow.name == "In" else "output",
             "width": Shape.cast(member.shape).width}
            for path, member in signature.members.flatten() if member.is_port]


def engine_description(config):
    """Parameters, ports and command set of a generated engine, as plain data (for JSON)."""
    commands = []
    for command in isa.COMMANDS.values():
        commands.append({
            "name": command.name, "funct": int(command.funct), "unit": command.unit.name,
            "response": command.response, "doc": command.doc,
            "fields": [{"name": f.name, "operand": f.operand, "lsb": f.lsb, "width": f.width,
                        "signed": f.signed, "doc": f.doc} for f in command.fields],
        })
    return {
        "generator": f"rvnpu {__version__}",
        "top": TOP_NAME,
        "parameters": config.to_dict(),
        "derived": {"macs_per_cycle": config.rows * config.cols,
                    "elem_bytes": config.elem_bytes, "bus_bytes": config.bus_bytes},
        "ports": _port_list(config),
        "commands": commands,
        "status_fields": [{"name": f.name, "lsb": f.lsb, "width": f.width}
                          for f in isa.STATUS_FIELDS],
        "enums": {e.__name__: {m.name: int(m) for m in e}
                  for e in (isa.Space, isa.ErrorCode, isa.Dataflow, isa.RequantMode)},
        "qp_rows": isa.QP_ROWS,
    }


def soc_description(soc_config):
    """Parameters, memory map and engine of a generated SoC, as plain data (for JSON)."""
    from rvnpu.spec.memory_map import PERIPHERALS, RAM_BASE
    return {
        "generator": f"rvnpu {__version__}",
        "top": SOC_TOP_NAME,
        "parameters": soc_config.to_dict(),
        "memory_map": {
            "ram": {"base": RAM_BASE, "size": soc_config.ram_bytes},
            **{p.name.lower(): {
                "base": p.base,
                "registers": {r.name: {"address": p.address(r.name), "width": r.width,
                                       "access": r.access.value} for r in p.registers},
            } for p in PERIPHERALS},
        },
        "engine": engine_description(soc_config.engine),
    }


def generate_soc(soc_config, out_dir, *, image=b""):
    """Write the SoC's Verilog (``rvnpu_soc.v``, RAM initialised with ``image``), its JSON
    description, the firmware's generated headers and linker fragment, and the memory map
    as Markdown into ``out_dir``; returns the paths written."""
    from amaranth.back import verilog
    from rvnpu.gen.docs import memory_map_markdown
    from rvnpu.gen.soc_header import (HEADER_NAME as SOC_HEADER, LINKER_NAME, linker_memory,
                                      memory_map_header)
    from rvnpu.hdl.soc.soc import Soc
    from rvnpu.spec.memory_map import SocConfig

    if not isinstance(soc_config, SocConfig):
        raise TypeError(f"soc_config must be a SocConfig, not {soc_config!r}")
    soc = Soc(soc_config, image=image)
    files = {
        f"{SOC_TOP_NAME}.v": verilog.convert(soc, name=SOC_TOP_NAME, emit_src=False),
        f"{SOC_TOP_NAME}.json": json.dumps(soc_description(soc_config), indent=2) + "\n",
        SOC_HEADER: memory_map_header(soc_config),
        HEADER_NAME: c_header(soc_config.engine),
        LINKER_NAME: linker_memory(soc_config),
        "memory_map.md": memory_map_markdown(soc_config),
    }
    return write_files(files, out_dir)


def generate_engine(config, out_dir):
    """Write ``rvnpu_engine.v``, ``rvnpu_engine.json`` and the C header into ``out_dir``.

    The files are produced in a temporary directory first and moved in only when all of them
    exist (:func:`.files.write_files`), so a failure leaves nothing half-written. Returns the
    paths written.
    """
    from amaranth.back import verilog

    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    verilog_text = verilog.convert(MatrixEngine(config), name=TOP_NAME, emit_src=False)
    files = {
        f"{TOP_NAME}.v": verilog_text,
        f"{TOP_NAME}.json": json.dumps(engine_description(config), indent=2) + "\n",
        HEADER_NAME: c_header(config),
    }
    return write_files(files, out_dir)
