"""iCEBreaker: a Lattice iCE40 UltraPlus 5K (5280 logic cells, 30 block RAMs, 8 DSPs) with a
12 MHz oscillator, an FTDI UART, and the snap-off PMOD's LEDs and buttons."""

from amaranth.build import Attrs, Clock, Pins, PinsN, Resource, Subsignal
from amaranth.vendor import LatticeICE40Platform

from rvnpu.spec.config import EngineConfig

from . import Board


__all__ = ["IceBreakerPlatform", "BOARDS"]


class IceBreakerPlatform(LatticeICE40Platform):
    device = "iCE40UP5K"
    package = "SG48"
    default_clk = "clk12"
    resources = [
        Resource("clk12", 0, Pins("35", dir="i"), Clock(12e6),
                 Attrs(GLOBAL=True, IO_STANDARD="SB_LVCMOS")),
        # The configuration flash (a W25Q128), free for the design once it is configured.
        Resource("spi_flash", 0,
                 Subsignal("cs_n", Pins("16", dir="o")),
                 Subsignal("clk", Pins("15", dir="o")),
                 Subsignal("copi", Pins("14", dir="o")),
                 Subsignal("cipo", Pins("17", dir="i")),
                 Attrs(IO_STANDARD="SB_LVCMOS")),
        Resource("uart", 0,
                 Subsignal("rx", Pins("6", dir="i")),
                 Subsignal("tx", Pins("9", dir="o")),
                 Attrs(IO_STANDARD="SB_LVCMOS")),
        # The main board's red and green LEDs, then the snap-off PMOD's five.
        *(Resource("led", i, PinsN(pin, dir="o"), Attrs(IO_STANDARD="SB_LVCMOS"))
          for i, pin in enumerate(("11", "37"))),
        *(Resource("led", 2 + i, Pins(pin, dir="o"), Attrs(IO_STANDARD="SB_LVCMOS"))
          for i, pin in enumerate(("26", "27", "25", "23", "21"))),
        # The main board's user button, then the snap-off PMOD's three.
        Resource("button", 0, PinsN("10", dir="i"), Attrs(IO_STANDARD="SB_LVCMOS")),
        *(Resource("button", 1 + i, Pins(pin, dir="i"), Attrs(IO_STANDARD="SB_LVCMOS"))
          for i, pin in enumerate(("20", "19", "18"))),
    ]
    connectors = []


# The UP5K's block RAM (15 KiB in all) is left to the engine and the core: the SoC's RAM is two
# of the four 32 KiB SPRAMs, filled at reset from the flash, where the firmware follows the
# bitstream (104 KiB) at 128 KiB in the one image iceprog writes.
BOARDS = (
    # 18 MHz from the PLL (12 x 96 / 64). At 15 the design closed at 16.9 MHz (2026-12-06),
    # its longest path the control core's execute cycle, through the adder, into the bus
    # decoder and the SPRAM's write enables. With the core's memory stage (a load's or
    # store's address from a register, a cycle more for each) it closed at 18.9 against 18
    # (2026-12-07), for 28 logic cells more (5,226 of 5,280).
    # A 4x1 array (4 MACs; a row costs about 150 cells, a column far more: the load, store and
    # accumulator paths widen) since 2026-12-07, in the cells a 32-bit timer (about 250), no
    # unit slices (140) and a one-byte UART receiver (75) gave back: 5,198 of 5,280, closing
    # at 19.9 MHz. Since the front end takes a single dataflow as a constant, 5,158, closing
    # at 18.3 (nextpnr's own placement; the core's execute cycle into pc, 54.6 ns).
    # 24 MHz (12 x 64 / 32) since the core decides a branch on a comparator of its own and
    # its execute cycle's trap tests on the operands' low bits (2026-12-07): 5,225 cells,
    # 24.5 against 24 from seed 1. Placements of that design closed at 23.2 to 24.8 (against
    # 24 to 25.125, nextpnr's own seed and seeds 1 and 2): 25.125, the PLL's step after
    # 24.75, was not met; the worst paths run through the core and the bus decoder, or the
    # load unit's row buffer into the scratchpad's write enables.
    Board(name="icebreaker", platform=IceBreakerPlatform, clock_hz=24_000_000,
          engine=EngineConfig(rows=4, cols=1, dataflow="ws", spad_depth=256, acc_depth=256,
                              qp_depth=256, bus_width=32, mem_bytes=64 << 10, queue_depth=1,
                              requant_modes="none", hazards="serial",
                              command_fetch=False, post_unit=False, store_pool=False,
                              mac_latency=0, unit_slices=False),
          ram_style="spram", flash_offset=0x2_0000, with_m=False,
          timer_width=32, uart_rx_depth=1,
          # No command register (about 70 cells, of a hundred free): the core's path into
          # the engine does not set this design's clock.
          command_slice=False, memory_stage=True, placement_seed=1,
          program=("iceprog", "{bitstream}"), bitstream=".bin",
          doc="iCEBreaker (iCE40UP5K-SG48), 12 MHz oscillator, FTDI UART"),
)
