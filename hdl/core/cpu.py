"""The control core: a small multi-cycle RV32I(M) machine-mode CPU."""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.core.csr import (LOGIC_CSRS, RAM_CSRS, RAM_WRITE_MASKS, Counters, Interrupts,
                                MachineStatus, csr_slot, logic_csr_selects, ram_slot,
                                read_logic_csr)
from rvnpu.hdl.core.muldiv import MulDiv
from rvnpu.hdl.core.trap import TrapEntry
from rvnpu.spec.memory_map import REGFILE_STYLES, SHIFTERS
from rvnpu.spec.rv32 import (CSR_ACCESS_BITS, CSR_READ_ONLY, INSTRUCTIONS, Cause, Csr, Format,
                             Funct7, Interrupt, Opcode)


__all__ = ["BusSignature", "RetireLayout", "RiscvCore"]


#: The core's single memory port, from the core's side. ``addr`` is a word address; ``re`` or a
#: nonzero ``we`` byte mask is a request, held until a cycle with ``ready``, in which ``rdata``
#: is valid for a read. A fetch answered in the cycle it is asked for, when that is the cycle
#: the last instruction's register write lands, is not taken: ``re`` stays and the word is
#: read again (memories that answer a read a cycle after the request never see this).
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
#: An interrupt is traced as a trap (with ``interrupt`` set) of the instruction it came before,
#: which did not run.
RetireLayout = data.StructLayout({
    "valid":     1,
    "pc":        32,
    "insn":      32,
    "trap":      1,
    "interrupt": 1,
    "rd_addr":   5,
    "rd_wdata":  32,
    "mem_addr":  32,
    "mem_wmask": 4,
    "mem_wdata": 32,
    "mem_rmask": 4,
})


# The JAL/JALR, MRET/WFI and funct3 tests below read single bits where the table's values allow
# it; tests/test_rv32_spec.py checks the decoder against the table.
_MRET_BIT = 1           # of funct12: set in MRET, clear in WFI (ECALL and EBREAK trap first)
assert INSTRUCTIONS["mret"].funct12 >> _MRET_BIT & 1
assert not INSTRUCTIONS["wfi"].funct12 >> _MRET_BIT & 1


def _funct3(name):
    return INSTRUCTIONS[name].funct3


def _gate(value, enable):
    return value & enable.replicate(len(value))


def _is(value, *constants):
    """``value`` equals one of ``constants``."""
    result = Const(0)
    for constant in constants:
        result = result | (value == constant)
    return result


def _all(*conditions):
    result = Const(1)
    for condition in conditions:
        result = result & condition
    return result


def _decode(m, word, with_m):
    """Fields and decoded properties of the instruction ``word``, as a namespace.

    The core decodes ``ir`` with it, and the fetched word too, so that the legality checks,
    a deep cone, are registered with the instruction rather than in the execute cycle.
    ``legal`` is read off :data:`~rvnpu.spec.rv32.INSTRUCTIONS`: the opcode names a row whose
    function fields match, and a CSR instruction names a CSR the core has and writes it only if
    it may.
    """
    opcode, rd, funct3 = word[0:7], word[7:12], word[12:15]
    rs1, funct7, csr = word[15:20], word[25:32], word[20:32]
    size = funct3[0:2]
    is_op = opcode == Opcode.OP
    is_op_imm = opcode == Opcode.OP_IMM
    is_shift = (is_op | is_op_imm) & (funct3[0:2] == 0b01)
    is_muldiv = is_op & (funct7 == Funct7.MULDIV) & with_m
    is_csr = (opcode == Opcode.SYSTEM) & (funct3[0:2] != 0)
    plain = (rd == 0) & (rs1 == 0)

    def matches(encoding):
        return _all(*([funct3 == encoding.funct3] if encoding.funct3 is not None else []),
                    *([funct7 == encoding.funct7] if encoding.funct7 is not None else []),
                    *([plain & (csr == encoding.funct12)]
                      if encoding.funct12 is not None else []))

    is_ecall = (opcode == Opcode.SYSTEM) & matches(INSTRUCTIONS["ecall"])
    is_ebreak = (opcode == Opcode.SYSTEM) & matches(INSTRUCTIONS["ebreak"])

    csr_in_ram = _is(csr, *RAM_CSRS)
    csr_known = csr_in_ram | _is(csr, *LOGIC_CSRS)
    csr_mcycle = _is(csr, Csr.MCYCLE, Csr.CYCLE)
    csr_writes = (funct3[0:2] == 0b01) | (rs1 != 0)
    csr_allowed = csr_known & ~(csr_writes & (csr[CSR_ACCESS_BITS] == CSR_READ_ONLY))

    legal = _legality(m, opcode, matches, csr_allowed, with_m)
    return SimpleNamespace(
        opcode=opcode, rd=rd, funct3=funct3, rs1=rs1, funct7=funct7, csr=csr, size=size,
        is_op=is_op, is_op_imm=is_op_imm, is_shift=is_shift, is_muldiv=is_muldiv,
        is_csr=is_csr, is_ecall=is_ecall, is_ebreak=is_ebreak, csr_in_ram=csr_in_ram,
        csr_mcycle=csr_mcycle, csr_writes=csr_writes, legal=legal)


def _immediate(m, word):
    """The immediate of the instruction ``word`` (zero for formats without one)."""
    opcode = word[0:7]
    sign = word[31].replicate(20)
    imm = Signal(32)
    with m.Switch(opcode[2:7]):
        with m.Case(Opcode.LOAD >> 2, Opcode.OP_IMM >> 2, Opcode.JALR >> 2):
            m.d.comb += imm.eq(Cat(word[20:32], sign))
        with m.Case(Opcode.STORE >> 2):
            m.d.comb += imm.eq(Cat(word[7:12], word[25:32], sign))
        with m.Case(Opcode.BRANCH >> 2):
            m.d.comb += imm.eq(Cat(Const(0, 1), word[8:12], word[25:31], word[7], sign))
        with m.Case(Opcode.LUI >> 2, Opcode.AUIPC >> 2):
            m.d.comb += imm.eq(Cat(Const(0, 12), word[12:32]))
        with m.Case(Opcode.JAL >> 2):
            m.d.comb += imm.eq(Cat(Const(0, 1), word[21:31], word[20], word[12:20], sign[:12]))
    return imm


#: The adder's operand selects that the execute cycle sets (see :func:`_execute_operands`).
_OPERAND_SELECTS = ("a_pc", "a_zimm", "a_zero", "b_rs2", "b_imm", "b_csr", "invert")


def _execute_operands(d):
    """The adder's operand selects for the execute cycle of the instruction decoded as ``d``.

    They are computed as the instruction is fetched and registered, so that in the execute
    cycle the adder's operands follow registers, not the decode and the trap tests (the
    core's longest path otherwise). Whether the instruction traps does not matter: a trap
    reads the adder only for the faulting address, with the instruction's own operands.
    """
    op = d.opcode
    system = op == Opcode.SYSTEM
    mret = system & (d.funct3 == INSTRUCTIONS["mret"].funct3) & d.csr[_MRET_BIT]
    csr = system & (d.funct3[0:2] != 0)
    read_old = d.funct3[0:2] != 0b01                    # not CSRRW(I): old value used
    alu = (d.is_op | d.is_op_imm) & ~d.is_shift & ~d.is_muldiv
    subtract = alu & _is(d.funct3, _funct3("slt"), _funct3("sltu"))
    subtract |= alu & d.is_op & (d.funct3 == _funct3("add")) & d.funct7[5]
    return {
        "a_pc": _is(op, Opcode.AUIPC, Opcode.JAL, Opcode.BRANCH),     # a branch's target
        "a_zimm": csr & d.funct3[2],
        "a_zero": (op == Opcode.LUI) | mret,
        "b_rs2": (alu & d.is_op) | mret
                 | (csr & d.csr_in_ram & read_old),
        "b_imm": _is(op, Opcode.LUI, Opcode.AUIPC, Opcode.JAL, Opcode.JALR, Opcode.BRANCH,
                     Opcode.LOAD, Opcode.STORE) | (alu & d.is_op_imm),
        "b_csr": csr & read_old,
        "invert": subtract,
    }


def _legality(m, opcode, matches, csr_allowed, with_m):
    """Whether the instruction is in the table (without the M rows if not ``with_m``), and,
    for a CSR instruction, ``csr_allowed``: one ``Case`` per major opcode."""
    legal = Signal()
    with m.Switch(opcode):
        for major in Opcode:
            found = csr_found = Const(0)
            for encoding in INSTRUCTIONS.values():
                if encoding.opcode != major or encoding.extension == "M" and not with_m:
                    continue
                if encoding.format in (Format.CSR, Format.CSRI):
                    csr_found = csr_found | matches(encoding)
                else:
                    found = found | matches(encoding)
            with m.Case(major):
                m.d.comb += legal.eq(found | (csr_found & csr_allowed))
    return legal


class RiscvCore(wiring.Component):
    """A multi-cycle RV32I core, with the M extension as an option, in machine mode only.

    Built to be small. One adder computes every address, sum and jump target, beside a
    comparator for branches (so that a branch's target and its decision come in one cycle); a
    logic unit (XOR, OR, AND, AND-NOT) also does the CSR read-modify-writes; shifts move one
    bit per cycle through a register (or all bits in one cycle, ``shifter="barrel"``); multiply
    and divide are iterative (:class:`~rvnpu.hdl.core.muldiv.MulDiv`, whose low word is the
    shift register). The registers sit in a
    block RAM with two synchronous read ports, read in the cycle the instruction arrives and
    held until it retires, and so do the CSRs that only software changes (``mtvec``,
    ``mscratch``, ``mepc``, ``mcause``, ``mtval``) and the counters' high halves. Only
    ``mstatus`` (MIE, MPIE) and the counters' low halves are flip-flops. Results reach the
    register file through one AND-OR multiplexer with one-hot selects and a register: a write
    lands the cycle after it is decided. For the clock, the execute cycle's operand selects,
    which CSR an instruction reads and its legality are decoded from the fetched word and
    registered with it, ``minstret`` counts an instruction a cycle after it retires, and the
    multiplier/divider decides a result's sign as it starts (``docs/core.md``, "Timing";
    ``python -m rvnpu.bench.core_fmax`` measures it).

    Each instruction is fetched (two cycles with a memory that answers the cycle after a
    request) and then executed; with ``memory_stage``, a load or store makes its address in
    one cycle and the access, from a register, in the next. Cycles per instruction with such
    a memory, a ready engine that answers a cycle after a command (measured by
    ``tests/test_cpu.py``):

    ==========================================================  ============
    Instruction class                                           Cycles
    ==========================================================  ============
    ALU (register or immediate, not shifts), LUI, AUIPC         3
    JAL, JALR, branch (taken or not), FENCE, FENCE.I, MRET      3
    WFI with an interrupt pending in ``mie & mip``              3
    branch not taken, its offset's bit 1 set                    4
    load, store                                                 4
    load, store, ``memory_stage=True``                          5
    shift by ``n`` (register or immediate)                      4 + n
    shift by ``n > 0``, ``shifter="barrel"``                    5
    CSR access                                                  4
    custom-0 with ``rd = x0`` / with an answer                  3 / 4
    MUL, MULH[[S]U], DIV[U], REM[U]                             37
    trap (illegal, misaligned, ECALL, EBREAK), interrupt        5
    misaligned taken branch                                     6
    ==========================================================  ============

    Every 2**16 cycles and every 2**8 instructions, the next instruction boundary takes three
    more cycles (two after an instruction that writes no register; three more when the carry
    reaches a counter's high half) to carry the counter bits kept in flip-flops into the RAM.
    A slower memory adds its wait cycles to the fetch and to loads and stores; a busy engine
    holds a custom-0 instruction until it accepts the command and, if ``rd`` is not x0,
    answers.

    Custom-0 instructions (``funct3 = 0``) send ``(funct7, rs1, rs2)`` on ``cmd``; if ``rd`` is
    not x0 the core then waits for one word on ``rsp`` and writes it to ``rd``.

    Traps jump to ``mtvec`` (direct mode). The CSR and trap details are those of the golden
    model, :mod:`rvnpu.sim.golden.iss`. Machine external and timer interrupts (``mip`` reads
    the lines, ``mie`` enables them) are decided as an instruction is fetched: if
    ``mstatus.MIE`` is set and ``mie & mip`` is not zero, that instruction does not run and the
    interrupt is taken instead (external first), ``mepc`` pointing at it. WFI waits, not
    fetching, until ``mie & mip`` is not zero, whatever ``mstatus.MIE``; a wait across a wrap
    of ``mcycle``'s flip-flop bits leaves to pay the carry and fetches the WFI again.

    Parameters
    ----------
    with_m : bool
        Implement MUL/DIV/REM; without it their encodings are illegal instructions.
    reset_vector : int
        Byte address of the first instruction (word-aligned).
    regfile_style : str
        ``"block"``: the registers are left to synthesis (block RAM); ``"lut"``: they are
        marked for distributed RAM, for parts short of block RAM.
    shifter : str
        ``"serial"``: a shift by ``n`` takes ``n`` cycles in the shift register, the smallest
        shifter; ``"barrel"``: one cycle whatever ``n``, for about 190 more LUTs, where the
        part has them. Firmware shifts a lot (encoding a command's fields, addressing), and
        the serial shifter made shifts the largest share of the core's cycles issuing a GEMM.
    memory_stage : bool
        The bus address is a register: the next instruction's address, or a load's or
        store's, made in the execute cycle, for its access in a cycle of its own (5 cycles
        instead of 4). No sum runs on into the SoC's address decoder and the RAM's enables,
        the path that sets the clock of a core beside a large design. It costs no logic
        cells: ``pc`` copies the register as an instruction is fetched, instead of choosing
        its next value itself.

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
    irq_external, irq_timer : In(1)
        The machine external and timer interrupt lines (``mip.MEIP``, ``mip.MTIP``), level
        sensitive, in the core's clock domain.
    sleeping : Out(1)
        The core waits in WFI this cycle.
    """

    def __init__(self, *, with_m=True, reset_vector=0, regfile_style="block",
                 shifter="serial", memory_stage=False):
        if not isinstance(with_m, bool):
            raise TypeError(f"with_m must be a bool, not {with_m!r}")
        if (not isinstance(reset_vector, int) or not 0 <= reset_vector < 2**32
                or reset_vector % 4):
            raise ValueError(f"reset_vector must be a word-aligned 32-bit address, "
                             f"not {reset_vector!r}")
        if regfile_style not in REGFILE_STYLES:
            raise ValueError(f"regfile_style must be one of {', '.join(REGFILE_STYLES)}, "
                             f"not {regfile_style!r}")
        if shifter not in SHIFTERS:
            raise ValueError(f"shifter must be one of {', '.join(SHIFTERS)}, not {shifter!r}")
        if not isinstance(memory_stage, bool):
            raise TypeError(f"memory_stage must be a bool, not {memory_stage!r}")
        self._with_m = with_m
        self._shifter = shifter
        self._memory_stage = memory_stage
        self._reset_vector = reset_vector
        self._regfile_style = regfile_style
        super().__init__({
            "bus":    Out(BusSignature),
            "cmd":    Out(stream.Signature(CommandLayout)),
            "rsp":    In(stream.Signature(32)),
            "retire": Out(RetireLayout),
            "irq_external": In(1),
            "irq_timer": In(1),
            "sleeping": Out(1),
        })

    @property
    def with_m(self):
        return self._with_m

    @property
    def reset_vector(self):
        return self._reset_vector

    # One method holds the decode, the datapath and the state machine because they are one
    # circuit: a single adder, logic unit and register-file port serve every instruction, the
    # state machine setting their selects cycle by cycle, so a state reads as the datapath it
    # uses. Split into components, every select would become a port. What is not the datapath
    # is in helpers: the CSRs and counters (hdl/core/csr.py), trap entry (hdl/core/trap.py) and
    # the trace port (_connect_trace).
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
        status = MachineStatus()
        interrupts = Interrupts(external=self.irq_external, timer=self.irq_timer)
        counters = Counters()
        trap_entry = TrapEntry()

        d = _decode(m, ir, self._with_m)
        opcode, rd, funct3, rs1, funct7, csr, size = (
            d.opcode, d.rd, d.funct3, d.rs1, d.funct7, d.csr, d.size)
        is_op, is_shift, is_muldiv = d.is_op, d.is_shift, d.is_muldiv
        # Whether it names a RAM CSR or mcycle and writes its CSR, also decoded as it was
        # fetched: the operand selects of the CSR state follow them.
        csr_in_ram, csr_mcycle, csr_writes = (Signal(name="csr_in_ram"),
                                              Signal(name="csr_mcycle"),
                                              Signal(name="csr_writes"))
        # Legality, ECALL and EBREAK of the instruction in `ir`, decoded as it was fetched, and
        # whether an interrupt (external or not) is taken instead of it: then it is "illegal",
        # so that one test in the execute cycle picks the trap.
        legal, is_ecall, is_ebreak = Signal(), Signal(), Signal()
        interrupted, external_first = Signal(), Signal()
        f = _decode(m, self.bus.rdata, self._with_m)
        fetched_legal, fetched_ecall, fetched_ebreak = f.legal, f.is_ecall, f.is_ebreak

        imm = _immediate(m, ir)

        # -- Datapath ----------------------------------------------------------------------------
        # Operand selects (one-hot or none, i.e. zero), set per state below.
        a_pc, a_zimm, a_zero = Signal(), Signal(), Signal()
        a_const = Signal(32)    # ORed into the first operand: carries into RAM counters
        b_rs2, b_imm, b_csr = Signal(), Signal(), Signal()
        invert = Signal()       # a - b
        carry_in = Signal()     # a + b + 1
        logic_op = Signal(2)    # XOR, OR, AND, AND-NOT (~a & b)

        # The CSR bits not in RAM enter as the second operand, ORed with the RAM CSRs on port 2.
        # Which of them: decoded as the instruction is fetched, registered with it.
        csr_selects_next = logic_csr_selects(f.csr)
        csr_selects = {name: Signal(name=f"csr_read_{name}") for name in csr_selects_next}
        csr_ff = read_logic_csr(selects=csr_selects, status=status, interrupts=interrupts,
                                counters=counters, with_m=self._with_m)

        # The execute cycle's selects, registered as the instruction is fetched.
        operands_next = _execute_operands(f)
        execute_operands = {name: Signal(name=f"execute_{name}") for name in _OPERAND_SELECTS}
        selects = {"a_pc": a_pc, "a_zimm": a_zimm, "a_zero": a_zero, "b_rs2": b_rs2,
                   "b_imm": b_imm, "b_csr": b_csr, "invert": invert}

        a_rs1 = ~(a_pc | a_zimm | a_zero)
        a_op = (_gate(rs1_val, a_rs1) | _gate(Cat(Const(0, 2), pc), a_pc)
                | _gate(rs1.as_unsigned(), a_zimm) | a_const)
        b_op = _gate(rs2_val, b_rs2) | _gate(imm, b_imm) | _gate(csr_ff, b_csr)

        compare = Signal()      # total[32] is "less than" (SLT, SLTU) rather than the carry
        cmp_signed = compare & ~funct3[0]
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
        # A branch decides on a comparator and an equality test of its own, straight from the
        # register file, and a jump or an access its alignment from the low bits of its
        # operands: through the adder, the state's operand selects and the operand
        # multiplexer ran on into the next state and pc's enable, the core's longest path.
        signed = ~funct3[1]                                 # BLT, BGE (not BLTU, BGEU)
        branch_less = (Cat(rs1_val, signed & rs1_val[31])
                       - Cat(rs2_val, signed & rs2_val[31]))[32]
        equal = rs1_val == rs2_val
        taken = ((funct3[2] & branch_less) | (~funct3[2] & equal)) ^ funct3[0]
        # Bit 1 of a jump's target (pc is word-aligned; JALR's rs1 + imm, bit 0 cleared), and
        # the two low bits of a load's or store's address.
        jalr_bit1 = rs1_val[1] ^ imm[1] ^ (rs1_val[0] & imm[0])
        jump_bit1 = Mux(opcode == Opcode.JALR, jalr_bit1, imm[1])
        access_low = Signal(2)
        m.d.comb += access_low.eq(rs1_val[0:2] + imm[0:2])

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

        if self._memory_stage:
            # The bus address is a register: the next instruction's address as an instruction
            # retires or jumps, a load's or store's (made by the adder in its execute cycle)
            # until it retires. So no sum, and no multiplexer, runs on into the SoC's address
            # decoder and the RAM's enables. pc copies it as an instruction is fetched.
            bus_word = Signal(30, init=self._reset_vector >> 2)
            access_start = Signal()     # Execute of a load or store
            mem_low = Signal(2)         # the access's byte offset
            mem_addr = Cat(mem_low, bus_word)
            m.d.comb += bus.addr.eq(bus_word)
        else:
            # The address is always the adder's output (pc + 0 for fetches).
            mem_addr = result
            m.d.comb += bus.addr.eq(result[2:])
        byte_mask = Signal(4)
        with m.Switch(size):
            with m.Case(0):
                m.d.comb += byte_mask.eq(Const(1, 4) << mem_addr[0:2])
            with m.Case(1):
                m.d.comb += byte_mask.eq(Cat(~mem_addr[1], ~mem_addr[1], mem_addr[1],
                                             mem_addr[1]))
            with m.Default():
                m.d.comb += byte_mask.eq(0b1111)
        misaligned = ((size == 1) & access_low[0]) | ((size == 2) & (access_low != 0))
        # Stores repeat a byte or halfword across the word; the byte mask picks the lanes.
        m.d.comb += bus.wdata.eq(Cat(
            rs2_val[0:8],
            rs2_val.word_select(size != 0, 8),
            rs2_val.word_select(Cat(Const(0, 1), size[1]), 8),
            rs2_val.word_select(Cat(size[0] | size[1], size[1]), 8)))
        load_byte = bus.rdata.word_select(mem_addr[0:2], 8)
        load_half = bus.rdata.word_select(mem_addr[1], 16)
        load_data = Signal(32)
        with m.Switch(funct3):
            with m.Case(_funct3("lb")):
                m.d.comb += load_data.eq(load_byte.as_signed())
            with m.Case(_funct3("lh")):
                m.d.comb += load_data.eq(load_half.as_signed())
            with m.Case(_funct3("lbu")):
                m.d.comb += load_data.eq(load_byte)
            with m.Case(_funct3("lhu")):
                m.d.comb += load_data.eq(load_half)
            with m.Default():
                m.d.comb += load_data.eq(bus.rdata)

        # The shift register's moves. It shifts for the shifts (and holds a CSR's new value),
        # and it is the multiplier-divider's low word, which says how it moves while it runs.
        shreg_load = Signal()
        shreg_value = Signal(32)
        shreg_right, shreg_left, shreg_fill = Signal(), Signal(), Signal()
        with m.If(shreg_load):
            m.d.sync += shreg.eq(shreg_value)
        with m.Elif(shreg_right):
            m.d.sync += shreg.eq(Cat(shreg[1:], shreg_fill))
        with m.Elif(shreg_left):
            m.d.sync += shreg.eq(Cat(shreg_fill, shreg[:31]))
        if self._with_m:
            m.submodules.muldiv = muldiv = MulDiv()
            m.d.comb += [muldiv.op.eq(funct3), muldiv.a.eq(rs1_val), muldiv.b.eq(rs2_val),
                         muldiv.lo.eq(shreg),
                         shreg_load.eq(muldiv.lo_load), shreg_right.eq(muldiv.lo_right),
                         shreg_left.eq(muldiv.lo_left), shreg_fill.eq(muldiv.lo_fill),
                         shreg_value.eq(Mux(muldiv.lo_load, muldiv.lo_value, logic))]
        else:
            m.d.comb += shreg_value.eq(logic)

        # Register-file write data: one-hot selects, AND-OR.
        w_sum, w_sum_bit0, w_logic, w_less, w_link = Signal(), Signal(), Signal(), Signal(), \
            Signal()
        w_load, w_shreg, w_rsp, w_cause = Signal(), Signal(), Signal(), Signal()
        w_mask = Signal(16)     # low bits not written to a RAM CSR (mtvec, mepc, counters)
        w_en = Signal()
        w_addr = Signal(6)
        w_data = Signal(32)
        m.d.comb += w_data.eq(
            _gate(Cat(result[0] & w_sum_bit0, result[1:]), w_sum) | _gate(logic, w_logic)
            | _gate(Cat(Const(0, 2), pc + 1), w_link) | _gate(load_data, w_load)
            | _gate(shreg, w_shreg) | _gate(self.rsp.payload, w_rsp)
            | _gate(trap_entry.mcause(), w_cause)
            | w_less & less)
        # The write lands a cycle later, from registers, so that the adder and this
        # multiplexer end in flip-flops rather than run on into the RAM's write port. No read
        # is made in the cycle a write lands (the read enables below are gated with it): the
        # next instruction's operands are read when its fetch is answered, at least a cycle
        # after the request (an answer at once is asked for again), a carry waits a cycle, and
        # trap entry reads in a cycle that follows no write. So the RAM's read and write never
        # collide, which synthesis proves from the enables rather than add a bypass.
        wb_en = Signal()
        wb_addr = Signal(6)
        wb_data = Signal(32)
        m.d.sync += [wb_en.eq(w_en), wb_addr.eq(w_addr),
                     wb_data.eq(Cat(w_data[0:16] & ~w_mask, w_data[16:]))]
        m.d.comb += [wp.en.eq(wb_en), wp.addr.eq(wb_addr), wp.data.eq(wb_data)]

        # Operands are read as the instruction arrives, straight from the bus.
        fetched = bus.rdata
        m.d.comb += rp1.addr.eq(fetched[15:20])
        with m.If(fetched[0:7] == Opcode.SYSTEM):
            with m.If(fetched[12:15] == INSTRUCTIONS["mret"].funct3):
                m.d.comb += rp2.addr.eq(ram_slot(Csr.MEPC))     # for MRET
            with m.Else():
                m.d.comb += rp2.addr.eq(csr_slot(fetched[20:32]))
        with m.Else():
            m.d.comb += rp2.addr.eq(fetched[20:25])
        read_1, read_2 = Signal(), Signal()         # the read enables, before the gate
        m.d.comb += [rp1.en.eq(read_1 & ~wb_en), rp2.en.eq(read_2 & ~wb_en)]

        # -- Counters (before the state machine, whose carry payments override them) ------------
        retired = counters.retired      # an instruction retires in this cycle
        trapped = trap_entry.trapped    # an instruction finishes trapping in this cycle
        counters.elaborate(m, csr=csr, new_value=shreg)
        owed = counters.owed

        # -- Sequencing --------------------------------------------------------------------------
        pc_next = Signal()      # pc <= pc + 4
        pc_jump = Signal()      # pc <= adder
        branch_jump = Signal()  # with pc_next: a branch taken, pc <= adder
        branch_taken = Signal()     # a branch with a misaligned offset, in "Branch"
        # A branch's decision picks pc's next value, never whether pc changes: the comparison
        # would otherwise run on into the enables of all its flip-flops.
        if self._memory_stage:
            with m.If(pc_jump | pc_next | access_start):
                m.d.sync += bus_word.eq(Mux(pc_jump | branch_jump | access_start, result[2:],
                                            pc + 1))
            with m.If(access_start):
                m.d.sync += mem_low.eq(result[0:2])
        else:
            with m.If(pc_jump | pc_next):
                m.d.sync += pc.eq(Mux(pc_jump | branch_jump, result[2:], pc + 1))

        m.d.comb += [self.cmd.payload.funct.eq(funct7), self.cmd.payload.op1.eq(rs1_val),
                     self.cmd.payload.op2.eq(rs2_val)]

        def done(retiring=False):
            # Between instructions, first pay the carries owed to the RAM counter words.
            with m.If(counters.carry_due(retiring=retiring)):
                m.next = "Carry-Read"
            with m.Else():
                m.next = "Fetch"

        def retire(step=True):
            m.d.comb += [retired.eq(1), pc_next.eq(step)]
            done(retiring=True)

        def write_rd(select):
            m.d.comb += [w_en.eq(rd != 0), w_addr.eq(rd), select.eq(1)]

        def trap(code, tval=None, interrupt=False):
            m.d.comb += rp2.addr.eq(TrapEntry.MTVEC)        # read_mtvec enables it
            trap_entry.start(m, code, w_en=w_en, w_addr=w_addr, read_mtvec=read_2, tval=tval,
                             interrupt=interrupt)

        with m.FSM(name="state"):
            with m.State("Fetch"):
                m.d.comb += bus.re.eq(1)
                if not self._memory_stage:
                    m.d.comb += a_pc.eq(1)      # the bus's address is the adder's pc + 0
                # An answer in the cycle of the request, while the last instruction's write
                # lands, would read the registers before it: the core asks again.
                with m.If(bus.ready & ~wb_en):
                    take = status.mie & interrupts.any_pending()
                    if self._memory_stage:
                        m.d.sync += pc.eq(bus_word)
                    m.d.sync += [ir.eq(bus.rdata),
                                 csr_in_ram.eq(f.csr_in_ram), csr_mcycle.eq(f.csr_mcycle),
                                 csr_writes.eq(f.csr_writes),
                                 legal.eq(fetched_legal & ~take),
                                 is_ecall.eq(fetched_ecall), is_ebreak.eq(fetched_ebreak),
                                 interrupted.eq(take),
                                 external_first.eq(
                                     interrupts.pending(Interrupt.MACHINE_EXTERNAL))]
                    m.d.sync += [execute_operands[name].eq(operands_next[name])
                                 for name in _OPERAND_SELECTS]
                    m.d.sync += [csr_selects[name].eq(csr_selects_next[name])
                                 for name in csr_selects]
                    m.d.comb += [read_1.eq(1), read_2.eq(1)]
                    m.next = "Execute"

            with m.State("Execute"):
                m.d.comb += compare.eq(1)
                if self._memory_stage:
                    # Whether or not the access traps: trap entry sets the bus address anew.
                    m.d.comb += access_start.eq(_is(opcode, Opcode.LOAD, Opcode.STORE))
                m.d.comb += [selects[name].eq(execute_operands[name])
                             for name in _OPERAND_SELECTS]
                with m.If(~legal):
                    trap(Mux(interrupted, Mux(external_first, Interrupt.MACHINE_EXTERNAL,
                                              Interrupt.MACHINE_TIMER),
                             Cause.ILLEGAL_INSTRUCTION), interrupt=interrupted)
                with m.Elif(is_ecall):
                    trap(Cause.ECALL_M)
                with m.Elif(is_ebreak):
                    trap(Cause.BREAKPOINT)
                with m.Else():
                    with m.Switch(opcode):
                        with m.Case(Opcode.LUI):
                            m.d.comb += w_sum_bit0.eq(1)
                            write_rd(w_sum)
                            retire()

                        with m.Case(Opcode.AUIPC):
                            m.d.comb += w_sum_bit0.eq(1)
                            write_rd(w_sum)
                            retire()

                        with m.Case(Opcode.JAL, Opcode.JALR):
                            with m.If(jump_bit1):
                                trap(Cause.MISALIGNED_FETCH, w_sum)      # bit 0 cleared
                            with m.Else():
                                write_rd(w_link)
                                m.d.comb += pc_jump.eq(1)
                                retire(step=False)

                        with m.Case(Opcode.BRANCH):
                            # The adder makes the target while the comparator decides:
                            # `taken` picks pc's next value and nothing else, so that the
                            # next state does not wait for the comparison.
                            with m.If(imm[1]):
                                # A target off the word (a taken branch traps) is decided in
                                # a cycle of its own.
                                m.d.sync += branch_taken.eq(taken)
                                m.next = "Branch"
                            with m.Else():
                                m.d.comb += branch_jump.eq(taken)
                                retire()

                        with m.Case(Opcode.LOAD):
                            m.d.comb += w_sum_bit0.eq(1)
                            with m.If(misaligned):
                                trap(Cause.MISALIGNED_LOAD, w_sum)
                            with m.Else():
                                if self._memory_stage:
                                    m.next = "Memory"
                                else:
                                    self._load(m, w_load, write_rd, retire)

                        with m.Case(Opcode.STORE):
                            m.d.comb += w_sum_bit0.eq(1)
                            with m.If(misaligned):
                                trap(Cause.MISALIGNED_STORE, w_sum)
                            with m.Else():
                                if self._memory_stage:
                                    m.next = "Memory"
                                else:
                                    self._store(m, byte_mask, retire)

                        with m.Case(Opcode.OP_IMM, Opcode.OP):
                            with m.If(is_muldiv):
                                if self._with_m:
                                    m.d.comb += muldiv.start.eq(1)
                                    m.next = "Muldiv"
                            with m.Elif(is_shift):
                                # shreg <= rs1 | 0
                                m.d.comb += [logic_op.eq(1), shreg_load.eq(1)]
                                m.d.sync += shamt.eq(Mux(is_op, rs2_val[:5], ir[20:25]))
                                m.next = "Shift"
                            with m.Else():
                                m.d.comb += logic_op.eq(Cat(funct3[1] & ~funct3[0],
                                                            funct3[0]))
                                with m.Switch(funct3):
                                    with m.Case(_funct3("add")):        # SUB: funct7[5]
                                        m.d.comb += w_sum_bit0.eq(1)
                                        write_rd(w_sum)
                                    with m.Case(_funct3("slt"), _funct3("sltu")):
                                        write_rd(w_less)
                                    with m.Default():
                                        write_rd(w_logic)
                                retire()

                        with m.Case(Opcode.MISC_MEM):
                            retire()

                        with m.Case(Opcode.SYSTEM):
                            with m.If(funct3 == INSTRUCTIONS["mret"].funct3):
                                with m.If(csr[_MRET_BIT]):              # MRET: pc <= mepc
                                    m.d.comb += pc_jump.eq(1)
                                    status.leave_trap(m)
                                    retire(step=False)
                                with m.Elif(interrupts.any_pending()):  # WFI: wake up
                                    retire()
                                with m.Elif(owed[0]):
                                    # Pay mcycle's carry before it wraps again; then WFI
                                    # is fetched anew.
                                    m.next = "Carry-Read"
                                with m.Else():
                                    m.d.comb += self.sleeping.eq(1)
                            with m.Elif(csr_mcycle & owed[0]):
                                # Pay the carry first, then run the instruction again: its
                                # old value must not miss 2**16 cycles.
                                m.next = "Carry-Read"
                            with m.Else():
                                # new = src (RW: OR with zero), old | src, or old & ~src.
                                # Written to a RAM CSR now, kept in shreg for the rest.
                                m.d.comb += [
                                    logic_op.eq(Cat(Const(1, 1), funct3[0] & funct3[1])),
                                    w_en.eq(csr_writes & csr_in_ram),
                                    w_addr.eq(csr_slot(csr)),
                                    w_logic.eq(1),
                                ]
                                with m.Switch(csr):
                                    for number, mask in RAM_WRITE_MASKS.items():
                                        with m.Case(number):
                                            m.d.comb += w_mask.eq(mask)
                                m.d.comb += shreg_load.eq(1)
                                m.next = "Csr"

                        with m.Case(Opcode.CUSTOM0):
                            m.d.comb += self.cmd.valid.eq(1)
                            with m.If(self.cmd.ready):
                                with m.If(rd != 0):
                                    m.next = "Answer"
                                with m.Else():
                                    retire()

            if self._memory_stage:
                with m.State("Memory"):
                    with m.If(opcode == Opcode.LOAD):
                        self._load(m, w_load, write_rd, retire)
                    with m.Else():
                        self._store(m, byte_mask, retire)

            with m.State("Branch"):
                # A branch whose offset leaves the word: taken, it traps with its target.
                m.d.comb += [a_pc.eq(1), b_imm.eq(1)]
                with m.If(branch_taken):
                    m.d.comb += w_sum_bit0.eq(1)
                    trap(Cause.MISALIGNED_FETCH, w_sum)
                with m.Else():
                    retire()

            with m.State("Shift"):
                with m.If(shamt == 0):
                    write_rd(w_shreg)
                    retire()
                with m.Else():
                    fill = funct7[5] & shreg[31]
                    if self._shifter == "barrel":
                        # One right shifter for all three: a left shift is a right shift of
                        # the word reversed, reversed back (filled with zeros).
                        left = ~funct3[2]
                        fill = fill & ~left
                        word = Mux(left, shreg[::-1], shreg)
                        shifted = Signal(32)
                        m.d.comb += shifted.eq(Cat(word, fill.replicate(32)) >> shamt)
                        m.d.comb += [shreg_load.eq(1),
                                     shreg_value.eq(Mux(left, shifted[::-1], shifted))]
                        m.d.sync += shamt.eq(0)
                    else:
                        m.d.comb += [shreg_right.eq(funct3[2]), shreg_left.eq(~funct3[2]),
                                     shreg_fill.eq(fill & funct3[2])]
                        m.d.sync += shamt.eq(shamt - 1)

            with m.State("Csr"):
                # rd <= old (plus a carry owed to mcycle's RAM word); flip-flop CSRs <= new.
                m.d.comb += [a_zero.eq(1), a_const.eq(counters.read_carry(csr_mcycle)),
                             b_rs2.eq(csr_in_ram), b_csr.eq(1), w_sum_bit0.eq(1)]
                write_rd(w_sum)
                with m.If(csr_writes):
                    counters.csr_written(m, csr=csr)
                    with m.If(csr == Csr.MSTATUS):
                        status.write(m, shreg)
                    with m.If(csr == Csr.MIE):
                        interrupts.write_enable(m, shreg)
                retire()

            if self._with_m:
                with m.State("Muldiv"):
                    with m.If(muldiv.done):
                        write_rd(w_shreg)
                        retire()

            with m.State("Answer"):
                m.d.comb += self.rsp.ready.eq(1)
                with m.If(self.rsp.valid):
                    write_rd(w_rsp)
                    retire()

            with m.State("Trap-Epc"):
                m.d.comb += [a_pc.eq(1), w_sum.eq(1), w_sum_bit0.eq(1)]
                trap_entry.save_pc(m, w_en=w_en, w_addr=w_addr)

            with m.State("Trap-Enter"):
                # mcause <= cause; pc <= mtvec (0 + port 2)
                m.d.comb += [a_zero.eq(1), b_rs2.eq(1), pc_jump.eq(1)]
                trap_entry.enter(m, status=status, w_en=w_en, w_addr=w_addr, w_cause=w_cause)
                done()

            with m.State("Carry-Read"):
                # After a write (the instruction's, or the last carry's), a cycle later.
                m.d.comb += [read_2.eq(1), rp2.addr.eq(counters.choose_carry(m))]
                with m.If(~wb_en):
                    m.next = "Carry-Write"

            with m.State("Carry-Write"):
                # word <= carry + port 2
                m.d.comb += [a_zero.eq(1), b_rs2.eq(1), w_sum.eq(1), w_sum_bit0.eq(1),
                             w_en.eq(1)]
                counters.pay_carry(m, a_const=a_const, carry_in=carry_in, w_addr=w_addr,
                                   word=rs2_val)
                done()

        self._connect_trace(m, retired=retired, trapped=trapped,
                            interrupt=trapped & trap_entry.interrupt, pc=pc, ir=ir, w_en=w_en,
                            w_addr=w_addr, w_data=w_data, mem_addr=mem_addr,
                            byte_mask=byte_mask)
        return m

    def _load(self, m, w_load, write_rd, retire):
        """A load's access: the word read, its lanes into ``rd``, as the bus answers."""
        m.d.comb += self.bus.re.eq(1)
        with m.If(self.bus.ready):
            write_rd(w_load)
            retire()

    def _store(self, m, byte_mask, retire):
        """A store's access: the byte lanes written, as the bus takes them."""
        m.d.comb += self.bus.we.eq(byte_mask)
        with m.If(self.bus.ready):
            retire()

    def _connect_trace(self, m, *, retired, trapped, interrupt, pc, ir, w_en, w_addr, w_data,
                       mem_addr, byte_mask):
        """Drive the ``retire`` port: what this cycle retires (or traps), for verification.

        ``rd_addr`` is taken off the register-file write (zero for a CSR word above x31) and
        the memory fields off the bus, masked to the cycle the instruction retires in.
        """
        t, bus = self.retire, self.bus
        m.d.comb += [
            t.valid.eq(retired | trapped),
            t.trap.eq(trapped),
            t.interrupt.eq(interrupt),
            t.pc.eq(Cat(Const(0, 2), pc)),
            t.insn.eq(ir),
            t.rd_addr.eq(_gate(w_addr[:5], w_en & ~w_addr[5])),
            t.rd_wdata.eq(w_data),
            t.mem_addr.eq(mem_addr),
            t.mem_wmask.eq(_gate(bus.we, retired)),
            t.mem_wdata.eq(bus.wdata),
            t.mem_rmask.eq(_gate(byte_mask, retired & bus.re)),
        ]
