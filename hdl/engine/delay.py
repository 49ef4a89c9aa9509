"""Fixed delay lines, the glue of every systolic schedule."""

from amaranth.hdl import Signal


__all__ = ["delayed"]


def delayed(m, value, cycles, *, name="delayed", reset_less=False):
    """``value`` as it was ``cycles`` clock cycles ago (a chain of registers in ``m.d.sync``;
    ``reset_less`` for data that needs no reset value, only the flags beside it)."""
    shape = value.shape()
    for i in range(cycles):
        stage = Signal(shape, name=f"{name}_{i}", reset_less=reset_less)
        m.d.sync += stage.eq(value)
        value = stage
    return value
