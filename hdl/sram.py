"""Block-RAM main memory with the engine's bus port (and an optional host port)."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .bus import BusSignature


__all__ = ["BusSram"]


class BusSram(wiring.Component):
    """Single-cycle SRAM answering the engine's bus: every request is accepted at once and a
    read answers on the next cycle.

    Parameters
    ----------
    depth : int
        Words.
    data_width : int
    addr_width : int
        Width of the bus's word addresses (the memory uses the low bits).
    with_host : bool
        Add a second port (``host_*``), for a CPU or a testbench, with one cycle read latency.
        The two ports share one write port, so that FPGA tools can build the memory from
        block RAM (Yosys maps two read ports and one write port there, not two write ports):
        in a cycle where the bus writes, ``host_busy`` is high and a host write does not
        happen; the host holds it until a cycle without.
    init : iterable of int
    """

    def __init__(self, *, depth, data_width, addr_width, with_host=False, init=()):
        self._depth, self._init, self._with_host = depth, list(init), with_host
        ports = {"bus": In(BusSignature(addr_width, data_width))}
        if with_host:
            ports.update({
                "host_addr":  In(range(depth)),
                "host_we":    In(data_width // 8),
                "host_wdata": In(data_width),
                "host_rdata": Out(data_width),
                "host_busy":  Out(1),
            })
        self._data_width = data_width
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self._data_width, depth=self._depth,
                                        init=self._init)
        w = mem.write_port(granularity=8)
        r = mem.read_port()
        req = self.bus.req.payload
        bus_write = self.bus.req.valid & req.write
        m.d.comb += [
            self.bus.req.ready.eq(1),
            r.addr.eq(req.addr), w.addr.eq(req.addr), w.data.eq(req.data),
            w.en.eq(req.mask & bus_write.replicate(len(req.mask))),
            self.bus.rsp.payload.eq(r.data),
        ]
        m.d.sync += self.bus.rsp.valid.eq(self.bus.req.valid & ~req.write)
        if self._with_host:
            hr = mem.read_port()
            m.d.comb += [hr.addr.eq(self.host_addr), self.host_rdata.eq(hr.data),
                         self.host_busy.eq(bus_write)]
            with m.If(~bus_write):
                m.d.comb += [w.addr.eq(self.host_addr), w.data.eq(self.host_wdata),
                             w.en.eq(self.host_we)]
        return m
