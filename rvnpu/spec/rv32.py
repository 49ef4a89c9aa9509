"""The RV32IM + Zicsr + custom-0 encodings the control core implements, written once.

The core's decoder (:mod:`rvnpu.hdl.core.cpu`), its golden model (:mod:`rvnpu.sim.golden.iss`)
and the tests' assembler (:mod:`rvnpu.sim.rv32_asm`) all read these tables; none of them spells
an opcode, a function code, a CSR number or a trap cause by hand. Pure data and small pure
functions over it (field extraction, :func:`identify`, :func:`disasm`, which the golden model
and the tests share): no Amaranth here.
"""

import enum
from dataclasses import dataclass


__all__ = [
    "Opcode", "Funct7", "Format", "Encoding", "INSTRUCTIONS", "identify",
    "Csr", "CSR_NAMES", "csr_is_read_only", "CSR_ACCESS_BITS", "CSR_READ_ONLY",
    "Mstatus", "misa", "Cause", "Interrupt", "MCAUSE_INTERRUPT", "ABI_NAMES", "Fields", "fields",
    "disasm",
]


class Opcode(enum.IntEnum):
    """Major opcodes, all seven bits (bits 1:0 = 11; 16-bit encodings are not implemented)."""
    LOAD     = 0b0000011
    CUSTOM0  = 0b0001011
    MISC_MEM = 0b0001111
    OP_IMM   = 0b0010011
    AUIPC    = 0b0010111
    STORE    = 0b0100011
    OP       = 0b0110011
    LUI      = 0b0110111
    BRANCH   = 0b1100011
    JALR     = 0b1100111
    JAL      = 0b1101111
    SYSTEM   = 0b1110011


class Funct7(enum.IntEnum):
    """``funct7`` values of OP (and of the OP-IMM shifts)."""
    BASE   = 0x00
    ALT    = 0x20       # SUB, SRA, SRAI
    MULDIV = 0x01       # the M extension


class Format(enum.Enum):
    """How an instruction's operands sit in its word (the assembler's and disassembler's view).

    ``SHIFT`` is an I-type whose immediate is a 5-bit shift amount under a ``funct7``; ``CSR``
    and ``CSRI`` are I-types whose immediate is a CSR number and whose ``rs1`` field is a
    register or a 5-bit immediate; ``FIXED`` is a whole word (``funct12`` with zero ``rd`` and
    ``rs1``); ``FENCE`` ignores every field but its ``funct3``.
    """
    R = "R"
    I = "I"         # noqa: E741 - the specification's name
    S = "S"
    B = "B"
    U = "U"
    J = "J"
    SHIFT = "shift"
    CSR = "csr"
    CSRI = "csri"
    FIXED = "fixed"
    FENCE = "fence"


@dataclass(frozen=True)
class Encoding:
    """One instruction: the fields that identify it (``None``: any value, an operand).

    ``extension`` is ``"M"`` for the instructions that are illegal on a core without it.
    """
    name: str
    format: Format
    opcode: Opcode
    funct3: "int | None" = None
    funct7: "int | None" = None
    funct12: "int | None" = None
    extension: str = "I"

    def matches(self, word):
        """Whether ``word`` is this instruction."""
        f = fields(word)
        if f.opcode != self.opcode:
            return False
        if self.funct3 is not None and f.funct3 != self.funct3:
            return False
        if self.funct7 is not None and f.funct7 != self.funct7:
            return False
        if self.funct12 is not None:
            return f.funct12 == self.funct12 and f.rd == 0 and f.rs1 == 0
        return True


def _table(*rows):
    return {row.name: row for row in rows}


_F = Format

#: Every instruction the core implements, by its assembler name.
INSTRUCTIONS = _table(
    Encoding("lui", _F.U, Opcode.LUI),
    Encoding("auipc", _F.U, Opcode.AUIPC),
    Encoding("jal", _F.J, Opcode.JAL),
    Encoding("jalr", _F.I, Opcode.JALR, 0),
    *(Encoding(name, _F.B, Opcode.BRANCH, funct3) for name, funct3 in
      [("beq", 0), ("bne", 1), ("blt", 4), ("bge", 5), ("bltu", 6), ("bgeu", 7)]),
    *(Encoding(name, _F.I, Opcode.LOAD, funct3) for name, funct3 in
      [("lb", 0), ("lh", 1), ("lw", 2), ("lbu", 4), ("lhu", 5)]),
    *(Encoding(name, _F.S, Opcode.STORE, funct3) for name, funct3 in
      [("sb", 0), ("sh", 1), ("sw", 2)]),
    *(Encoding(name, _F.I, Opcode.OP_IMM, funct3) for name, funct3 in
      [("addi", 0), ("slti", 2), ("sltiu", 3), ("xori", 4), ("ori", 6), ("andi", 7)]),
    Encoding("slli", _F.SHIFT, Opcode.OP_IMM, 1, Funct7.BASE),
    Encoding("srli", _F.SHIFT, Opcode.OP_IMM, 5, Funct7.BASE),
    Encoding("srai", _F.SHIFT, Opcode.OP_IMM, 5, Funct7.ALT),
    *(Encoding(name, _F.R, Opcode.OP, funct3, funct7) for name, funct3, funct7 in
      [("add", 0, Funct7.BASE), ("sub", 0, Funct7.ALT), ("sll", 1, Funct7.BASE),
       ("slt", 2, Funct7.BASE), ("sltu", 3, Funct7.BASE), ("xor", 4, Funct7.BASE),
       ("srl", 5, Funct7.BASE), ("sra", 5, Funct7.ALT), ("or", 6, Funct7.BASE),
       ("and", 7, Funct7.BASE)]),
    *(Encoding(name, _F.R, Opcode.OP, funct3, Funct7.MULDIV, extension="M")
      for funct3, name in enumerate(
          ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"])),
    Encoding("fence", _F.FENCE, Opcode.MISC_MEM, 0),
    Encoding("fence.i", _F.FENCE, Opcode.MISC_MEM, 1, extension="Zifencei"),
    Encoding("ecall", _F.FIXED, Opcode.SYSTEM, 0, funct12=0x000),
    Encoding("ebreak", _F.FIXED, Opcode.SYSTEM, 0, funct12=0x001),
    Encoding("mret", _F.FIXED, Opcode.SYSTEM, 0, funct12=0x302),
    Encoding("wfi", _F.FIXED, Opcode.SYSTEM, 0, funct12=0x105),
    *(Encoding(name, _F.CSR, Opcode.SYSTEM, funct3, extension="Zicsr") for name, funct3 in
      [("csrrw", 1), ("csrrs", 2), ("csrrc", 3)]),
    *(Encoding(name, _F.CSRI, Opcode.SYSTEM, funct3, extension="Zicsr") for name, funct3 in
      [("csrrwi", 5), ("csrrsi", 6), ("csrrci", 7)]),
    # An engine command: funct7 is the command, rs1/rs2 its operands, rd its answer (or x0).
    Encoding("custom0", _F.R, Opcode.CUSTOM0, 0, extension="custom"),
)

_FIXED_WORDS = {enc.funct12 << 20 | enc.opcode: enc
                for enc in INSTRUCTIONS.values() if enc.format is Format.FIXED}
_BY_FIELDS = {(enc.opcode, enc.funct3, enc.funct7): enc
              for enc in INSTRUCTIONS.values() if enc.format is not Format.FIXED}


def identify(word):
    """The :class:`Encoding` that ``word`` is, or ``None`` if it is none of the table's.

    CSR numbers are not checked here: which CSRs exist is the core's business (:class:`Csr`).
    """
    if word in _FIXED_WORDS:
        return _FIXED_WORDS[word]
    f = fields(word)
    for key in ((f.opcode, f.funct3, f.funct7), (f.opcode, f.funct3, None),
                (f.opcode, None, None)):
        if key in _BY_FIELDS:
            return _BY_FIELDS[key]
    return None


class Csr(enum.IntEnum):
    """The CSRs the core implements; the lower-case member name is the assembler's name."""
    MSTATUS   = 0x300
    MISA      = 0x301
    MIE       = 0x304
    MTVEC     = 0x305
    MSCRATCH  = 0x340
    MEPC      = 0x341
    MCAUSE    = 0x342
    MTVAL     = 0x343
    MIP       = 0x344
    MCYCLE    = 0xB00
    MINSTRET  = 0xB02
    MCYCLEH   = 0xB80
    MINSTRETH = 0xB82
    CYCLE     = 0xC00     # read-only user aliases of the machine counters
    INSTRET   = 0xC02
    CYCLEH    = 0xC80
    INSTRETH  = 0xC82
    MVENDORID = 0xF11
    MARCHID   = 0xF12
    MIMPID    = 0xF13
    MHARTID   = 0xF14


#: CSR names by number.
CSR_NAMES = {int(csr): csr.name.lower() for csr in Csr}

#: Bits 11:10 of a CSR number say who may write it; :data:`CSR_READ_ONLY` there: nobody.
CSR_ACCESS_BITS = slice(10, 12)
CSR_READ_ONLY = 0b11


def csr_is_read_only(number):
    """Whether a write to CSR ``number`` is illegal whatever the privilege."""
    return number >> CSR_ACCESS_BITS.start == CSR_READ_ONLY


class Mstatus(enum.IntEnum):
    """Bit positions of the ``mstatus`` fields the core has (MPP is two bits, read as 3)."""
    MIE  = 3
    MPIE = 7
    MPP  = 11


def misa(with_m):
    """The value of ``misa``: RV32 (MXL = 1), I, and M when present."""
    letter = {name: 1 << (ord(name) - ord("A")) for name in "IM"}
    return 1 << 30 | letter["I"] | (letter["M"] if with_m else 0)


class Cause(enum.IntEnum):
    """``mcause`` exception codes the core raises."""
    MISALIGNED_FETCH = 0
    ILLEGAL_INSTRUCTION = 2
    BREAKPOINT = 3
    MISALIGNED_LOAD = 4
    MISALIGNED_STORE = 6
    ECALL_M = 11


class Interrupt(enum.IntEnum):
    """The machine-mode interrupts the core takes, highest priority first.

    The value is the interrupt's code in ``mcause`` (with :data:`MCAUSE_INTERRUPT` set) and
    also its bit in ``mie`` (MEIE, MTIE) and ``mip`` (MEIP, MTIP).
    """
    MACHINE_EXTERNAL = 11
    MACHINE_TIMER = 7


#: The bit of ``mcause`` that marks an interrupt rather than an exception.
MCAUSE_INTERRUPT = 1 << 31


#: Register names of the standard calling convention, by number (``fp`` is ``s0``, x8).
ABI_NAMES = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1",
             *(f"a{i}" for i in range(8)), *(f"s{i}" for i in range(2, 12)),
             *(f"t{i}" for i in range(3, 7))]


def _sext(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass(frozen=True)
class Fields:
    """The fields of an instruction word, immediates sign-extended (Python ints)."""
    opcode: int
    rd: int
    funct3: int
    rs1: int
    rs2: int
    funct7: int
    funct12: int        # also the CSR number
    imm_i: int
    imm_s: int
    imm_b: int
    imm_j: int
    imm_u: int          # the 20-bit field, unshifted


def fields(word):
    """Split ``word`` into its :class:`Fields`."""
    rd = word >> 7 & 31
    return Fields(
        opcode=word & 0x7f, rd=rd, funct3=word >> 12 & 7, rs1=word >> 15 & 31,
        rs2=word >> 20 & 31, funct7=word >> 25 & 0x7f, funct12=word >> 20 & 0xfff,
        imm_i=_sext(word >> 20, 12),
        imm_s=_sext((word >> 25) << 5 | rd, 12),
        imm_b=_sext((word >> 31) << 12 | (word >> 7 & 1) << 11 | (word >> 25 & 0x3f) << 5
                    | (word >> 8 & 0xf) << 1, 13),
        imm_j=_sext((word >> 31) << 20 | (word >> 12 & 0xff) << 12 | (word >> 20 & 1) << 11
                    | (word >> 21 & 0x3ff) << 1, 21),
        imm_u=word >> 12 & 0xfffff)


# -- Disassembler --------------------------------------------------------------------------------

def _x(n):
    return ABI_NAMES[n]


def disasm(word):
    """Readable text of one instruction word; ``.word 0x...`` for what is not in the table."""
    word &= 0xffffffff
    enc, f = identify(word), fields(word)
    if enc is None and f.opcode == Opcode.CUSTOM0:
        return f"custom0 {f.funct7}, {_x(f.rd)}, {_x(f.rs1)}, {_x(f.rs2)} (funct3={f.funct3})"
    if enc is None:
        return f".word 0x{word:08x}"
    name, form = enc.name, enc.format
    if form is Format.U:
        return f"{name} {_x(f.rd)}, 0x{f.imm_u:x}"
    if form is Format.J:
        return f"{name} {_x(f.rd)}, {f.imm_j:+d}"
    if form is Format.B:
        return f"{name} {_x(f.rs1)}, {_x(f.rs2)}, {f.imm_b:+d}"
    if form is Format.I and enc.opcode in (Opcode.LOAD, Opcode.JALR):
        return f"{name} {_x(f.rd)}, {f.imm_i}({_x(f.rs1)})"
    if form is Format.I:
        return f"{name} {_x(f.rd)}, {_x(f.rs1)}, {f.imm_i}"
    if form is Format.S:
        return f"{name} {_x(f.rs2)}, {f.imm_s}({_x(f.rs1)})"
    if form is Format.SHIFT:
        return f"{name} {_x(f.rd)}, {_x(f.rs1)}, {f.rs2}"
    if form in (Format.FENCE, Format.FIXED):
        return name
    if form in (Format.CSR, Format.CSRI):
        src = str(f.rs1) if form is Format.CSRI else _x(f.rs1)
        return f"{name} {_x(f.rd)}, {CSR_NAMES.get(f.funct12, hex(f.funct12))}, {src}"
    if enc.opcode == Opcode.CUSTOM0:
        return f"{name} {f.funct7}, {_x(f.rd)}, {_x(f.rs1)}, {_x(f.rs2)}"
    return f"{name} {_x(f.rd)}, {_x(f.rs1)}, {_x(f.rs2)}"
