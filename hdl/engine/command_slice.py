"""A one-entry register slice on a command stream."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["CommandSlice"]


class CommandSlice(wiring.Component):
    """Holds one command between the front end and a unit.

    Its ``i.ready`` is a register (the slice is empty), so a unit's readiness, which may depend
    on arithmetic over the command it is offered, never reaches back into the front end's
    decoding and hazard checks in the same cycle: without it that loop was the SoC's critical
    path. A command passes in two cycles at best; commands arrive far less often.

    Parameters
    ----------
    payload : shape-castable
        The command layout.
    """

    def __init__(self, payload):
        super().__init__({"i": In(stream.Signature(payload)),
                          "o": Out(stream.Signature(payload))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
