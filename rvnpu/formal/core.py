"""The control core against the RV32 specification, through its retire port (like RVFI).

:class:`RetireChecker` watches the core's :data:`~rvnpu.hdl.core.cpu.RetireLayout` trace and
recomputes, with its own Amaranth expressions from the instruction word and the encodings in
:mod:`rvnpu.spec.rv32`, what each instruction must have done: its register result, its next
``pc``, its memory access, its CSR effects, or its trap. It keeps a shadow of the registers and
of ``mscratch``, ``mtvec``, ``mepc`` and ``mcause`` (all zero at reset, as the core's are),
written from the trace, so a wrong result is caught where it is written and a wrong CSR or
trap effect where it is read back. :func:`core_harness` wires the core to it with every
instruction fetch, load answer, bus wait and engine answer left to the solver.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Array, Assume, Cat, Const, Elaboratable, Module
from amaranth.hdl import Mux, ResetSignal, Signal

from rvnpu.formal.properties import Properties
from rvnpu.hdl.core import cpu
from rvnpu.hdl.core.cpu import RetireLayout
from rvnpu.spec.rv32 import INSTRUCTIONS, Cause, Csr, Format, Opcode, csr_is_read_only


__all__ = ["GROUPS", "RetireChecker", "core_harness"]

#: The property groups, each proved on its own (a smaller problem for the solver).
GROUPS = ("alu", "branch", "mem", "csr", "trap", "x0")

#: CSRs whose every effect the checker follows; ``mtvec`` and ``mepc`` read their low two bits
#: as zero (direct-mode vector, 4-byte instructions).
_TRACKED = (Csr.MSCRATCH, Csr.MTVEC, Csr.MEPC, Csr.MCAUSE)
_ALIGNED = (Csr.MTVEC, Csr.MEPC)

_ALU_R = ("add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and")
_ALU_I = ("addi", "slti", "sltiu", "xori", "ori", "andi", "slli", "srli", "srai")
_ALU = _ALU_R + _ALU_I + ("lui", "auipc")
_BRANCHES = ("beq", "bne", "blt", "bge", "bltu", "bgeu")
_LOADS = ("lb", "lh", "lw", "lbu", "lhu")
_STORES = ("sb", "sh", "sw")
_CSR_OPS = ("csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci")


def _sext(value, width=32):
    return Cat(value, value[-1].replicate(width - len(value)))


class _Instruction:
    """The fields and immediates of ``word``, and which table row it is."""

    def __init__(self, word, with_m):
        self.word = word
        self.opcode, self.rd, self.funct3 = word[0:7], word[7:12], word[12:15]
        self.rs1, self.rs2, self.funct7, self.funct12 = (word[15:20], word[20:25], word[25:32],
                                                         word[20:32])
        self.imm_i = _sext(word[20:32])
        self.imm_s = _sext(Cat(word[7:12], word[25:32]))
        self.imm_b = _sext(Cat(Const(0, 1), word[8:12], word[25:31], word[7], word[31]))
        self.imm_u = Cat(Const(0, 12), word[12:32])
        self.imm_j = _sext(Cat(Const(0, 1), word[21:31], word[20], word[12:20], word[31]))
        self.shamt = word[20:25]
        self._with_m = with_m

    def is_(self, name):
        enc = INSTRUCTIONS[name]
        test = self.opcode == enc.opcode
        if enc.funct3 is not None:
            test &= self.funct3 == enc.funct3
        if enc.funct7 is not None:
            test &= self.funct7 == enc.funct7
        if enc.funct12 is not None:
            test &= (self.funct12 == enc.funct12) & (self.rd == 0) & (self.rs1 == 0)
        return test

    def any_of(self, names):
        test = Const(0)
        for name in names:
            test |= self.is_(name)
        return test

    def csr_writes(self):
        return (self.funct3[0:2] == 0b01) | (self.rs1 != 0)

    def legal(self):
        """In the table (the M rows only with M), a CSR instruction naming a CSR of
        :class:`~rvnpu.spec.rv32.Csr` and writing it only if it is not read-only."""
        known = Const(0)
        read_only = Const(0)
        for csr in Csr:
            known |= self.funct12 == csr
            if csr_is_read_only(csr):
                read_only |= self.funct12 == csr
        csr_ok = known & ~(self.csr_writes() & read_only)
        legal = Const(0)
        for name, enc in INSTRUCTIONS.items():
            if enc.extension == "M" and not self._with_m:
                continue
            row = self.is_(name)
            legal |= row & csr_ok if enc.format in (Format.CSR, Format.CSRI) else row
        return legal


class RetireChecker(Elaboratable):
    """Checks each record of a core's retire port against the specification.

    Parameters
    ----------
    groups : iterable of str
        Which of :data:`GROUPS` to assert (and cover); the shadow state is kept for all.
    with_m : bool
        Whether the core has the M extension (else MUL/DIV are illegal instructions).
    reset_vector : int

    Members (inputs, driven by the harness)
    -------
    retire : Signal(RetireLayout)
    bus_addr, bus_re, bus_we, bus_rdata, bus_ready
        The core's memory port, for a load's data and to see that only stores write.
    """

    def __init__(self, *, groups=GROUPS, with_m=True, reset_vector=0):
        unknown = set(groups) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown property groups {sorted(unknown)}; "
                             f"choose from {', '.join(GROUPS)}")
        self._groups, self._with_m, self._reset_vector = tuple(groups), with_m, reset_vector
        self.retire = Signal(RetireLayout)
        self.bus_addr = Signal(30)
        self.bus_re = Signal()
        self.bus_we = Signal(4)
        self.bus_rdata = Signal(32)
        self.bus_ready = Signal()

    def elaborate(self, platform):
        m = Module()
        t = self.retire
        i = _Instruction(t.insn, self._with_m)
        p = Properties(m)
        on = {group: group in self._groups for group in GROUPS}

        def check(group, name, when, holds):
            if on[group]:
                p.check(f"{group}_{name}", when, holds)

        # -- Shadow state ------------------------------------------------------------------------
        regs = Array(Signal(32, name=f"x{n}") for n in range(32))    # x0 is never written
        a, b = regs[i.rs1], regs[i.rs2]
        csrs = {csr: Signal(32, name=csr.name.lower()) for csr in _TRACKED}
        expect_pc = Signal(32, init=self._reset_vector)
        after_trap = Signal()       # the previous record was a trap
        after_jump = Signal()       # the previous record was a taken branch, a jump or MRET

        pc, ok = t.pc, t.valid & ~t.trap
        legal = Signal()
        m.d.comb += legal.eq(i.legal())

        # -- Results -----------------------------------------------------------------------------
        a_s, b_s, imm_s = a.as_signed(), b.as_signed(), i.imm_i.as_signed()
        result = {
            "add": a + b, "sub": a - b, "sll": a << b[:5], "slt": a_s < b_s, "sltu": a < b,
            "xor": a ^ b, "srl": a >> b[:5], "sra": a_s >> b[:5], "or": a | b, "and": a & b,
            "addi": a + i.imm_i, "slti": a_s < imm_s, "sltiu": a < i.imm_i,
            "xori": a ^ i.imm_i, "ori": a | i.imm_i, "andi": a & i.imm_i,
            "slli": a << i.shamt, "srli": a >> i.shamt, "srai": a_s >> i.shamt,
            "lui": i.imm_u, "auipc": pc + i.imm_u,
        }
        expected = Signal(32)
        with m.If(t.insn[0:7] == Opcode.OP):
            with m.Switch(Cat(i.funct3, i.funct7)):
                for name in _ALU_R:
                    enc = INSTRUCTIONS[name]
                    with m.Case(enc.funct3 | enc.funct7 << 3):
                        m.d.comb += expected.eq(result[name][:32])
        with m.Else():
            for name in _ALU_I + ("lui", "auipc"):
                with m.If(i.is_(name)):
                    m.d.comb += expected.eq(result[name][:32])

        # Branches and jumps.
        taken = {"beq": a == b, "bne": a != b, "blt": a_s < b_s, "bge": a_s >= b_s,
                 "bltu": a < b, "bgeu": a >= b}
        branch_taken = Signal()
        for name in _BRANCHES:
            with m.If(i.is_(name)):
                m.d.comb += branch_taken.eq(taken[name])
        is_branch, is_jal, is_jalr = i.any_of(_BRANCHES), i.is_("jal"), i.is_("jalr")
        target = Signal(32)
        m.d.comb += target.eq(Mux(is_jalr, (a + i.imm_i)[:32] & ~1,
                                  pc + Mux(is_jal, i.imm_j, i.imm_b)))
        jumps = is_jal | is_jalr | (is_branch & branch_taken)

        # Loads and stores: the address, its byte lanes, the value.
        is_load, is_store = i.any_of(_LOADS), i.any_of(_STORES)
        addr = Signal(32)
        m.d.comb += addr.eq((a + Mux(is_store, i.imm_s, i.imm_i))[:32])
        size = i.funct3[0:2]
        lanes = Signal(4)
        with m.Switch(size):
            with m.Case(0):
                m.d.comb += lanes.eq(Const(1, 4) << addr[0:2])
            with m.Case(1):
                m.d.comb += lanes.eq(Const(0b11, 4) << addr[0:2])
            with m.Default():
                m.d.comb += lanes.eq(0b1111)
        misaligned = ((size == 1) & addr[0]) | ((size == 2) & (addr[0:2] != 0))
        byte = self.bus_rdata.word_select(addr[0:2], 8)
        half = self.bus_rdata.word_select(addr[1], 16)
        loaded = Signal(32)
        for name, value in [("lb", _sext(byte)), ("lh", _sext(half)), ("lw", self.bus_rdata),
                            ("lbu", byte), ("lhu", half)]:
            with m.If(i.is_(name)):
                m.d.comb += loaded.eq(value)
        stored = Signal(32)     # the bytes of rs2, in the lanes the address picks
        m.d.comb += stored.eq((b << (addr[0:2] * 8))[:32])

        # Traps.
        trap_cause = Signal(4)
        with m.If(~legal):
            m.d.comb += trap_cause.eq(Cause.ILLEGAL_INSTRUCTION)
        with m.Elif(i.is_("ecall")):
            m.d.comb += trap_cause.eq(Cause.ECALL_M)
        with m.Elif(i.is_("ebreak")):
            m.d.comb += trap_cause.eq(Cause.BREAKPOINT)
        with m.Elif(is_load):
            m.d.comb += trap_cause.eq(Cause.MISALIGNED_LOAD)
        with m.Elif(is_store):
            m.d.comb += trap_cause.eq(Cause.MISALIGNED_STORE)
        with m.Else():
            m.d.comb += trap_cause.eq(Cause.MISALIGNED_FETCH)
        must_trap = (~legal | i.is_("ecall") | i.is_("ebreak")
                     | ((is_load | is_store) & misaligned) | (jumps & target[1]))

        # CSRs.
        is_csr = i.any_of(_CSR_OPS)
        src = Mux(i.funct3[2], i.rs1, a)
        old = Signal(32)
        for csr, shadow in csrs.items():
            with m.If(i.funct12 == csr):
                m.d.comb += old.eq(shadow)
        new = Signal(32)
        with m.Switch(i.funct3[0:2]):
            with m.Case(0b01):
                m.d.comb += new.eq(src)
            with m.Case(0b10):
                m.d.comb += new.eq(old | src)
            with m.Case(0b11):
                m.d.comb += new.eq(old & ~src)

        # -- Properties --------------------------------------------------------------------------
        writes_rd = ok & (i.rd != 0)
        m.d.comb += Assume(~t.interrupt)
        for name in _ALU:
            check("alu", name, writes_rd & i.is_(name),
                  (t.rd_addr == i.rd) & (t.rd_wdata == expected))

        for name in _BRANCHES:
            check("branch", f"{name}_taken", ok & i.is_(name) & branch_taken, Const(1))
            check("branch", f"{name}_not_taken", ok & i.is_(name) & ~branch_taken, Const(1))
        for name in ("jal", "jalr"):
            check("branch", f"{name}_link", writes_rd & i.is_(name),
                  (t.rd_addr == i.rd) & (t.rd_wdata == (pc + 4)[:32]))      # wraps at 2**32
        check("branch", "next_pc", t.valid & ~after_trap, pc == expect_pc)
        check("branch", "after_jump", t.valid & after_jump & ~after_trap, pc == expect_pc)

        for name in _LOADS:
            check("mem", name, ok & i.is_(name),
                  (t.mem_addr == addr) & (t.mem_rmask == lanes) & (t.mem_wmask == 0)
                  & self.bus_re & (self.bus_addr == addr[2:])
                  & (t.rd_addr == i.rd) & ((i.rd == 0) | (t.rd_wdata == loaded)))
        for name in _STORES:
            mask_bits = Cat(bit.replicate(8) for bit in lanes)
            check("mem", name, ok & i.is_(name),
                  (t.mem_addr == addr) & (t.mem_wmask == lanes) & (t.mem_rmask == 0)
                  & (self.bus_we == lanes) & (self.bus_addr == addr[2:])
                  & ((t.mem_wdata & mask_bits) == (stored & mask_bits)) & (t.rd_addr == 0))
        check("mem", "only_stores_write", (self.bus_we != 0) & self.bus_ready,
              ok & is_store)

        for csr in _TRACKED:
            check("csr", f"read_{csr.name.lower()}",
                  writes_rd & is_csr & (i.funct12 == csr),
                  (t.rd_addr == i.rd) & (t.rd_wdata == old))

        check("trap", "when_due", t.valid, t.trap == must_trap)
        for cause in Cause:
            check("trap", cause.name.lower(), t.trap & (trap_cause == cause), Const(1))
        check("trap", "to_mtvec", t.valid & after_trap, pc == expect_pc)
        for csr in (Csr.MEPC, Csr.MCAUSE):
            check("trap", f"read_{csr.name.lower()}",
                  writes_rd & is_csr & (i.funct12 == csr) & after_trap,
                  t.rd_wdata == old)

        check("x0", "never_written", t.valid & (i.rd == 0), t.rd_addr == 0)
        reads_x0 = (i.rs1 == 0) | ((t.insn[0:7] == Opcode.OP) & (i.rs2 == 0))
        for name in _ALU_R + _ALU_I:
            check("x0", f"reads_zero_{name}", writes_rd & i.is_(name) & reads_x0,
                  t.rd_wdata == expected)

        # -- Shadow updates ----------------------------------------------------------------------
        with m.If(ok & (t.rd_addr != 0)):
            m.d.sync += regs[t.rd_addr].eq(t.rd_wdata)
        with m.If(t.valid):
            m.d.sync += [after_trap.eq(t.trap), after_jump.eq(ok & (jumps | i.is_("mret")))]
            with m.If(t.trap):
                m.d.sync += [expect_pc.eq(csrs[Csr.MTVEC]), csrs[Csr.MEPC].eq(pc),
                             csrs[Csr.MCAUSE].eq(trap_cause)]
            with m.Elif(jumps):
                m.d.sync += expect_pc.eq(target)
            with m.Elif(i.is_("mret")):
                m.d.sync += expect_pc.eq(csrs[Csr.MEPC])
            with m.Else():
                m.d.sync += expect_pc.eq(pc + 4)
            with m.If(ok & is_csr & i.csr_writes()):
                for csr, shadow in csrs.items():
                    with m.If(i.funct12 == csr):
                        mask = ~0b11 if csr in _ALIGNED else ~0
                        m.d.sync += shadow.eq(new & mask)
        return m


def core_harness(groups=GROUPS, *, with_m=False, core_class=None, registers=4):
    """A :class:`~rvnpu.hdl.core.cpu.RiscvCore` and a :class:`RetireChecker` for ``groups``.

    Every fetched word, load answer, bus wait, engine handshake and engine answer is chosen by
    the solver; the interrupt lines are low (interrupts are not in these properties).
    ``core_class`` replaces the core (a mutated copy, to show the properties can fail).
    """
    m = Module()
    core = (core_class or cpu.RiscvCore)(with_m=with_m)
    checker = RetireChecker(groups=groups, with_m=with_m, reset_vector=core.reset_vector)
    m.submodules.core = core
    m.submodules.checker = checker
    rdata = Signal(32)
    m.d.comb += rdata.eq(AnySeq(32))
    if registers < 32:
        bits = (registers - 1).bit_length()
        for field in (7, 15, 20):
            m.d.comb += Assume(rdata[field + bits:field + 5] == 0)
    m.d.comb += [
        Assume(~ResetSignal()),
        core.bus.rdata.eq(rdata), core.bus.ready.eq(AnySeq(1)),
        core.cmd.ready.eq(AnySeq(1)),
        core.rsp.valid.eq(AnySeq(1)), core.rsp.payload.eq(AnySeq(32)),
        core.irq_external.eq(0), core.irq_timer.eq(0),
        checker.retire.eq(core.retire),
        checker.bus_addr.eq(core.bus.addr), checker.bus_re.eq(core.bus.re),
        checker.bus_we.eq(core.bus.we), checker.bus_rdata.eq(core.bus.rdata),
        checker.bus_ready.eq(core.bus.ready),
    ]
    return m
