"""Booting from a ROM into a RAM without initial contents (the iCE40 SPRAM style)."""

import gc

import pytest
from amaranth.sim import Simulator

from rvnpu.hdl.soc.boot import BootCopier
from rvnpu.spec.config import EngineConfig
from rvnpu.spec.memory_map import SIM, ConfigError, SocConfig
from rvnpu.hdl.soc.soc import Soc
from rvnpu.sim import rv32_asm as rv32


def simulate(dut, main, *beside):
    """Run ``dut`` until the testbench ``main`` returns, with ``beside`` in the background."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(main)
    for bench in beside:
        sim.add_testbench(bench, background=True)
    sim.run()


def copy_to_ram(dut, busy_every, limit, *beside, after=()):
    """Run the boot copier ``dut`` against a RAM that is busy every ``busy_every``-th cycle (0:
    never), with the testbenches ``beside`` in the background, until it is done (within
    ``limit`` cycles). Returns the words written, by address, and the values of ``after`` (and
    of the write enable) once done."""
    ram, ended = {}, []

    async def host(ctx):
        cycle = 0
        while not ctx.get(dut.done):
            busy = bool(busy_every) and cycle % busy_every == 0
            ctx.set(dut.ram.busy, busy)
            we, addr, data = ctx.get(dut.ram.we), ctx.get(dut.ram.addr), ctx.get(dut.ram.wdata)
            if we and not busy:
                assert we == (1 << len(dut.ram.we)) - 1, "a partial word written"
                assert addr not in ram, f"word {addr} written twice"
                ram[addr] = data
            await ctx.tick()
            cycle += 1
            assert cycle < limit
        assert ctx.get(dut.ram.we) == 0, "still writing after done"
        ended.extend(ctx.get(signal) for signal in after)

    simulate(dut, host, *beside)
    return ram, ended


@pytest.mark.parametrize("busy_every", [0, 3])
def test_copier_writes_every_word_once_busy_or_not(busy_every):
    words = [0x1000_0000 + 7 * i for i in range(11)]
    ram, _ = copy_to_ram(BootCopier(words, depth=16, width=32), busy_every, 100)
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


#: The smallest SoC: what booting needs, quick to simulate.
TINY = EngineConfig(rows=1, cols=1, spad_depth=16, acc_depth=16, qp_depth=4, bus_width=32,
                    mem_bytes=1 << 10)


def run_to_exit(dut, cycles, *beside):
    """Simulate the SoC ``dut`` until its firmware writes SIM.EXIT, for ``cycles`` at most, with
    the testbenches ``beside`` (models of what is around it) in the background; returns the
    exit codes seen."""
    exits = []

    async def testbench(ctx):
        for _ in range(cycles):
            await ctx.tick()
            if ctx.get(dut.sim_exit_valid):
                exits.append(ctx.get(dut.sim_exit_code))
                return

    simulate(dut, testbench, *beside)
    return exits


def test_soc_boots_from_rom_into_single_port_ram():
    dut = Soc(SocConfig(engine=TINY, ram_style="spram"), image=_program())
    assert run_to_exit(dut, 400) == [42]


def test_soc_runs_from_single_port_block_ram_without_a_boot_copy():
    dut = Soc(SocConfig(engine=TINY, ram_style="single"), image=_program())
    assert run_to_exit(dut, 400) == [42]


def test_soc_runs_from_true_dual_port_block_ram():
    """``ram_style="dual"``: a read/write port for the core and one for the engine, on one
    clock."""
    dut = Soc(SocConfig(engine=TINY, ram_style="dual"), image=_program())
    assert run_to_exit(dut, 400) == [42]


def test_ram_style_is_checked():
    with pytest.raises(ConfigError, match="ram_style must be one of block, dual, single, spram"):
        SocConfig(ram_style="sram")


def test_regfile_style_puts_the_registers_in_lut_ram():
    """``regfile_style="lut"`` marks the core's register memory for distributed RAM, which is
    what Yosys's memory mapper reads; ``"block"`` leaves it to synthesis."""
    from amaranth.back import rtlil
    from rvnpu.hdl.core.cpu import RiscvCore
    assert 'ram_style "distributed"' in rtlil.convert(RiscvCore(regfile_style="lut"))
    assert "ram_style" not in rtlil.convert(RiscvCore())
    with pytest.raises(ConfigError, match="regfile_style must be one of block, lut, not 'ff'"):
        SocConfig(regfile_style="ff")
    assert SocConfig(regfile_style="lut").to_dict()["regfile_style"] == "lut"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_memory_stage_is_checked_and_described():
    """Without the memory stage the SoC's description (and the hash naming its simulator
    builds) is as before the option; with it, it is named there and reaches the core."""
    from rvnpu.hdl.core.cpu import RiscvCore
    assert "memory_stage" not in SocConfig().to_dict()
    staged = SocConfig(memory_stage=True)
    assert staged.to_dict()["memory_stage"] is True
    assert SocConfig.from_dict(staged.to_dict()) == staged
    assert SocConfig(memory_stage=1) == staged
    with pytest.raises(ConfigError, match=r"memory_stage must be true or false \(1 or 0\), "
                                          r"not 2"):
        SocConfig(memory_stage=2)
    with pytest.raises(TypeError, match="memory_stage must be a bool, not 'yes'") as refused:
        RiscvCore(memory_stage="yes")
    del refused
    gc.collect()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_shifter_is_checked_and_described():
    """A serial shifter leaves the SoC's description (and the simulator builds named by its
    hash) as before the option; a barrel shifter is named in it and reaches the core."""
    from rvnpu.hdl.core.cpu import RiscvCore
    assert "shifter" not in SocConfig().to_dict()
    barrel = SocConfig(shifter="barrel")
    assert barrel.to_dict()["shifter"] == "barrel"
    assert SocConfig.from_dict(barrel.to_dict()) == barrel
    with pytest.raises(ConfigError, match="shifter must be one of serial, barrel, not 'fast'"):
        SocConfig(shifter="fast")
    with pytest.raises(ValueError, match="shifter must be one of serial, barrel") as refused:
        RiscvCore(shifter="fast")
    # The half-made core warns that it was never elaborated when it is collected: here, under
    # this test's filter, rather than in whichever test runs next.
    del refused
    gc.collect()
