"""The SoC's peripherals and address decoder, on Amaranth's simulator.

Registers are reached the way firmware reaches them: the UART, timer and GPIO through their
register ports with the offsets of the memory map, and the decoder through the control core's
bus contract (a request held until ``ready``), beside engine DMA on the RAM's other port.
"""

import gc

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect
from amaranth.sim import Simulator

from rvnpu.hdl.bus import BusSignature
from rvnpu.spec.config import EngineConfig
from rvnpu.hdl.core.cpu import BusSignature as CoreBusSignature
from rvnpu.hdl.soc.decoder import AddressDecoder
from rvnpu.hdl.soc.gpio import Gpio
from rvnpu.spec.memory_map import (GPIO, PERIPHERAL_BASE, PERIPHERALS, SIM, TIMER, UART,
                                  ConfigError, SocConfig, peripheral_at)
from rvnpu.hdl.soc.sim_control import SimControl
from rvnpu.hdl.soc.soc import image_words
from rvnpu.hdl.soc.sram import BusSram
from rvnpu.hdl.soc.timer import Timer
from rvnpu.hdl.soc.uart import Uart


STATUS = UART.register("STATUS")
TX_READY = STATUS.field("TX_READY").mask
TX_IDLE = STATUS.field("TX_IDLE").mask
RX_VALID = STATUS.field("RX_VALID").mask
RX_OVERRUN = STATUS.field("RX_OVERRUN").mask
RX_FRAME_ERROR = STATUS.field("RX_FRAME_ERROR").mask
EMPTY = UART.register("DATA").field("EMPTY").mask


def run(dut, testbench, *background):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    for process in background:
        sim.add_process(process)
    sim.run()


# -- Register port helpers ---------------------------------------------------------------------

async def reg_write(ctx, bus, peripheral, name, value):
    ctx.set(bus.addr, peripheral.register(name).word)
    ctx.set(bus.w_data, value)
    ctx.set(bus.w_en, 1)
    await ctx.tick()
    ctx.set(bus.w_en, 0)


async def reg_read(ctx, bus, peripheral, name):
    ctx.set(bus.addr, peripheral.register(name).word)
    ctx.set(bus.r_en, 1)
    await ctx.tick()
    ctx.set(bus.r_en, 0)
    return ctx.get(bus.r_data)


# -- UART ---------------------------------------------------------------------------------------

def frame(byte, stop=1):
    """The line levels of one 8N1 frame: start, 8 data bits LSB first, stop."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_uart_tx_bit_timing(divisor):
    dut = Uart(divisor=divisor)
    message = [0x55, 0xA3, 0x00, 0xFF]
    line = []

    async def testbench(ctx):
        assert await reg_read(ctx, dut.bus, UART, "STATUS") & (TX_READY | TX_IDLE) == \
            TX_READY | TX_IDLE
        assert await reg_read(ctx, dut.bus, UART, "DIVISOR") == divisor
        for byte in message:
            while not await reg_read(ctx, dut.bus, UART, "STATUS") & TX_READY:
                pass
            await reg_write(ctx, dut.bus, UART, "DATA", 0x100 | byte)   # bit 8 ignored
            assert not (await reg_read(ctx, dut.bus, UART, "STATUS") & TX_IDLE)
        while not await reg_read(ctx, dut.bus, UART, "STATUS") & TX_IDLE:
            pass

    async def monitor(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            line.append(tx)

    run(dut, testbench, monitor)
    start = line.index(0)
    want = sum((frame(b) for b in message), [])
    # Back to back: the buffer takes the next byte while one shifts, so frames abut.
    got = line[start:start + len(want) * divisor]
    assert got == [level for level in want for _ in range(divisor)]
    assert all(level == 1 for level in line[:start] + line[start + len(want) * divisor:])


def test_uart_divisor_register_and_minimum():
    dut = Uart(divisor=10)
    line = []

    async def testbench(ctx):
        await reg_write(ctx, dut.bus, UART, "DIVISOR", 1)       # acts as 4
        assert await reg_read(ctx, dut.bus, UART, "DIVISOR") == 1
        await reg_write(ctx, dut.bus, UART, "DATA", 0x0F)
        await ctx.tick().repeat(60)

    async def monitor(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            line.append(tx)

    run(dut, testbench, monitor)
    start = line.index(0)
    assert line[start:start + 40] == [lv for lv in frame(0x0F) for _ in range(4)]


async def drive_rx(ctx, dut, levels, cycles_per_bit):
    """Drive ``levels`` on rx, each for ``cycles_per_bit`` (a float: baud-rate error)."""
    t = 0.0
    for level in levels:
        ctx.set(dut.rx, level)
        t_next = t + cycles_per_bit
        await ctx.tick().repeat(int(round(t_next)) - int(round(t)))
        t = t_next
    ctx.set(dut.rx, 1)


@pytest.mark.parametrize("error", [-0.03, 0.0, 0.03])
def test_uart_rx_bytes_and_fifo(error):
    divisor = 16
    dut = Uart(divisor=divisor, rx_depth=4)
    message = [0x00, 0xA5, 0x5A, 0xFF]

    async def testbench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        assert await reg_read(ctx, dut.bus, UART, "DATA") == EMPTY
        await drive_rx(ctx, dut, sum((frame(b) for b in message), []) + [1],
                       divisor * (1 + error))
        status = await reg_read(ctx, dut.bus, UART, "STATUS")
        assert status & RX_VALID and not status & (RX_OVERRUN | RX_FRAME_ERROR)
        got = [await reg_read(ctx, dut.bus, UART, "DATA") for _ in message]
        assert got == message
        assert await reg_read(ctx, dut.bus, UART, "DATA") == EMPTY
        assert not await reg_read(ctx, dut.bus, UART, "STATUS") & RX_VALID

    run(dut, testbench)


@pytest.mark.parametrize("depth", [1, 2])
def test_uart_rx_overrun_frame_error_and_clear(depth):
    """With room for ``depth`` bytes, the bytes after them are lost and counted an overrun;
    the errors stay until cleared one by one."""
    divisor = 8
    dut = Uart(divisor=divisor, rx_depth=depth)

    async def testbench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3)
        await drive_rx(ctx, dut, frame(1) + frame(2) + frame(3) + [1], divisor)
        status = await reg_read(ctx, dut.bus, UART, "STATUS")
        assert status & RX_OVERRUN and status & RX_VALID and not status & RX_FRAME_ERROR
        assert ([await reg_read(ctx, dut.bus, UART, "DATA") for _ in range(3)] ==
                [1, 2, EMPTY][:depth] + [EMPTY] * (3 - depth))
        await drive_rx(ctx, dut, frame(0x42, stop=0) + [1] * 2, divisor)
        status = await reg_read(ctx, dut.bus, UART, "STATUS")
        assert status & RX_FRAME_ERROR and not status & RX_VALID
        await reg_write(ctx, dut.bus, UART, "STATUS", RX_OVERRUN)
        status = await reg_read(ctx, dut.bus, UART, "STATUS")
        assert not status & RX_OVERRUN and status & RX_FRAME_ERROR
        await reg_write(ctx, dut.bus, UART, "STATUS", RX_FRAME_ERROR)
        assert await reg_read(ctx, dut.bus, UART, "STATUS") == TX_READY | TX_IDLE

    run(dut, testbench)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_uart_rejects_bad_divisor():
    with pytest.raises(ValueError, match="divisor"):
        Uart(divisor=3)
    gc.collect()    # the refused component, while its warning is filtered


# -- Timer, GPIO, simulation control ------------------------------------------------------------

def test_timer_counts_and_latches_high_word():
    dut = Timer()

    async def testbench(ctx):
        ctx.set(dut._counts["CYCLE"], (1 << 32) - 3)
        ctx.set(dut._counts["ACTIVE"], (5 << 32) - 1)
        ctx.set(dut.active, 1)
        await ctx.tick()
        ctx.set(dut.active, 0)
        lo = await reg_read(ctx, dut.bus, TIMER, "CYCLE_LO")
        await ctx.tick().repeat(5)            # the low word wraps meanwhile
        hi = await reg_read(ctx, dut.bus, TIMER, "CYCLE_HI")
        assert (hi, lo) == (0, (1 << 32) - 2)
        lo = await reg_read(ctx, dut.bus, TIMER, "CYCLE_LO")
        hi = await reg_read(ctx, dut.bus, TIMER, "CYCLE_HI")
        assert (hi << 32 | lo) == (1 << 32) + 5
        # ACTIVE counts only cycles with ``active`` high: one, carrying into the high word.
        lo = await reg_read(ctx, dut.bus, TIMER, "ACTIVE_LO")
        hi = await reg_read(ctx, dut.bus, TIMER, "ACTIVE_HI")
        assert (hi, lo) == (5, 0)
        ctx.set(dut.active, 1)
        await ctx.tick().repeat(7)
        ctx.set(dut.active, 0)
        assert await reg_read(ctx, dut.bus, TIMER, "ACTIVE_LO") == 7
        assert await reg_read(ctx, dut.bus, TIMER, "CYCLE_HI") == 1

    run(dut, testbench)


async def compare_across(ctx, dut, start, compare):
    """Move MTIMECMP to ``compare`` as firmware should (high word all ones first), start the
    count at ``start`` and check ``irq`` against ``count >= compare`` for nine cycles;
    returns the line as it was seen."""
    await reg_write(ctx, dut.bus, TIMER, "MTIMECMP_HI", 0xffffffff)
    await reg_write(ctx, dut.bus, TIMER, "MTIMECMP_LO", compare & 0xffffffff)
    await reg_write(ctx, dut.bus, TIMER, "MTIMECMP_HI", compare >> 32)
    cycle = dut._counts["CYCLE"]
    ctx.set(cycle, start)
    seen = []
    for _ in range(9):
        now = ctx.get(cycle)
        await ctx.tick()
        assert ctx.get(dut.irq) == (now >= compare), (hex(now), hex(compare))
        seen.append(ctx.get(dut.irq))
    return seen


def test_timer_compare_interrupt():
    """``irq`` is ``CYCLE >= MTIMECMP`` (64-bit, unsigned) a cycle late, checked cycle by cycle
    across the compare value, across a carry into the high words and past the count's wrap;
    it is low the cycle after a write to MTIMECMP; MTIMECMP resets to all ones."""
    dut = Timer()
    cycle = dut._counts["CYCLE"]

    async def testbench(ctx):
        assert ctx.get(dut.irq) == 0
        assert await reg_read(ctx, dut.bus, TIMER, "MTIMECMP_LO") == 0xffffffff
        assert await reg_read(ctx, dut.bus, TIMER, "MTIMECMP_HI") == 0xffffffff
        for start, compare in [((3 << 32) - 4, 3 << 32), ((3 << 32) - 4, (3 << 32) - 2),
                               (1000, 1003), ((1 << 64) - 9, (1 << 64) - 3),
                               ((1 << 64) - 9, (1 << 64) - 1), ((1 << 64) - 4, 2)]:
            seen = await compare_across(ctx, dut, start, compare)
            # Each case crosses the compare value (the last after the count's wrap).
            assert 0 in seen and seen[-1] == 1, seen
        assert await reg_read(ctx, dut.bus, TIMER, "MTIMECMP_LO") == 2
        # Moving MTIMECMP past the count drops the line, at once: the old line is not seen.
        ctx.set(cycle, 50)
        await reg_write(ctx, dut.bus, TIMER, "MTIMECMP_HI", 0)
        await reg_write(ctx, dut.bus, TIMER, "MTIMECMP_LO", 40)
        assert ctx.get(dut.irq) == 0
        await ctx.tick()
        assert ctx.get(dut.irq) == 1
        await reg_write(ctx, dut.bus, TIMER, "MTIMECMP_HI", 1)
        for _ in range(3):
            assert ctx.get(dut.irq) == 0
            await ctx.tick()

    run(dut, testbench)


@pytest.mark.parametrize("width", [32, 33, 40])
def test_a_narrower_timer_wraps_at_its_width_and_reads_zero_above(width):
    """A ``width``-bit timer counts as a 64-bit one whose bits above ``width`` are zero: the
    high words read the bits above 32 (latched by the low word's read), every count wraps
    at ``2**width``, and MTIMECMP, all 64 bits kept, raises the line against that value, so
    a compare value at or past ``2**width`` never does."""
    dut = Timer(width=width)
    top = 1 << width
    cycle, active = dut._counts["CYCLE"], dut._counts["ACTIVE"]

    async def read64(ctx, name):
        lo = await reg_read(ctx, dut.bus, TIMER, f"{name}_LO")
        return await reg_read(ctx, dut.bus, TIMER, f"{name}_HI") << 32 | lo

    async def testbench(ctx):
        assert len(cycle) == width
        ctx.set(cycle, top - 3)
        ctx.set(active, top - 1)
        ctx.set(dut.active, 1)
        await ctx.tick()
        ctx.set(dut.active, 0)
        assert await read64(ctx, "ACTIVE") == 0                 # wrapped
        ctx.set(cycle, top - 2)
        lo = await reg_read(ctx, dut.bus, TIMER, "CYCLE_LO")
        await ctx.tick().repeat(5)
        hi = await reg_read(ctx, dut.bus, TIMER, "CYCLE_HI")
        assert top - 2 <= (hi << 32 | lo) < top                 # latched before the wrap
        assert await read64(ctx, "CYCLE") < 16                  # and wrapped since
        for start, compare, raised in [(top - 9, top - 3, True), (top - 4, 2, True),
                                       (1000, 1003, True), (top - 9, top, False),
                                       (top - 9, top + 2, False), (5, 1 << 63, False)]:
            seen = await compare_across(ctx, dut, start, compare)
            assert await read64(ctx, "MTIMECMP") == compare
            assert (seen[-1] == 1) == raised and (0 in seen), (hex(start), hex(compare), seen)

    run(dut, testbench)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_timer_refuses_a_width_outside_32_to_64():
    for bad in (31, 65, True, "32"):
        with pytest.raises(ValueError, match="timer width must be an integer from 32 to 64"):
            Timer(width=bad)
    assert Timer().width == 64
    gc.collect()


def test_timer_counts_sleep_cycles():
    dut = Timer()

    async def testbench(ctx):
        ctx.set(dut._counts["SLEEP"], (2 << 32) - 3)
        for sleeping in [1, 0, 1, 1, 0, 0, 1, 1, 1]:       # six cycles asleep
            ctx.set(dut.sleeping, sleeping)
            await ctx.tick()
        ctx.set(dut.sleeping, 0)
        lo = await reg_read(ctx, dut.bus, TIMER, "SLEEP_LO")
        hi = await reg_read(ctx, dut.bus, TIMER, "SLEEP_HI")
        assert (hi << 32 | lo) == (2 << 32) + 3
        assert await reg_read(ctx, dut.bus, TIMER, "CYCLE_LO") == 11     # before its edge

    run(dut, testbench)


def test_gpio_leds_and_buttons():
    dut = Gpio()

    async def testbench(ctx):
        await reg_write(ctx, dut.bus, GPIO, "LEDS", 0x1A5)
        assert ctx.get(dut.leds) == 0xA5
        assert await reg_read(ctx, dut.bus, GPIO, "LEDS") == 0xA5
        ctx.set(dut.buttons, 0x3C)
        await ctx.tick().repeat(2)                # through the synchroniser
        assert await reg_read(ctx, dut.bus, GPIO, "BUTTONS") == 0x3C
        await reg_write(ctx, dut.bus, GPIO, "BUTTONS", 0)    # read-only
        assert await reg_read(ctx, dut.bus, GPIO, "BUTTONS") == 0x3C

    run(dut, testbench)


def test_sim_exit_register():
    dut = SimControl()

    async def testbench(ctx):
        assert ctx.get(dut.exit_valid) == 0
        await reg_write(ctx, dut.bus, SIM, "EXIT", 0xDEAD_BEEF)
        assert (ctx.get(dut.exit_valid), ctx.get(dut.exit_code)) == (1, 0xDEAD_BEEF)
        assert await reg_read(ctx, dut.bus, SIM, "EXIT") == 0
        await ctx.tick().repeat(3)
        assert ctx.get(dut.exit_valid) == 1

    run(dut, testbench)


# -- Decoder ------------------------------------------------------------------------------------

class Fabric(wiring.Component):
    """Everything of the SoC but the core and the engine: a CPU port and an engine-side RAM
    port, for driving both at once."""

    def __init__(self, *, ram_bytes=1024, ram_width=64, init=(), loopback=False):
        self._ram_bytes, self._ram_width = ram_bytes, ram_width
        self._loopback = loopback
        addr_width = 32 - (ram_width // 8).bit_length() + 1
        self.ram = BusSram(depth=ram_bytes * 8 // ram_width, data_width=ram_width,
                           addr_width=addr_width, with_host=True, init=list(init))
        super().__init__({"cpu": In(CoreBusSignature),
                          "engine": In(BusSignature(addr_width, ram_width)),
                          "leds": Out(8), "exit_valid": Out(1), "exit_code": Out(32),
                          "uart_tx": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = ram = self.ram
        m.submodules.decoder = dec = AddressDecoder(ram_bytes=self._ram_bytes,
                                                    ram_width=self._ram_width)
        m.submodules.uart = uart = Uart(divisor=4)
        m.submodules.timer = timer = Timer()
        m.submodules.gpio = gpio = Gpio()
        m.submodules.sim = sim = SimControl()
        connect(m, wiring.flipped(self.cpu), dec.cpu)
        connect(m, wiring.flipped(self.engine), ram.bus)
        m.d.comb += [ram.host_addr.eq(dec.ram.addr), ram.host_we.eq(dec.ram.we),
                     ram.host_wdata.eq(dec.ram.wdata), dec.ram.rdata.eq(ram.host_rdata),
                     dec.ram.busy.eq(ram.host_busy)]
        for name, p in (("uart", uart), ("timer", timer), ("gpio", gpio), ("sim", sim)):
            connect(m, getattr(dec, name), p.bus)
        m.d.comb += [self.leds.eq(gpio.leds), self.exit_valid.eq(sim.exit_valid),
                     self.exit_code.eq(sim.exit_code), self.uart_tx.eq(uart.tx)]
        if self._loopback:
            m.d.comb += uart.rx.eq(uart.tx)
        return m


async def cpu_access(ctx, bus, address, *, write=None, mask=0xF):
    """One request held until ``ready``; returns ``(rdata, cycles)``."""
    ctx.set(bus.addr, address >> 2)
    if write is None:
        ctx.set(bus.re, 1)
    else:
        ctx.set(bus.we, mask)
        ctx.set(bus.wdata, write)
    cycles = 0
    while True:
        ready, data = ctx.get(bus.ready), ctx.get(bus.rdata)
        await ctx.tick()
        cycles += 1
        if ready:
            break
        assert cycles < 10, "request never completed"
    ctx.set(bus.re, 0)
    ctx.set(bus.we, 0)
    return data, cycles


def test_decoder_ram_lanes_byte_masks_and_latency():
    init = [0x1111_2222_3333_4444, 0x5555_6666_7777_8888]
    dut = Fabric(init=init)

    async def testbench(ctx):
        cpu = dut.cpu
        assert await cpu_access(ctx, cpu, 0x0) == (0x3333_4444, 2)
        assert await cpu_access(ctx, cpu, 0x4) == (0x1111_2222, 2)
        assert (await cpu_access(ctx, cpu, 0xC))[0] == 0x5555_6666
        assert (await cpu_access(ctx, cpu, 0x8, write=0xAABB_CCDD))[1] == 1
        assert (await cpu_access(ctx, cpu, 0xC, write=0x0000_EE00, mask=0b0010))[1] == 1
        assert (await cpu_access(ctx, cpu, 0x8))[0] == 0xAABB_CCDD
        assert (await cpu_access(ctx, cpu, 0xC))[0] == 0x5555_EE66
        # The engine's port sees the same bytes as one 64-bit word.
        ctx.set(dut.engine.req.payload.addr, 1)
        ctx.set(dut.engine.req.valid, 1)
        await ctx.tick()
        ctx.set(dut.engine.req.valid, 0)
        assert ctx.get(dut.engine.rsp.valid)
        assert ctx.get(dut.engine.rsp.payload) == 0x5555_EE66_AABB_CCDD
        # Outside the RAM and the peripheral blocks: reads 0, writes vanish.
        for address in (1024, 0x2000_0000, PERIPHERAL_BASE + len(PERIPHERALS) * 0x1000):
            await cpu_access(ctx, cpu, address, write=0xFFFF_FFFF)
            assert await cpu_access(ctx, cpu, address) == (0, 2)
        assert (await cpu_access(ctx, cpu, 0x0))[0] == 0x3333_4444   # not aliased

    run(dut, testbench)


def test_decoder_engine_and_cpu_concurrently():
    dut = Fabric()

    async def testbench(ctx):
        # The engine writes word 3 while the core writes word 0: the engine's write goes
        # first, the core's waits a cycle (one write port, as block RAM has).
        ctx.set(dut.engine.req.payload, {"addr": 3, "write": 1, "data": 0x0123_4567_89AB_CDEF,
                                         "mask": 0xFF})
        ctx.set(dut.engine.req.valid, 1)
        ctx.set(dut.cpu.addr, 0)
        ctx.set(dut.cpu.we, 0xF)
        ctx.set(dut.cpu.wdata, 0xCAFE_F00D)
        assert ctx.get(dut.engine.req.ready) and not ctx.get(dut.cpu.ready)
        await ctx.tick()
        ctx.set(dut.engine.req.valid, 0)
        assert ctx.get(dut.cpu.ready)
        await ctx.tick()
        ctx.set(dut.cpu.we, 0)
        # A core read does not wait for an engine write.
        ctx.set(dut.engine.req.valid, 1)
        assert (await cpu_access(ctx, dut.cpu, 0))[0] == 0xCAFE_F00D
        ctx.set(dut.engine.req.valid, 0)
        assert (await cpu_access(ctx, dut.cpu, 24))[0] == 0x89AB_CDEF
        assert (await cpu_access(ctx, dut.cpu, 28))[0] == 0x0123_4567
        assert (await cpu_access(ctx, dut.cpu, 0))[0] == 0xCAFE_F00D

    run(dut, testbench)


def test_decoder_peripherals():
    dut = Fabric()

    async def testbench(ctx):
        cpu = dut.cpu
        # A peripheral's request is registered first: a write is posted (done a cycle after
        # the core is told so), a read takes three cycles.
        assert (await cpu_access(ctx, cpu, GPIO.address("LEDS"), write=0x5A))[1] == 1
        assert ctx.get(dut.leds) == 0
        await ctx.tick()
        assert ctx.get(dut.leds) == 0x5A
        assert await cpu_access(ctx, cpu, GPIO.address("LEDS")) == (0x5A, 3)
        lo0 = (await cpu_access(ctx, cpu, TIMER.address("CYCLE_LO")))[0]
        lo1 = (await cpu_access(ctx, cpu, TIMER.address("CYCLE_LO")))[0]
        assert lo1 - lo0 == 3
        # A read held for three cycles takes one byte from the FIFO: EMPTY both times.
        assert (await cpu_access(ctx, cpu, UART.address("DATA")))[0] == EMPTY
        assert (await cpu_access(ctx, cpu, UART.address("STATUS")))[0] == TX_READY | TX_IDLE
        await cpu_access(ctx, cpu, UART.address("DATA"), write=ord("A"))
        assert not (await cpu_access(ctx, cpu, UART.address("STATUS")))[0] & TX_IDLE
        # The register block repeats no further than its span; its top word is unused.
        assert (await cpu_access(ctx, cpu, GPIO.base + 0xFFC))[0] == 0
        await cpu_access(ctx, cpu, SIM.address("EXIT"), write=7)
        await ctx.tick()
        assert (ctx.get(dut.exit_valid), ctx.get(dut.exit_code)) == (1, 7)

    run(dut, testbench)


def test_decoder_posted_writes_keep_their_order():
    """Writes to peripherals back to back, then a read at once: each write lands, in order,
    before the read is answered."""
    dut = Fabric()

    async def testbench(ctx):
        cpu = dut.cpu
        for value in (0x11, 0x22, 0x33):
            assert (await cpu_access(ctx, cpu, GPIO.address("LEDS"), write=value))[1] == 1
        # Right behind a posted write, a read starts a cycle late (the core fetches between).
        assert await cpu_access(ctx, cpu, GPIO.address("LEDS")) == (0x33, 4)
        assert ctx.get(dut.leds) == 0x33

    run(dut, testbench)


def test_decoder_rx_read_pops_once():
    """The read strobe reaches the UART once even though the request lasts three cycles."""
    dut = Fabric(loopback=True)

    async def testbench(ctx):
        for byte in b"hi":
            while not (await cpu_access(ctx, dut.cpu, UART.address("STATUS")))[0] & TX_READY:
                pass
            await cpu_access(ctx, dut.cpu, UART.address("DATA"), write=byte)
        while not (await cpu_access(ctx, dut.cpu, UART.address("STATUS")))[0] & TX_IDLE:
            pass
        await ctx.tick().repeat(8)
        got = [(await cpu_access(ctx, dut.cpu, UART.address("DATA")))[0] for _ in range(3)]
        assert got == [ord("h"), ord("i"), EMPTY]

    run(dut, testbench)


# -- Memory map and configuration ---------------------------------------------------------------

def test_memory_map_is_decodable():
    assert peripheral_at(UART.base) is UART
    assert peripheral_at(SIM.base + 0xFFF) is SIM
    assert peripheral_at(PERIPHERAL_BASE - 4) is None
    assert peripheral_at(PERIPHERAL_BASE + len(PERIPHERALS) * 0x1000) is None
    assert [p.index for p in PERIPHERALS] == list(range(len(PERIPHERALS)))


def test_soc_config_checks_name_the_parameter():
    assert SocConfig().ram_bytes == EngineConfig().mem_bytes
    assert SocConfig().uart_divisor == round(24_000_000 / 115_200)
    small = EngineConfig(mem_bytes=1 << 12)
    assert SocConfig(engine=small).ram_bytes == 1 << 12
    for kwargs, name in (({"ram_bytes": 1 << 12}, "ram_bytes"),
                         ({"clock_hz": 0}, "clock_hz"),
                         ({"uart_baud": 12_000_000}, "uart_baud"),
                         ({"clock_hz": 100_000_000, "uart_baud": 300}, "uart_baud"),
                         ({"with_m": 1}, "with_m"),
                         ({"command_slice": 0}, "command_slice"),
                         ({"engine": {}}, "engine")):
        with pytest.raises(ConfigError, match=f"^{name} ") as info:
            SocConfig(**kwargs)
        assert "\n" not in str(info.value)
    assert SocConfig.from_dict(SocConfig().to_dict()) == SocConfig()
    unsliced = SocConfig(command_slice=False)
    assert SocConfig.from_dict(unsliced.to_dict()) == unsliced


def test_image_words_little_endian_and_size_check():
    config = SocConfig(engine=EngineConfig(mem_bytes=1 << 10))
    assert image_words(bytes(range(1, 10)), config) == [0x0807060504030201, 0x09]
    with pytest.raises(ValueError, match="does not fit"):
        image_words(bytes(1025), config)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_soc_takes_a_timer_width_and_a_receive_depth():
    """``SocConfig`` refuses a timer narrower than 32 bits or wider than 64 and a receive
    FIFO outside 1 to 64 bytes in one line, keeps its dictionary when both are the defaults,
    and builds the SoC's timer and UART with them."""
    from dataclasses import replace

    from rvnpu.hdl.soc.soc import Soc
    from rvnpu.spec.config import ConfigError
    from rvnpu.spec.memory_map import SocConfig

    for bad in (31, 65, 40.0):
        with pytest.raises(ConfigError, match="^timer_width must be an integer from 32 to 64"):
            SocConfig(timer_width=bad)
    for bad in (0, 65):
        with pytest.raises(ConfigError, match="^uart_rx_depth must be an integer from 1 to 64"):
            SocConfig(uart_rx_depth=bad)
    assert not {"timer_width", "uart_rx_depth"} & set(SocConfig().to_dict())
    small = replace(SocConfig(), timer_width=32, uart_rx_depth=1)
    assert SocConfig.from_dict(small.to_dict()) == small
    parts = Soc(small).elaborate(None).submodules
    assert (parts.timer.width, parts.uart.rx_depth) == (32, 1)
    del parts
    gc.collect()    # the parts elaborated no further, while their warnings are filtered
