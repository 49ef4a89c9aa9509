"""The control core: a small multi-cycle RV32I(M) machine-mode CPU."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .frontend import CommandLayout
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

# CSRs that change only under software control live in the register-file RAM above x31, so they
# cost block RAM bits instead of logic cells. Their slot is ``32 | csr[6] << 3 | csr[2:0]``.
_MTVEC_SLOT, _MSCRATCH_SLOT, _MEPC_SLOT, _MCAUSE_SLOT, _MTVAL_SLOT = 37, 40, 41, 42, 43
_RAM_CSRS = (0x305, 0x340, 0x341, 0x342, 0x343)

_ILLEGAL, _BREAKPOINT, _MISALIGNED_FETCH = 2, 3, 0
_MISALIGNED_LOAD, _MISALIGNED_STORE, _ECALL = 4, 6, 11


def _csr_slot(csr):
    return Cat(csr[0:3], csr[6], Const(0b10, 2))


class RiscvCore(wiring.Component):
    """A multi-cycle RV32I core, with the M extension as an option, in machine mode only.

    Built to be small: one adder does every address, comparison and sum; shifts move one bit
    per cycle; multiply and divide are iterative (:class:`~rvnpu.hdl.muldiv.MulDiv`); the
    registers sit in a block RAM with two synchronous read ports, read in the cycle the
    instruction arrives, and so does every CSR that only software changes (``mtvec``,
    ``mscratch``, ``mepc``, ``mcause``, ``mtval``). Only ``mstatus`` (MIE, MPIE) and the two
    64-bit counters are flip-flops. Fetches and data share the one bus, and an instruction's
    operands stay on the register file's read ports until it retires, so nothing is copied.

    Each instruction is fetched (two cycles with a memory that answers the cycle after a
    request), then executed. Cycles per instruction with such a memory, a ready engine, and
    one cycle between a command and its answer (measured by ``tests/test_cpu.py``):

    ==========================================================  ============
    Instruction class                                           Cycles
    ==========================================================  ============
    ALU (register or immediate, not shifts), LUI, AUIPC         3
    JAL, JALR, branch not taken, FENCE, FENCE.I, WFI, MRET      3
    branch taken                                                4
    load, store                                                 4
    shift by ``n`` (register or immediate)                      4 + n
    CSR access                                                  4
    custom-0 with ``rd = x0`` / with an answer                  3 / 5
    MUL, MULH[[S]U], DIV[U], REM[U]                             36
    trap (illegal, misaligned, ECALL, EBREAK)                   5
    misaligned taken branch                                     6
    ==========================================================  ============

    A slower memory adds its extra wait cycles to the fetch and to loads and stores; a busy
    engine holds custom-0 instructions until it accepts the command and answers.

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

    def __init__(self, *, with_m=True, reset_vector=0):
        if not isinstance(with_m, bool):
            raise TypeError(f"with_m must be a bool, not {with_m!r}")
        if not isinstance(reset_vector, int) or not 0 <= reset_vector < 2**32 \
                or reset_vector % 4:
            raise ValueError(f"reset_vector must be a word-aligned 32-bit address, "
                             f"not {reset_vector!r}")
        self._with_m = with_m
        self._reset_vector = reset_vector
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

        # -- Architectural state -----------------------------------------------------------------
        m.submodules.regs = regs = Memory(shape=32, depth=64, init=[])
        rp1 = regs.read_port(transparent_for=())
        rp2 = regs.read_port(transparent_for=())
        wp = regs.write_port()
        rs1_val, rs2_val = rp1.data, rp2.data   # rp2 also reads CSRs from RAM

        pc = Signal(30, init=self._reset_vector >> 2)    # word address: targets are aligned
        ir = Signal(32)
        mstatus_mie = Signal()
        mstatus_mpie = Signal()
        mcycle = Signal(64)
        minstret = Signal(64)
        cause = Signal(4)
        shifter = Signal(32)
        shift_count = Signal(5)

        opcode, rd, funct3 = ir[0:7], ir[7:12], ir[12:15]
        rs1, funct7, csr = ir[15:20], ir[25:32], ir[20:32]
        size = funct3[0:2]

        # -- Operands and the one adder ----------------------------------------------------------
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

        a_pc = Signal()     # first operand: pc instead of rs1
        a_zero = Signal()   # first operand: zero (LUI)
        b_rs2 = Signal()    # second operand: rs2 instead of the immediate
        b_zero = Signal()   # second operand: zero
        invert = Signal()   # subtract
        a_op = Mux(a_zero, 0, Mux(a_pc, Cat(Const(0, 2), pc), rs1_val))
        b_op = Mux(b_rs2, rs2_val, Mux(b_zero, 0, imm))
        cmp_signed = Mux(opcode == _BRANCH, ~funct3[1], ~funct3[0])
        total = Signal(33)
        m.d.comb += total.eq(Cat(a_op, cmp_signed & a_op[31])
                             + Cat(b_op ^ invert.replicate(32), (cmp_signed & b_op[31]) ^ invert)
                             + invert)
        result = total[:32]
        less = total[32]
        equal = result == 0

        # Memory side: the address is always the adder's output (pc + 0 for fetches).
        m.d.comb += bus.addr.eq(result[2:])
        byte_mask = Signal(4)
        with m.Switch(size):
            with m.Case(0):
                m.d.comb += byte_mask.eq(Const(1, 4) << result[0:2])
            with m.Case(1):
                m.d.comb += byte_mask.eq(Mux(result[1], 0b1100, 0b0011))
            with m.Default():
                m.d.comb += byte_mask.eq(0b1111)
        misaligned = ((size == 1) & result[0]) | ((size == 2) & (result[0:2] != 0))
        m.d.comb += bus.wdata.eq(Cat(
            rs2_val[0:8],
            Mux(size == 0, rs2_val[0:8], rs2_val[8:16]),
            Mux(size[1], rs2_val[16:24], rs2_val[0:8]),
            Mux(size[1], rs2_val[24:32], Mux(size[0], rs2_val[8:16], rs2_val[0:8]))))
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

        alu = Signal(32)
        with m.Switch(funct3):
            with m.Case(0):
                m.d.comb += alu.eq(result)
            with m.Case(2, 3):
                m.d.comb += alu.eq(less)
            with m.Case(4):
                m.d.comb += alu.eq(rs1_val ^ b_op)
            with m.Case(6):
                m.d.comb += alu.eq(rs1_val | b_op)
            with m.Default():
                m.d.comb += alu.eq(rs1_val & b_op)

        taken = Mux(funct3[2], less, equal) ^ funct3[0]

        # -- CSRs --------------------------------------------------------------------------------
        csr_old = Signal(32)
        csr_known = Signal()
        m.d.comb += csr_known.eq(1)
        with m.Switch(csr):
            with m.Case(0x300):
                m.d.comb += csr_old.eq(Cat(Const(0, 3), mstatus_mie, Const(0, 3), mstatus_mpie,
                                           Const(0, 3), Const(0b11, 2)))
            with m.Case(0x301):
                m.d.comb += csr_old.eq(1 << 30 | 1 << 8 | (1 << 12 if self._with_m else 0))
            with m.Case(*_RAM_CSRS):
                m.d.comb += csr_old.eq(rs2_val)
            with m.Case(0xB00, 0xC00):
                m.d.comb += csr_old.eq(mcycle[:32])
            with m.Case(0xB80, 0xC80):
                m.d.comb += csr_old.eq(mcycle[32:])
            with m.Case(0xB02, 0xC02):
                m.d.comb += csr_old.eq(minstret[:32])
            with m.Case(0xB82, 0xC82):
                m.d.comb += csr_old.eq(minstret[32:])
            with m.Case(0x304, 0x344, 0xF11, 0xF12, 0xF13, 0xF14):
                pass                                    # mie, mip, IDs: zero
            with m.Default():
                m.d.comb += csr_known.eq(0)
        csr_in_ram = Signal()
        with m.Switch(csr):
            with m.Case(*_RAM_CSRS):
                m.d.comb += csr_in_ram.eq(1)
        csr_src = Mux(funct3[2], rs1, rs1_val)
        csr_writes = (funct3[0:2] == 1) | (rs1 != 0)
        csr_new = Signal(32)
        with m.Switch(funct3[0:2]):
            with m.Case(1):
                m.d.comb += csr_new.eq(csr_src)
            with m.Case(2):
                m.d.comb += csr_new.eq(csr_old | csr_src)
            with m.Default():
                m.d.comb += csr_new.eq(csr_old & ~csr_src)

        # -- Register-file ports -----------------------------------------------------------------
        # Operands are read as the instruction arrives, straight from the bus.
        fetched = bus.rdata
        m.d.comb += rp1.addr.eq(fetched[15:20])
        with m.If(fetched[0:7] == _SYSTEM):
            m.d.comb += rp2.addr.eq(Mux(fetched[12:15] == 0, _MEPC_SLOT,
                                        _csr_slot(fetched[20:32])))
        with m.Else():
            m.d.comb += rp2.addr.eq(fetched[20:25])
        m.d.comb += [rp1.en.eq(0), rp2.en.eq(0)]

        w_en = Signal()
        w_addr = Signal(6)
        w_data = Signal(32)
        m.d.comb += [wp.en.eq(w_en), wp.addr.eq(w_addr), wp.data.eq(w_data)]

        def write_rd(value):
            m.d.comb += [w_en.eq(rd != 0), w_addr.eq(rd), w_data.eq(value)]

        # -- Sequencing --------------------------------------------------------------------------
        retired = Signal()      # retires in this cycle
        trapped = Signal()      # finishes a trap in this cycle
        advance = Signal()      # pc <= pc + 4
        load_done = Signal()

        mcycle_next = Signal(64)
        minstret_next = Signal(64)
        m.d.comb += [mcycle_next.eq(mcycle + 1), minstret_next.eq(minstret + retired)]
        m.d.sync += [mcycle.eq(mcycle_next), minstret.eq(minstret_next)]

        with m.If(advance):
            m.d.sync += pc.eq(pc + 1)

        def retire():
            m.d.comb += retired.eq(1)
            m.next = "Fetch"

        def retire_next():
            m.d.comb += [retired.eq(1), advance.eq(1)]
            m.next = "Fetch"

        def trap(code, tval=0):
            # Write mtval now, while the operands that make the address are still here, and
            # re-read port 2 for mtvec.
            m.d.comb += [w_en.eq(1), w_addr.eq(_MTVAL_SLOT), w_data.eq(tval),
                         rp2.addr.eq(_MTVEC_SLOT), rp2.en.eq(1)]
            m.d.sync += cause.eq(code)
            m.next = "Trap-Epc"

        if self._with_m:
            m.submodules.muldiv = muldiv = MulDiv()
            m.d.comb += [muldiv.op.eq(funct3), muldiv.a.eq(rs1_val), muldiv.b.eq(rs2_val)]

        m.d.comb += [self.cmd.payload.funct.eq(funct7), self.cmd.payload.op1.eq(rs1_val),
                     self.cmd.payload.op2.eq(rs2_val)]

        with m.FSM(name="state"):
            with m.State("Fetch"):
                # An interrupt would be taken here: set `cause` (and an interrupt flag for
                # mcause[31]), write mtval, read mtvec, and go to "Trap-Epc" as trap() does.
                m.d.comb += [a_pc.eq(1), b_zero.eq(1), bus.re.eq(1)]
                with m.If(bus.ready):
                    m.d.sync += ir.eq(bus.rdata)
                    m.d.comb += [rp1.en.eq(1), rp2.en.eq(1)]
                    m.next = "Execute"

            with m.State("Execute"):
                with m.Switch(opcode):
                    with m.Case(_LUI):
                        m.d.comb += a_zero.eq(1)
                        write_rd(result)
                        retire_next()

                    with m.Case(_AUIPC):
                        m.d.comb += a_pc.eq(1)
                        write_rd(result)
                        retire_next()

                    with m.Case(_JAL, _JALR):
                        target = Cat(Const(0, 1), result[1:])     # JALR clears bit 0
                        m.d.comb += a_pc.eq(opcode == _JAL)
                        with m.If((opcode == _JALR) & (funct3 != 0)):
                            trap(_ILLEGAL)
                        with m.Elif(result[1]):
                            trap(_MISALIGNED_FETCH, target)
                        with m.Else():
                            write_rd(Cat(Const(0, 2), pc + 1))
                            m.d.sync += pc.eq(result[2:])
                            retire()

                    with m.Case(_BRANCH):
                        m.d.comb += [b_rs2.eq(1), invert.eq(1)]
                        with m.If(funct3[1:3] == 0b01):
                            trap(_ILLEGAL)
                        with m.Elif(taken):
                            m.next = "Branch"
                        with m.Else():
                            retire_next()

                    with m.Case(_LOAD):
                        with m.If((size == 3) | (funct3 == 6)):
                            trap(_ILLEGAL)
                        with m.Elif(misaligned):
                            trap(_MISALIGNED_LOAD, result)
                        with m.Else():
                            m.d.comb += bus.re.eq(1)
                            with m.If(bus.ready):
                                m.d.comb += load_done.eq(1)
                                write_rd(load_data)
                                retire_next()

                    with m.Case(_STORE):
                        with m.If(funct3[2] | (size == 3)):
                            trap(_ILLEGAL)
                        with m.Elif(misaligned):
                            trap(_MISALIGNED_STORE, result)
                        with m.Else():
                            m.d.comb += bus.we.eq(byte_mask)
                            with m.If(bus.ready):
                                retire_next()

                    with m.Case(_OP_IMM, _OP):
                        is_reg = opcode[5]
                        shift = funct3[0:2] == 0b01
                        m.d.comb += [
                            b_rs2.eq(is_reg),
                            invert.eq(((funct3 == 0) & is_reg & funct7[5])
                                      | (funct3[1:3] == 0b01)),
                        ]
                        legal_f7 = Mux(funct3 == 0, is_reg, funct3 == 5)
                        with m.If((funct7 == 1) & is_reg & self._with_m):
                            if self._with_m:
                                m.d.comb += muldiv.start.eq(1)
                                m.next = "Muldiv"
                        with m.Elif((is_reg | shift) & (funct7 != 0)
                                    & ~((funct7 == 0x20) & legal_f7)):
                            trap(_ILLEGAL)
                        with m.Elif(shift):
                            m.d.sync += [shifter.eq(rs1_val), shift_count.eq(b_op[:5])]
                            m.next = "Shift"
                        with m.Else():
                            write_rd(alu)
                            retire_next()

                    with m.Case(_MISC_MEM):
                        with m.If(funct3[1:3] != 0):
                            trap(_ILLEGAL)
                        with m.Else():
                            retire_next()

                    with m.Case(_SYSTEM):
                        with m.If(funct3 == 0):
                            plain = (rd == 0) & (rs1 == 0)
                            with m.If(plain & (csr == 0x000)):
                                trap(_ECALL)
                            with m.Elif(plain & (csr == 0x001)):
                                trap(_BREAKPOINT)
                            with m.Elif(plain & (csr == 0x302)):      # MRET
                                m.d.sync += [pc.eq(rs2_val[2:]),
                                             mstatus_mie.eq(mstatus_mpie),
                                             mstatus_mpie.eq(1)]
                                retire()
                            with m.Elif(plain & (csr == 0x105)):      # WFI
                                retire_next()
                            with m.Else():
                                trap(_ILLEGAL)
                        with m.Elif((funct3 == 4) | ~csr_known
                                    | (csr_writes & (csr[10:12] == 0b11))):
                            trap(_ILLEGAL)
                        with m.Else():
                            # Write a RAM CSR now and rd next cycle (the retiring one); the
                            # old value stays on port 2.
                            low_bits = csr_new[0:2] & Mux((csr == 0x305) | (csr == 0x341),
                                                          0, 0b11)
                            m.d.comb += [w_en.eq(csr_writes & csr_in_ram),
                                         w_addr.eq(_csr_slot(csr)),
                                         w_data.eq(Cat(low_bits, csr_new[2:]))]
                            m.next = "Csr"

                    with m.Case(_CUSTOM0):
                        with m.If(funct3 != 0):
                            trap(_ILLEGAL)
                        with m.Else():
                            m.d.comb += self.cmd.valid.eq(1)
                            with m.If(self.cmd.ready):
                                with m.If(rd != 0):
                                    m.next = "Answer"
                                with m.Else():
                                    retire_next()

                    with m.Default():
                        trap(_ILLEGAL)

            with m.State("Branch"):
                m.d.comb += a_pc.eq(1)
                with m.If(result[1]):
                    trap(_MISALIGNED_FETCH, result)
                with m.Else():
                    m.d.sync += pc.eq(result[2:])
                    retire()

            with m.State("Shift"):
                with m.If(shift_count == 0):
                    write_rd(shifter)
                    retire_next()
                with m.Else():
                    fill = funct7[5] & shifter[31]
                    m.d.sync += [
                        shifter.eq(Mux(funct3[2], Cat(shifter[1:], fill), shifter << 1)),
                        shift_count.eq(shift_count - 1),
                    ]

            with m.State("Csr"):
                write_rd(csr_old)
                with m.If(csr_writes):
                    with m.Switch(csr):
                        with m.Case(0x300):
                            m.d.sync += [mstatus_mie.eq(csr_new[3]),
                                         mstatus_mpie.eq(csr_new[7])]
                        # A counter write lands after this instruction's own increment.
                        with m.Case(0xB00):
                            m.d.comb += mcycle_next[:32].eq(csr_new)
                        with m.Case(0xB80):
                            m.d.comb += mcycle_next[32:].eq(csr_new)
                        with m.Case(0xB02):
                            m.d.comb += minstret_next[:32].eq(csr_new)
                        with m.Case(0xB82):
                            m.d.comb += minstret_next[32:].eq(csr_new)
                retire_next()

            if self._with_m:
                with m.State("Muldiv"):
                    with m.If(muldiv.done):
                        write_rd(muldiv.result)
                        retire_next()

            with m.State("Answer"):
                m.d.comb += self.rsp.ready.eq(1)
                with m.If(self.rsp.valid):
                    write_rd(self.rsp.payload)
                    retire_next()

            with m.State("Trap-Epc"):
                m.d.comb += [a_pc.eq(1), b_zero.eq(1),
                             w_en.eq(1), w_addr.eq(_MEPC_SLOT), w_data.eq(result)]
                m.next = "Trap-Enter"

            with m.State("Trap-Enter"):
                m.d.comb += [w_en.eq(1), w_addr.eq(_MCAUSE_SLOT), w_data.eq(cause),
                             trapped.eq(1)]
                m.d.sync += [pc.eq(rs2_val[2:]),                # mtvec
                             mstatus_mpie.eq(mstatus_mie), mstatus_mie.eq(0)]
                m.next = "Fetch"

        # -- Trace -------------------------------------------------------------------------------
        t = self.retire
        m.d.comb += [
            t.valid.eq(retired | trapped),
            t.trap.eq(trapped),
            t.pc.eq(Cat(Const(0, 2), pc)),
            t.insn.eq(ir),
            t.rd_addr.eq(Mux(w_en & ~w_addr[5], w_addr[:5], 0)),
            t.rd_wdata.eq(w_data),
            t.mem_addr.eq(result),
            t.mem_wmask.eq(Mux(retired, bus.we, 0)),
            t.mem_wdata.eq(bus.wdata),
            t.mem_rmask.eq(Mux(load_done, byte_mask, 0)),
        ]

        return m
