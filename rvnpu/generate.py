"""``rvnpu generate``: the engine's Verilog with a machine-readable description beside it."""

import json
import os
import tempfile
from pathlib import Path

from amaranth.hdl import Shape

from rvnpu import __version__
from rvnpu.hdl import isa
from rvnpu.hdl.cheader import HEADER_NAME, c_header
from rvnpu.hdl.config import EngineConfig
from rvnpu.hdl.engine import MatrixEngine, engine_signature


__all__ = ["engine_description", "generate_engine", "TOP_NAME"]

TOP_NAME = "rvnpu_engine"


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


def generate_engine(config, out_dir):
    """Write ``rvnpu_engine.v``, ``rvnpu_engine.json`` and the C header into ``out_dir``.

    The files are produced in a temporary directory first and moved in only when all of them
    exist, so a failure leaves nothing half-written. Returns the paths written.
    """
    from amaranth.back import verilog

    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    out_dir = Path(out_dir)
    verilog_text = verilog.convert(MatrixEngine(config), name=TOP_NAME, emit_src=False)
    files = {
        f"{TOP_NAME}.v": verilog_text,
        f"{TOP_NAME}.json": json.dumps(engine_description(config), indent=2) + "\n",
        HEADER_NAME: c_header(config),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".rvnpu-") as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        for name in files:
            os.replace(Path(tmp) / name, out_dir / name)
            written.append(out_dir / name)
    return written
