"""Instruction-set simulator of :class:`rvnpu.hdl.core.cpu.RiscvCore`: the golden model of the core.

It executes one instruction per :meth:`Iss.step` with the core's exact architectural
semantics, including the choices the RISC-V specification leaves open, and returns the same
retire record as the core's ``retire`` trace port, so tests compare the two instruction by
instruction. The choices, shared with the RTL:

- machine mode only; traps go to ``mtvec`` (direct mode, low two bits read as zero);
- ``mtval`` is the faulting address for misaligned fetch targets, loads and stores, and 0 for
  illegal instructions, ``ecall`` and ``ebreak``;
- ``mepc`` reads with its low two bits clear; ``mcause`` holds whatever is written (WLRL);
- ``mstatus`` implements MIE and MPIE, with MPP read as 3; ``misa`` and ``mip`` ignore writes;
  ``mie`` implements MEIE and MTIE; ``mip`` reads the lines :attr:`Iss.irq_external` and
  :attr:`Iss.irq_timer` (MEIP, MTIP), which the caller drives;
- an interrupt is taken before an instruction (at the start of :meth:`Iss.step`) when
  ``mstatus.MIE`` is set and ``mie & mip`` is not zero, external before timer: ``mepc`` is
  that instruction, which does not run, ``mtval`` is 0, and the record is the instruction's,
  marked ``trap`` and ``interrupt``;
- ``wfi`` waits until ``mie & mip`` is not zero, whatever ``mstatus.MIE``: a step that finds
  it waiting returns ``None`` and the next steps try again, without taking an interrupt first
  (one that is pending when it wakes is taken before the next instruction, ``mepc`` = the
  instruction after the ``wfi``);
- unknown CSRs, and writes to read-only ones (address bits 11:10 = 3), are illegal; ``csrrs``
  and ``csrrc`` with ``rs1 = x0`` (or a zero immediate) do not write;
- a CSR write to ``mcycle(h)`` lands after the instruction's own increment; one to
  ``minstret`` or ``minstreth`` is done instead of the instruction's increment (Zicsr: the
  next instruction reads the value written, and the other half is unchanged);
- trapping instructions (including ``ecall``/``ebreak``) do not retire: no register write, no
  ``minstret`` increment;
- ``fence``/``fence.i`` (funct3 0 and 1, other fields ignored) do nothing;
- custom-0 (funct3 = 0) sends ``(funct7, rs1, rs2)`` to the engine, waiting for an answer if
  ``rd`` is not x0.

``mcycle`` cannot follow the RTL's cycle count; here it counts steps. Compare through
:func:`reads_cycle_counter` and :meth:`Retire.matches`, which leave those values out.
"""

import dataclasses

from rvnpu.spec import rv32
from rvnpu.spec.rv32 import MCAUSE_INTERRUPT, Cause, Csr, Interrupt, Mstatus, Opcode


__all__ = ["Memory", "Iss", "Retire", "reads_cycle_counter"]

_MASK = 0xffffffff

# CSRs whose reads give cycle counts, which differ between the RTL and this model.
_CYCLE_CSRS = frozenset({Csr.MCYCLE, Csr.MCYCLEH, Csr.CYCLE, Csr.CYCLEH})


def reads_cycle_counter(insn):
    """Whether ``insn`` writes a cycle count to a register (its ``rd_wdata`` is not comparable)."""
    encoding = rv32.identify(insn)
    return (encoding is not None and encoding.format in (rv32.Format.CSR, rv32.Format.CSRI)
            and insn >> 7 & 31 != 0 and insn >> 20 in _CYCLE_CSRS)


@dataclasses.dataclass(frozen=True)
class Retire:
    """One retired or trapped instruction, as on the core's ``retire`` port.

    ``rd_addr`` is 0 when no register was written; ``rd_wdata`` means something only otherwise.
    ``mem_addr`` (byte address) means something only when a mask is set; ``mem_wdata`` is the
    store data as it appears on the bus (a byte or halfword repeated across the word).
    """
    pc: int
    insn: int
    trap: bool = False
    interrupt: bool = False
    rd_addr: int = 0
    rd_wdata: int = 0
    mem_addr: int = 0
    mem_wmask: int = 0
    mem_wdata: int = 0
    mem_rmask: int = 0

    def normalized(self):
        """The record with its meaningless fields zeroed."""
        mem = self.mem_wmask or self.mem_rmask
        return dataclasses.replace(
            self, trap=bool(self.trap), interrupt=bool(self.interrupt),
            rd_wdata=self.rd_wdata if self.rd_addr else 0,
            mem_addr=self.mem_addr if mem else 0,
            mem_wdata=self.mem_wdata if self.mem_wmask else 0)

    def matches(self, other):
        """Equality of the meaningful fields, ignoring ``rd_wdata`` of cycle-counter reads."""
        a, b = self.normalized(), other.normalized()
        if reads_cycle_counter(a.insn):
            a, b = dataclasses.replace(a, rd_wdata=0), dataclasses.replace(b, rd_wdata=0)
        return a == b

    def __str__(self):
        text = f"pc={self.pc:08x} {self.insn:08x} {rv32.disasm(self.insn):32s}"
        if self.interrupt:
            text += " INTERRUPT"
        elif self.trap:
            text += " TRAP"
        if self.rd_addr:
            text += f" x{self.rd_addr}={self.rd_wdata:08x}"
        if self.mem_rmask:
            text += f" load[{self.mem_addr:08x}]/{self.mem_rmask:04b}"
        if self.mem_wmask:
            text += f" store[{self.mem_addr:08x}]/{self.mem_wmask:04b}={self.mem_wdata:08x}"
        return text


class Memory:
    """Word-addressed memory of ``words`` words; word addresses wrap modulo its size, as the
    test benches' memories do (the core's bus carries 30-bit word addresses)."""

    def __init__(self, words):
        if not isinstance(words, int) or words <= 0:
            raise ValueError(f"Memory size must be a positive number of words, not {words!r}")
        self.words = [0] * words

    def load(self, byte_addr, words):
        """Copy ``words`` into memory from ``byte_addr`` (word-aligned)."""
        if byte_addr % 4:
            raise ValueError(f"Image address 0x{byte_addr:x} is not word-aligned")
        for i, word in enumerate(words):
            self.words[(byte_addr // 4 + i) % len(self.words)] = word & _MASK

    def read(self, word_addr):
        return self.words[word_addr % len(self.words)]

    def write(self, word_addr, data, mask):
        index = word_addr % len(self.words)
        bits = sum(0xff << (8 * i) for i in range(4) if mask >> i & 1)
        self.words[index] = (self.words[index] & ~bits | data & bits) & _MASK


#: CSRs that only software changes, by the :class:`Iss` attribute that holds them.
_SOFTWARE_CSRS = {Csr.MTVEC: "mtvec", Csr.MSCRATCH: "mscratch", Csr.MEPC: "mepc",
                  Csr.MCAUSE: "mcause", Csr.MTVAL: "mtval"}

#: Counter halves: the attribute and the shift of the half.
_COUNTERS = {Csr.MCYCLE: ("mcycle", 0), Csr.MCYCLEH: ("mcycle", 32),
             Csr.MINSTRET: ("minstret", 0), Csr.MINSTRETH: ("minstret", 32),
             Csr.CYCLE: ("mcycle", 0), Csr.CYCLEH: ("mcycle", 32),
             Csr.INSTRET: ("minstret", 0), Csr.INSTRETH: ("minstret", 32)}

#: The word of ``wfi``.
_WFI = rv32.INSTRUCTIONS["wfi"].funct12 << 20 | rv32.INSTRUCTIONS["wfi"].opcode


#: The ``mie`` bits the core implements.
_MIE_BITS = sum(1 << irq for irq in Interrupt)


def _sext(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _s32(value):
    return _sext(value, 32)


class _Trap(Exception):
    def __init__(self, cause, tval=0):
        super().__init__(cause, tval)
        self.cause, self.tval = cause, tval


class Iss:
    """The core's golden model.

    Parameters
    ----------
    memory : Memory
        Shared by fetches and data, like the core's single bus.
    with_m : bool
        Implement the M extension (else its encodings are illegal).
    reset_vector : int
        Byte address of the first instruction.
    engine : callable, optional
        ``engine(funct, op1, op2, wants_answer) -> int or None`` for custom-0 commands; must
        return the answer when ``wants_answer``. Without one, commands are dropped and answer 0.

    Members
    -------
    x : list of int
        The registers (unsigned 32-bit; ``x[0]`` stays 0).
    pc : int
    irq_external, irq_timer : int
        The interrupt lines (``mip``): inputs, set by the caller between steps.
    mie : int
        The ``mie`` bits (MEIE, MTIE).
    waiting : bool
        Waiting in ``wfi`` at ``pc``.
    mstatus_mie, mstatus_mpie : int
    mtvec, mscratch, mepc, mcause, mtval : int
    mcycle, minstret : int
        64-bit counters; ``mcycle`` counts steps here.
    """

    def __init__(self, memory, *, with_m=True, reset_vector=0, engine=None):
        if reset_vector % 4:
            raise ValueError(f"Reset vector must be word-aligned, not 0x{reset_vector:x}")
        self.memory = memory
        self.with_m = bool(with_m)
        self.engine = engine
        self.x = [0] * 32
        self.pc = reset_vector & _MASK
        self.mstatus_mie = self.mstatus_mpie = 0
        self.irq_external = self.irq_timer = 0
        self.mie = 0
        self.waiting = False
        self.mtvec = self.mscratch = self.mepc = self.mcause = self.mtval = 0
        self.mcycle = self.minstret = 0

    # -- CSRs ------------------------------------------------------------------------------------

    def _csr_read(self, addr):
        if addr == Csr.MSTATUS:
            return (self.mstatus_mie << Mstatus.MIE | self.mstatus_mpie << Mstatus.MPIE
                    | 3 << Mstatus.MPP)
        if addr == Csr.MISA:
            return rv32.misa(self.with_m)
        if addr == Csr.MIE:
            return self.mie
        if addr == Csr.MIP:
            return self._mip()
        if addr in (Csr.MVENDORID, Csr.MARCHID, Csr.MIMPID, Csr.MHARTID):
            return 0
        if addr in _SOFTWARE_CSRS:
            return getattr(self, _SOFTWARE_CSRS[addr])
        if addr in _COUNTERS:
            counter, shift = _COUNTERS[addr]
            return getattr(self, counter) >> shift & _MASK
        raise _Trap(Cause.ILLEGAL_INSTRUCTION)

    def _csr_write(self, addr, value):
        """Write after the instruction's own counter increments (see the module notes)."""
        if addr == Csr.MSTATUS:
            self.mstatus_mie = value >> Mstatus.MIE & 1
            self.mstatus_mpie = value >> Mstatus.MPIE & 1
        elif addr == Csr.MIE:
            self.mie = value & _MIE_BITS
        elif addr in (Csr.MTVEC, Csr.MEPC):
            setattr(self, _SOFTWARE_CSRS[addr], value & ~3 & _MASK)
        elif addr in _SOFTWARE_CSRS:
            setattr(self, _SOFTWARE_CSRS[addr], value)
        elif addr in _COUNTERS:       # the user aliases are read-only: never written
            counter, shift = _COUNTERS[addr]
            setattr(self, counter,
                    getattr(self, counter) & ~(_MASK << shift) | value << shift)

    # -- Execution -------------------------------------------------------------------------------

    def _mip(self):
        return (self.irq_external << Interrupt.MACHINE_EXTERNAL
                | self.irq_timer << Interrupt.MACHINE_TIMER)

    def interrupt_to_take(self):
        """The :class:`~rvnpu.spec.rv32.Interrupt` the next step takes, or ``None``."""
        pending = self.mie & self._mip() if self.mstatus_mie and not self.waiting else 0
        for irq in Interrupt:                   # highest priority first
            if pending >> irq & 1:
                return irq
        return None

    def step(self):
        """Take an interrupt or execute one instruction; return its :class:`Retire` record,
        or ``None`` if waiting in ``wfi``."""
        pc = self.pc
        insn = self.memory.read(pc >> 2)
        record = {"pc": pc, "insn": insn}
        self.mcycle = (self.mcycle + 1) & (2**64 - 1)
        irq = self.interrupt_to_take()
        if irq is not None:
            self._enter_trap(pc, MCAUSE_INTERRUPT | irq, 0)
            return Retire(**record, trap=True, interrupt=True)
        if insn == _WFI and not self.mie & self._mip():
            self.waiting = True
            return None
        self.waiting = False
        try:
            effects = self._execute(insn, pc)
        except _Trap as trap:
            self._enter_trap(pc, int(trap.cause), trap.tval)
            return Retire(**record, trap=True)
        next_pc, rd, value, mem, csr_write = effects
        if rd:
            self.x[rd] = value & _MASK
        self.pc = next_pc & _MASK
        if csr_write is None or csr_write[0] not in (Csr.MINSTRET, Csr.MINSTRETH):
            self.minstret = (self.minstret + 1) & (2**64 - 1)
        if csr_write is not None:
            self._csr_write(*csr_write)
        return Retire(**record, rd_addr=rd, rd_wdata=value & _MASK if rd else 0, **mem)

    def _enter_trap(self, pc, mcause, tval):
        self.mepc = pc
        self.mcause = mcause
        self.mtval = tval & _MASK
        self.mstatus_mpie, self.mstatus_mie = self.mstatus_mie, 0
        self.pc = self.mtvec

    def run(self, count):
        """Step ``count`` times; return the records (``None`` for a step spent waiting)."""
        return [self.step() for _ in range(count)]

    def _execute(self, insn, pc):
        """Return ``(next_pc, rd or 0, value, mem fields, csr write or None)`` or raise."""
        encoding = rv32.identify(insn)
        if encoding is None or encoding.extension == "M" and not self.with_m:
            raise _Trap(Cause.ILLEGAL_INSTRUCTION)
        f = rv32.fields(insn)
        name, rd, rs1 = encoding.name, f.rd, f.rs1
        a, b = self.x[rs1], self.x[f.rs2]
        nxt = pc + 4

        def jump(target):
            target &= _MASK
            if target & 3:
                raise _Trap(Cause.MISALIGNED_FETCH, target)
            return target

        opcode = encoding.opcode
        if name == "lui":
            return nxt, rd, f.imm_u << 12, {}, None
        if name == "auipc":
            return nxt, rd, pc + (f.imm_u << 12), {}, None
        if name == "jal":
            return jump(pc + f.imm_j), rd, nxt, {}, None
        if name == "jalr":
            return jump((a + f.imm_i) & ~1), rd, nxt, {}, None
        if opcode == Opcode.BRANCH:
            taken = {"beq": a == b, "bne": a != b, "blt": _s32(a) < _s32(b),
                     "bge": _s32(a) >= _s32(b), "bltu": a < b, "bgeu": a >= b}[name]
            return (jump(pc + f.imm_b) if taken else nxt), 0, 0, {}, None
        if opcode == Opcode.LOAD:
            addr = (a + f.imm_i) & _MASK
            size, signed = _LOADS[name]
            if addr & ((1 << size) - 1):
                raise _Trap(Cause.MISALIGNED_LOAD, addr)
            word = self.memory.read(addr >> 2)
            bits = 8 << size
            value = (word >> 8 * (addr & 3)) & ((1 << bits) - 1)
            if signed:
                value = _sext(value, bits)
            rmask = ((1 << (1 << size)) - 1) << (addr & 3)
            return nxt, rd, value, {"mem_addr": addr, "mem_rmask": rmask}, None
        if opcode == Opcode.STORE:
            addr = (a + f.imm_s) & _MASK
            size = _STORES[name]
            if addr & ((1 << size) - 1):
                raise _Trap(Cause.MISALIGNED_STORE, addr)
            data = [(b & 0xff) * 0x01010101, (b & 0xffff) * 0x00010001, b][size]
            wmask = ((1 << (1 << size)) - 1) << (addr & 3)
            self.memory.write(addr >> 2, data, wmask)
            return nxt, 0, 0, {"mem_addr": addr, "mem_wmask": wmask, "mem_wdata": data}, None
        if encoding.extension == "M":
            return nxt, rd, _muldiv(name, a, b), {}, None
        if opcode in (Opcode.OP_IMM, Opcode.OP):
            operand = b if opcode == Opcode.OP else f.imm_i & _MASK
            return nxt, rd, _alu(name, a, operand), {}, None
        if opcode == Opcode.MISC_MEM or name == "wfi":         # a wfi here has woken up
            return nxt, 0, 0, {}, None
        if name == "ecall":
            raise _Trap(Cause.ECALL_M)
        if name == "ebreak":
            raise _Trap(Cause.BREAKPOINT)
        if name == "mret":
            self.mstatus_mie, self.mstatus_mpie = self.mstatus_mpie, 1
            return self.mepc, 0, 0, {}, None
        if opcode == Opcode.SYSTEM:                                 # the CSR instructions
            csr = f.funct12
            immediate = encoding.format is rv32.Format.CSRI
            src = rs1 if immediate else a
            operation = name.removesuffix("i")
            writes = operation == "csrrw" or rs1 != 0
            old = self._csr_read(csr)
            if writes and rv32.csr_is_read_only(csr):
                raise _Trap(Cause.ILLEGAL_INSTRUCTION)
            new = {"csrrw": src, "csrrs": old | src, "csrrc": old & ~src & _MASK}[operation]
            return nxt, rd, old, {}, ((csr, new) if writes else None)
        # custom-0: an engine command
        answer = None if self.engine is None else self.engine(f.funct7, a, b, rd != 0)
        if rd and answer is None:
            answer = 0
        return nxt, rd, answer or 0, {}, None


#: log2 of the access size, and whether the value is sign-extended.
_LOADS = {"lb": (0, True), "lh": (1, True), "lw": (2, True), "lbu": (0, False),
          "lhu": (1, False)}
_STORES = {"sb": 0, "sh": 1, "sw": 2}


def _alu(name, a, b):
    """The OP and OP-IMM results (``b`` is ``rs2`` or the immediate)."""
    shamt = b & 31
    return {"add": lambda: a + b, "sub": lambda: a - b, "slt": lambda: int(_s32(a) < _s32(b)),
            "sltu": lambda: int(a < b), "xor": lambda: a ^ b, "or": lambda: a | b,
            "and": lambda: a & b, "sll": lambda: a << shamt, "srl": lambda: a >> shamt,
            "sra": lambda: _s32(a) >> shamt}[_REGISTER_FORM.get(name, name)]()


#: The OP-IMM instructions by the OP instruction they compute.
_REGISTER_FORM = {"addi": "add", "slti": "slt", "sltiu": "sltu", "xori": "xor", "ori": "or",
                  "andi": "and", "slli": "sll", "srli": "srl", "srai": "sra"}


def _muldiv(name, a, b):
    sa, sb = _s32(a), _s32(b)
    if name == "mul":
        return a * b
    if name == "mulh":
        return (sa * sb) >> 32
    if name == "mulhsu":
        return (sa * b) >> 32
    if name == "mulhu":
        return (a * b) >> 32
    if name == "div":                       # toward zero; /0 = -1; INT_MIN/-1 = INT_MIN
        if b == 0:
            return _MASK
        q = abs(sa) // abs(sb)
        return -q if (sa < 0) != (sb < 0) else q
    if name == "divu":
        return _MASK if b == 0 else a // b
    if name == "rem":                       # sign of the dividend; %0 = dividend
        if b == 0:
            return a
        r = abs(sa) % abs(sb)
        return -r if sa < 0 else r
    return a if b == 0 else a % b           # remu
