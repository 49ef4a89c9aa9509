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


# Block RAM bounds the design: the 16 KiB RAM the demo needs takes 16 of the 26 BSRAMs (two
# copies, for its two read ports), the core's registers 2 and this 2x2 engine 6. A 4x4 engine
# needs 10, which fits only with the registers in LUT RAM (regfile_style="lut"): that design
# packs (7,377 LUT4s, 26 of 26 BSRAMs), but nextpnr's analytic placer had not finished it
# after 20 minutes and its SA placer stalled at 5,000 of 14,271 cells. The engine leaves
# requantisation to the core.
BOARDS = (
    # 40.5 MHz from the 27 MHz oscillator by the rPLL (x3/2); the design closes at 45.9 to 47.1
    # (at 36.7 to 37.4, and so at 30 MHz, before the SoC's paths from the core were
    # registered).
    Board(name="tang-nano-9k", platform=TangNano9kPlatform, clock_hz=40_500_000,
          engine=EngineConfig(rows=2, cols=2, dataflow="ws", spad_depth=256, acc_depth=256,
                              qp_depth=16, bus_width=32, mem_bytes=16 << 10, queue_depth=1,
                              requant_modes="none", hazards="serial", command_fetch=False,
                              post_unit=False, store_pool=False),
          shifter="barrel",
          program=("openFPGALoader", "--board", "tangnano9k", "{bitstream}"), bitstream=".fs",
          doc="Sipeed Tang Nano 9K (GW1NR-LV9QN88PC6/I5), 27 MHz oscillator, BL702 UART"),
)
