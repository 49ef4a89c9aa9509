"""Taking a trap in the control core: the cause, and the CSR writes in their order."""

from amaranth.hdl import Signal

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

    An interrupt would be taken the same way from ``"Fetch"``: set the cause (and a flag for
    ``mcause[31]``), write ``mtval``, read ``mtvec`` and go to ``"Trap-Epc"``.

    Members
    -------
    cause : Signal(4)
        The exception code, from :meth:`start` until ``mcause`` is written.
    trapped : Signal
        An instruction finishes trapping in this cycle.
    """

    MTVAL, MTVEC, MEPC, MCAUSE = (ram_slot(csr) for csr in
                                  (Csr.MTVAL, Csr.MTVEC, Csr.MEPC, Csr.MCAUSE))

    def __init__(self):
        self.cause = Signal(4)
        self.trapped = Signal()

    def start(self, m, code, *, w_en, w_addr, read_port, tval=None):
        """Trap with cause ``code``; ``tval`` (a write select) puts the address in ``mtval``,
        which is otherwise written zero."""
        m.d.comb += [w_en.eq(1), w_addr.eq(self.MTVAL), read_port.addr.eq(self.MTVEC),
                     read_port.en.eq(1)]
        if tval is not None:
            m.d.comb += [tval.eq(1)]
        m.d.sync += self.cause.eq(code)
        m.next = "Trap-Epc"

    def save_pc(self, m, *, w_en, w_addr):
        m.d.comb += [w_en.eq(1), w_addr.eq(self.MEPC)]
        m.next = "Trap-Enter"

    def enter(self, m, *, status, w_en, w_addr, w_cause):
        """Write ``mcause`` (with ``w_cause``); the core jumps to ``mtvec`` from port 2."""
        m.d.comb += [w_en.eq(1), w_addr.eq(self.MCAUSE), w_cause.eq(1), self.trapped.eq(1)]
        status.enter_trap(m)
