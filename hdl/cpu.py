"""The control core: a small multi-cycle RV32I(M) machine-mode CPU."""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .frontend import CommandLayout
from .memory_map import REGFILE_STYLES
from .muldiv import MulDiv


__all__ = ["BusSignature", "RetireLayout", "RiscvCore"]


#: The core's single memory port, from the core's side. ``addr`` is a word address; ``re`` or a
#: nonzero ``we`` byte mask is a request, held until a cycle with ``ready``, in which ``rdata``
#: is valid for a read.
BusSignature = wiring.Signature({
    "addr":  Out(30),
    "re":    Out(1),
    "we":    Out(4),
    "wdata": Out(32),
    "rdata": In(32),
    "ready": In(1),
})

#: The trace of one instruction, valid for one cycle when it retires or traps. ``rd_addr`` is 0
#: unless a register is written; ``mem_addr`` (byte address) means something only with a mask.
RetireLayout = data.StructLayout({
    "valid":     1,
    "pc":        32,
    "insn":      32,
    "trap":      1,
    "rd_addr":   5,
    "rd_wdata":  32,
    "mem_addr":  32,
    "mem_wmask": 4,
    "mem_wdata": 32,
    "mem_rmask": 4,
})


# Major opcodes, all seven bits (a 16-bit encoding is illegal here).
_LOAD, _CUSTOM0, _MISC_MEM, _OP_IMM = 0b0000011, 0b0001011, 0b0001111, 0b0010011
_AUIPC, _STORE, _OP, _LUI = 0b0010111, 0b0100011, 0b0110011, 0b0110111
_BRANCH, _JALR, _JAL, _SYSTEM = 0b1100011, 0b1100111, 0b1101111, 0b1110011

# CSRs that only software changes live in the register-file RAM above x31, at slot
# ``32 | csr[7] << 4 | csr[6] << 3 | csr[2:0]``: they cost block RAM bits instead of logic
# cells. So do the counters, but for a few low bits in flip-flops (16 of mcycle, 8 of
# minstret): when those wrap, the core adds the carry to the RAM words with its one adder at
# the next instruction boundary.
_RAM_CSRS = (0x305, 0x340, 0x341, 0x342, 0x343,
             0xB00, 0xB02, 0xB80, 0xB82, 0xC00, 0xC02, 0xC80, 0xC82)
_MTVEC, _MEPC, _MCAUSE, _MTVAL = 37, 41, 42, 43
_MCYCLE, _MINSTRET, _MCYCLEH, _MINSTRETH = 32, 34, 48, 50
_CYCLE_BITS, _INSTRET_BITS = 16, 8     # counter bits in flip-flops

_ILLEGAL, _BREAKPOINT, _MISALIGNED_FETCH = 2, 3, 0
_MISALIGNED_LOAD, _MISALIGNED_STORE, _ECALL = 4, 6, 11


def _csr_slot(csr):
    return Cat(csr[0:3], csr[6], csr[7], Const(1, 1))


def _gate(value, enable):
    return value & enable.replicate(len(value))


def _is(value, *constants):
    """``value`` equals one of ``constants``."""
    result = Const(0)
    for constant in constants:
        result = result | (value == constant)
    return result


def _decode(m, word, with_m):
    """Fields and decoded properties of the instruction ``word``, as a namespace.

    The core decodes ``ir`` with it, and the fetched word too, so that the legality checks,
    a deep cone, are registered with the instruction rather than in the execute cycle.
    """
    opcode, rd, funct3 = word[0:7], word[7:12], word[12:15]
    rs1, funct7, csr = word[15:20], word[25:32], word[20:32]
    size = funct3[0:2]
    is_op = opcode == _OP
    is_op_imm = opcode == _OP_IMM
    is_shift = (is_op | is_op_imm) & (funct3[0:2] == 0b01)
    is_muldiv = is_op & (funct7 == 1) & with_m
    is_csr = (opcode == _SYSTEM) & (funct3[0:2] != 0)
    plain = (rd == 0) & (rs1 == 0)
    is_ecall = (opcode == _SYSTEM) & plain & (funct3 == 0) & (csr == 0x000)
    is_ebreak = (opcode == _SYSTEM) & plain & (funct3 == 0) & (csr == 0x001)

    csr_in_ram = _is(csr, *_RAM_CSRS)
    csr_known = csr_in_ram | _is(csr, 0x300, 0x301, 0x304, 0x344, 0xF11, 0xF12, 0xF13,
                                 0xF14)
    csr_mcycle = (csr[0:8] == 0x00) & ((csr[8:12] == 0xB) | (csr[8:12] == 0xC))
    csr_writes = (funct3[0:2] == 0b01) | (rs1 != 0)

    legal = Signal()
    with m.Switch(opcode):
        with m.Case(_LUI, _AUIPC, _JAL):
            m.d.comb += legal.eq(1)
        with m.Case(_JALR):
            m.d.comb += legal.eq(funct3 == 0)
        with m.Case(_BRANCH):
            m.d.comb += legal.eq(funct3[1:3] != 0b01)
        with m.Case(_LOAD):
            m.d.comb += legal.eq((size != 3) & (funct3 != 6))
        with m.Case(_STORE):
            m.d.comb += legal.eq(~funct3[2] & (size != 3))
        with m.Case(_OP_IMM):
            m.d.comb += legal.eq(~is_shift | (funct7 == 0)
                                 | ((funct7 == 0x20) & funct3[2]))
        with m.Case(_OP):
            m.d.comb += legal.eq((funct7 == 0) | is_muldiv
                                 | ((funct7 == 0x20) & ((funct3 == 0) | (funct3 == 5))))
        with m.Case(_MISC_MEM):
            m.d.comb += legal.eq(funct3[1:3] == 0)
        with m.Case(_SYSTEM):
            with m.If(funct3 == 0):
                m.d.comb += legal.eq(plain & _is(csr, 0x000, 0x001, 0x302, 0x105))
            with m.Else():
                m.d.comb += legal.eq((funct3 != 4) & csr_known
                                     & ~(csr_writes & (csr[10:12] == 0b11)))
        with m.Case(_CUSTOM0):
            m.d.comb += legal.eq(funct3 == 0)
    return SimpleNamespace(**{name: value for name, value in locals().items()
                              if name not in ("m", "word", "with_m")})


class RiscvCore(wiring.Component):
    """A multi-cycle RV32I core, with the M extension as an option, in machine mode only.

    Built to be small. One adder computes every address, comparison, sum and jump target; a
    logic unit (XOR, OR, AND, AND-NOT) also does the CSR read-modify-writes; shifts move one
    bit per cycle through a register; multiply and divide are iterative
    (:class:`~rvnpu.hdl.muldiv.MulDiv`). The registers sit in a block RAM with two synchronous
    read ports, read in the cycle the instruction arrives and held until it retires, and so do
    the CSRs that only software changes (``mtvec``, ``mscratch``, ``mepc``, ``mcause``,
    ``mtval``) and the counters' high halves. Only ``mstatus`` (MIE, MPIE) and the counters' low
    halves are flip-flops. Results reach the register file through one AND-OR multiplexer with
    one-hot selects.

    Each instruction is fetched (two cycles with a memory that answers the cycle after a
    request) and then executed. Cycles per instruction with such a memory, a ready engine
    that answers a cycle after a command (measured by ``tests/test_cpu.py``):

    ==========================================================  ============
    Instruction class                                           Cycles
    ==========================================================  ============
    ALU (register or immediate, not shifts), LUI, AUIPC         3
    JAL, JALR, branch not taken, FENCE, FENCE.I, WFI, MRET      3
    branch taken                                                4
    load, store                                                 4
    shift by ``n`` (register or immediate)                      4 + n
    CSR access                                                  4
    custom-0 with ``rd = x0`` / with an answer                  3 / 4
    MUL, MULH[[S]U], DIV[U], REM[U]                             36
    trap (illegal, misaligned, ECALL, EBREAK)                   5
    misaligned taken branch                                     6
    ==========================================================  ============

    Every 2**16 cycles and every 2**8 instructions, the next instruction boundary takes two
    more cycles (four when the carry reaches a counter's high half) to carry the counter bits
    kept in flip-flops into the RAM. A slower memory adds its wait cycles to the fetch
    and to loads and stores; a busy engine holds a custom-0 instruction until it accepts the
    command and, if ``rd`` is not x0, answers.

    Custom-0 instructions (``funct3 = 0``) send ``(funct7, rs1, rs2)`` on ``cmd``; if ``rd`` is
    not x0 the core then waits for one word on ``rsp`` and writes it to ``rd``.

    Traps jump to ``mtvec`` (direct mode). The CSR and trap details are those of the golden
    model, :mod:`rvnpu.sim.golden.iss`. There are no interrupts yet: ``mie`` and ``mip`` read
    as zero, and the ``Fetch`` state is where one would be taken.

    Parameters
    ----------
    with_m : bool
        Implement MUL/DIV/REM; without it their encodings are illegal instructions.
    reset_vector : int
        Byte address of the first instruction (word-aligned).
    regfile_style : str
        ``"block"``: the registers are left to synthesis (block RAM); ``"lut"``: they are
        marked for distributed RAM, for parts short of block RAM.

    Members
    -------
    bus : Out(BusSignature)
        Instruction fetches and loads/stores.
    cmd : Out(stream.Signature(CommandLayout))
        Commands to the matrix engine.
    rsp : In(stream.Signature(32))
        The engine's answers.
    retire : Out(RetireLayout)
        Trace of retired and trapped instructions, for verification.
    """

    def __init__(self, *, with_m=True, reset_vector=0, regfile_style="block"):
        if not isinstance(with_m, bool):
            raise TypeError(f"with_m must be a bool, not {with_m!r}")
        if (not isinstance(reset_vector, int) or not 0 <= reset_vector < 2**32
                or reset_vector % 4):
            raise ValueError(f"reset_vector must be a word-aligned 32-bit address, "
                             f"not {reset_vector!r}")
        if regfile_style not in REGFILE_STYLES:
            raise ValueError(f"regfile_style must be one of {', '.join(REGFILE_STYLES)}, "
                             f"not {regfile_style!r}")
        self._with_m = with_m
        self._reset_vector = reset_vector
        self._regfile_style = regfile_style
        super().__init__({
            "bus":    Out(BusSignature),
            "cmd":    Out(stream.Signature(CommandLayout)),
            "rsp":    In(stream.Signature(32)),
            "retire": Out(RetireLayout),
        })

    @property
    def with_m(self):
        return self._with_m

    @property
    def reset_vector(self):
        return self._reset_vector

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        # -- State -------------------------------------------------------------------------------
        # Yosys's memory mapper reads ram_style: "distributed" asks for LUT RAM.
        attrs = {"ram_style": "distributed"} if self._regfile_style == "lut" else None
        m.submodules.regs = regs = Memory(shape=32, depth=64, init=[], attrs=attrs)
        rp1 = regs.read_port(transparent_for=())
        rp2 = regs.read_port(transparent_for=())   # rs2, or the CSR the instruction names
        wp = regs.write_port()
        rs1_val, rs2_val = rp1.data, rp2.data

        pc = Signal(30, init=self._reset_vector >> 2)    # word address: targets are aligned
        ir = Signal(32)
        shreg = Signal(32)      # shift register; also holds a CSR's new value for a cycle
        shamt = Signal(5)
        cause = Signal(4)
        mstatus_mie = Signal()
        mstatus_mpie = Signal()
        mcycle = Signal(_CYCLE_BITS)        # counter bits in flip-flops; the rest is in RAM
        minstret = Signal(_INSTRET_BITS)
        # Carries owed to the RAM words: [mcycle, minstret, mcycleh, minstreth].
        owed = Signal(4)
        carry_job = Signal(2)               # the one being paid
        keep_instreth = Signal()            # minstreth was written: no carry into it now

        d = _decode(m, ir, self._with_m)
        opcode, rd, funct3, rs1, funct7, csr, size = (
            d.opcode, d.rd, d.funct3, d.rs1, d.funct7, d.csr, d.size)
        is_op, is_op_imm, is_shift, is_muldiv = d.is_op, d.is_op_imm, d.is_shift, d.is_muldiv
        csr_in_ram, csr_mcycle, csr_writes = d.csr_in_ram, d.csr_mcycle, d.csr_writes
        # Legality, ECALL and EBREAK of the instruction in `ir`, decoded as it was fetched.
        legal, is_ecall, is_ebreak = Signal(), Signal(), Signal()
        f = _decode(m, self.bus.rdata, self._with_m)
        fetched_legal, fetched_ecall, fetched_ebreak = f.legal, f.is_ecall, f.is_ebreak

        sign = ir[31].replicate(20)
        imm = Signal(32)
        with m.Switch(opcode[2:7]):
            with m.Case(_LOAD >> 2, _OP_IMM >> 2, _JALR >> 2):
                m.d.comb += imm.eq(Cat(ir[20:32], sign))
            with m.Case(_STORE >> 2):
                m.d.comb += imm.eq(Cat(ir[7:12], ir[25:32], sign))
            with m.Case(_BRANCH >> 2):
                m.d.comb += imm.eq(Cat(Const(0, 1), ir[8:12], ir[25:31], ir[7], sign))
            with m.Case(_LUI >> 2, _AUIPC >> 2):
                m.d.comb += imm.eq(Cat(Const(0, 12), ir[12:32]))
            with m.Case(_JAL >> 2):
                m.d.comb += imm.eq(Cat(Const(0, 1), ir[21:31], ir[20], ir[12:20], sign[:12]))

        # -- Datapath ----------------------------------------------------------------------------
        # Operand selects (one-hot or none, i.e. zero), set per state below.
        a_pc, a_zimm, a_zero = Signal(), Signal(), Signal()
        a_const = Signal(32)    # ORed into the first operand: carries into RAM counters
        b_rs2, b_imm, b_csr = Signal(), Signal(), Signal()
        invert = Signal()       # a - b
        carry_in = Signal()     # a + b + 1
        logic_op = Signal(2)    # XOR, OR, AND, AND-NOT (~a & b)

        # The CSR bits in flip-flops enter as the second operand, ORed with the RAM CSRs on
        # port 2 (the counters' RAM words hold zeros where their flip-flop bits go).
        csr_ff = Signal(32)
        with m.Switch(csr):
            with m.Case(0x300):
                m.d.comb += csr_ff.eq(Cat(Const(0, 3), mstatus_mie, Const(0, 3), mstatus_mpie,
                                          Const(0, 3), Const(0b11, 2)))
            with m.Case(0x301):
                m.d.comb += csr_ff.eq(1 << 30 | 1 << 8 | (1 << 12 if self._with_m else 0))
            with m.Case(0xB00, 0xC00):
                m.d.comb += csr_ff.eq(mcycle)
            with m.Case(0xB02, 0xC02):
                m.d.comb += csr_ff.eq(minstret)

        a_rs1 = ~(a_pc | a_zimm | a_zero)
        a_op = (_gate(rs1_val, a_rs1) | _gate(Cat(Const(0, 2), pc), a_pc)
                | _gate(rs1.as_unsigned(), a_zimm) | a_const)
        b_op = _gate(rs2_val, b_rs2) | _gate(imm, b_imm) | _gate(csr_ff, b_csr)

        compare = Signal()      # total[32] is "less than" rather than the carry
        cmp_signed = compare & Mux(opcode == _BRANCH, ~funct3[1], ~funct3[0])
        # The carry chain needs b ^ invert as a net of its own; the logic unit shares it (it
        # never runs with invert set), so the inversion costs no second copy of the operand.
        b_x = Signal(32)
        m.d.comb += b_x.eq(b_op ^ invert.replicate(32))
        total = Signal(33)
        m.d.comb += total.eq(Cat(a_op, cmp_signed & a_op[31])
                             + Cat(b_x, Mux(cmp_signed, b_x[31], invert))
                             + (invert | carry_in))
        result = total[:32]
        less = total[32]
        equal = result == 0
        taken = ((funct3[2] & less) | (~funct3[2] & equal)) ^ funct3[0]

        logic = Signal(32)
        with m.Switch(logic_op):
            with m.Case(0):
                m.d.comb += logic.eq(a_op ^ b_x)
            with m.Case(1):
                m.d.comb += logic.eq(a_op | b_x)
            with m.Case(2):
                m.d.comb += logic.eq(a_op & b_x)
            with m.Case(3):
                m.d.comb += logic.eq(~a_op & b_x)

        # Memory side: the address is always the adder's output (pc + 0 for fetches).
        m.d.comb += bus.addr.eq(result[2:])
        byte_mask = Signal(4)
        with m.Switch(size):
            with m.Case(0):
                m.d.comb += byte_mask.eq(Const(1, 4) << result[0:2])
            with m.Case(1):
                m.d.comb += byte_mask.eq(Cat(~result[1], ~result[1], result[1], result[1]))
            with m.Default():
                m.d.comb += byte_mask.eq(0b1111)
        misaligned = ((size == 1) & result[0]) | ((size == 2) & (result[0:2] != 0))
        # Stores repeat a byte or halfword across the word; the byte mask picks the lanes.
        m.d.comb += bus.wdata.eq(Cat(
            rs2_val[0:8],
            rs2_val.word_select(size != 0, 8),
            rs2_val.word_select(Cat(Const(0, 1), size[1]), 8),
            rs2_val.word_select(Cat(size[0] | size[1], size[1]), 8)))
        load_byte = bus.rdata.word_select(result[0:2], 8)
        load_half = bus.rdata.word_select(result[1], 16)
        load_data = Signal(32)
        with m.Switch(funct3):
            with m.Case(0):
                m.d.comb += load_data.eq(load_byte.as_signed())
            with m.Case(1):
                m.d.comb += load_data.eq(load_half.as_signed())
            with m.Case(4):
                m.d.comb += load_data.eq(load_byte)
            with m.Case(5):
                m.d.comb += load_data.eq(load_half)
            with m.Default():
                m.d.comb += load_data.eq(bus.rdata)

        if self._with_m:
            m.submodules.muldiv = muldiv = MulDiv()
            m.d.comb += [muldiv.op.eq(funct3), muldiv.a.eq(rs1_val), muldiv.b.eq(rs2_val)]
            muldiv_result = muldiv.result
        else:
            muldiv_result = Const(0, 32)

        # Register-file write data: one-hot selects, AND-OR.
        w_sum, w_sum_bit0, w_logic, w_less, w_link = Signal(), Signal(), Signal(), Signal(), \
            Signal()
        w_load, w_shreg, w_rsp, w_muldiv, w_cause = Signal(), Signal(), Signal(), Signal(), \
            Signal()
        w_mask = Signal(16)     # low bits not written to a RAM CSR (mtvec, mepc, counters)
        w_en = Signal()
        w_addr = Signal(6)
        w_data = Signal(32)
        m.d.comb += w_data.eq(
            _gate(Cat(result[0] & w_sum_bit0, result[1:]), w_sum) | _gate(logic, w_logic)
            | _gate(Cat(Const(0, 2), pc + 1), w_link) | _gate(load_data, w_load)
            | _gate(shreg, w_shreg) | _gate(self.rsp.payload, w_rsp)
            | _gate(muldiv_result, w_muldiv) | _gate(cause.as_unsigned(), w_cause)
            | w_less & less)
        m.d.comb += [wp.en.eq(w_en), wp.addr.eq(w_addr),
                     wp.data.eq(Cat(w_data[0:16] & ~w_mask, w_data[16:]))]

        # Operands are read as the instruction arrives, straight from the bus.
        fetched = bus.rdata
        m.d.comb += rp1.addr.eq(fetched[15:20])
        with m.If(fetched[0:7] == _SYSTEM):
            with m.If(fetched[12:15] == 0):
                m.d.comb += rp2.addr.eq(_MEPC)                  # for MRET
            with m.Else():
                m.d.comb += rp2.addr.eq(_csr_slot(fetched[20:32]))
        with m.Else():
            m.d.comb += rp2.addr.eq(fetched[20:25])
        m.d.comb += [rp1.en.eq(0), rp2.en.eq(0)]

        # -- Counters ----------------------------------------------------------------------------
        retired = Signal()          # an instruction retires in this cycle
        trapped = Signal()          # an instruction finishes trapping in this cycle
        write_counter = Signal()    # a CSR instruction writes its new value (in shreg)
        mcycle_next = Signal(_CYCLE_BITS + 1)
        minstret_next = Signal(_INSTRET_BITS + 1)
        m.d.comb += [mcycle_next.eq(mcycle + 1), minstret_next.eq(minstret + retired)]
        # A write lands after the instruction's own increment.
        with m.If(write_counter & (csr == 0xB00)):
            m.d.sync += mcycle.eq(shreg)
        with m.Else():
            m.d.sync += mcycle.eq(mcycle_next)
        with m.If(write_counter & (csr == 0xB02)):
            m.d.sync += minstret.eq(shreg)
        with m.Else():
            m.d.sync += minstret.eq(minstret_next)
        owe = Signal(4)             # new carries
        paid = Signal(4)            # carries paid, or made void by a write
        m.d.comb += owe.eq(Cat(mcycle_next[-1], minstret_next[-1], 0, 0))
        owed_next = (owed | owe) & ~paid
        m.d.sync += owed.eq(owed_next)

        # -- Sequencing --------------------------------------------------------------------------
        pc_next = Signal()      # pc <= pc + 4
        pc_jump = Signal()      # pc <= adder
        with m.If(pc_jump):
            m.d.sync += pc.eq(result[2:])
        with m.Elif(pc_next):
            m.d.sync += pc.eq(pc + 1)

        m.d.comb += [self.cmd.payload.funct.eq(funct7), self.cmd.payload.op1.eq(rs1_val),
                     self.cmd.payload.op2.eq(rs2_val)]

        def done(retiring=False):
            # Between instructions, first pay the carries owed to the RAM counter words. The
            # carries of this cycle's increments are read off the counters (all ones), with
            # `retiring` known here: through `retired` the choice would wait for everything
            # that decides it, the core's longest path otherwise.
            new = Cat(mcycle.all(), minstret.all() if retiring else 0, owe[2], owe[3])
            with m.If(((owed | new) & ~paid) != 0):
                m.next = "Carry-Read"
            with m.Else():
                m.next = "Fetch"

        def retire(step=True):
            m.d.comb += [retired.eq(1), pc_next.eq(step)]
            done(retiring=True)

        def write_rd(select):
            m.d.comb += [w_en.eq(rd != 0), w_addr.eq(rd), select.eq(1)]

        def trap(code, tval=None):
            # Write mtval now, while the operands that make the address are here, and re-read
            # port 2 for mtvec.
            m.d.comb += [w_en.eq(1), w_addr.eq(_MTVAL), rp2.addr.eq(_MTVEC), rp2.en.eq(1)]
            if tval is not None:
                m.d.comb += [tval.eq(1)]
            m.d.sync += cause.eq(code)
            m.next = "Trap-Epc"

        with m.FSM(name="state"):
            with m.State("Fetch"):
                # An interrupt would be taken here: set `cause` (and an interrupt flag for
                # mcause[31]), write mtval, read mtvec, and go to "Trap-Epc" as trap() does.
                m.d.comb += [a_pc.eq(1), bus.re.eq(1)]
                m.d.sync += keep_instreth.eq(0)
                with m.If(bus.ready):
                    m.d.sync += [ir.eq(bus.rdata), legal.eq(fetched_legal),
                                 is_ecall.eq(fetched_ecall), is_ebreak.eq(fetched_ebreak)]
                    m.d.comb += [rp1.en.eq(1), rp2.en.eq(1)]
                    m.next = "Execute"

            with m.State("Execute"):
                m.d.comb += compare.eq(1)
                with m.If(~legal):
                    trap(_ILLEGAL)
                with m.Elif(is_ecall):
                    trap(_ECALL)
                with m.Elif(is_ebreak):
                    trap(_BREAKPOINT)
                with m.Else():
                    with m.Switch(opcode):
                        with m.Case(_LUI):
                            m.d.comb += [a_zero.eq(1), b_imm.eq(1), w_sum_bit0.eq(1)]
                            write_rd(w_sum)
                            retire()

                        with m.Case(_AUIPC):
                            m.d.comb += [a_pc.eq(1), b_imm.eq(1), w_sum_bit0.eq(1)]
                            write_rd(w_sum)
                            retire()

                        with m.Case(_JAL, _JALR):
                            m.d.comb += [a_pc.eq(opcode[3]), b_imm.eq(1)]
                            with m.If(result[1]):
                                trap(_MISALIGNED_FETCH, w_sum)      # bit 0 cleared
                            with m.Else():
                                write_rd(w_link)
                                m.d.comb += pc_jump.eq(1)
                                retire(step=False)

                        with m.Case(_BRANCH):
                            m.d.comb += [b_rs2.eq(1), invert.eq(1)]
                            with m.If(taken):
                                m.next = "Branch"
                            with m.Else():
                                retire()

                        with m.Case(_LOAD):
                            m.d.comb += [b_imm.eq(1), w_sum_bit0.eq(1)]
                            with m.If(misaligned):
                                trap(_MISALIGNED_LOAD, w_sum)
                            with m.Else():
                                m.d.comb += bus.re.eq(1)
                                with m.If(bus.ready):
                                    write_rd(w_load)
                                    retire()

                        with m.Case(_STORE):
                            m.d.comb += [b_imm.eq(1), w_sum_bit0.eq(1)]
                            with m.If(misaligned):
                                trap(_MISALIGNED_STORE, w_sum)
                            with m.Else():
                                m.d.comb += bus.we.eq(byte_mask)
                                with m.If(bus.ready):
                                    retire()

                        with m.Case(_OP_IMM, _OP):
                            m.d.comb += [b_rs2.eq(is_op), b_imm.eq(is_op_imm)]
                            with m.If(is_muldiv):
                                if self._with_m:
                                    m.d.comb += muldiv.start.eq(1)
                                    m.next = "Muldiv"
                            with m.Elif(is_shift):
                                # shreg <= rs1 | 0
                                m.d.comb += [b_rs2.eq(0), b_imm.eq(0), logic_op.eq(1)]
                                m.d.sync += [shreg.eq(logic),
                                             shamt.eq(Mux(is_op, rs2_val[:5], ir[20:25]))]
                                m.next = "Shift"
                            with m.Else():
                                m.d.comb += logic_op.eq(Cat(funct3[1] & ~funct3[0],
                                                            funct3[0]))
                                with m.Switch(funct3):
                                    with m.Case(0):
                                        m.d.comb += [invert.eq(is_op & funct7[5]),
                                                     w_sum_bit0.eq(1)]
                                        write_rd(w_sum)
                                    with m.Case(2, 3):
                                        m.d.comb += invert.eq(1)
                                        write_rd(w_less)
                                    with m.Default():
                                        write_rd(w_logic)
                                retire()

                        with m.Case(_MISC_MEM):
                            retire()

                        with m.Case(_SYSTEM):
                            with m.If(funct3 == 0):
                                with m.If(csr[1]):                      # MRET: pc <= mepc
                                    m.d.comb += [a_zero.eq(1), b_rs2.eq(1), pc_jump.eq(1)]
                                    m.d.sync += [mstatus_mie.eq(mstatus_mpie),
                                                 mstatus_mpie.eq(1)]
                                    retire(step=False)
                                with m.Else():                          # WFI
                                    retire()
                            with m.Elif(csr_mcycle & owed[0]):
                                # Pay the carry first, then run the instruction again: its
                                # old value must not miss 2**16 cycles.
                                m.next = "Carry-Read"
                            with m.Else():
                                # new = src (RW: OR with zero), old | src, or old & ~src.
                                # Written to a RAM CSR now, kept in shreg for the rest.
                                read_old = funct3[0:2] != 0b01
                                m.d.comb += [
                                    a_zimm.eq(funct3[2]),
                                    b_rs2.eq(csr_in_ram & read_old),
                                    b_csr.eq(read_old),
                                    logic_op.eq(Cat(Const(1, 1), funct3[0] & funct3[1])),
                                    w_en.eq(csr_writes & csr_in_ram),
                                    w_addr.eq(_csr_slot(csr)),
                                    w_logic.eq(1),
                                ]
                                with m.Switch(csr):
                                    with m.Case(0x305, 0x341):
                                        m.d.comb += w_mask.eq(0x0003)
                                    with m.Case(0xB00):
                                        m.d.comb += w_mask.eq((1 << _CYCLE_BITS) - 1)
                                    with m.Case(0xB02):
                                        m.d.comb += w_mask.eq((1 << _INSTRET_BITS) - 1)
                                m.d.sync += shreg.eq(logic)
                                m.next = "Csr"

                        with m.Case(_CUSTOM0):
                            m.d.comb += self.cmd.valid.eq(1)
                            with m.If(self.cmd.ready):
                                with m.If(rd != 0):
                                    m.next = "Answer"
                                with m.Else():
                                    retire()

            with m.State("Branch"):
                m.d.comb += [a_pc.eq(1), b_imm.eq(1)]
                with m.If(result[1]):
                    m.d.comb += w_sum_bit0.eq(1)
                    trap(_MISALIGNED_FETCH, w_sum)
                with m.Else():
                    m.d.comb += pc_jump.eq(1)
                    retire(step=False)

            with m.State("Shift"):
                with m.If(shamt == 0):
                    write_rd(w_shreg)
                    retire()
                with m.Else():
                    fill = funct7[5] & shreg[31]
                    with m.If(funct3[2]):
                        m.d.sync += shreg.eq(Cat(shreg[1:], fill))
                    with m.Else():
                        m.d.sync += shreg.eq(shreg << 1)
                    m.d.sync += shamt.eq(shamt - 1)

            with m.State("Csr"):
                # rd <= old (plus a carry owed to mcycle's RAM word); flip-flop CSRs <= new.
                m.d.comb += [a_zero.eq(1),
                             a_const.eq(Cat(Const(0, _CYCLE_BITS), csr_mcycle & owed[0])),
                             b_rs2.eq(csr_in_ram), b_csr.eq(1), w_sum_bit0.eq(1)]
                write_rd(w_sum)
                with m.If(csr_writes):
                    m.d.comb += write_counter.eq(1)
                    with m.If(csr == 0x300):
                        m.d.sync += [mstatus_mie.eq(shreg[3]), mstatus_mpie.eq(shreg[7])]
                    # A write voids the carries owed to the words it wrote, except that of
                    # this instruction's own increment into minstreth, which it now owes.
                    with m.Switch(csr):
                        with m.Case(0xB00):
                            m.d.comb += paid[0].eq(1)
                        with m.Case(0xB80):
                            m.d.comb += paid[2].eq(1)
                        with m.Case(0xB02):
                            m.d.comb += [paid[1].eq(1),
                                         owe[3].eq(minstret.all()      # it retires
                                                   & rs2_val[_INSTRET_BITS:].all())]
                        with m.Case(0xB82):
                            m.d.sync += keep_instreth.eq(1)
                retire()

            if self._with_m:
                with m.State("Muldiv"):
                    with m.If(muldiv.done):
                        write_rd(w_muldiv)
                        retire()

            with m.State("Answer"):
                m.d.comb += self.rsp.ready.eq(1)
                with m.If(self.rsp.valid):
                    write_rd(w_rsp)
                    retire()

            with m.State("Trap-Epc"):
                m.d.comb += [a_pc.eq(1), w_sum.eq(1), w_sum_bit0.eq(1),
                             w_en.eq(1), w_addr.eq(_MEPC)]
                m.next = "Trap-Enter"

            with m.State("Trap-Enter"):
                # mcause <= cause; pc <= mtvec (0 + port 2)
                m.d.comb += [w_en.eq(1), w_addr.eq(_MCAUSE), w_cause.eq(1), trapped.eq(1),
                             a_zero.eq(1), b_rs2.eq(1), pc_jump.eq(1)]
                m.d.sync += [mstatus_mpie.eq(mstatus_mie), mstatus_mie.eq(0)]
                done()

            with m.State("Carry-Read"):
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
                    with m.Case(0):
                        m.d.comb += slot.eq(_MCYCLE)
                    with m.Case(1):
                        m.d.comb += slot.eq(_MINSTRET)
                    with m.Case(2):
                        m.d.comb += slot.eq(_MCYCLEH)
                    with m.Case(3):
                        m.d.comb += slot.eq(_MINSTRETH)
                m.d.comb += [rp2.en.eq(1), rp2.addr.eq(slot)]
                m.d.sync += carry_job.eq(job)
                m.next = "Carry-Write"

            with m.State("Carry-Write"):
                # word <= carry + port 2, the carry being 2**16, 2**8, or 1 (carry_in).
                m.d.comb += [a_zero.eq(1), b_rs2.eq(1), w_sum.eq(1), w_sum_bit0.eq(1),
                             w_en.eq(1)]
                with m.Switch(carry_job):
                    with m.Case(0):
                        m.d.comb += [a_const.eq(1 << _CYCLE_BITS), w_addr.eq(_MCYCLE),
                                     paid[0].eq(1), owe[2].eq(total[32])]
                    with m.Case(1):
                        m.d.comb += [a_const.eq(1 << _INSTRET_BITS), w_addr.eq(_MINSTRET),
                                     paid[1].eq(1), owe[3].eq(total[32] & ~keep_instreth)]
                    with m.Case(2):
                        m.d.comb += [carry_in.eq(1), w_addr.eq(_MCYCLEH), paid[2].eq(1)]
                    with m.Case(3):
                        m.d.comb += [carry_in.eq(1), w_addr.eq(_MINSTRETH), paid[3].eq(1)]
                done()

        # -- Trace -------------------------------------------------------------------------------
        t = self.retire
        m.d.comb += [
            t.valid.eq(retired | trapped),
            t.trap.eq(trapped),
            t.pc.eq(Cat(Const(0, 2), pc)),
            t.insn.eq(ir),
            t.rd_addr.eq(_gate(w_addr[:5], w_en & ~w_addr[5])),
            t.rd_wdata.eq(w_data),
            t.mem_addr.eq(result),
            t.mem_wmask.eq(_gate(bus.we, retired)),
            t.mem_wdata.eq(bus.wdata),
            t.mem_rmask.eq(_gate(byte_mask, retired & bus.re)),
        ]

        return m
