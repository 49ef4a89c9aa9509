"""Block-RAM main memory with the engine's bus port (and an optional host port)."""

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import BusSignature


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
        in a cycle where both write, ``host_busy`` is high and the host's write does not
        happen; the host holds it until a cycle without. Host reads never wait.
    single_port : bool
        One address for everything: the host is busy (neither reads nor writes) whenever
        the bus makes a request, so the memory has one read/write port, the shape of the
        iCE40 UP5K's single-port SPRAM, which it is built from on iCE40 unless it has initial
        contents (SPRAM takes none; see :class:`.boot.BootCopier`). Elsewhere, and with
        ``init``, it is one block RAM port: half the block RAM of two read ports.
    init : iterable of int
    """

    def __init__(self, *, depth, data_width, addr_width, with_host=False, single_port=False,
                 init=()):
        self._depth, self._init, self._with_host = depth, list(init), with_host
        self._single_port = single_port
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
        if (self._single_port and not self._init
                and str(getattr(platform, "family", "")).lower() == "ice40"):
            return self._elaborate_spram()
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
        if self._with_host and self._single_port:
            busy = self.bus.req.valid
            m.d.comb += [self.host_rdata.eq(r.data), self.host_busy.eq(busy)]
            with m.If(~busy):
                m.d.comb += [r.addr.eq(self.host_addr), w.addr.eq(self.host_addr),
                             w.data.eq(self.host_wdata), w.en.eq(self.host_we)]
        elif self._with_host:
            hr = mem.read_port()
            m.d.comb += [hr.addr.eq(self.host_addr), self.host_rdata.eq(hr.data),
                         self.host_busy.eq(bus_write & (self.host_we != 0))]
            with m.If(~bus_write):
                m.d.comb += [w.addr.eq(self.host_addr), w.data.eq(self.host_wdata),
                             w.en.eq(self.host_we)]
        return m

    # The UP5K's SPRAM blocks: 16384 words of 16 bits, written in nibbles.
    _SPRAM_DEPTH, _SPRAM_WIDTH = 16384, 16

    def _elaborate_spram(self):
        """The single-port RAM as SB_SPRAM256KA blocks: Yosys does not infer them from a
        :class:`Memory` with byte enables, and they are the only place 64 KiB fit."""
        m = Module()
        width, depth = self._data_width, self._depth
        lanes = -(-width // self._SPRAM_WIDTH)
        banks = -(-depth // self._SPRAM_DEPTH)
        if lanes * banks > 4:
            raise ValueError(f"a {depth} x {width} RAM needs {lanes * banks} SPRAM blocks; "
                             f"the iCE40 UP5K has 4")
        req = self.bus.req.payload
        bus_on = self.bus.req.valid
        addr = Signal(range(depth))
        wdata = Signal(width)
        we = Signal(width // 8)
        m.d.comb += [
            self.bus.req.ready.eq(1),
            self.host_busy.eq(bus_on),
            addr.eq(Mux(bus_on, req.addr, self.host_addr)),
            wdata.eq(Mux(bus_on, req.data, self.host_wdata)),
            we.eq(Mux(bus_on, req.mask & req.write.replicate(len(req.mask)), self.host_we)),
        ]
        m.d.sync += self.bus.rsp.valid.eq(bus_on & ~req.write)
        word = Signal(14)
        m.d.comb += word.eq(addr[:14])
        bank = addr[14:] if banks > 1 else Const(0)
        read_bank = Signal.like(bank)
        m.d.sync += read_bank.eq(bank)
        bank_data = []
        for b in range(banks):
            data = Signal(lanes * 16, name=f"bank{b}_data")
            for lane in range(lanes):
                # Byte enables to the block's nibble enables.
                lane_we = Cat(we[2 * lane].replicate(2), we[2 * lane + 1].replicate(2))
                m.submodules[f"spram{b}_{lane}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=word, i_DATAIN=wdata.word_select(lane, 16),
                    i_MASKWREN=lane_we, i_WREN=lane_we.any(),
                    i_CHIPSELECT=(bank == b), i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=data.word_select(lane, 16))
            bank_data.append(data)
        rdata = Array(bank_data)[read_bank] if banks > 1 else bank_data[0]
        m.d.comb += [self.bus.rsp.payload.eq(rdata), self.host_rdata.eq(rdata)]
        return m
