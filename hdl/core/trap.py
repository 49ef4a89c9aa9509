"""Taking a trap in the control core: the cause, and the CSR writes in their order."""

from amaranth.hdl import Cat, Const, Signal

from rvnpu.hdl.core.csr import ram_slot
from rvnpu.spec.rv32 import Csr


__all__ = ["TrapEntry"]


class TrapEntry:
    """The bookkeeping of a trap, three writes through the register file's one write port.

    1. In the cycle that faults (:meth:`start`): ``mtval``, while the operands that make the
       faulting address are still on the adder, and read port 2 re-reads ``mtvec``.
    2. ``"Trap-Epc"`` (:meth:`save_pc`): ``mepc`` <= ``pc``.
    3. ``"Trap-Enter"`` (:meth:`enter`): ``mcause`` <= the cause, ``pc`` <= ``mtvec``, and
       ``mstatus`` stacks MIE into MPIE.

    An interrupt is taken the same way, in the execute cycle of the instruction it comes
    before (which does not run): ``mtval`` <= 0, ``mepc`` <= that instruction's address, and
    ``mcause`` gets :data:`~rvnpu.spec.rv32.MCAUSE_INTERRUPT` with the code.

    Members
    -------
    cause : Signal(4)
        The exception or interrupt code, from :meth:`start` until ``mcause`` is written.
    interrupt : Signal
        With ``cause``: it is an interrupt (``mcause[31]``).
    trapped : Signal
        An instruction finishes trapping (or is interrupted) in this cycle.
    """

    MTVAL, MTVEC, MEPC, MCAUSE = (ram_slot(csr) for csr in
                                  (Csr.MTVAL, Csr.MTVEC, Csr.MEPC, Csr.MCAUSE))

    def __init__(self):
        self.cause = Signal(4)
        self.interrupt = Signal()
        self.trapped = Signal()

    def mcause(self):
        """The 32-bit value written to ``mcause``."""
        return Cat(self.cause, Const(0, 27), self.interrupt)

    def start(self, m, code, *, w_en, w_addr, read_mtvec, tval=None, interrupt=False):
        """Trap with cause ``code``; ``tval`` (a write select) puts the address in ``mtval``,
        which is otherwise written zero; ``interrupt`` marks an interrupt. ``read_mtvec``
        enables read port 2, which the core points at :attr:`MTVEC`."""
        m.d.comb += [w_en.eq(1), w_addr.eq(self.MTVAL), read_mtvec.eq(1)]
        if tval is not None:
            m.d.comb += [tval.eq(1)]
        m.d.sync += [self.cause.eq(code), self.interrupt.eq(interrupt)]
        m.next = "Trap-Epc"

    def save_pc(self, m, *, w_en, w_addr):
        m.d.comb += [w_en.eq(1), w_addr.eq(self.MEPC)]
        m.next = "Trap-Enter"

    def enter(self, m, *, status, w_en, w_addr, w_cause):
        """Write ``mcause`` (with ``w_cause``); the core jumps to ``mtvec`` from port 2."""
        m.d.comb += [w_en.eq(1), w_addr.eq(self.MCAUSE), w_cause.eq(1), self.trapped.eq(1)]
        status.enter_trap(m)
