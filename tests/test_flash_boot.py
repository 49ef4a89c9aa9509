"""Booting from the board's SPI flash into a RAM without initial contents (the iCEBreaker)."""

import gc

import pytest
from amaranth.sim import Simulator

from rvnpu.hdl.config import EngineConfig
from rvnpu.hdl.flash_boot import READ, WAKE, FlashBootCopier
from rvnpu.hdl.memory_map import ConfigError, SocConfig
from rvnpu.hdl.soc import Soc
from rvnpu.sim.spi_flash import SpiFlashModel

from test_boot import _program


OFFSET = 0x2_0000


def _flash(image, offset=OFFSET):
    """Flash contents: something else below the image (a bitstream), erased bytes between."""
    return bytes(range(256)) * 8 + b"\xff" * (offset - 2048) + image


@pytest.mark.parametrize("busy_every, width", [(0, 32), (3, 32), (2, 64)])
def test_copier_reads_the_image_from_flash(busy_every, width):
    words = [(0x1234_5678_9ABC_DEF0 * (i + 1)) & ((1 << width) - 1) for i in range(9)]
    image = b"".join(w.to_bytes(width // 8, "little") for w in words)
    wake = 10
    dut = FlashBootCopier(words=len(words), offset=OFFSET, depth=16, width=width,
                          wake_cycles=wake)
    flash = SpiFlashModel(_flash(image))
    ram, ended = {}, []

    async def host(ctx):
        cycle = 0
        while not ctx.get(dut.done):
            busy = bool(busy_every) and cycle % busy_every == 0
            ctx.set(dut.ram.busy, busy)
            we, addr, data = ctx.get(dut.ram.we), ctx.get(dut.ram.addr), ctx.get(dut.ram.wdata)
            if we and not busy:
                assert we == (1 << width // 8) - 1
                assert addr not in ram, f"word {addr} written twice"
                ram[addr] = data
            await ctx.tick()
            cycle += 1
            assert cycle < 3000
        ended.append((ctx.get(dut.ram.we), ctx.get(dut.flash.cs_n)))

    async def flash_bench(ctx):
        await flash.testbench(ctx, dut.flash, cycles=3000)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.add_testbench(flash_bench, background=True)
    sim.run()
    assert ram == dict(enumerate(words))
    assert ended == [(0, 1)], "still writing, or the flash still selected, after done"
    assert [op for op, _ in flash.commands] == [WAKE, READ]
    (_, woke), (_, read) = flash.commands
    assert read - woke >= wake, "read before the flash had time to wake"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_copier_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        FlashBootCopier(words=5, offset=0, depth=4, width=32, wake_cycles=1)
    with pytest.raises(ValueError, match="outside a 16 MiB flash"):
        FlashBootCopier(words=4, offset=(1 << 24) - 8, depth=4, width=32, wake_cycles=1)
    gc.collect()    # the refused components, while their warning is filtered


def test_soc_boots_from_flash_into_single_port_ram():
    config = SocConfig(engine=EngineConfig(rows=1, cols=1, spad_depth=16, acc_depth=16,
                                           qp_depth=4, bus_width=32, mem_bytes=1 << 10),
                       ram_style="spram", flash_offset=OFFSET, clock_hz=1_000_000)
    image = _program()
    dut = Soc(config, image=image)
    flash = SpiFlashModel(_flash(image))
    exits = []

    async def testbench(ctx):
        for _ in range(2000):
            await ctx.tick()
            if ctx.get(dut.sim_exit_valid):
                exits.append(ctx.get(dut.sim_exit_code))
                return

    async def flash_bench(ctx):
        await flash.testbench(ctx, dut.flash, cycles=2000)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_testbench(flash_bench, background=True)
    sim.run()
    assert exits == [42]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_soc_without_flash_boot_has_no_flash_port():
    assert "flash" not in Soc(SocConfig()).signature.members
    gc.collect()


@pytest.mark.parametrize("kwargs, message", [
    (dict(flash_offset=0), "flash_offset needs ram_style 'spram'"),
    (dict(flash_offset=-1, ram_style="spram"), "flash_offset must be an integer"),
    (dict(flash_offset=1 << 24, ram_style="spram"), "flash_offset must be an integer"),
])
def test_flash_offset_is_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SocConfig(**kwargs)
