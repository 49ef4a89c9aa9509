"""The main-memory SRAM: the engine's bus port and the host port sharing one write port, or
each with a read/write port of its own (true dual port, on one clock)."""

import gc
import os

import pytest
from amaranth.sim import Simulator

from rvnpu.hdl.soc.dual_port_ram import DualPortSram
from rvnpu.hdl.soc.sram import BusSram

from synth_cells import cell_counts


def _run(testbench, dual=False, **kwargs):
    if dual:
        dut = DualPortSram(depth=16, data_width=64, addr_width=8, bus_domain="sync", **kwargs)
    else:
        dut = BusSram(depth=16, data_width=64, addr_width=8, with_host=True, **kwargs)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    async def bench(ctx):
        await testbench(ctx, dut)

    sim.add_testbench(bench)
    sim.run()


def _both_write(ctx, dut, *, bus_addr, bus_mask, bus_data, host_addr, host_we, host_data):
    """A bus write request and a host write, offered in the same cycle."""
    req = dut.bus.req
    ctx.set(req.valid, 1)
    ctx.set(req.payload.write, 1)
    ctx.set(req.payload.addr, bus_addr)
    ctx.set(req.payload.mask, bus_mask)
    ctx.set(req.payload.data, bus_data)
    ctx.set(dut.host_addr, host_addr)
    ctx.set(dut.host_we, host_we)
    ctx.set(dut.host_wdata, host_data)


def test_bus_write_wins_and_holds_back_the_host_write():
    async def testbench(ctx, dut):
        req = dut.bus.req
        # Both write in one cycle: the bus's lands, the host is told to wait.
        _both_write(ctx, dut, bus_addr=3, bus_mask=0xFF, bus_data=0x1111_2222_3333_4444,
                    host_addr=5, host_we=0xFF, host_data=0xAAAA_BBBB_CCCC_DDDD)
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


def test_single_port_serves_the_bus_first_then_the_host():
    async def testbench(ctx, dut):
        req = dut.bus.req
        ctx.set(req.valid, 1)
        ctx.set(req.payload.write, 1)
        ctx.set(req.payload.addr, 1)
        ctx.set(req.payload.mask, 0xFF)
        ctx.set(req.payload.data, 0x0123_4567_89AB_CDEF)
        await ctx.tick()
        # The host asks to write while the bus reads: the bus is served, the host waits.
        ctx.set(dut.host_addr, 2)
        ctx.set(dut.host_we, 0xFF)
        ctx.set(dut.host_wdata, 0x5555_6666_7777_8888)
        ctx.set(req.valid, 1)
        ctx.set(req.payload.write, 0)
        ctx.set(req.payload.addr, 1)
        assert ctx.get(dut.host_busy) == 1
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.valid) == 1
        assert ctx.get(dut.bus.rsp.payload) == 0x0123_4567_89AB_CDEF
        # A bus request stops host reads as well as writes.
        ctx.set(req.payload.addr, 2)
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.payload) == 0, "the held host write happened"
        ctx.set(req.valid, 0)
        assert ctx.get(dut.host_busy) == 0
        await ctx.tick()
        ctx.set(dut.host_we, 0)
        await ctx.tick()
        assert ctx.get(dut.host_rdata) == 0x5555_6666_7777_8888

    _run(testbench, single_port=True)


def test_single_port_ram_with_initial_contents_serves_them():
    """``ram_style="single"``: one port, holding the firmware from configuration."""
    async def testbench(ctx, dut):
        req = dut.bus.req
        ctx.set(dut.host_addr, 1)
        await ctx.tick()
        assert ctx.get(dut.host_rdata) == 0x0123_4567_89AB_CDEF
        # The bus reads the other word; the host waits and its read does not happen.
        ctx.set(req.valid, 1)
        ctx.set(req.payload.write, 0)
        ctx.set(req.payload.addr, 2)
        ctx.set(dut.host_addr, 1)
        assert ctx.get(dut.host_busy) == 1
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.payload) == 0xFEDC_BA98_7654_3210
        assert ctx.get(dut.host_rdata) == 0xFEDC_BA98_7654_3210

    _run(testbench, single_port=True, init=[0, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210])


def test_dual_port_ram_writes_on_both_ports_at_once():
    """Neither port waits: both write in one cycle, each reads what it wrote and what the
    other wrote, and a read on one port in the cycle the other writes that word gives the
    word being written."""
    async def testbench(ctx, dut):
        req = dut.bus.req
        _both_write(ctx, dut, bus_addr=3, bus_mask=0b1111_0000, bus_data=0x1111_2222_3333_4444,
                    host_addr=5, host_we=0xFF, host_data=0xAAAA_BBBB_CCCC_DDDD)
        assert ctx.get(dut.host_busy) == 0
        await ctx.tick()
        # Each port reads the other's word; the host overwrites word 1, which the bus reads
        # in the same cycle.
        ctx.set(req.payload.write, 0)
        ctx.set(req.payload.addr, 5)
        ctx.set(dut.host_addr, 3)
        ctx.set(dut.host_we, 0)
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.valid) == 1
        assert ctx.get(dut.bus.rsp.payload) == 0xAAAA_BBBB_CCCC_DDDD
        assert ctx.get(dut.host_rdata) == 0x1111_2222_0000_0009, "byte lanes of the bus write"
        ctx.set(req.payload.addr, 1)
        ctx.set(dut.host_addr, 1)
        ctx.set(dut.host_we, 0x0F)
        ctx.set(dut.host_wdata, 0x5555_5555_6666_6666)
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.payload) == 0x0123_4567_6666_6666
        ctx.set(dut.host_we, 0)
        ctx.set(req.valid, 0)
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.valid) == 0
        assert ctx.get(dut.host_rdata) == 0x0123_4567_6666_6666

    _run(testbench, dual=True, init=[0, 0x0123_4567_89AB_CDEF, 0, 9])


def _instances(elaboratable, platform):
    """The names of the Instance cells in ``elaboratable``'s hierarchy, elaborated for
    ``platform``."""
    from amaranth.hdl import Fragment, Instance
    found = []

    def walk(fragment):
        if isinstance(fragment, Instance):
            found.append(fragment.type)
        for sub, _name, _src in fragment.subfragments:
            walk(sub)

    walk(Fragment.get(elaboratable, platform))
    return found


@pytest.mark.parametrize("depth, width, blocks", [(16384, 32, 2), (32768, 32, 4),
                                                   (4096, 64, 4), (1024, 32, 2)])
def test_single_port_ram_is_spram_on_ice40(depth, width, blocks):
    from rvnpu.boards.icebreaker import IceBreakerPlatform
    ram = BusSram(depth=depth, data_width=width, addr_width=20, with_host=True,
                  single_port=True)
    assert _instances(ram, IceBreakerPlatform()) == ["SB_SPRAM256KA"] * blocks
    # Elsewhere (simulation, other FPGAs) it is an ordinary memory, and so it is on iCE40
    # with initial contents, which SPRAM cannot hold.
    assert _instances(BusSram(depth=depth, data_width=width, addr_width=20, with_host=True,
                              single_port=True), None) == []
    assert _instances(BusSram(depth=depth, data_width=width, addr_width=20, with_host=True,
                              single_port=True, init=[1, 2]), IceBreakerPlatform()) == []


def test_registered_requests_answer_a_cycle_later_in_order():
    """``registered_requests``: a read is answered two cycles after its request, not one, and
    a write followed at once by a read of its word reads what it wrote (in order), while the
    host port is as before."""
    async def testbench(ctx, dut):
        req = dut.bus.req
        ctx.set(req.valid, 1)
        ctx.set(req.payload.write, 0)
        ctx.set(req.payload.addr, 1)
        await ctx.tick()
        # The read is in the register: nothing answered yet. A write to word 1 follows.
        assert ctx.get(dut.bus.rsp.valid) == 0
        ctx.set(req.payload.write, 1)
        ctx.set(req.payload.mask, 0x0F)
        ctx.set(req.payload.data, 0xFFFF_FFFF_1111_2222)
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.valid) == 1
        assert ctx.get(dut.bus.rsp.payload) == 0x0123_4567_89AB_CDEF   # before the write
        ctx.set(req.payload.write, 0)
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.valid) == 0                          # the write's turn
        ctx.set(req.valid, 0)
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.valid) == 1
        assert ctx.get(dut.bus.rsp.payload) == 0x0123_4567_1111_2222   # the mask kept
        await ctx.tick()
        assert ctx.get(dut.bus.rsp.valid) == 0
        ctx.set(dut.host_addr, 1)
        await ctx.tick()
        assert ctx.get(dut.host_rdata) == 0x0123_4567_1111_2222

    _run(testbench, dual=True, init=[0, 0x0123_4567_89AB_CDEF], registered_requests=True)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("platform, message, two_clocks_ok", [
    ("rvnpu.boards.icebreaker:IceBreakerPlatform",
     "^a true dual-port RAM needs two write ports; the iCE40's block RAM has one", False),
    ("rvnpu.boards.ulx3s:ULX3S25FPlatform",
     "^a one-clock true dual-port RAM is not built from block RAM on ECP5", True),
])
def test_dual_port_ram_is_refused_where_it_is_no_block_ram(platform, message, two_clocks_ok):
    """The iCE40 has no true dual-port block RAM; on ECP5 a one-clock one came out as
    flip-flops in a whole SoC, while the two-clock one (the ULX3S-85F's) maps."""
    import importlib
    from amaranth.hdl import Fragment
    module, name = platform.split(":")
    platform = getattr(importlib.import_module(module), name)()
    ram = DualPortSram(depth=1024, data_width=32, addr_width=10, bus_domain="sync")
    with pytest.raises(ValueError, match=message):
        Fragment.get(ram, platform)
    two_clocks = DualPortSram(depth=1024, data_width=32, addr_width=10, bus_domain="engine")
    if two_clocks_ok:
        Fragment.get(two_clocks, platform)
    else:
        with pytest.raises(ValueError, match=message):
            Fragment.get(two_clocks, platform)
    gc.collect()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_single_port_ram_larger_than_the_up5k_spram_is_refused():
    from amaranth.hdl import Fragment
    from rvnpu.boards.icebreaker import IceBreakerPlatform
    ram = BusSram(depth=65536, data_width=32, addr_width=20, with_host=True, single_port=True)
    with pytest.raises(ValueError, match="needs 8 SPRAM blocks; the iCE40 UP5K has 4"):
        Fragment.get(ram, IceBreakerPlatform())
    gc.collect()


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
@pytest.mark.parametrize("synth, blocks", [("synth_gowin", ("DPB", "DPX9B")),
                                           ("synth_ecp5", ("DP16KD",))])
def test_one_clock_dual_port_ram_is_true_dual_port_block_ram(synth, blocks, tmp_path):
    """Why a one-clock read sees the other port's write: with Amaranth's read-old default
    across ports, Yosys found no block to map the memory to and built it from flip-flops."""
    ram = DualPortSram(depth=2048, data_width=32, addr_width=11, bus_domain="sync")
    # Mapped to flip-flops, 64 kbit take Yosys many minutes: the time limit fails that too.
    counts = cell_counts(ram, synth, tmp_path)
    assert sum(counts.get(block, 0) for block in blocks) >= 4, counts
    flip_flops = sum(n for cell, n in counts.items() if "DFF" in cell or cell == "TRELLIS_FF")
    assert flip_flops < 200, counts
