"""Simulation top level: the engine, a main memory and free-running counters.

The testbench writes operands through the memory's host port, pushes commands, and then lets
the simulator run free until the FENCE answer appears; the counters tell it how many cycles the
work took and how many of them fed the array, without a Python callback a cycle.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from rvnpu.hdl.engine.engine import MatrixEngine
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.soc.sram import BusSram


__all__ = ["EngineTestTop"]


class EngineTestTop(wiring.Component):
    def __init__(self, config):
        self._config = config
        self.mem_words = config.mem_bytes // config.bus_bytes
        super().__init__({
            "cmd":           In(stream.Signature(CommandLayout)),
            "rsp":           Out(stream.Signature(32)),
            "host_addr":     In(range(self.mem_words)),
            "host_we":       In(config.bus_bytes),
            "host_wdata":    In(config.bus_width),
            "host_rdata":    Out(config.bus_width),
            "busy":          Out(1),
            "cycles":        Out(32),
            "active_cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        m.submodules.engine = engine = MatrixEngine(c)
        m.submodules.ram = ram = BusSram(depth=self.mem_words, data_width=c.bus_width,
                                         addr_width=engine.bus_signature.addr_width,
                                         with_host=True)
        connect(m, engine.bus, ram.bus)
        connect(m, wiring.flipped(self.cmd), engine.cmd)
        connect(m, engine.rsp, wiring.flipped(self.rsp))
        m.d.comb += [
            ram.host_addr.eq(self.host_addr), ram.host_we.eq(self.host_we),
            ram.host_wdata.eq(self.host_wdata), self.host_rdata.eq(ram.host_rdata),
            self.busy.eq(engine.busy),
        ]
        m.d.sync += [self.cycles.eq(self.cycles + 1),
                     self.active_cycles.eq(self.active_cycles + engine.active)]
        return m
