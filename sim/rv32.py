"""A tiny RV32IM assembler and disassembler, so tests need no external toolchain.

Every instruction is a function returning its 32-bit word: ``addi(rd, rs1, imm)``,
``lw(rd, offset, rs1)`` (the operand order of ``lw rd, offset(rs1)``), ``sw(rs2, offset, rs1)``,
``beq(rs1, rs2, offset)``, ``csrrw(rd, csr, rs1)``, ``custom0(funct7, rd, rs1, rs2)``.
Registers are numbers 0..31 (or ABI names through :func:`reg`); offsets are byte offsets
relative to the instruction. Immediates out of range raise :class:`ValueError` rather than
silently wrapping, because a wrapped offset makes a test check the wrong thing.

:func:`disasm` turns a word back into text for failure messages.
"""

__all__ = [
    "ABI_NAMES", "CSR_NAMES", "OPCODES", "reg", "disasm", "assemble",
    "lui", "auipc", "jal", "jalr",
    "beq", "bne", "blt", "bge", "bltu", "bgeu",
    "lb", "lh", "lw", "lbu", "lhu", "sb", "sh", "sw",
    "addi", "slti", "sltiu", "xori", "ori", "andi", "slli", "srli", "srai",
    "add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or_", "and_",
    "mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu",
    "fence", "fence_i", "ecall", "ebreak", "mret", "wfi",
    "csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci", "csrr", "csrw",
    "custom0", "nop", "li",
]


#: Major opcodes (bits 6:0).
OPCODES = {
    "LOAD": 0b0000011, "CUSTOM0": 0b0001011, "MISC_MEM": 0b0001111, "OP_IMM": 0b0010011,
    "AUIPC": 0b0010111, "STORE": 0b0100011, "OP": 0b0110011, "LUI": 0b0110111,
    "BRANCH": 0b1100011, "JALR": 0b1100111, "JAL": 0b1101111, "SYSTEM": 0b1110011,
}

ABI_NAMES = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1",
             *(f"a{i}" for i in range(8)), *(f"s{i}" for i in range(2, 12)),
             *(f"t{i}" for i in range(3, 7))]

#: Names of the CSRs the core implements, by address.
CSR_NAMES = {
    0x300: "mstatus", 0x301: "misa", 0x304: "mie", 0x305: "mtvec", 0x340: "mscratch",
    0x341: "mepc", 0x342: "mcause", 0x343: "mtval", 0x344: "mip",
    0xB00: "mcycle", 0xB02: "minstret", 0xB80: "mcycleh", 0xB82: "minstreth",
    0xC00: "cycle", 0xC02: "instret", 0xC80: "cycleh", 0xC82: "instreth",
    0xF11: "mvendorid", 0xF12: "marchid", 0xF13: "mimpid", 0xF14: "mhartid",
}
_CSR_BY_NAME = {name: addr for addr, name in CSR_NAMES.items()}


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

def _r(opcode, funct3, funct7, rd, rs1, rs2):
    return (funct7 << 25 | reg(rs2) << 20 | reg(rs1) << 15 | funct3 << 12 | reg(rd) << 7
            | opcode)


def _i(opcode, funct3, rd, rs1, imm):
    return (_signed(imm, 12, "I-immediate") << 20 | reg(rs1) << 15 | funct3 << 12
            | reg(rd) << 7 | opcode)


def _s(opcode, funct3, rs2, rs1, imm):
    imm = _signed(imm, 12, "S-immediate")
    return ((imm >> 5) << 25 | reg(rs2) << 20 | reg(rs1) << 15 | funct3 << 12
            | (imm & 0x1f) << 7 | opcode)


def _b(funct3, rs1, rs2, offset):
    if offset % 2:
        raise ValueError(f"Branch offset {offset} is odd")
    imm = _signed(offset, 13, "Branch offset")
    return ((imm >> 12 & 1) << 31 | (imm >> 5 & 0x3f) << 25 | reg(rs2) << 20 | reg(rs1) << 15
            | funct3 << 12 | (imm >> 1 & 0xf) << 8 | (imm >> 11 & 1) << 7 | OPCODES["BRANCH"])


def _u(opcode, rd, imm20):
    return _unsigned(imm20, 20, "U-immediate") << 12 | reg(rd) << 7 | opcode


# -- RV32I ---------------------------------------------------------------------------------------

def lui(rd, imm20):
    """``rd = imm20 << 12`` (``imm20`` is the 20-bit field, 0..0xfffff)."""
    return _u(OPCODES["LUI"], rd, imm20)


def auipc(rd, imm20):
    return _u(OPCODES["AUIPC"], rd, imm20)


def jal(rd, offset):
    if offset % 2:
        raise ValueError(f"Jump offset {offset} is odd")
    imm = _signed(offset, 21, "Jump offset")
    return ((imm >> 20 & 1) << 31 | (imm >> 1 & 0x3ff) << 21 | (imm >> 11 & 1) << 20
            | (imm >> 12 & 0xff) << 12 | reg(rd) << 7 | OPCODES["JAL"])


def jalr(rd, rs1, imm=0):
    return _i(OPCODES["JALR"], 0, rd, rs1, imm)


def beq(rs1, rs2, offset):
    return _b(0, rs1, rs2, offset)


def bne(rs1, rs2, offset):
    return _b(1, rs1, rs2, offset)


def blt(rs1, rs2, offset):
    return _b(4, rs1, rs2, offset)


def bge(rs1, rs2, offset):
    return _b(5, rs1, rs2, offset)


def bltu(rs1, rs2, offset):
    return _b(6, rs1, rs2, offset)


def bgeu(rs1, rs2, offset):
    return _b(7, rs1, rs2, offset)


def lb(rd, offset, rs1):
    return _i(OPCODES["LOAD"], 0, rd, rs1, offset)


def lh(rd, offset, rs1):
    return _i(OPCODES["LOAD"], 1, rd, rs1, offset)


def lw(rd, offset, rs1):
    return _i(OPCODES["LOAD"], 2, rd, rs1, offset)


def lbu(rd, offset, rs1):
    return _i(OPCODES["LOAD"], 4, rd, rs1, offset)


def lhu(rd, offset, rs1):
    return _i(OPCODES["LOAD"], 5, rd, rs1, offset)


def sb(rs2, offset, rs1):
    return _s(OPCODES["STORE"], 0, rs2, rs1, offset)


def sh(rs2, offset, rs1):
    return _s(OPCODES["STORE"], 1, rs2, rs1, offset)


def sw(rs2, offset, rs1):
    return _s(OPCODES["STORE"], 2, rs2, rs1, offset)


def addi(rd, rs1, imm):
    return _i(OPCODES["OP_IMM"], 0, rd, rs1, imm)


def slti(rd, rs1, imm):
    return _i(OPCODES["OP_IMM"], 2, rd, rs1, imm)


def sltiu(rd, rs1, imm):
    return _i(OPCODES["OP_IMM"], 3, rd, rs1, imm)


def xori(rd, rs1, imm):
    return _i(OPCODES["OP_IMM"], 4, rd, rs1, imm)


def ori(rd, rs1, imm):
    return _i(OPCODES["OP_IMM"], 6, rd, rs1, imm)


def andi(rd, rs1, imm):
    return _i(OPCODES["OP_IMM"], 7, rd, rs1, imm)


def slli(rd, rs1, shamt):
    return _r(OPCODES["OP_IMM"], 1, 0, rd, rs1, _unsigned(shamt, 5, "Shift amount"))


def srli(rd, rs1, shamt):
    return _r(OPCODES["OP_IMM"], 5, 0, rd, rs1, _unsigned(shamt, 5, "Shift amount"))


def srai(rd, rs1, shamt):
    return _r(OPCODES["OP_IMM"], 5, 0x20, rd, rs1, _unsigned(shamt, 5, "Shift amount"))


def _op(funct3, funct7):
    def encode(rd, rs1, rs2):
        return _r(OPCODES["OP"], funct3, funct7, rd, rs1, rs2)
    return encode


add, sub, sll, slt = _op(0, 0), _op(0, 0x20), _op(1, 0), _op(2, 0)
sltu, xor, srl, sra = _op(3, 0), _op(4, 0), _op(5, 0), _op(5, 0x20)
or_, and_ = _op(6, 0), _op(7, 0)

mul, mulh, mulhsu, mulhu = _op(0, 1), _op(1, 1), _op(2, 1), _op(3, 1)
div, divu, rem, remu = _op(4, 1), _op(5, 1), _op(6, 1), _op(7, 1)


def fence(pred=0b1111, succ=0b1111):
    return _unsigned(pred, 4, "pred") << 24 | _unsigned(succ, 4, "succ") << 20 | 0b0001111


def fence_i():
    return 1 << 12 | OPCODES["MISC_MEM"]


def ecall():
    return 0x00000073


def ebreak():
    return 0x00100073


def mret():
    return 0x30200073


def wfi():
    return 0x10500073


def _csr_op(funct3):
    def encode(rd, csr, rs1):
        return _csr(csr) << 20 | reg(rs1) << 15 | funct3 << 12 | reg(rd) << 7 | 0b1110011
    return encode


def _csr_imm(funct3):
    def encode(rd, csr, uimm):
        return (_csr(csr) << 20 | _unsigned(uimm, 5, "CSR immediate") << 15 | funct3 << 12
                | reg(rd) << 7 | 0b1110011)
    return encode


csrrw, csrrs, csrrc = _csr_op(1), _csr_op(2), _csr_op(3)
csrrwi, csrrsi, csrrci = _csr_imm(5), _csr_imm(6), _csr_imm(7)


def csrr(rd, csr):
    return csrrs(rd, csr, 0)


def csrw(csr, rs1):
    return csrrw(0, csr, rs1)


def custom0(funct7, rd, rs1, rs2, funct3=0):
    """An engine command: ``funct7`` is the command, ``rs1``/``rs2`` its operands, and ``rd``
    (if not x0) receives the engine's answer. ``funct3`` must be 0 on this core; other values
    exist only to test that they trap."""
    return _r(OPCODES["CUSTOM0"], _unsigned(funct3, 3, "funct3"),
              _unsigned(funct7, 7, "funct7"), rd, rs1, rs2)


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


# -- Disassembler --------------------------------------------------------------------------------

def _sext(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _x(n):
    return ABI_NAMES[n]


_OP_NAMES = {(0, 0): "add", (0, 0x20): "sub", (1, 0): "sll", (2, 0): "slt", (3, 0): "sltu",
             (4, 0): "xor", (5, 0): "srl", (5, 0x20): "sra", (6, 0): "or", (7, 0): "and",
             **{(f3, 1): name for f3, name in enumerate(
                 ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"])}}


def disasm(word):
    """Readable text of one instruction word; ``.word 0x...`` for what is not RV32IM."""
    word &= 0xffffffff
    opcode, rd, f3 = word & 0x7f, word >> 7 & 31, word >> 12 & 7
    rs1, rs2, f7 = word >> 15 & 31, word >> 20 & 31, word >> 25
    imm_i = _sext(word >> 20, 12)
    imm_s = _sext((word >> 25) << 5 | rd, 12)
    imm_b = _sext((word >> 31) << 12 | (word >> 7 & 1) << 11 | (word >> 25 & 0x3f) << 5
                  | (word >> 8 & 0xf) << 1, 13)
    imm_j = _sext((word >> 31) << 20 | (word >> 12 & 0xff) << 12 | (word >> 20 & 1) << 11
                  | (word >> 21 & 0x3ff) << 1, 21)
    unknown = f".word 0x{word:08x}"
    if opcode == OPCODES["LUI"]:
        return f"lui {_x(rd)}, 0x{word >> 12:x}"
    if opcode == OPCODES["AUIPC"]:
        return f"auipc {_x(rd)}, 0x{word >> 12:x}"
    if opcode == OPCODES["JAL"]:
        return f"jal {_x(rd)}, {imm_j:+d}"
    if opcode == OPCODES["JALR"] and f3 == 0:
        return f"jalr {_x(rd)}, {imm_i}({_x(rs1)})"
    if opcode == OPCODES["BRANCH"] and f3 not in (2, 3):
        name = ["beq", "bne", "", "", "blt", "bge", "bltu", "bgeu"][f3]
        return f"{name} {_x(rs1)}, {_x(rs2)}, {imm_b:+d}"
    if opcode == OPCODES["LOAD"] and f3 in (0, 1, 2, 4, 5):
        name = ["lb", "lh", "lw", "", "lbu", "lhu"][f3]
        return f"{name} {_x(rd)}, {imm_i}({_x(rs1)})"
    if opcode == OPCODES["STORE"] and f3 in (0, 1, 2):
        return f"{['sb', 'sh', 'sw'][f3]} {_x(rs2)}, {imm_s}({_x(rs1)})"
    if opcode == OPCODES["OP_IMM"]:
        if f3 == 1 and f7 == 0:
            return f"slli {_x(rd)}, {_x(rs1)}, {rs2}"
        if f3 == 5 and f7 in (0, 0x20):
            return f"{'srai' if f7 else 'srli'} {_x(rd)}, {_x(rs1)}, {rs2}"
        if f3 not in (1, 5):
            name = ["addi", "", "slti", "sltiu", "xori", "", "ori", "andi"][f3]
            return f"{name} {_x(rd)}, {_x(rs1)}, {imm_i}"
        return unknown
    if opcode == OPCODES["OP"] and (f3, f7) in _OP_NAMES:
        return f"{_OP_NAMES[f3, f7]} {_x(rd)}, {_x(rs1)}, {_x(rs2)}"
    if opcode == OPCODES["MISC_MEM"] and f3 in (0, 1):
        return "fence" if f3 == 0 else "fence.i"
    if opcode == OPCODES["SYSTEM"]:
        fixed = {0x00000073: "ecall", 0x00100073: "ebreak", 0x30200073: "mret",
                 0x10500073: "wfi"}
        if word in fixed:
            return fixed[word]
        if f3 not in (0, 4):
            name = ["", "csrrw", "csrrs", "csrrc", "", "csrrwi", "csrrsi", "csrrci"][f3]
            csr = word >> 20
            src = str(rs1) if f3 & 4 else _x(rs1)
            return f"{name} {_x(rd)}, {CSR_NAMES.get(csr, hex(csr))}, {src}"
        return unknown
    if opcode == OPCODES["CUSTOM0"]:
        suffix = "" if f3 == 0 else f" (funct3={f3})"
        return f"custom0 {f7}, {_x(rd)}, {_x(rs1)}, {_x(rs2)}{suffix}"
    return unknown
