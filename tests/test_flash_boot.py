"""Booting from the board's SPI flash into a RAM without initial contents (the iCEBreaker)."""

import gc

import pytest

from rvnpu.hdl.soc.flash_boot import READ, WAKE, FlashBootCopier
from rvnpu.spec.memory_map import ConfigError, SocConfig
from rvnpu.hdl.soc.soc import Soc
from rvnpu.sim.spi_flash import SpiFlashModel

from test_boot import TINY, _program, copy_to_ram, run_to_exit


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

    async def flash_bench(ctx):
        await flash.testbench(ctx, dut.flash, cycles=3000)

    ram, ended = copy_to_ram(dut, busy_every, 3000, flash_bench, after=[dut.flash.cs_n])
    assert ram == dict(enumerate(words))
    assert ended == [1], "the flash still selected after done"
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
    config = SocConfig(engine=TINY, ram_style="spram", flash_offset=OFFSET,
                       clock_hz=1_000_000)
    image = _program()
    dut = Soc(config, image=image)
    flash = SpiFlashModel(_flash(image))

    async def flash_bench(ctx):
        await flash.testbench(ctx, dut.flash, cycles=2000)

    assert run_to_exit(dut, 2000, flash_bench) == [42]


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
