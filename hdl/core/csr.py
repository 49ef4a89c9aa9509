"""The control core's CSRs: where each one lives, the few bits in flip-flops, and the counters.

CSRs that only software changes live in the register-file RAM above x31, at slot
``32 | csr[7] << 4 | csr[6] << 3 | csr[2:0]``: they cost block RAM bits instead of logic cells.
So do the counters, but for a few low bits in flip-flops (16 of ``mcycle``, 8 of ``minstret``):
when those wrap, the core adds the carry to the RAM words with its one adder at the next
instruction boundary. Only ``mstatus`` (MIE, MPIE) and ``mie`` (MEIE, MTIE) are wholly in
flip-flops; ``mip`` reads the interrupt lines, ``misa`` is a constant and the rest read as zero.

These are helpers of :class:`~rvnpu.hdl.core.cpu.RiscvCore`, not components: their writes go
through the core's one adder and one register-file write port, which the core's state machine
drives, so the helpers add statements to the core's module and leave the sequencing to it.
"""

from amaranth.hdl import Cat, Const, Signal

from rvnpu.spec.rv32 import Csr, Interrupt, Mstatus, misa


__all__ = [
    "CYCLE_BITS", "INSTRET_BITS", "RAM_CSRS", "LOGIC_CSRS", "RAM_WRITE_MASKS",
    "ram_slot", "csr_slot", "MachineStatus", "Interrupts", "Counters", "logic_csr_selects",
    "read_logic_csr",
]


#: Low counter bits kept in flip-flops.
CYCLE_BITS, INSTRET_BITS = 16, 8

#: The CSRs held (wholly or for the counters, but for their low bits) in the register-file RAM.
RAM_CSRS = (Csr.MTVEC, Csr.MSCRATCH, Csr.MEPC, Csr.MCAUSE, Csr.MTVAL,
            Csr.MCYCLE, Csr.MINSTRET, Csr.MCYCLEH, Csr.MINSTRETH,
            Csr.CYCLE, Csr.INSTRET, Csr.CYCLEH, Csr.INSTRETH)

#: The other CSRs: flip-flops (``mstatus``, ``mie``), the lines (``mip``), a constant (``misa``)
#: or zero.
LOGIC_CSRS = (Csr.MSTATUS, Csr.MISA, Csr.MIE, Csr.MIP,
              Csr.MVENDORID, Csr.MARCHID, Csr.MIMPID, Csr.MHARTID)

#: Low bits a CSR instruction leaves clear in a RAM word: those ``mtvec`` and ``mepc`` read as
#: zero, and the counter bits that are in flip-flops instead.
RAM_WRITE_MASKS = {
    Csr.MTVEC: 0b11,
    Csr.MEPC: 0b11,
    Csr.MCYCLE: (1 << CYCLE_BITS) - 1,
    Csr.MINSTRET: (1 << INSTRET_BITS) - 1,
}


def ram_slot(number):
    """The register-file word of RAM CSR ``number`` (an int; :func:`csr_slot` for a value)."""
    return 32 | (number >> 7 & 1) << 4 | (number >> 6 & 1) << 3 | number & 0b111


def csr_slot(csr):
    """The register-file word of the RAM CSR named by the 12-bit value ``csr``."""
    return Cat(csr[0:3], csr[6], csr[7], Const(1, 1))


class MachineStatus:
    """``mstatus``'s MIE and MPIE, in flip-flops (MPP reads as 3: machine mode only)."""

    def __init__(self):
        self.mie = Signal(name="mstatus_mie")
        self.mpie = Signal(name="mstatus_mpie")

    def value(self):
        """The 32-bit value a CSR instruction reads."""
        return Cat(Const(0, Mstatus.MIE), self.mie, Const(0, Mstatus.MPIE - Mstatus.MIE - 1),
                   self.mpie, Const(0, Mstatus.MPP - Mstatus.MPIE - 1), Const(0b11, 2))

    def write(self, m, value):
        m.d.sync += [self.mie.eq(value[Mstatus.MIE]), self.mpie.eq(value[Mstatus.MPIE])]

    def enter_trap(self, m):
        m.d.sync += [self.mpie.eq(self.mie), self.mie.eq(0)]

    def leave_trap(self, m):
        """MRET."""
        m.d.sync += [self.mie.eq(self.mpie), self.mpie.eq(1)]


def _word(bits):
    """A 32-bit value with the 1-bit values ``bits`` (by bit position) and zeros elsewhere."""
    parts, at = [], 0
    for position, bit in sorted(bits.items()):
        parts += [Const(0, position - at), bit]
        at = position + 1
    return Cat(*parts, Const(0, 32 - at))


class Interrupts:
    """``mie`` (MEIE, MTIE) in flip-flops; ``mip`` (MEIP, MTIP) is the lines, read-only.

    Members
    -------
    enabled : dict of Interrupt to Signal
        The ``mie`` bits.
    lines : dict of Interrupt to Value
        The interrupt inputs, as ``mip`` reads them.
    """

    def __init__(self, *, external, timer):
        self.enabled = {irq: Signal(name=f"mie_{irq.name.lower()}") for irq in Interrupt}
        self.lines = {Interrupt.MACHINE_EXTERNAL: external, Interrupt.MACHINE_TIMER: timer}

    def enable_value(self):
        """What ``mie`` reads."""
        return _word(self.enabled)

    def pending_value(self):
        """What ``mip`` reads."""
        return _word(self.lines)

    def write_enable(self, m, value):
        m.d.sync += [self.enabled[irq].eq(value[irq]) for irq in Interrupt]

    def pending(self, irq):
        """Interrupt ``irq`` is both enabled and pending (``mie & mip``)."""
        return self.enabled[irq] & self.lines[irq]

    def any_pending(self):
        """``mie & mip`` is not zero: what wakes WFI, and, with ``mstatus.MIE``, interrupts."""
        result = Const(0)
        for irq in Interrupt:
            result = result | self.pending(irq)
        return result


class Counters:
    """``mcycle`` and ``minstret``: the low bits in flip-flops, and the carries into RAM words.

    A carry out of the flip-flop bits is owed to the counter's RAM word; a carry out of that
    word is owed to the high half's word. The core pays them one at a time, between
    instructions, with :meth:`choose_carry` (read the word) and :meth:`pay_carry` (write it
    back plus the carry). A CSR write to ``mcycle(h)`` lands after the instruction's own
    increment and voids the carries owed to the words it wrote; one to ``minstret`` or
    ``minstreth`` is done instead of the instruction's increment (Zicsr), so the other half
    keeps its value too.

    Members
    -------
    mcycle, minstret : Signal
        The flip-flop bits.
    owed : Signal(4)
        Carries owed to the RAM words of ``[mcycle, minstret, mcycleh, minstreth]``.
    retired : Signal
        Set by the core: an instruction retires in this cycle (``minstret`` counts it in the
        next, through ``counted``).
    write_counter : Signal
        Set by the core: a CSR instruction writes its new value (``new_value``).
    owe, paid : Signal(4)
        New carries, and carries paid or made void by a write, in this cycle.
    """

    def __init__(self):
        self.mcycle = Signal(CYCLE_BITS)
        self.minstret = Signal(INSTRET_BITS)
        self.owed = Signal(4)
        self.carry_job = Signal(2)          # the one being paid
        self.retired = Signal()
        self.counted = Signal()             # retired in the previous cycle, not replaced
        self.write_counter = Signal()
        self.owe = Signal(4)
        self.paid = Signal(4)

    def elaborate(self, m, *, csr, new_value):
        """The increments, the write rules and the carry bookkeeping. The core's own
        statements on ``owe`` and ``paid`` must come after these, which they override."""
        mcycle, minstret = self.mcycle, self.minstret
        mcycle_next = Signal(CYCLE_BITS + 1)
        minstret_next = Signal(INSTRET_BITS + 1)
        # minstret counts an instruction in the cycle after it retires (a fetch or a carry's
        # read, never an instruction's execute), so that what decides retirement, the core's
        # deepest logic, ends in a flip-flop rather than running on through this carry chain.
        # A write to either half replaces the instruction's increment (Zicsr).
        replaced = self.write_counter & ((csr == Csr.MINSTRET) | (csr == Csr.MINSTRETH))
        m.d.sync += self.counted.eq(self.retired & ~replaced)
        m.d.comb += [mcycle_next.eq(mcycle + 1), minstret_next.eq(minstret + self.counted)]
        # A write lands after the instruction's own increment.
        with m.If(self.write_counter & (csr == Csr.MCYCLE)):
            m.d.sync += mcycle.eq(new_value)
        with m.Else():
            m.d.sync += mcycle.eq(mcycle_next)
        with m.If(self.write_counter & (csr == Csr.MINSTRET)):
            m.d.sync += minstret.eq(new_value)
        with m.Else():
            m.d.sync += minstret.eq(minstret_next)
        m.d.comb += self.owe.eq(Cat(mcycle_next[-1], minstret_next[-1], 0, 0))
        m.d.sync += self.owed.eq((self.owed | self.owe) & ~self.paid)

    def carry_due(self, *, retiring):
        """Whether a carry is to be paid before the next instruction.

        This cycle's own carries are read off the counters (all ones), with ``retiring`` known
        at elaboration: through ``retired`` the choice would wait for everything that decides
        it, the core's longest path otherwise.
        """
        new = Cat(self.mcycle.all(), self.minstret.all() if retiring else 0,
                  self.owe[2], self.owe[3])
        return ((self.owed | new) & ~self.paid) != 0

    def read_carry(self, reads_mcycle):
        """What a CSR read adds to the RAM word of ``mcycle``: the carry it is owed."""
        return Cat(Const(0, CYCLE_BITS), reads_mcycle & self.owed[0])

    def csr_written(self, m, *, csr):
        """A CSR instruction writes ``csr``.

        A write voids the carries owed to the words it wrote; a write to either half of
        ``minstret`` also voids this instruction's own increment, which it replaces.
        """
        m.d.comb += self.write_counter.eq(1)
        with m.Switch(csr):
            with m.Case(Csr.MCYCLE):
                m.d.comb += self.paid[0].eq(1)
            with m.Case(Csr.MCYCLEH):
                m.d.comb += self.paid[2].eq(1)
            with m.Case(Csr.MINSTRET, Csr.MINSTRETH):
                m.d.comb += self.paid[1].eq(1)

    def choose_carry(self, m):
        """Pick the next carry to pay; return the register-file slot of its word."""
        # With this cycle's new carries: minstret's, a cycle after its instruction retired.
        owed = self.owed | self.owe
        # The carries into the low words first: they may carry on into the high ones.
        job = Signal(2)
        with m.If(owed[0]):
            m.d.comb += job.eq(0)
        with m.Elif(owed[1]):
            m.d.comb += job.eq(1)
        with m.Elif(owed[2]):
            m.d.comb += job.eq(2)
        with m.Else():
            m.d.comb += job.eq(3)
        slot = Signal(6)
        with m.Switch(job):
            for index, word in enumerate(_CARRY_WORDS):
                with m.Case(index):
                    m.d.comb += slot.eq(ram_slot(word))
        m.d.sync += self.carry_job.eq(job)
        return slot

    def pay_carry(self, m, *, a_const, carry_in, w_addr, word):
        """Write the word chosen by :meth:`choose_carry` back plus its carry: 2**16 or 2**8
        through ``a_const``, or 1 through ``carry_in``. ``word`` is the word as read: a low
        word carries on into its high one when its bits above the carry's are all ones,
        which is read off the word rather than the adder's carry out, so that the next state
        does not wait for the adder."""
        with m.Switch(self.carry_job):
            with m.Case(0):
                m.d.comb += [a_const.eq(1 << CYCLE_BITS), w_addr.eq(ram_slot(Csr.MCYCLE)),
                             self.paid[0].eq(1), self.owe[2].eq(word[CYCLE_BITS:].all())]
            with m.Case(1):
                m.d.comb += [a_const.eq(1 << INSTRET_BITS), w_addr.eq(ram_slot(Csr.MINSTRET)),
                             self.paid[1].eq(1), self.owe[3].eq(word[INSTRET_BITS:].all())]
            with m.Case(2):
                m.d.comb += [carry_in.eq(1), w_addr.eq(ram_slot(Csr.MCYCLEH)),
                             self.paid[2].eq(1)]
            with m.Case(3):
                m.d.comb += [carry_in.eq(1), w_addr.eq(ram_slot(Csr.MINSTRETH)),
                             self.paid[3].eq(1)]


#: The RAM words that carries are paid to, in the order of ``owed``'s bits.
_CARRY_WORDS = (Csr.MCYCLE, Csr.MINSTRET, Csr.MCYCLEH, Csr.MINSTRETH)


#: What :func:`read_logic_csr` can read (anything else reads zero), by the CSRs that read it.
_LOGIC_READS = {
    "mstatus": (Csr.MSTATUS,), "misa": (Csr.MISA,), "mie": (Csr.MIE,), "mip": (Csr.MIP,),
    "mcycle": (Csr.MCYCLE, Csr.CYCLE), "minstret": (Csr.MINSTRET, Csr.INSTRET),
}


def logic_csr_selects(csr):
    """Which of :func:`read_logic_csr`'s values the 12-bit CSR number ``csr`` reads: one bit
    each, decoded apart so that the core can register them with the instruction."""
    selects = {}
    for name, numbers in _LOGIC_READS.items():
        hit = Const(0)
        for number in numbers:
            hit = hit | (csr == number)
        selects[name] = hit
    return selects


def read_logic_csr(*, selects, status, interrupts, counters, with_m):
    """The value of the CSR bits not in RAM, for the CSR whose :func:`logic_csr_selects` are
    ``selects`` (zero for the rest).

    It enters the adder ORed with the RAM CSRs (the counters' RAM words hold zeros where
    their flip-flop bits go).
    """
    values = {"mstatus": status.value(), "misa": Const(misa(with_m), 32),
              "mie": interrupts.enable_value(), "mip": interrupts.pending_value(),
              "mcycle": counters.mcycle, "minstret": counters.minstret}
    result = Const(0, 32)
    for name, value in values.items():
        result = result | (value & selects[name].replicate(len(value)))
    return result
