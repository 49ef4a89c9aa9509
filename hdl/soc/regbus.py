"""The peripherals' register port: one 32-bit word a cycle, read data a cycle later.

Why not Wishbone or amaranth-soc's CSR bus: the peripherals have a handful of registers each,
and the address decoder registers the core's request before it strobes the port (so that the
core's address does not run on into a peripheral's register selection), so a
strobe-and-answer port with a one-cycle read latency is all they need.

* ``addr``: word offset inside the peripheral's block.
* ``r_en``: a read this cycle; ``r_data`` holds its answer in the next cycle. Reads may have
  side effects (taking a byte from a FIFO), so the decoder strobes ``r_en`` once a read.
* ``w_en`` / ``w_data``: a word write this cycle.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rvnpu.spec.memory_map import PERIPHERAL_SPAN


__all__ = ["RegisterSignature", "ADDR_WIDTH"]


#: Width of word offsets inside a peripheral block.
ADDR_WIDTH = (PERIPHERAL_SPAN // 4 - 1).bit_length()


class RegisterSignature(wiring.Signature):
    """The register port as seen from the decoder (the initiator)."""

    def __init__(self):
        super().__init__({
            "addr":   Out(ADDR_WIDTH),
            "r_en":   Out(1),
            "r_data": In(32),
            "w_en":   Out(1),
            "w_data": Out(32),
        })
