"""ULX3S: a Lattice ECP5 (LFE5U-85F or -25F, CABGA381) with a 25 MHz oscillator, an FTDI UART,
eight LEDs and six buttons."""

from amaranth.build import Attrs, Clock, Pins, Resource, Subsignal
from amaranth.vendor import LatticeECP5Platform

from rvnpu.spec.config import EngineConfig

from . import Board


__all__ = ["ULX3S85FPlatform", "ULX3S25FPlatform", "LFE5U_25F_ENGINE", "BOARDS"]


class _ULX3SPlatform(LatticeECP5Platform):
    package = "BG381"
    speed = "6"
    default_clk = "clk25"
    resources = [
        Resource("clk25", 0, Pins("G2", dir="i"), Clock(25e6), Attrs(IO_TYPE="LVCMOS33")),
        Resource("uart", 0,
                 Subsignal("rx", Pins("M1", dir="i")),
                 Subsignal("tx", Pins("L4", dir="o")),
                 Attrs(IO_TYPE="LVCMOS33")),
        *(Resource("led", i, Pins(pin, dir="o"), Attrs(IO_TYPE="LVCMOS33", DRIVE="4"))
          for i, pin in enumerate("B2 C2 C1 D2 D1 E2 E1 H3".split())),
        # FIRE1, FIRE2, UP, DOWN, LEFT, RIGHT; pressed is high.
        *(Resource("button", i, Pins(pin, dir="i"), Attrs(IO_TYPE="LVCMOS33", PULLMODE="DOWN"))
          for i, pin in enumerate("R1 T1 R18 V1 U1 H16".split())),
    ]
    connectors = []


class ULX3S85FPlatform(_ULX3SPlatform):
    device = "LFE5U-85F"


class ULX3S25FPlatform(_ULX3SPlatform):
    device = "LFE5U-25F"


# Sized by the 18x18 multipliers (the 85F has 156, the 25F 28): one each array cell, 4 for
# the TFLite requantisation lane and 4 for the ONNX Runtime one (a single lane, shared by the
# columns), a few for address arithmetic. The 25F builds only the TFLite path and no post
# unit (its QLinearAdd and window arithmetic take 10 more, 34 of 28: the core pools and adds
# there); 16x16 on the 85F needs the cells' products packed or in logic (256 multipliers).
# The front end works out a command's ranges in cycles of their own (range_stage): a command's
# rows times the stride, behind the multiplexer that picks the command's source and ahead of
# the sums, set the engine's clock on all three ECP5 boards.
# Their requantisation lanes are two stages deeper (deep_lane): the accumulator memory's
# read into the lane's first sum, and the lane's 32x32 product, were the engine's longest
# paths next.
# The core shifts with a barrel shifter on every ECP5 board: LUTs are to spare, and shifts by
# a bit a cycle were the largest share of the core's cycles issuing a GEMM.
_PROGRAM = ("openFPGALoader", "--board", "ulx3s", "{bitstream}")

#: The engine of both LFE5U-25F boards (this one and the OrangeCrab): an 8x6 weight-stationary
#: array of raw cells (the zero points off below the array), 29 of them multiplying 8x8 in
#: logic beside the part's 28 MULT18X18D, the accumulator's read held a cycle.
LFE5U_25F_ENGINE = EngineConfig(rows=8, cols=6, dataflow="ws", logic_macs=29,
                                zero_point_sums=True, spad_depth=512, acc_depth=256,
                                qp_depth=16, mem_bytes=32 << 10, requant_lanes=1,
                                requant_modes="tflite", store_add=False, post_unit=False,
                                range_stage=True, deep_lane=True, acc_stage=True)

BOARDS = (
    # The core at 45 MHz (CLKOP) with its memory stage (a load's or store's address from a
    # register, a cycle more for each): 50.1 against 45, beside the engine at 53.4 against
    # 50 (seed 2, 2026-12-07). Without it, at 40 MHz, the core's domain closed at 41.9 to
    # 48.0 (43.2 with seed 2), its longest path the register file through the adder and the
    # multiplier-divider's logic into the RAM.
    Board(name="ulx3s-85f", platform=ULX3S85FPlatform, clock_hz=45_000_000,
          # A 16x8 weight-stationary array of raw cells since 2026-12-07 (an 8x8 running both
          # dataflows before, then for an hour a 12x8): 27,579 LUTs and 152 MULT18X18D of 156,
          # 48.3 / 52.4 MHz from seed 4 against 45 / 50, where the 8x8 took 36,703 LUTs and
          # closed at 48.2 / 56.4, the 12x8 26,451 and 51.8 / 55.2 (seed 3).
          engine=EngineConfig(rows=16, cols=8, dataflow="ws", zero_point_sums=True,
                              spad_depth=1024, acc_depth=512, qp_depth=16,
                              mem_bytes=64 << 10, requant_lanes=1, store_add=False,
                              range_stage=True, deep_lane=True, acc_stage=True),
          shifter="barrel", memory_stage=True,
          program=_PROGRAM, bitstream=".bit",
          # router1, nextpnr-ecp5's default, had not converged after 30 minutes (64,000 wires
          # overused); router2 routes this design in 79 iterations. On the 25F design it
          # closes slower (38.0 MHz against router1's 46.2), so it is this board's alone.
          # The static (electrostatic) placer places it in 5 minutes where HeAP took 10.5
          # (3.3, then 7.2 of annealing), and router2 routes that in 62 passes: the build
          # took 11.6 minutes, not 20, at 48.2 / 56.4 MHz against HeAP's 50.1 / 53.4
          # (2026-12-07, seed 2, each beside another build).
          nextpnr_options=("--router", "router2", "--placer", "static"),
          # Its design as of 2026-12-06 did not route from nextpnr's own placement (router2's
          # overused wires stopped falling at 192, its 41st pass); seeds 2 and 3 routed, in 89
          # and 67 passes, at 43.2 / 52.8 and 46.8 / 48.4 MHz. A change to the design may want
          # another: a build whose route stalls tries the next seeds itself. The 12x8 did not
          # route from seed 2 in 25 minutes (router2's overused wires fell to 282, then rose);
          # from seed 3 it routed in 11.8. The 16x8 from seed 3 came down to one overused
          # wire and stayed there 151 passes; from seed 4 it routed in 52 (13.4 minutes).
          placement_seed=4,
          # The engine on a clock of its own (CLKOS; CLKOP and CLKOS from one VCO, 495 MHz). With
          # the deep lanes it closed at 47.7 MHz against 50 (2026-12-06; its worst path a net
          # of 13.8 ns from the load unit's data across the chip), so 45; before them it had
          # closed at 43.5 to 47.6; with seed 2 at 52.8 against 45 (2026-12-07), so 50: asked
          # for 50, seed 2 places and routes it the same way, pass for pass, to the same 52.8.
          # With the static placer it closed at 56.4 against 50 and again against 55
          # (2026-12-07), so 55. One clock for both closed at 37.1 MHz. The 16x8 closed at 52.4
          # against 55 and against 50 (one placement for both: 450 MHz makes 45 and 50), so 50.
          # With the core's branch comparator (2026-12-07, late) it closed at 46.2 against 50
          # and against 45 (one placement again), so 45; asked for 60 with the engine's bus
          # registered (--bus-register 1), the design before the comparator closed at 54.1.
          # With the core's shared low word and its bus address register (2026-12-08) the
          # same seed closed the engine at 56.8 against 45 and against 55 (one placement), so
          # 55 (a 495 MHz VCO makes 45 and 55).
          engine_clock_hz=55_000_000,
          doc="ULX3S with an LFE5U-85F, 25 MHz oscillator, FTDI UART"),
    # The core at 60 MHz with its memory stage (a load's or store's address from a register,
    # a cycle more for each): at 50 without it the design closed at 56.4 (53.9 against 60),
    # its longest path the register file through the adder, the bus decoder and into the
    # RAM's write enables; with it, 62.5 against 60 (2026-12-07).
    # An 8x6 weight-stationary array since 2026-12-07 (a 4x4 running both dataflows before),
    # the OrangeCrab's too: LFE5U_25F_ENGINE. 21,405 LUTs, 61.5 / 80.5 MHz against 60 / 75
    # from seed 2, where the 4x4 took 15,416 and closed at 62.5 / 76.5. Since the front end
    # takes the one dataflow as a constant, 21,442 LUTs closing at 59.6 / 71.5 from seed 2
    # (seeds 1 and 3 left router1 at 38,000 arcs for minutes), so 55 / 70 (a 770 MHz VCO).
    # With the core's branch comparator (2026-12-07, late): 22,119 LUTs, 63.3 / 77.4 from
    # seed 2, against 55 / 70 and against 60 / 75 alike (one placement), so 60 / 75 again.
    # With the core's shared low word and bus address register (2026-12-08): 21,683 LUTs,
    # 65.0 / 83.4 from seed 2 against 60 / 75 and against 60 / 80 (one placement), so 80.
    Board(name="ulx3s-25f", platform=ULX3S25FPlatform, clock_hz=60_000_000,
          engine=LFE5U_25F_ENGINE,
          shifter="barrel", memory_stage=True, placement_seed=2,
          program=_PROGRAM, bitstream=".bit",
          # The engine on a clock of its own (CLKOS), faster than the core, which sets the
          # shared clock's pace; its bus requests registered before the RAM (bus_register),
          # where the engine's bus arbiter into the RAM's write enables had set its clock
          # (72.2 MHz against 62.5 without the register, 2026-12-06).
          engine_clock_hz=80_000_000, bus_register=True,
          doc="ULX3S with an LFE5U-25F, 25 MHz oscillator, FTDI UART"),
)
