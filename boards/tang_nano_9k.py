"""Sipeed Tang Nano 9K: a Gowin GW1NR-9C (8640 LUT4, 6480 FFs, 26 BSRAMs of 18 kbit, 20
18x18 multipliers) with a 27 MHz oscillator, a UART through its BL702 USB bridge, six LEDs
and two buttons.
"""

from amaranth.build import Attrs, Clock, Pins, PinsN, Resource, Subsignal

from rvnpu.spec.config import EngineConfig

from . import Board
from .gowin_flow import HimbaechelGowinPlatform


__all__ = ["TangNano9kPlatform", "BOARDS"]


class TangNano9kPlatform(HimbaechelGowinPlatform):
    part = "GW1NR-LV9QN88PC6/I5"
    family = "GW1NR-9C"
    default_clk = "clk27"
    resources = [
        Resource("clk27", 0, Pins("52", dir="i"), Clock(27e6), Attrs(IO_TYPE="LVCMOS33")),
        # BL702's UART, the second interface of its USB device.
        Resource("uart", 0,
                 Subsignal("rx", Pins("18", dir="i")),
                 Subsignal("tx", Pins("17", dir="o")),
                 Attrs(IO_TYPE="LVCMOS33", PULL_MODE="UP")),
        # The six orange LEDs light when driven low.
        *(Resource("led", i, PinsN(pin, dir="o"), Attrs(IO_TYPE="LVCMOS18"))
          for i, pin in enumerate("10 11 13 14 15 16".split())),
        # S1 and S2 pull low when pressed.
        *(Resource("button", i, PinsN(pin, dir="i"), Attrs(IO_TYPE="LVCMOS18"))
          for i, pin in enumerate("3 4".split())),
    ]
    connectors = []


# The RAM is true dual-port block RAM (ram_style="dual"): one copy, 8 of the 26 BSRAMs, where
# a read port each for the core and the engine took two copies (16). That leaves room for a
# 4x4 engine (its scratchpads and accumulators 10 BSRAMs, the core's registers 2: 20 of 26).
# Logic bounds it: in a Gowin slice a flip-flop takes its D input only from the LUT beside it,
# so every register fed by anything else (another register, a multiplier, a RAM) takes a LUT
# position of its own, as a pass-through. The cells register their multiplier's operands but
# not its product (mac_latency=1: 18 such registers fewer a cell) and commands reach the engine
# without a register slice (168 fewer); the 3x3 design needed neither, the 4x4 one does not
# place without them. The engine leaves requantisation to the core.
BOARDS = (
    # 48 MHz from the 27 MHz oscillator by the rPLL (x16/9): the design closed at 52.5
    # against it (2026-12-07; 52.2 in 6,595 LUTs since the front end takes a single
    # dataflow as a constant), 53.0 against 40.5 (x3/2, its clock until then). Its longest
    # path is inside the core (the state's decode through the adder's operand selects and
    # carry chain into pc), so the core's memory stage, which cuts the adder's way into the
    # RAM, gains nothing here (52.7 against 54), and it is left out.
    Board(name="tang-nano-9k", platform=TangNano9kPlatform, clock_hz=48_000_000,
          engine=EngineConfig(rows=4, cols=4, dataflow="ws", spad_depth=256, acc_depth=256,
                              qp_depth=16, bus_width=32, mem_bytes=16 << 10, queue_depth=1,
                              requant_modes="none", hazards="serial", command_fetch=False,
                              post_unit=False, store_pool=False, mac_latency=1),
          ram_style="dual", shifter="barrel", command_slice=False,
          # The iCEBreaker's two savings (a 32-bit timer, a one-byte UART receiver): with the
          # core's branch comparator (2026-12-07) the design no longer placed ("Unable to
          # find legal placement", from nextpnr's own seed and seed 1).
          timer_width=32, uart_rx_depth=1,
          program=("openFPGALoader", "--board", "tangnano9k", "{bitstream}"), bitstream=".fs",
          doc="Sipeed Tang Nano 9K (GW1NR-LV9QN88PC6/I5), 27 MHz oscillator, BL702 UART"),
)
