"""The chip's Amaranth generators: the matrix engine (``engine/``), the RV32IM control core
(``core/``) and the system around them (``soc/``), with the memory bus and command port the
three share.

This folder installs as ``rvnpu.hdl``; the facts the hardware implements (command set, memory
map, instruction encodings, sizes) are data in :mod:`rvnpu.spec`.
"""

from pathlib import Path


__all__ = ["hardware_sources"]


def hardware_sources():
    """Every Python file the generated Verilog depends on: this package and the spec it reads.

    Simulator caches hash these, so that an edit to either rebuilds the model."""
    here = Path(__file__).resolve().parent
    import rvnpu.spec
    spec = Path(rvnpu.spec.__file__).resolve().parent
    return sorted([*here.rglob("*.py"), *spec.rglob("*.py")])
