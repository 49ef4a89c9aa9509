"""Main memory with a read/write port for the engine's bus and one for the core, each on a
clock of its own or both on one."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import BusSignature


__all__ = ["DualPortSram"]


class DualPortSram(wiring.Component):
    """:class:`.sram.BusSram`'s ports (``bus`` and ``host_*``) on a true dual-port memory: the
    bus port reads and writes in ``bus_domain``, the host port in ``sync`` (the core's). Each
    port has its own address, so neither ever waits (``host_busy`` is 0) and, with the engine
    on a clock of its own, no logic crosses between the clocks: the memory is the crossing.
    That is the shape of ECP5's DP16KD and Gowin's DPB blocks (two read/write ports, a clock
    each), which Yosys maps it to: one copy of the memory, where :class:`.sram.BusSram`'s two
    read ports take two. The iCE40's block RAM has one write port and its SPRAM one port in
    all, so :class:`rvnpu.spec.memory_map.SocConfig` refuses a second clock with
    ``ram_style="spram"``, and this memory refuses the iCE40. On one clock it is refused on
    ECP5 too: alone it maps to DP16KD, but in a whole SoC Yosys built it from flip-flops.

    On two clocks, a word written on one port and read on the other in the same instant reads
    undefined on hardware; the engine's FENCE answer only leaves after its writes, and the
    core's commands arrive after its stores, so the firmware never does that. On one clock
    such a read gives the word being written. Both ports writing one word in one cycle is
    undefined either way.

    Parameters
    ----------
    depth : int
        Words.
    data_width : int
    addr_width : int
        Width of the bus's word addresses (the memory uses the low bits).
    bus_domain : str
        The bus port's clock domain: ``"engine"`` with the engine on a clock of its own,
        ``"sync"`` with one clock.
    init : iterable of int
    registered_requests : bool
        Take the bus's requests into a register before the memory (default False): a read
        is answered two cycles after its request instead of one, and a write lands a cycle
        later, in request order with the reads. The engine's arbiter then ends in that
        register, not in the block RAM's write enables and data across the chip.
    """

    def __init__(self, *, depth, data_width, addr_width, bus_domain, init=(),
                 registered_requests=False):
        self._depth, self._data_width = depth, data_width
        self._bus_domain, self._init = bus_domain, list(init)
        self._registered = bool(registered_requests)
        super().__init__({
            "bus":        In(BusSignature(addr_width, data_width)),
            "host_addr":  In(range(depth)),
            "host_we":    In(data_width // 8),
            "host_wdata": In(data_width),
            "host_rdata": Out(data_width),
            "host_busy":  Out(1),
        })

    def elaborate(self, platform):
        family = str(getattr(platform, "family", "")).lower()
        if family == "ice40":
            raise ValueError("a true dual-port RAM needs two write ports; the iCE40's block "
                             "RAM has one (use ram_style 'block' or 'spram')")
        if family == "ecp5" and self._bus_domain == "sync":
            # Alone it maps to DP16KD; in the ULX3S-25F's whole SoC, Yosys 0.70 built it
            # from flip-flops and ran out of memory (docs/boards.md). Not understood yet.
            raise ValueError("a one-clock true dual-port RAM is not built from block RAM on "
                             "ECP5 (Yosys made flip-flops of it); use ram_style 'block'")
        m = Module()
        m.submodules.mem = mem = Memory(shape=self._data_width, depth=self._depth,
                                        init=self._init)
        domain = self._bus_domain
        bus_w = mem.write_port(granularity=8, domain=domain)
        host_w = mem.write_port(granularity=8)
        # Each port reads what it writes in the same cycle (a port only ever reads or writes
        # in a cycle, so nothing sees it): read-new is what a true dual-port block offers on
        # every family (Gowin's DPB has no read-old), so Yosys can map it. On one clock a
        # read also sees the other port's write of the same cycle: without that, the read
        # would have to give the old word, which no dual-port block does, and Yosys would
        # build the whole memory from flip-flops; this way it adds a bypass (a register of
        # the write and an address match a port).
        one_clock = domain == "sync"
        bus_r = mem.read_port(domain=domain,
                              transparent_for=(bus_w, host_w) if one_clock else (bus_w,))
        host_r = mem.read_port(transparent_for=(host_w, bus_w) if one_clock else (host_w,))
        req, req_valid = self.bus.req.payload, self.bus.req.valid
        if self._registered:
            held, held_valid = Signal.like(req, name="req_q"), Signal(name="req_q_valid")
            m.d[domain] += [held.eq(req), held_valid.eq(req_valid)]
            req, req_valid = held, held_valid
        bus_write = req_valid & req.write
        m.d.comb += [
            self.bus.req.ready.eq(1),
            bus_r.addr.eq(req.addr), bus_w.addr.eq(req.addr), bus_w.data.eq(req.data),
            bus_w.en.eq(req.mask & bus_write.replicate(len(req.mask))),
            self.bus.rsp.payload.eq(bus_r.data),
            host_r.addr.eq(self.host_addr), host_w.addr.eq(self.host_addr),
            host_w.data.eq(self.host_wdata), host_w.en.eq(self.host_we),
            self.host_rdata.eq(host_r.data),
            self.host_busy.eq(0),
        ]
        m.d[domain] += self.bus.rsp.valid.eq(req_valid & ~req.write)
        return m
