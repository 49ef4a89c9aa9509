"""Booting from a ROM into a RAM without initial contents (the iCE40 SPRAM style)."""

import gc

import pytest
from amaranth.sim import Simulator

from rvnpu.hdl.boot import BootCopier
from rvnpu.hdl.config import EngineConfig
from rvnpu.hdl.memory_map import SIM, ConfigError, SocConfig
from rvnpu.hdl.soc import Soc
from rvnpu.sim import rv32


@pytest.mark.parametrize("busy_every", [0, 3])
def test_copier_writes_every_word_once_busy_or_not(busy_every):
    words = [0x1000_0000 + 7 * i for i in range(11)]
    dut = BootCopier(words, depth=16, width=32)
    ram = {}

    async def testbench(ctx):
        cycle = 0
        while not ctx.get(dut.done):
            busy = bool(busy_every) and cycle % busy_every == 0
            ctx.set(dut.ram.busy, busy)
            we, addr, data = ctx.get(dut.ram.we), ctx.get(dut.ram.addr), ctx.get(dut.ram.wdata)
            if we and not busy:
                assert addr not in ram, f"word {addr} written twice"
                ram[addr] = data
            await ctx.tick()
            cycle += 1
            assert cycle < 100
        assert ctx.get(dut.ram.we) == 0, "still writing after done"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert ram == dict(enumerate(words))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_copier_refuses_an_image_larger_than_the_ram():
    with pytest.raises(ValueError, match="does not fit"):
        BootCopier([0] * 5, depth=4, width=32)
    gc.collect()    # the refused component, while its warning is filtered


def _program():
    sim_base = SIM.base
    code = [
        rv32.lui(1, sim_base >> 12),
        rv32.lw(2, 64, 0),          # the data word baked into the image
        rv32.addi(2, 2, 1),
        rv32.sw(2, 68, 0),          # through the RAM, which is only written by now
        rv32.lw(3, 68, 0),
        rv32.sw(3, 0, 1),           # SIM.EXIT
        rv32.jal(0, 0),
    ]
    image = b"".join(w.to_bytes(4, "little") for w in code)
    image += bytes(64 - len(image)) + (41).to_bytes(4, "little")
    return image


def test_soc_boots_from_rom_into_single_port_ram():
    config = SocConfig(engine=EngineConfig(rows=1, cols=1, spad_depth=16, acc_depth=16,
                                           qp_depth=4, bus_width=32, mem_bytes=1 << 10),
                       ram_style="spram")
    dut = Soc(config, image=_program())
    exits = []

    async def testbench(ctx):
        for _ in range(400):
            await ctx.tick()
            if ctx.get(dut.sim_exit_valid):
                exits.append(ctx.get(dut.sim_exit_code))
                return

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert exits == [42]


def test_ram_style_is_checked():
    with pytest.raises(ConfigError, match="ram_style must be one of block, spram"):
        SocConfig(ram_style="sram")
