"""The timer: free-running counters (clock cycles, engine-active cycles, cycles the core
slept in WFI), 64 bits or narrower, and the machine timer interrupt, CYCLE compared with
MTIMECMP."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rvnpu.spec.memory_map import TIMER
from rvnpu.hdl.soc.regbus import RegisterSignature


__all__ = ["Timer"]


class Timer(wiring.Component):
    """Registers of :data:`.memory_map.TIMER`.

    A 32-bit CPU reads a 64-bit count in two loads; reading the low word latches the high word,
    so the pair is one consistent sample however long apart the two loads are.

    Parameters
    ----------
    width : int
        Bits each counter keeps, 32 to 64 (``SocConfig.timer_width``). A narrower count wraps
        at ``2**width`` and reads as a 64-bit one whose bits above are zero, so its high words
        need fewer latched bits (none at 32); MTIMECMP keeps all 64 and is compared with that
        64-bit value, so a compare value past the count's range never raises the line. Each
        counter bit, latched bit and compared bit is a logic cell: at 32 bits the timer takes
        about 250 fewer on the iCE40, where 64 bits at 18 MHz would wrap after 32,000 years
        and 32 wrap after 4 minutes.

    Members
    -------
    bus : In(RegisterSignature)
    active : In
        Counted into ``ACTIVE``: the engine fed its array this cycle.
    sleeping : In
        Counted into ``SLEEP``: the core waits in WFI this cycle.
    irq : Out
        The machine timer interrupt: ``CYCLE >= MTIMECMP`` (unsigned, 64 bits), held until
        software moves ``MTIMECMP`` past the count. A register, so that the 64-bit comparison
        is not on the core's interrupt decision (on the UP5K it was half of the longest path):
        it gives the comparison a cycle late, and is low the cycle after a write to
        ``MTIMECMP``, so that software that has moved ``MTIMECMP`` past the count never sees
        the line the old value raised.
    """

    bus: In(RegisterSignature())
    active: In(1)
    sleeping: In(1)
    irq: Out(1)

    def __init__(self, *, width=64):
        if not isinstance(width, int) or isinstance(width, bool) or not 32 <= width <= 64:
            raise ValueError(f"timer width must be an integer from 32 to 64, not {width!r}")
        self._width = width
        super().__init__()
        # Made here rather than in elaborate() so that a test can start them near a carry.
        self._counts = {name: Signal(width, name=name.lower())
                        for name in ("CYCLE", "ACTIVE", "SLEEP")}

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.d.sync += bus.r_data.eq(0)
        for name, event in (("CYCLE", 1), ("ACTIVE", self.active), ("SLEEP", self.sleeping)):
            count = self._counts[name]
            high = Signal(self._width - 32, name=f"{name.lower()}_hi_latched")
            m.d.sync += count.eq(count + event)
            lo, hi = TIMER.register(f"{name}_LO"), TIMER.register(f"{name}_HI")
            with m.If(bus.r_en & (bus.addr == lo.word)):
                m.d.sync += [bus.r_data.eq(count[:32]), high.eq(count[32:])]
            with m.If(bus.r_en & (bus.addr == hi.word)):
                m.d.sync += bus.r_data.eq(high)

        compare = Signal(64, init=2**64 - 1)
        written = Signal()
        for half, name in enumerate(("MTIMECMP_LO", "MTIMECMP_HI")):
            word = compare.word_select(half, 32)
            register = TIMER.register(name)
            with m.If(bus.w_en & (bus.addr == register.word)):
                m.d.sync += word.eq(bus.w_data)
                m.d.comb += written.eq(1)
            with m.If(bus.r_en & (bus.addr == register.word)):
                m.d.sync += bus.r_data.eq(word)
        # Against the count as a 64-bit value: its bits above ``width`` are zero.
        reached = self._counts["CYCLE"] >= compare[:self._width]
        if self._width < 64:
            reached &= compare[self._width:] == 0
        m.d.sync += self.irq.eq(reached & ~written)
        return m
