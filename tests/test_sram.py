"""The main-memory SRAM: the engine's bus port and the host port sharing one write port."""

from amaranth.sim import Simulator

from rvnpu.hdl.sram import BusSram


def _run(testbench, **kwargs):
    dut = BusSram(depth=16, data_width=64, addr_width=8, with_host=True, **kwargs)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    async def bench(ctx):
        await testbench(ctx, dut)

    sim.add_testbench(bench)
    sim.run()


def test_bus_write_wins_and_holds_back_the_host_write():
    async def testbench(ctx, dut):
        req = dut.bus.req
        # Both write in one cycle: the bus's lands, the host is told to wait.
        ctx.set(req.valid, 1)
        ctx.set(req.payload.write, 1)
        ctx.set(req.payload.addr, 3)
        ctx.set(req.payload.mask, 0xFF)
        ctx.set(req.payload.data, 0x1111_2222_3333_4444)
        ctx.set(dut.host_addr, 5)
        ctx.set(dut.host_we, 0xFF)
        ctx.set(dut.host_wdata, 0xAAAA_BBBB_CCCC_DDDD)
        assert ctx.get(dut.host_busy) == 1
        await ctx.tick()
        # The host holds its write; the bus is idle now, so it lands.
        ctx.set(req.valid, 0)
        assert ctx.get(dut.host_busy) == 0
        await ctx.tick()
        ctx.set(dut.host_we, 0)
        for addr, want in ((3, 0x1111_2222_3333_4444), (5, 0xAAAA_BBBB_CCCC_DDDD), (4, 0)):
            ctx.set(dut.host_addr, addr)
            await ctx.tick()
            assert ctx.get(dut.host_rdata) == want

    _run(testbench)


def test_host_byte_writes_and_bus_reads_at_once():
    async def testbench(ctx, dut):
        req = dut.bus.req
        ctx.set(dut.host_addr, 2)
        ctx.set(dut.host_we, 0b0000_0110)
        ctx.set(dut.host_wdata, 0x0000_0000_00AB_CD00)
        ctx.set(req.valid, 1)
        ctx.set(req.payload.write, 0)
        ctx.set(req.payload.addr, 1)
        assert ctx.get(dut.host_busy) == 0
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.valid) == 1
        assert ctx.get(dut.bus.rsp.payload) == 0x0123_4567_89AB_CDEF
        ctx.set(dut.host_we, 0)
        ctx.set(req.payload.addr, 2)
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.payload) == 0x0000_0000_00AB_CD00

    _run(testbench, init=[0, 0x0123_4567_89AB_CDEF])
