"""Fixed delay lines, the glue of every systolic schedule."""

from amaranth.hdl import Signal


__all__ = ["delayed"]


def delayed(m, value, cycles, *, name="delayed"):
    """``value`` as it was ``cycles`` clock cycles ago (a chain of registers in ``m.d.sync``)."""
    shape = value.shape()
    for i in range(cycles):
        stage = Signal(shape, name=f"{name}_{i}")
        m.d.sync += stage.eq(value)
        value = stage
    return value
