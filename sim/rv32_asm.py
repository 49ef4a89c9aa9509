"""A tiny RV32IM assembler and disassembler, so tests need no external toolchain.

Every instruction is a function returning its 32-bit word: ``addi(rd, rs1, imm)``,
``lw(rd, offset, rs1)`` (the operand order of ``lw rd, offset(rs1)``), ``sw(rs2, offset, rs1)``,
``beq(rs1, rs2, offset)``, ``csrrw(rd, csr, rs1)``, ``custom0(funct7, rd, rs1, rs2)``.
Registers are numbers 0..31 (or ABI names through :func:`reg`); offsets are byte offsets
relative to the instruction. Immediates out of range raise :class:`ValueError` rather than
silently wrapping, because a wrapped offset makes a test check the wrong thing.

:func:`disasm` (from :mod:`rvnpu.spec.rv32`, where the golden model reads it too) turns a word
back into text for failure messages. The encoders read the encodings from that table, as the
core and its golden model do.
"""

from rvnpu.spec.rv32 import ABI_NAMES, CSR_NAMES, INSTRUCTIONS, Format, disasm


__all__ = [
    "ABI_NAMES", "CSR_NAMES", "reg", "disasm", "assemble",
    "lui", "auipc", "jal", "jalr",
    "beq", "bne", "blt", "bge", "bltu", "bgeu",
    "lb", "lh", "lw", "lbu", "lhu", "sb", "sh", "sw",
    "addi", "slti", "sltiu", "xori", "ori", "andi", "slli", "srli", "srai",
    "add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or_", "and_",
    "mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu",
    "fence", "fence_i", "ecall", "ebreak", "mret", "wfi",
    "csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci", "csrr", "csrw", "csrs", "csrc",
    "custom0", "nop", "li",
]


_CSR_BY_NAME = {name: number for number, name in CSR_NAMES.items()}


def reg(name):
    """Register number of ``"x5"``, ``"t0"``, ``"fp"`` or an int."""
    if isinstance(name, int):
        if not 0 <= name < 32:
            raise ValueError(f"Register number must be 0..31, not {name!r}")
        return name
    if name == "fp":
        return 8
    if name.startswith("x") and name[1:].isdigit():
        return reg(int(name[1:]))
    try:
        return ABI_NAMES.index(name)
    except ValueError:
        raise ValueError(f"Unknown register name {name!r}") from None


def _csr(csr):
    if isinstance(csr, str):
        return _CSR_BY_NAME[csr]
    if not 0 <= csr < 4096:
        raise ValueError(f"CSR address must be 0..4095, not {csr!r}")
    return csr


def _signed(value, bits, what):
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise ValueError(f"{what} {value} does not fit in {bits} signed bits")
    return value & ((1 << bits) - 1)


def _unsigned(value, bits, what):
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what} {value} does not fit in {bits} unsigned bits")
    return value


# -- Formats -------------------------------------------------------------------------------------

def _r(name, rd, rs1, rs2, funct7=None):
    enc = INSTRUCTIONS[name]
    funct7 = enc.funct7 if funct7 is None else funct7
    return (funct7 << 25 | reg(rs2) << 20 | reg(rs1) << 15 | enc.funct3 << 12 | reg(rd) << 7
            | enc.opcode)


def _i(name, rd, rs1, imm):
    enc = INSTRUCTIONS[name]
    return (_signed(imm, 12, "I-immediate") << 20 | reg(rs1) << 15 | enc.funct3 << 12
            | reg(rd) << 7 | enc.opcode)


def _s(name, rs2, rs1, imm):
    enc = INSTRUCTIONS[name]
    imm = _signed(imm, 12, "S-immediate")
    return ((imm >> 5) << 25 | reg(rs2) << 20 | reg(rs1) << 15 | enc.funct3 << 12
            | (imm & 0x1f) << 7 | enc.opcode)


def _b(name, rs1, rs2, offset):
    enc = INSTRUCTIONS[name]
    if offset % 2:
        raise ValueError(f"Branch offset {offset} is odd")
    imm = _signed(offset, 13, "Branch offset")
    return ((imm >> 12 & 1) << 31 | (imm >> 5 & 0x3f) << 25 | reg(rs2) << 20 | reg(rs1) << 15
            | enc.funct3 << 12 | (imm >> 1 & 0xf) << 8 | (imm >> 11 & 1) << 7 | enc.opcode)


def _u(name, rd, imm20):
    return _unsigned(imm20, 20, "U-immediate") << 12 | reg(rd) << 7 | INSTRUCTIONS[name].opcode


def _fixed(name):
    enc = INSTRUCTIONS[name]
    return enc.funct12 << 20 | enc.funct3 << 12 | enc.opcode


# -- RV32I ---------------------------------------------------------------------------------------

def lui(rd, imm20):
    """``rd = imm20 << 12`` (``imm20`` is the 20-bit field, 0..0xfffff)."""
    return _u("lui", rd, imm20)


def auipc(rd, imm20):
    return _u("auipc", rd, imm20)


def jal(rd, offset):
    if offset % 2:
        raise ValueError(f"Jump offset {offset} is odd")
    imm = _signed(offset, 21, "Jump offset")
    return ((imm >> 20 & 1) << 31 | (imm >> 1 & 0x3ff) << 21 | (imm >> 11 & 1) << 20
            | (imm >> 12 & 0xff) << 12 | reg(rd) << 7 | INSTRUCTIONS["jal"].opcode)


def jalr(rd, rs1, imm=0):
    return _i("jalr", rd, rs1, imm)


def _branch(name):
    def encode(rs1, rs2, offset):
        return _b(name, rs1, rs2, offset)
    encode.__name__ = name
    return encode


def _load(name):
    def encode(rd, offset, rs1):
        return _i(name, rd, rs1, offset)
    encode.__name__ = name
    return encode


def _store(name):
    def encode(rs2, offset, rs1):
        return _s(name, rs2, rs1, offset)
    encode.__name__ = name
    return encode


def _op_imm(name):
    def encode(rd, rs1, imm):
        return _i(name, rd, rs1, imm)
    encode.__name__ = name
    return encode


def _shift(name):
    def encode(rd, rs1, shamt):
        return _r(name, rd, rs1, _unsigned(shamt, 5, "Shift amount"))
    encode.__name__ = name
    return encode


def _op(name):
    def encode(rd, rs1, rs2):
        return _r(name, rd, rs1, rs2)
    encode.__name__ = name
    return encode


beq, bne, blt, bge, bltu, bgeu = map(_branch, ["beq", "bne", "blt", "bge", "bltu", "bgeu"])
lb, lh, lw, lbu, lhu = map(_load, ["lb", "lh", "lw", "lbu", "lhu"])
sb, sh, sw = map(_store, ["sb", "sh", "sw"])
addi, slti, sltiu, xori, ori, andi = map(
    _op_imm, ["addi", "slti", "sltiu", "xori", "ori", "andi"])
slli, srli, srai = map(_shift, ["slli", "srli", "srai"])
add, sub, sll, slt, sltu, xor, srl, sra, or_, and_ = map(
    _op, ["add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and"])
mul, mulh, mulhsu, mulhu, div, divu, rem, remu = map(
    _op, ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"])


def fence(pred=0b1111, succ=0b1111):
    enc = INSTRUCTIONS["fence"]
    return (_unsigned(pred, 4, "pred") << 24 | _unsigned(succ, 4, "succ") << 20
            | enc.funct3 << 12 | enc.opcode)


def fence_i():
    enc = INSTRUCTIONS["fence.i"]
    return enc.funct3 << 12 | enc.opcode


def ecall():
    return _fixed("ecall")


def ebreak():
    return _fixed("ebreak")


def mret():
    return _fixed("mret")


def wfi():
    return _fixed("wfi")


def _csr_op(name):
    """The encoder of CSR instruction ``name``: ``(rd, csr, rs1)``, or ``(rd, csr, uimm)`` for
    the immediate forms (``csr`` a number or a name)."""
    enc = INSTRUCTIONS[name]
    immediate = enc.format is Format.CSRI

    def encode(rd, csr, source):
        source = _unsigned(source, 5, "CSR immediate") if immediate else reg(source)
        return (_csr(csr) << 20 | source << 15 | enc.funct3 << 12 | reg(rd) << 7
                | enc.opcode)
    encode.__name__ = name
    return encode


csrrw, csrrs, csrrc, csrrwi, csrrsi, csrrci = map(
    _csr_op, ["csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci"])


def csrr(rd, csr):
    return csrrs(rd, csr, 0)


def csrw(csr, rs1):
    return csrrw(0, csr, rs1)


def csrs(csr, rs1):
    """Set the bits of ``rs1`` in ``csr``."""
    return csrrs(0, csr, rs1)


def csrc(csr, rs1):
    """Clear the bits of ``rs1`` in ``csr``."""
    return csrrc(0, csr, rs1)


def custom0(funct7, rd, rs1, rs2, funct3=None):
    """An engine command: ``funct7`` is the command, ``rs1``/``rs2`` its operands, and ``rd``
    (if not x0) receives the engine's answer. ``funct3`` other than the table's exists only to
    test that it traps."""
    word = _r("custom0", rd, rs1, rs2, funct7=_unsigned(funct7, 7, "funct7"))
    if funct3 is not None:
        word = word & ~(7 << 12) | _unsigned(funct3, 3, "funct3") << 12
    return word


def nop():
    return addi(0, 0, 0)


def li(rd, value):
    """``rd = value`` in one or two words (``lui`` + ``addi``), for any 32-bit value."""
    value &= 0xffffffff
    low = value & 0xfff
    low = low - 0x1000 if low & 0x800 else low
    high = ((value - low) >> 12) & 0xfffff
    if high == 0:
        return [addi(rd, 0, low)]
    return [lui(rd, high)] + ([addi(rd, rd, low)] if low else [])


def assemble(*items):
    """Flatten words and lists of words (as :func:`li` returns) into one list."""
    words = []
    for item in items:
        if isinstance(item, (list, tuple)):
            words.extend(assemble(*item))
        else:
            words.append(item & 0xffffffff)
    return words
