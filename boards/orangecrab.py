"""OrangeCrab r0.2: a Lattice ECP5 LFE5U-25F (csfBGA285) with a 48 MHz oscillator, an RGB LED
and one button. It has no USB UART: the SoC's UART is on the Feather header (pin 0 receives,
pin 1 transmits), for a 3.3 V USB-serial adapter."""

from amaranth.build import Attrs, Clock, Pins, PinsN, Resource, Subsignal
from amaranth.vendor import LatticeECP5Platform

from . import Board
from .ulx3s import LFE5U_25F_ENGINE


__all__ = ["OrangeCrabPlatform", "BOARDS"]


class OrangeCrabPlatform(LatticeECP5Platform):
    device = "LFE5U-25F"
    package = "MG285"
    speed = "8"
    default_clk = "clk48"
    resources = [
        Resource("clk48", 0, Pins("A9", dir="i"), Clock(48e6), Attrs(IO_TYPE="LVCMOS33")),
        Resource("uart", 0,
                 Subsignal("rx", Pins("N17", dir="i")),
                 Subsignal("tx", Pins("M18", dir="o")),
                 Attrs(IO_TYPE="LVCMOS33")),
        # The RGB LED: red, green, blue, lit when low.
        *(Resource("led", i, PinsN(pin, dir="o"), Attrs(IO_TYPE="LVCMOS33"))
          for i, pin in enumerate("K4 M3 J3".split())),
        Resource("button", 0, PinsN("J17", dir="i"), Attrs(IO_TYPE="SSTL135_I")),
    ]
    connectors = []


# Sized like the ULX3S-25F (same part): its 28 DSPs hold a 4x4 array and one TFLite lane,
# with no post unit.
# The bootloader takes the bitstream over USB DFU (hold the button while plugging in).
# The core at 72 MHz and the engine at 96, both from a 576 MHz VCO fed by the 48 MHz
# oscillator. With the core's memory stage (a load's or store's address from a register, a
# cycle more for each) the core's domain closed at 80.1 against 72 and the engine's at 97.7
# (2026-12-07). Without it the core's domain closed at 69 to 77 MHz (this part is speed
# grade 8; the ULX3S-25F's is 6) and missed 72 once (70.4, 2026-12-06), so it ran at 64.
# The engine's, with the deep lanes, closed at 96.6 MHz against 80 and 96 and at 98.7
# beside the core at 72. One clock of 64 MHz had closed at 73.4; before the SoC's paths
# from the core were registered (about 60 MHz) the board ran at 30.
BOARDS = (
    # A weight-stationary array since 2026-12-07 (a 4x4 running both dataflows before): a
    # weight-stationary cell is a sixth of a two-dataflow one besides its multiplier. First
    # 8x4, 12 cells multiplying in logic beside the part's 28 MULT18X18D: 15,966 LUTs, 79.6 /
    # 97.9 MHz against 72 / 96. Then 8x6 with raw cells (the zero points off below the
    # array, so 29 cells multiply 8x8 in logic, not 9x9) and the accumulator's read held a
    # cycle: 21,364 LUTs, 79.3 / 101.6 MHz from seed 2 (74.0 / 97.4 from seed 3; router1
    # stalled from nextpnr's own seed and from seed 1 before the accumulator's stage).
    # With the core's branch comparator (2026-12-07, late) seed 2 left router1 at 77,000
    # arcs for minutes; seed 3 closed at 84.3 / 104.9 against 72 / 96 and, one placement,
    # against 80 / 100 (the PLL: 48 x 5 / 3, a 400 MHz VCO), 22,044 LUTs.
    Board(name="orangecrab", platform=OrangeCrabPlatform, clock_hz=80_000_000,
          engine=LFE5U_25F_ENGINE,       # the ULX3S-25F's (the same part)
          shifter="barrel", memory_stage=True, placement_seed=3,
          program=("dfu-util", "--alt", "0", "--download", "{bitstream}"), bitstream=".bit",
          # The engine on a clock of its own (CLKOS), as on the ULX3S-25F.
          engine_clock_hz=100_000_000,
          doc="OrangeCrab r0.2 (LFE5U-25F), 48 MHz oscillator, UART on Feather pins 0/1"),
)
