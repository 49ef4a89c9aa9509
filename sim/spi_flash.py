"""A behavioural SPI NOR flash for Amaranth simulations: the commands a boot loader uses."""

__all__ = ["SpiFlashModel"]


class SpiFlashModel:
    """Answers READ (0x03) from ``contents`` and notes every command, in SPI mode 0.

    Run :meth:`testbench` with :meth:`amaranth.sim.Simulator.add_testbench`; it samples the
    bus once a clock cycle, so SCK must be no faster than half the simulation clock (as a
    controller made of registers makes it). Bytes past ``contents`` read as 0xFF, as erased
    flash does.

    Attributes
    ----------
    commands : list of (int, int)
        ``(opcode, cycle)`` of every command received, in order.
    """

    def __init__(self, contents):
        self.contents = bytes(contents)
        self.commands = []

    def _byte(self, address):
        return self.contents[address] if address < len(self.contents) else 0xFF

    async def testbench(self, ctx, port, *, cycles):
        """Serve ``port`` (a :class:`rvnpu.hdl.soc.flash_boot.FlashSignature` interface) for
        ``cycles`` clock cycles."""
        prev_sck, selected = 0, False
        received, count, address, reading, out = 0, 0, 0, False, []
        for cycle in range(cycles):
            await ctx.tick()
            sck, cs_n = ctx.get(port.sck), ctx.get(port.cs_n)
            if cs_n:
                selected, reading, out = False, False, []
                prev_sck = sck
                continue
            if not selected:
                selected, received, count = True, 0, 0
            if sck and not prev_sck:                        # rising edge: take a bit in
                received = (received << 1) | ctx.get(port.copi)
                count += 1
                if count == 8:
                    self.commands.append((received, cycle))
                if count == 32 and self.commands[-1][0] == 0x03:
                    address, reading = received & 0xFF_FFFF, True
            elif prev_sck and not sck and reading:           # falling edge: next bit out
                if not out:
                    out = [(self._byte(address) >> (7 - i)) & 1 for i in range(8)]
                    address += 1
                ctx.set(port.cipo, out.pop(0))
            prev_sck = sck
