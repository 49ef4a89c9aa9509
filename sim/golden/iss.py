"""Instruction-set simulator of :class:`rvnpu.hdl.cpu.RiscvCore`: the golden model of the core.

It executes one instruction per :meth:`Iss.step` with the core's exact architectural
semantics, including the choices the RISC-V specification leaves open, and returns the same
retire record as the core's ``retire`` trace port, so tests compare the two instruction by
instruction. The choices, shared with the RTL:

- machine mode only; traps go to ``mtvec`` (direct mode, low two bits read as zero);
- ``mtval`` is the faulting address for misaligned fetch targets, loads and stores, and 0 for
  illegal instructions, ``ecall`` and ``ebreak``;
- ``mepc`` reads with its low two bits clear; ``mcause`` holds whatever is written (WLRL);
- ``mstatus`` implements MIE and MPIE, with MPP read as 3; ``misa``, ``mie`` and ``mip`` ignore
  writes; ``mie``/``mip`` read as 0 (no interrupts yet);
- unknown CSRs, and writes to read-only ones (address bits 11:10 = 3), are illegal; ``csrrs``
  and ``csrrc`` with ``rs1 = x0`` (or a zero immediate) do not write;
- a CSR write to a counter half lands after the instruction's own increment;
- trapping instructions (including ``ecall``/``ebreak``) do not retire: no register write, no
  ``minstret`` increment;
- ``fence``/``fence.i`` (funct3 0 and 1, other fields ignored) and ``wfi`` do nothing;
- custom-0 (funct3 = 0) sends ``(funct7, rs1, rs2)`` to the engine, waiting for an answer if
  ``rd`` is not x0.

``mcycle`` cannot follow the RTL's cycle count; here it counts steps. Compare through
:func:`reads_cycle_counter` and :meth:`Retire.matches`, which leave those values out.
"""

import dataclasses


__all__ = ["Memory", "Iss", "Retire", "Cause", "reads_cycle_counter", "misa_value"]

_MASK = 0xffffffff


class Cause:
    """``mcause`` exception codes the core raises."""
    MISALIGNED_FETCH = 0
    ILLEGAL_INSTRUCTION = 2
    BREAKPOINT = 3
    MISALIGNED_LOAD = 4
    MISALIGNED_STORE = 6
    ECALL_M = 11


def misa_value(with_m):
    """RV32 (MXL = 1), I, and M when present."""
    return 1 << 30 | 1 << 8 | (1 << 12 if with_m else 0)


# CSRs whose reads give cycle counts, which differ between the RTL and this model.
_CYCLE_CSRS = frozenset({0xB00, 0xB80, 0xC00, 0xC80})


def reads_cycle_counter(insn):
    """Whether ``insn`` writes a cycle count to a register (its ``rd_wdata`` is not comparable)."""
    return (insn & 0x7f == 0b1110011 and insn >> 12 & 3 != 0 and insn >> 7 & 31 != 0
            and insn >> 20 in _CYCLE_CSRS)


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
            self, trap=bool(self.trap),
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
        from rvnpu.sim.rv32 import disasm
        text = f"pc={self.pc:08x} {self.insn:08x} {disasm(self.insn):32s}"
        if self.trap:
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
        self.mtvec = self.mscratch = self.mepc = self.mcause = self.mtval = 0
        self.mcycle = self.minstret = 0

    # -- CSRs ------------------------------------------------------------------------------------

    def _csr_read(self, addr):
        if addr == 0x300:
            return self.mstatus_mie << 3 | self.mstatus_mpie << 7 | 3 << 11
        if addr == 0x301:
            return misa_value(self.with_m)
        if addr in (0x304, 0x344, 0xF11, 0xF12, 0xF13, 0xF14):
            return 0
        if addr in (0x305, 0x340, 0x341, 0x342, 0x343):
            return {0x305: self.mtvec, 0x340: self.mscratch, 0x341: self.mepc,
                    0x342: self.mcause, 0x343: self.mtval}[addr]
        counter = {0xB00: self.mcycle, 0xB02: self.minstret, 0xB80: self.mcycle >> 32,
                   0xB82: self.minstret >> 32}
        counter.update({addr + 0x100: value for addr, value in list(counter.items())})
        if addr in counter:
            return counter[addr] & _MASK
        raise _Trap(Cause.ILLEGAL_INSTRUCTION)

    def _csr_write(self, addr, value):
        """Write after the instruction's own counter increments (see the module notes)."""
        if addr == 0x300:
            self.mstatus_mie, self.mstatus_mpie = value >> 3 & 1, value >> 7 & 1
        elif addr == 0x305:
            self.mtvec = value & ~3 & _MASK
        elif addr == 0x340:
            self.mscratch = value
        elif addr == 0x341:
            self.mepc = value & ~3 & _MASK
        elif addr == 0x342:
            self.mcause = value
        elif addr == 0x343:
            self.mtval = value
        elif addr in (0xB00, 0xB80):
            shift = 0 if addr == 0xB00 else 32
            self.mcycle = self.mcycle & ~(_MASK << shift) | value << shift
        elif addr in (0xB02, 0xB82):
            shift = 0 if addr == 0xB02 else 32
            self.minstret = self.minstret & ~(_MASK << shift) | value << shift

    # -- Execution -------------------------------------------------------------------------------

    def step(self):
        """Execute one instruction; return its :class:`Retire` record."""
        pc = self.pc
        insn = self.memory.read(pc >> 2)
        record = {"pc": pc, "insn": insn}
        self.mcycle = (self.mcycle + 1) & (2**64 - 1)
        try:
            effects = self._execute(insn, pc)
        except _Trap as trap:
            self.mepc = pc
            self.mcause = trap.cause
            self.mtval = trap.tval & _MASK
            self.mstatus_mpie, self.mstatus_mie = self.mstatus_mie, 0
            self.pc = self.mtvec
            return Retire(**record, trap=True)
        next_pc, rd, value, mem, csr_write = effects
        if rd:
            self.x[rd] = value & _MASK
        self.pc = next_pc & _MASK
        self.minstret = (self.minstret + 1) & (2**64 - 1)
        if csr_write is not None:
            self._csr_write(*csr_write)
        return Retire(**record, rd_addr=rd, rd_wdata=value & _MASK if rd else 0, **mem)

    def run(self, count):
        """Step ``count`` times; return the records."""
        return [self.step() for _ in range(count)]

    def _execute(self, insn, pc):
        """Return ``(next_pc, rd or 0, value, mem fields, csr write or None)`` or raise."""
        x = self.x
        opcode, rd, f3 = insn & 0x7f, insn >> 7 & 31, insn >> 12 & 7
        rs1, rs2, f7 = insn >> 15 & 31, insn >> 20 & 31, insn >> 25
        a, b = x[rs1], x[rs2]
        imm_i = _sext(insn >> 20, 12)
        imm_s = _sext((insn >> 25) << 5 | rd, 12)
        imm_b = _sext((insn >> 31) << 12 | (insn >> 7 & 1) << 11 | (insn >> 25 & 0x3f) << 5
                      | (insn >> 8 & 0xf) << 1, 13)
        imm_j = _sext((insn >> 31) << 20 | (insn >> 12 & 0xff) << 12 | (insn >> 20 & 1) << 11
                      | (insn >> 21 & 0x3ff) << 1, 21)
        nxt = pc + 4
        illegal = _Trap(Cause.ILLEGAL_INSTRUCTION)

        def jump(target):
            target &= _MASK
            if target & 3:
                raise _Trap(Cause.MISALIGNED_FETCH, target)
            return target

        if opcode == 0b0110111:                                     # LUI
            return nxt, rd, insn & 0xfffff000, {}, None
        if opcode == 0b0010111:                                     # AUIPC
            return nxt, rd, pc + (insn & 0xfffff000), {}, None
        if opcode == 0b1101111:                                     # JAL
            return jump(pc + imm_j), rd, nxt, {}, None
        if opcode == 0b1100111 and f3 == 0:                         # JALR
            return jump((a + imm_i) & ~1), rd, nxt, {}, None
        if opcode == 0b1100011 and f3 not in (2, 3):                # BRANCH
            taken = {0: a == b, 1: a != b, 4: _s32(a) < _s32(b), 5: _s32(a) >= _s32(b),
                     6: a < b, 7: a >= b}[f3]
            return (jump(pc + imm_b) if taken else nxt), 0, 0, {}, None
        if opcode == 0b0000011 and f3 in (0, 1, 2, 4, 5):           # LOAD
            addr = (a + imm_i) & _MASK
            size = f3 & 3
            if addr & ((1 << size) - 1):
                raise _Trap(Cause.MISALIGNED_LOAD, addr)
            word = self.memory.read(addr >> 2)
            shift = 8 * (addr & 3)
            bits = 8 << size
            value = (word >> shift) & ((1 << bits) - 1)
            if not f3 & 4:
                value = _sext(value, bits)
            rmask = ((1 << (1 << size)) - 1) << (addr & 3)
            return nxt, rd, value, {"mem_addr": addr, "mem_rmask": rmask}, None
        if opcode == 0b0100011 and f3 in (0, 1, 2):                 # STORE
            addr = (a + imm_s) & _MASK
            if addr & ((1 << f3) - 1):
                raise _Trap(Cause.MISALIGNED_STORE, addr)
            data = {0: (b & 0xff) * 0x01010101, 1: (b & 0xffff) * 0x00010001, 2: b}[f3]
            wmask = ((1 << (1 << f3)) - 1) << (addr & 3)
            self.memory.write(addr >> 2, data, wmask)
            return nxt, 0, 0, {"mem_addr": addr, "mem_wmask": wmask, "mem_wdata": data}, None
        if opcode in (0b0010011, 0b0110011):                        # OP-IMM, OP
            reg = opcode == 0b0110011
            operand = b if reg else imm_i & _MASK
            if reg and f7 == 1:
                if not self.with_m:
                    raise illegal
                return nxt, rd, _muldiv(f3, a, b), {}, None
            if f3 in (1, 5):
                if f7 not in ((0, 0x20) if f3 == 5 else (0,)):
                    raise illegal
                shamt = operand & 31
                if f3 == 1:
                    value = a << shamt
                elif f7:
                    value = _s32(a) >> shamt
                else:
                    value = a >> shamt
                return nxt, rd, value, {}, None
            if reg and f7 not in ((0, 0x20) if f3 == 0 else (0,)):
                raise illegal
            value = {0: a - operand if reg and f7 else a + operand,
                     2: int(_s32(a) < _s32(operand)), 3: int(a < operand),
                     4: a ^ operand, 6: a | operand, 7: a & operand}[f3]
            return nxt, rd, value, {}, None
        if opcode == 0b0001111 and f3 in (0, 1):                    # FENCE, FENCE.I
            return nxt, 0, 0, {}, None
        if opcode == 0b1110011:                                     # SYSTEM
            if f3 == 0:
                if insn == 0x00000073:
                    raise _Trap(Cause.ECALL_M)
                if insn == 0x00100073:
                    raise _Trap(Cause.BREAKPOINT)
                if insn == 0x30200073:
                    self.mstatus_mie, self.mstatus_mpie = self.mstatus_mpie, 1
                    return self.mepc, 0, 0, {}, None
                if insn == 0x10500073:
                    return nxt, 0, 0, {}, None
                raise illegal
            if f3 == 4:
                raise illegal
            csr = insn >> 20
            src = rs1 if f3 & 4 else a
            writes = f3 & 3 == 1 or rs1 != 0
            old = self._csr_read(csr)
            if writes and csr >> 10 == 3:
                raise illegal
            new = {1: src, 2: old | src, 3: old & ~src & _MASK}[f3 & 3]
            return nxt, rd, old, {}, ((csr, new) if writes else None)
        if opcode == 0b0001011:                                     # CUSTOM-0
            if f3 != 0:
                raise illegal
            answer = None if self.engine is None else self.engine(f7, a, b, rd != 0)
            if rd and answer is None:
                answer = 0
            return nxt, rd, answer or 0, {}, None
        raise illegal


def _muldiv(f3, a, b):
    sa, sb = _s32(a), _s32(b)
    if f3 == 0:
        return a * b
    if f3 == 1:
        return (sa * sb) >> 32
    if f3 == 2:
        return (sa * b) >> 32
    if f3 == 3:
        return (a * b) >> 32
    if f3 == 4:                             # DIV: toward zero; /0 = -1; INT_MIN/-1 = INT_MIN
        if b == 0:
            return _MASK
        q = abs(sa) // abs(sb)
        return -q if (sa < 0) != (sb < 0) else q
    if f3 == 5:
        return _MASK if b == 0 else a // b
    if f3 == 6:                             # REM: sign of the dividend; %0 = dividend
        if b == 0:
            return a
        r = abs(sa) % abs(sb)
        return -r if sa < 0 else r
    return a if b == 0 else a % b
