"""Copies the firmware from the board's SPI flash into RAM, before the core runs."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.soc.decoder import RamPortSignature


__all__ = ["FlashSignature", "FlashBootCopier", "WAKE", "READ"]


#: SPI NOR commands every serial flash takes: release from deep power-down, and read.
WAKE = 0xAB
READ = 0x03


class FlashSignature(wiring.Signature):
    """A single-bit SPI bus to a flash chip, seen from the controller."""

    def __init__(self):
        super().__init__({
            "sck":  Out(1),
            "cs_n": Out(1, init=1),
            "copi": Out(1),
            "cipo": In(1),
        })


class FlashBootCopier(wiring.Component):
    """Reads ``words`` RAM words from flash byte ``offset`` on into RAM words 0, 1, ...
    after reset, then raises ``done``.

    Block RAM on the iCE40 UP5K (15 KiB) is too little for the engine and a firmware ROM both,
    so there the firmware sits in the configuration flash beside the bitstream (one image,
    one ``iceprog``), as PicoSoC's does, and is copied into SPRAM at start-up. The copier
    first wakes the flash (0xAB; the configuration logic may have put it to sleep) and waits
    ``wake_cycles``, then sends one READ (0x03) and clocks the image in, least significant byte
    of a word first. SCK runs at half the clock, in SPI mode 0, and pauses whenever RAM is
    busy for a word.

    Parameters
    ----------
    words : int
        RAM words to copy (the firmware image, rounded up to whole words).
    offset : int
        Flash byte address of the image.
    depth, width : int
        The RAM's words and bits a word.
    wake_cycles : int
        Clock cycles from the wake-up command to the read: at least the flash's tRES1
        (3 us for common parts).

    Members
    -------
    ram : Out(:class:`.decoder.RamPortSignature`)
    flash : Out(:class:`FlashSignature`)
    done : Out(1)
    """

    def __init__(self, *, words, offset, depth, width, wake_cycles):
        if not 0 <= words <= depth:
            raise ValueError(f"an image of {words} words does not fit a RAM of {depth}")
        if not 0 <= offset < 1 << 24 or offset + words * width // 8 > 1 << 24:
            raise ValueError(f"flash offset {offset:#x} is outside a 16 MiB flash")
        self._words, self._offset, self._width = words, offset, width
        self._wake_cycles = wake_cycles
        super().__init__({
            "ram":   Out(RamPortSignature(depth=depth, width=width)),
            "flash": Out(FlashSignature()),
            "done":  Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, width = self._words, self._width
        if n == 0:
            m.d.comb += self.done.eq(1)
            return m
        word_bytes = width // 8
        flash = self.flash

        out = Signal(32)                       # bits still to send, most significant first
        bits = Signal(range(32 + 1))           # ... and how many of them
        gap = Signal(range(self._wake_cycles + 1))
        byte = Signal(8)
        byte_bits = Signal(range(8))
        word = Signal(width)
        word_fill = Signal(range(word_bytes))
        full = Signal()                        # `word` waits to be written
        dest = Signal(range(n))
        m.d.comb += [flash.copi.eq(out[31]), self.ram.addr.eq(dest), self.ram.wdata.eq(word)]

        # A word that is full goes to RAM; the shifting below waits for it.
        with m.If(full):
            m.d.comb += self.ram.we.eq(-1)
            with m.If(~self.ram.busy):
                m.d.sync += full.eq(0)

        def shift_out():
            """One SCK period: rising half, then falling half with the next bit out."""
            with m.If(~flash.sck):
                m.d.sync += flash.sck.eq(1)
            with m.Else():
                m.d.sync += [flash.sck.eq(0), out.eq(out << 1), bits.eq(bits - 1)]

        with m.FSM():
            with m.State("Wake"):
                m.d.sync += [flash.cs_n.eq(0), out.eq(WAKE << 24), bits.eq(8)]
                m.next = "Send wake"
            with m.State("Send wake"):
                shift_out()
                with m.If(flash.sck & (bits == 1)):
                    m.d.sync += [flash.cs_n.eq(1), gap.eq(self._wake_cycles)]
                    m.next = "Sleep"
            with m.State("Sleep"):
                m.d.sync += gap.eq(gap - 1)
                with m.If(gap == 0):
                    m.d.sync += [flash.cs_n.eq(0), out.eq((READ << 24) | self._offset),
                                 bits.eq(32)]
                    m.next = "Send read"
            with m.State("Send read"):
                shift_out()
                with m.If(flash.sck & (bits == 1)):
                    m.next = "Receive"
            with m.State("Receive"):
                # The flash drives CIPO after a falling edge; it is sampled with the rising one.
                with m.If(~flash.sck):
                    m.d.sync += flash.sck.eq(1)
                with m.Else():
                    m.d.sync += [flash.sck.eq(0), byte_bits.eq(byte_bits + 1),
                                 byte.eq(Cat(flash.cipo, byte[:7]))]
                    with m.If(byte_bits == 7):
                        m.d.sync += [word.eq(Cat(word[8:], flash.cipo, byte[:7])),
                                     word_fill.eq(word_fill + 1)]
                        with m.If(word_fill == word_bytes - 1):
                            m.d.sync += [full.eq(1), word_fill.eq(0)]
                            m.next = "Write"
            with m.State("Write"):
                with m.If(~full):
                    with m.If(dest == n - 1):
                        m.d.sync += flash.cs_n.eq(1)
                        m.next = "Done"
                    with m.Else():
                        m.d.sync += dest.eq(dest + 1)
                        m.next = "Receive"
            with m.State("Done"):
                m.d.comb += self.done.eq(1)
        return m
