"""The simulation-exit register: how firmware ends a simulation and hands back its exit code."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rvnpu.spec.memory_map import SIM
from rvnpu.hdl.soc.regbus import RegisterSignature


__all__ = ["SimControl"]

_EXIT = SIM.register("EXIT")


class SimControl(wiring.Component):
    """Registers of :data:`.memory_map.SIM`.

    ``exit_valid`` stays high from the first write of ``EXIT`` until reset, so a testbench can
    wait for one rising edge and read the code at leisure; later writes change the code.

    Members
    -------
    bus : In(RegisterSignature)
    exit_valid : Out
    exit_code : Out
    """

    bus: In(RegisterSignature())
    exit_valid: Out(1)
    exit_code: Out(_EXIT.width)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.bus.w_en & (self.bus.addr == _EXIT.word)):
            m.d.sync += [self.exit_valid.eq(1), self.exit_code.eq(self.bus.w_data)]
        m.d.sync += self.bus.r_data.eq(0)   # write-only
        return m
