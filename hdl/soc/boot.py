"""Copies the firmware from a ROM into a RAM that cannot be initialised, before the core runs."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from rvnpu.hdl.soc.decoder import RamPortSignature


__all__ = ["BootCopier"]


class BootCopier(wiring.Component):
    """Writes ``words`` to RAM words 0, 1, ... one a cycle after reset, then raises ``done``.

    The iCE40 UP5K's 128 KiB of single-port SPRAM have no initial contents in the bitstream,
    so the firmware is baked into a ROM of block RAM instead (only as many words as it has)
    and copied at start-up, while the core is held in reset; a 16 KiB image takes 4096
    cycles. The RAM beyond the image is left as it is (crt0 zeroes ``.bss`` itself).

    Parameters
    ----------
    words : list of int
        The image as RAM words.
    depth, width : int
        The RAM's words and bits a word.

    Members
    -------
    ram : Out(:class:`.decoder.RamPortSignature`)
        To the RAM's host port; a write the RAM is busy for is repeated.
    done : Out(1)
        The copy is complete: give the RAM port to the core and release it.
    """

    def __init__(self, words, *, depth, width):
        if len(words) > depth:
            raise ValueError(f"an image of {len(words)} words does not fit a RAM of {depth}")
        self._words, self._width = list(words), width
        super().__init__({
            "ram":  Out(RamPortSignature(depth=depth, width=width)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = len(self._words)
        if n == 0:
            m.d.comb += self.done.eq(1)
            return m
        m.submodules.rom = rom = Memory(shape=self._width, depth=n, init=self._words)
        read = rom.read_port()
        # `index` is read from the ROM; its word arrives a cycle later and is written then.
        index = Signal(range(n + 1))
        loaded = Signal()
        dest = Signal.like(self.ram.addr)
        m.d.comb += [read.addr.eq(index), self.ram.addr.eq(dest),
                     self.ram.wdata.eq(read.data)]
        with m.If(~self.done):
            m.d.comb += self.ram.we.eq(loaded.replicate(len(self.ram.we)))
            # Move on unless a loaded word is still waiting for the RAM.
            with m.If(~(loaded & self.ram.busy)):
                m.d.sync += [loaded.eq(index < n), dest.eq(index), index.eq(index + 1)]
                with m.If(loaded & (dest == n - 1)):
                    m.d.sync += self.done.eq(1)
            with m.Else():
                m.d.comb += read.addr.eq(dest)
        return m
