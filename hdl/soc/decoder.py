"""The address decoder: routes the control core's bus to the RAM or a peripheral."""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.core.cpu import BusSignature as CoreBusSignature
from rvnpu.spec.memory_map import PERIPHERAL_SPAN, PERIPHERALS, RAM_BASE
from rvnpu.hdl.soc.regbus import ADDR_WIDTH, RegisterSignature


__all__ = ["RamPortSignature", "AddressDecoder"]


class RamPortSignature(wiring.Signature):
    """A synchronous RAM port of ``width``-bit words with byte enables; read data the cycle
    after the address; the access asked for in a cycle with ``busy`` does not happen (the
    host port of :class:`.sram.BusSram`)."""

    def __init__(self, *, depth, width):
        super().__init__({
            "addr":  Out(range(depth)),
            "we":    Out(width // 8),
            "wdata": Out(width),
            "rdata": In(width),
            "busy":  In(1),
        })


class AddressDecoder(wiring.Component):
    """Decodes the memory map of :mod:`.memory_map` for the core's bus.

    Writes complete in the cycle they appear, unless the RAM is busy with the engine's write,
    when the core waits (for a single-port RAM, with any access of the engine's, and reads wait
    too). RAM reads take two cycles: the RAM answers a cycle after the address. Addresses
    outside the map read 0 (in two cycles) and ignore writes.

    A peripheral's request is registered before the peripheral sees it, so that the address,
    which comes from the core's adder late in the cycle, does not run on through a
    peripheral's register selection or into the core's retirement (a write's ``ready``): on
    the ECP5 boards those paths set the core's clock. A peripheral write is posted (the
    peripheral takes it the next cycle, while the core fetches its next instruction); a read
    takes three cycles (the strobe in the second, the answer in the third), and its strobe goes
    out once, so a read with side effects (the UART's receive FIFO) happens once.

    The RAM's words may be wider than the core's (the engine's bus width): the core reaches
    one 32-bit lane of a word, chosen by the low address bits.

    Parameters
    ----------
    ram_bytes : int
        RAM size, a power of two.
    ram_width : int
        Bits a RAM word, a multiple of 32.

    Members
    -------
    cpu : In(:data:`.cpu.BusSignature`)
    ram : Out(RamPortSignature)
    uart, timer, gpio, sim : Out(RegisterSignature)
        One register port a peripheral of :data:`.memory_map.PERIPHERALS`, named in lower case.
    """

    def __init__(self, *, ram_bytes, ram_width):
        if ram_width % 32 or ram_width < 32:
            raise ValueError(f"RAM width must be a multiple of 32, not {ram_width!r}")
        if ram_bytes & (ram_bytes - 1) or ram_bytes < ram_width // 8:
            raise ValueError(f"RAM size must be a power of two of whole words, "
                             f"not {ram_bytes!r}")
        self._ram_bytes = ram_bytes
        self._ram_width = ram_width
        members = {
            "cpu": In(CoreBusSignature),
            "ram": Out(RamPortSignature(depth=ram_bytes * 8 // ram_width, width=ram_width)),
        }
        members.update({p.name.lower(): Out(RegisterSignature()) for p in PERIPHERALS})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cpu = self.cpu
        lanes = self._ram_width // 32
        lane_bits = (lanes - 1).bit_length()
        ram_word_bits = (self._ram_bytes // 4 - 1).bit_length()
        block_bits = (PERIPHERAL_SPAN // 4 - 1).bit_length()

        write = cpu.we != 0
        read = cpu.re & ~write
        # Targets: RAM at 0, then one block each peripheral.
        is_ram = cpu.addr[ram_word_bits:] == (RAM_BASE >> 2 + ram_word_bits)
        is_peripheral = {}
        for p in PERIPHERALS:
            is_peripheral[p.name] = cpu.addr[block_bits:] == (p.base >> 2 + block_bits)
        assert ADDR_WIDTH == block_bits
        to_peripheral = Const(0)
        for hit in is_peripheral.values():
            to_peripheral = to_peripheral | hit

        # RAM, or nothing: the address goes straight to the RAM.
        pending = Signal()              # second cycle of a read: the answer is on rdata
        first = read & ~to_peripheral & ~pending & ~(is_ram & self.ram.busy)
        m.d.sync += pending.eq(first)

        # A peripheral: the request is registered (``issued``: the port sees it this cycle);
        # a read's answer is on the port's r_data the cycle after (``answer``).
        issued, answer = Signal(), Signal()
        p_addr, p_wdata, p_write = Signal(block_bits), Signal(32), Signal()
        p_hit = {p.name: Signal(name=f"hit_{p.name.lower()}") for p in PERIPHERALS}
        start_write = write & to_peripheral & ~self.ram.busy       # as ``ready``, or twice
        start = start_write | (read & to_peripheral & ~issued & ~answer)
        with m.If(start):
            m.d.sync += [issued.eq(1), p_addr.eq(cpu.addr[:block_bits]),
                         p_wdata.eq(cpu.wdata), p_write.eq(write)]
            m.d.sync += [p_hit[n].eq(hit) for n, hit in is_peripheral.items()]
        with m.Else():
            m.d.sync += issued.eq(0)
        m.d.sync += answer.eq(issued & ~p_write)

        m.d.comb += cpu.ready.eq((write & ~self.ram.busy) | pending | answer)

        # The answer comes from the target of the read: a RAM read's registered as it starts,
        # a peripheral's is the one its request went to (``p_hit``, held while it answers).
        read_ram = Signal()
        read_lane = Signal(max(lane_bits, 1))
        with m.If(first):
            m.d.sync += [read_ram.eq(is_ram), read_lane.eq(cpu.addr[:lane_bits])]

        lane = cpu.addr[:lane_bits] if lane_bits else Const(0)
        m.d.comb += [
            self.ram.addr.eq(cpu.addr[lane_bits:lane_bits + ram_word_bits]),
            self.ram.wdata.eq(cpu.wdata.replicate(lanes)),
        ]
        with m.If(write & is_ram):
            m.d.comb += self.ram.we.eq(cpu.we << (lane * 4))

        rdata = Signal(32)
        with m.If(read_ram):
            m.d.comb += rdata.eq(self.ram.rdata.word_select(read_lane, 32) if lane_bits
                                 else self.ram.rdata)
        for p in PERIPHERALS:
            port = getattr(self, p.name.lower())
            m.d.comb += [
                port.addr.eq(p_addr),
                port.w_data.eq(p_wdata),
                port.w_en.eq(issued & p_write & p_hit[p.name]),
                port.r_en.eq(issued & ~p_write & p_hit[p.name]),
            ]
            with m.If(answer & p_hit[p.name]):
                m.d.comb += rdata.eq(port.r_data)
        m.d.comb += cpu.rdata.eq(rdata)
        return m
