"""The instruction-set simulator against hand-computed results, instruction by instruction.

The ISS is the reference the RTL core is fuzzed against, so these expectations are written
out by hand from the RISC-V specification (and the core's documented choices), never derived
from the ISS itself.
"""

import pytest

from rvnpu.sim import rv32_asm as asm
from rvnpu.sim.golden.iss import Iss, Memory, Retire, reads_cycle_counter
from rvnpu.spec.rv32 import Cause, misa


M32 = 0xffffffff
DATA = 0x600        # byte address of a scratch data area


def execute(*program, regs=None, data=None, with_m=True, engine=None, steps=None,
            mtvec=0x400):
    """Run ``program`` from address 0 and return ``(iss, records)``."""
    memory = Memory(1024)
    memory.load(0, asm.assemble(*program))
    for addr, word in (data or {}).items():
        memory.load(addr, [word])
    iss = Iss(memory, with_m=with_m, engine=engine)
    iss.mtvec = mtvec
    for index, value in (regs or {}).items():
        iss.x[index] = value & M32
    records = iss.run(len(asm.assemble(*program)) if steps is None else steps)
    return iss, records


def result(insn, **regs):
    """Value written by a single instruction with registers x1.. preset from ``a``, ``b``."""
    preset = {1: regs.get("a", 0), 2: regs.get("b", 0)}
    iss, [record] = execute(insn, regs=preset)
    assert not record.trap
    return iss.x[3]


# -- RV32I computational ------------------------------------------------------------------------

@pytest.mark.parametrize("insn,a,b,want", [
    (asm.add(3, 1, 2), 5, 7, 12),
    (asm.add(3, 1, 2), M32, 1, 0),
    (asm.sub(3, 1, 2), 5, 7, 0xfffffffe),
    (asm.sub(3, 1, 2), 0x80000000, 1, 0x7fffffff),
    (asm.slt(3, 1, 2), 0xffffffff, 1, 1),
    (asm.slt(3, 1, 2), 1, 0xffffffff, 0),
    (asm.slt(3, 1, 2), 0x80000000, 0x7fffffff, 1),
    (asm.sltu(3, 1, 2), 0xffffffff, 1, 0),
    (asm.sltu(3, 1, 2), 1, 0xffffffff, 1),
    (asm.sltu(3, 1, 2), 7, 7, 0),
    (asm.xor(3, 1, 2), 0xff00ff00, 0x0ff00ff0, 0xf0f0f0f0),
    (asm.or_(3, 1, 2), 0xff00ff00, 0x0ff00ff0, 0xfff0fff0),
    (asm.and_(3, 1, 2), 0xff00ff00, 0x0ff00ff0, 0x0f000f00),
    (asm.sll(3, 1, 2), 1, 31, 0x80000000),
    (asm.sll(3, 1, 2), 3, 33, 6),                   # only rs2[4:0] counts
    (asm.srl(3, 1, 2), 0x80000000, 31, 1),
    (asm.srl(3, 1, 2), 0x80000000, 0, 0x80000000),
    (asm.sra(3, 1, 2), 0x80000000, 31, M32),
    (asm.sra(3, 1, 2), 0x80000010, 4, 0xf8000001),
    (asm.sra(3, 1, 2), 0x40000000, 30, 1),
    (asm.addi(3, 1, -1), 0, 0, M32),
    (asm.addi(3, 1, 2047), 1, 0, 2048),
    (asm.addi(3, 1, -2048), 0, 0, 0xfffff800),
    (asm.slti(3, 1, -1), 0xfffffffe, 0, 1),
    (asm.slti(3, 1, -1), 0, 0, 0),
    (asm.sltiu(3, 1, -1), 0xfffffffe, 0, 1),       # immediate sign-extended, then unsigned
    (asm.sltiu(3, 1, 1), 0, 0, 1),
    (asm.xori(3, 1, -1), 0x12345678, 0, 0xedcba987),
    (asm.ori(3, 1, -2048), 0x0000000f, 0, 0xfffff80f),
    (asm.andi(3, 1, 0x7f0), 0xffffffff, 0, 0x7f0),
    (asm.slli(3, 1, 31), 3, 0, 0x80000000),
    (asm.srli(3, 1, 31), 0xffffffff, 0, 1),
    (asm.srai(3, 1, 31), 0x80000000, 0, M32),
    (asm.srai(3, 1, 0), 0x80000000, 0, 0x80000000),
    (asm.lui(3, 0xfffff), 0, 0, 0xfffff000),
    (asm.lui(3, 0x12345), 0, 0, 0x12345000),
])
def test_computational(insn, a, b, want):
    assert result(insn, a=a, b=b) == want


def test_auipc_uses_own_pc():
    iss, records = execute(asm.nop(), asm.auipc(5, 0x1), asm.auipc(6, 0xfffff))
    assert iss.x[5] == 0x1004
    assert iss.x[6] == (8 - 0x1000) & M32


def test_x0_stays_zero():
    iss, records = execute(asm.addi(0, 0, 5), asm.lui(0, 1), asm.lw(0, DATA, 0),
                           asm.jal(0, 4), asm.csrrs(0, "mscratch", 0), asm.add(1, 0, 0),
                           data={DATA: 0x1234})
    assert iss.x[0] == 0 and iss.x[1] == 0
    assert all(r.rd_addr == 0 for r in records[:-1])
    assert (records[-1].rd_addr, records[-1].rd_wdata) == (1, 0)
    assert records[2].mem_rmask == 0b1111          # the load still happens


# -- Jumps and branches -------------------------------------------------------------------------

def test_jal_links_and_jumps():
    iss, records = execute(asm.nop(), asm.jal(1, 12), steps=2)
    assert iss.x[1] == 8 and iss.pc == 16
    assert records[1] == Retire(pc=4, insn=asm.jal(1, 12), rd_addr=1, rd_wdata=8)
    iss, _ = execute(asm.jal(1, -4), steps=1)
    assert iss.pc == 0xfffffffc & M32


@pytest.mark.parametrize("base,imm,target", [(0x100, 1, 0x100), (0x101, 0, 0x100),
                                             (0x0ff, 1, 0x100), (0x200, -0x100, 0x100)])
def test_jalr_targets(base, imm, target):
    iss, [record] = execute(asm.jalr(1, 1, imm), regs={1: base}, steps=1)
    assert not record.trap
    assert iss.pc == target and iss.x[1] == 4


def test_jalr_rd_equals_rs1():
    iss, _ = execute(asm.nop(), asm.jalr(1, 1, 0), regs={1: 0x40}, steps=2)
    assert iss.pc == 0x40 and iss.x[1] == 8


@pytest.mark.parametrize("make,a,b,taken", [
    (asm.beq, 5, 5, True), (asm.beq, 5, 6, False),
    (asm.bne, 5, 6, True), (asm.bne, 5, 5, False),
    (asm.blt, M32, 0, True), (asm.blt, 0, M32, False), (asm.blt, 3, 3, False),
    (asm.bge, 0, M32, True), (asm.bge, 3, 3, True), (asm.bge, M32, 0, False),
    (asm.bltu, 0, M32, True), (asm.bltu, M32, 0, False), (asm.bltu, 3, 3, False),
    (asm.bgeu, M32, 0, True), (asm.bgeu, 3, 3, True), (asm.bgeu, 0, M32, False),
    (asm.blt, 0x80000000, 0x7fffffff, True), (asm.bltu, 0x80000000, 0x7fffffff, False),
])
def test_branches(make, a, b, taken):
    iss, records = execute(asm.nop(), make(1, 2, -4), regs={1: a, 2: b}, steps=2)
    assert iss.pc == (0 if taken else 8)
    assert records[1].rd_addr == 0 and not records[1].trap


# -- Loads and stores ---------------------------------------------------------------------------

WORD = 0x80f17f01   # bytes, low first: 01 7f f1 80


@pytest.mark.parametrize("make,offset,want,mask", [
    (asm.lb, 0, 0x01, 0b0001), (asm.lb, 1, 0x7f, 0b0010), (asm.lb, 2, 0xfffffff1, 0b0100),
    (asm.lb, 3, 0xffffff80, 0b1000),
    (asm.lbu, 2, 0xf1, 0b0100), (asm.lbu, 3, 0x80, 0b1000),
    (asm.lh, 0, 0x7f01, 0b0011), (asm.lh, 2, 0xffff80f1, 0b1100),
    (asm.lhu, 2, 0x80f1, 0b1100),
    (asm.lw, 0, WORD, 0b1111),
])
def test_loads(make, offset, want, mask):
    iss, [record] = execute(make(3, offset, 1), regs={1: DATA}, data={DATA: WORD})
    assert iss.x[3] == want
    assert record == Retire(pc=0, insn=make(3, offset, 1), rd_addr=3, rd_wdata=want,
                            mem_addr=DATA + offset, mem_rmask=mask)


def test_load_negative_offset():
    iss, _ = execute(asm.lw(3, -4, 1), regs={1: DATA + 4}, data={DATA: 0xcafe})
    assert iss.x[3] == 0xcafe


@pytest.mark.parametrize("make,offset,mask,bus_data,after", [
    (asm.sb, 0, 0b0001, 0xefefefef, 0x111111ef),
    (asm.sb, 3, 0b1000, 0xefefefef, 0xef111111),
    (asm.sh, 0, 0b0011, 0xbeefbeef, 0x1111beef),
    (asm.sh, 2, 0b1100, 0xbeefbeef, 0xbeef1111),
    (asm.sw, 0, 0b1111, 0xdeadbeef, 0xdeadbeef),
])
def test_stores(make, offset, mask, bus_data, after):
    iss, [record] = execute(make(2, offset, 1), regs={1: DATA, 2: 0xdeadbeef},
                            data={DATA: 0x11111111})
    assert iss.memory.read(DATA // 4) == after
    assert record == Retire(pc=0, insn=make(2, offset, 1), mem_addr=DATA + offset,
                            mem_wmask=mask, mem_wdata=bus_data)


# -- M extension --------------------------------------------------------------------------------

INT_MIN = 0x80000000


@pytest.mark.parametrize("insn,a,b,want", [
    (asm.mul(3, 1, 2), 7, 6, 42),
    (asm.mul(3, 1, 2), M32, M32, 1),
    (asm.mul(3, 1, 2), 0x10000, 0x10000, 0),
    (asm.mulh(3, 1, 2), M32, M32, 0),                       # -1 * -1 = 1
    (asm.mulh(3, 1, 2), INT_MIN, INT_MIN, 0x40000000),
    (asm.mulh(3, 1, 2), INT_MIN, 1, M32),
    (asm.mulh(3, 1, 2), 0x7fffffff, 0x7fffffff, 0x3fffffff),
    (asm.mulhu(3, 1, 2), M32, M32, 0xfffffffe),
    (asm.mulhu(3, 1, 2), INT_MIN, 2, 1),
    (asm.mulhsu(3, 1, 2), M32, M32, M32),                   # -1 * (2**32 - 1)
    (asm.mulhsu(3, 1, 2), 1, M32, 0),
    (asm.mulhsu(3, 1, 2), INT_MIN, M32, 0x80000000),
    (asm.div(3, 1, 2), 7, 2, 3),
    (asm.div(3, 1, 2), (-7) & M32, 2, (-3) & M32),          # rounds toward zero
    (asm.div(3, 1, 2), 7, (-2) & M32, (-3) & M32),
    (asm.div(3, 1, 2), (-7) & M32, (-2) & M32, 3),
    (asm.div(3, 1, 2), 5, 0, M32),                          # divide by zero
    (asm.div(3, 1, 2), (-5) & M32, 0, M32),
    (asm.div(3, 1, 2), INT_MIN, M32, INT_MIN),              # overflow
    (asm.div(3, 1, 2), INT_MIN, 1, INT_MIN),
    (asm.divu(3, 1, 2), M32, 2, 0x7fffffff),
    (asm.divu(3, 1, 2), 5, 0, M32),
    (asm.divu(3, 1, 2), INT_MIN, M32, 0),
    (asm.rem(3, 1, 2), 7, 2, 1),
    (asm.rem(3, 1, 2), (-7) & M32, 2, M32),                 # sign of the dividend
    (asm.rem(3, 1, 2), 7, (-2) & M32, 1),
    (asm.rem(3, 1, 2), (-7) & M32, (-2) & M32, M32),
    (asm.rem(3, 1, 2), 5, 0, 5),
    (asm.rem(3, 1, 2), (-5) & M32, 0, (-5) & M32),
    (asm.rem(3, 1, 2), INT_MIN, M32, 0),
    (asm.remu(3, 1, 2), M32, 10, 5),
    (asm.remu(3, 1, 2), 5, 0, 5),
    (asm.remu(3, 1, 2), INT_MIN, M32, INT_MIN),
])
def test_m_extension(insn, a, b, want):
    assert result(insn, a=a, b=b) == want


def test_m_extension_is_illegal_without_m():
    iss, [record] = execute(asm.mul(3, 1, 2), regs={1: 2, 2: 3}, with_m=False)
    assert record.trap and iss.mcause == Cause.ILLEGAL_INSTRUCTION and iss.x[3] == 0


# -- Traps --------------------------------------------------------------------------------------

def check_trap(iss, record, cause, tval, pc, mtvec=0x400):
    assert record.trap and record.rd_addr == 0 and not record.mem_wmask | record.mem_rmask
    assert (iss.mcause, iss.mtval, iss.mepc, iss.pc) == (cause, tval, pc, mtvec)


@pytest.mark.parametrize("word", [
    0x00000000, 0xffffffff, 0x00000013 & ~3,                # not 32-bit encodings
    asm.sub(3, 1, 2) | 1 << 26,                             # funct7 0x22
    asm.xor(3, 1, 2) | 1 << 30,                             # funct7 0x20 on xor
    asm.slli(3, 1, 1) | 1 << 30,                            # slli with funct7 0x20
    asm.srli(3, 1, 1) | 1 << 25,
    asm.jalr(1, 1, 0) | 1 << 12,
    asm.beq(1, 2, 8) & ~(7 << 12) | 2 << 12,
    asm.lw(3, 0, 1) | 1 << 12,                              # funct3 3
    asm.lw(3, 0, 1) & ~(7 << 12) | 6 << 12,
    asm.sw(3, 0, 1) | 1 << 12,                              # funct3 3
    asm.sw(3, 0, 1) & ~(7 << 12) | 4 << 12,
    asm.fence() | 2 << 12,
    asm.custom0(1, 0, 1, 2, funct3=1),
    0x00000073 | 4 << 12,                                   # SYSTEM funct3 4
    0x10200073,                                             # sret
    0x00000073 | 1 << 7,                                    # ecall with rd
    0x00100073 | 1 << 15,                                   # ebreak with rs1
    asm.csrr(3, 0x7c0),                                     # unknown CSR
    asm.csrrw(0, "mhartid", 1),                             # write to read-only
    asm.csrrw(0, "cycle", 0),
    asm.csrrsi(3, "instret", 1),
    asm.csrrc(3, "mvendorid", 1),
    0b0101011, 0b1111111,                                   # unused opcodes
])
def test_illegal_instructions(word):
    iss, [_, record] = execute(asm.addi(3, 0, 9), word, regs={1: 4, 2: 5})
    check_trap(iss, record, Cause.ILLEGAL_INSTRUCTION, 0, 4)
    assert iss.x[3] == 9


@pytest.mark.parametrize("make,offset,cause", [
    (asm.lw, 1, Cause.MISALIGNED_LOAD), (asm.lw, 2, Cause.MISALIGNED_LOAD),
    (asm.lh, 3, Cause.MISALIGNED_LOAD), (asm.lhu, 1, Cause.MISALIGNED_LOAD),
    (asm.sw, 3, Cause.MISALIGNED_STORE), (asm.sh, 1, Cause.MISALIGNED_STORE),
])
def test_misaligned_data(make, offset, cause):
    iss, [record] = execute(make(3, offset, 1), regs={1: DATA, 3: 0x77},
                            data={DATA: 0x55555555})
    check_trap(iss, record, cause, DATA + offset, 0)
    assert iss.memory.read(DATA // 4) == 0x55555555 and iss.x[3] == 0x77


def test_misaligned_byte_accesses_are_fine():
    iss, records = execute(asm.lb(3, 3, 1), asm.sb(3, 1, 1), regs={1: DATA},
                           data={DATA: 0xff000000})
    assert not any(r.trap for r in records)


@pytest.mark.parametrize("insn,regs,target", [
    (asm.jal(1, 6), {}, 6 + 4),
    (asm.jalr(1, 2, 2), {2: 0x100}, 0x102),
    (asm.jalr(1, 2, 0), {2: 0x103}, 0x102),
    (asm.beq(0, 0, 2), {}, 2 + 4),
])
def test_misaligned_jumps(insn, regs, target):
    iss, [_, record] = execute(asm.nop(), insn, regs=regs)
    check_trap(iss, record, Cause.MISALIGNED_FETCH, target, 4)
    assert iss.x[1] == 0


def test_misaligned_branch_not_taken_is_fine():
    iss, records = execute(asm.bne(0, 0, 2), steps=1)
    assert not records[0].trap and iss.pc == 4


@pytest.mark.parametrize("word,cause", [(asm.ecall(), Cause.ECALL_M),
                                        (asm.ebreak(), Cause.BREAKPOINT)])
def test_ecall_ebreak(word, cause):
    iss, [_, record] = execute(asm.nop(), word)
    check_trap(iss, record, cause, 0, 4)
    assert iss.minstret == 1                                # traps do not retire


def test_trap_and_mret():
    handler = 0x40
    program = [asm.addi(1, 0, handler), asm.csrw("mtvec", 1), asm.addi(2, 0, 8),
               asm.csrw("mstatus", 2), asm.ecall()]
    program += [asm.nop()] * (handler // 4 - len(program))
    program += [asm.csrr(5, "mepc"), asm.addi(5, 5, 4), asm.csrw("mepc", 5),
                asm.csrr(6, "mstatus"), asm.csrr(7, "mcause"), asm.mret()]
    iss, records = execute(*program, steps=5 + 6)
    assert records[4].trap
    assert iss.x[6] == 0x80 | 0x1800                      # MPIE = old MIE, MIE = 0, MPP = 3
    assert iss.x[7] == Cause.ECALL_M
    assert iss.pc == 0x14                                 # back after the ecall
    assert iss.mstatus_mie == 1 and iss.mstatus_mpie == 1


# -- CSRs ---------------------------------------------------------------------------------------

def test_csr_read_write_set_clear():
    iss, _ = execute(
        asm.addi(1, 0, 0x0f0),
        asm.csrrw(2, "mscratch", 1),        # x2 = 0, mscratch = 0xf0
        asm.addi(1, 0, 0x00f),
        asm.csrrs(3, "mscratch", 1),        # x3 = 0xf0, mscratch = 0xff
        asm.addi(1, 0, 0x030),
        asm.csrrc(4, "mscratch", 1),        # x4 = 0xff, mscratch = 0xcf
        asm.csrrwi(5, "mscratch", 0x1f),    # x5 = 0xcf, mscratch = 0x1f
        asm.csrrsi(6, "mscratch", 0x0),     # x6 = 0x1f, no write
        asm.csrrci(7, "mscratch", 0x3),     # x7 = 0x1f, mscratch = 0x1c
        asm.csrrsi(8, "mscratch", 0x1),     # x8 = 0x1c, mscratch = 0x1d
        asm.csrr(9, "mscratch"),
    )
    assert iss.x[2:10] == [0, 0xf0, 0xff, 0xcf, 0x1f, 0x1f, 0x1c, 0x1d]
    assert iss.mscratch == 0x1d


def test_csr_source_is_old_rs1_when_rd_equals_rs1():
    iss, _ = execute(asm.addi(1, 0, 5), asm.csrrw(1, "mscratch", 1), asm.csrr(2, "mscratch"))
    assert iss.x[1] == 0 and iss.x[2] == 5


def test_csr_warl_fields():
    iss, _ = execute(*asm.li(1, 0xffffffff), asm.csrw("mtvec", 1), asm.csrw("mepc", 1),
                     asm.csrw("mcause", 1), asm.csrw("mtval", 1), asm.csrw("mstatus", 1),
                     asm.csrw("misa", 1), asm.csrw("mie", 1), asm.csrw("mip", 1),
                     asm.csrr(2, "mtvec"), asm.csrr(3, "mepc"), asm.csrr(4, "mcause"),
                     asm.csrr(5, "mtval"), asm.csrr(6, "mstatus"), asm.csrr(7, "misa"),
                     asm.csrr(8, "mie"), asm.csrr(9, "mip"))
    # mie keeps MEIE and MTIE; mip is the (low) lines and ignores writes.
    assert iss.x[2:10] == [0xfffffffc, 0xfffffffc, M32, M32, 0x1888, 0x40001100, 0x880, 0]


@pytest.mark.parametrize("with_m,value", [(True, 0x40001100), (False, 0x40000100)])
def test_misa(with_m, value):
    assert misa(with_m) == value
    iss, _ = execute(asm.csrr(1, "misa"), with_m=with_m)
    assert iss.x[1] == value


@pytest.mark.parametrize("name", ["mvendorid", "marchid", "mimpid", "mhartid"])
def test_id_csrs_read_zero(name):
    iss, [record] = execute(asm.csrrs(1, name, 0), regs={1: 7})
    assert not record.trap and iss.x[1] == 0


def test_minstret_counts_retired_instructions():
    iss, _ = execute(asm.nop(), asm.ecall(), steps=2)      # one retired, one trapped
    iss.memory.load(0x400, [asm.csrr(1, "minstret"), asm.csrr(2, "instret"),
                            asm.csrr(3, "minstreth"), asm.csrr(4, "instreth")])
    for _ in range(4):
        iss.step()
    assert iss.x[1:5] == [1, 2, 0, 0]


def test_minstret_writes_replace_the_increment():
    iss, _ = execute(*asm.li(1, 0xffffffff), asm.csrw("minstret", 1),
                     asm.csrr(2, "minstret"), asm.csrr(3, "minstreth"),
                     asm.csrw("minstreth", 0), asm.csrr(4, "minstreth"),
                     asm.csrr(5, "minstret"))
    # Zicsr: the write is done instead of the increment. li is one addi; minstret =
    # 0xffffffff after the csrw, the csrr sees it, and its own increment carries into
    # minstreth (1); writing minstreth leaves minstret (1) alone; the csrr after it adds 1.
    assert iss.x[2:6] == [M32, 1, 0, 2]


def test_minstreth_write_suppresses_the_increment_of_both_halves():
    iss, _ = execute(asm.csrw("minstret", 1), asm.csrw("minstreth", 1), asm.nop(),
                     asm.csrr(2, "minstret"), asm.csrr(3, "minstreth"), regs={1: M32})
    assert iss.x[2:4] == [0, 0]


def test_mcycle_increases_and_is_writable():
    iss, records = execute(asm.csrr(1, "mcycle"), asm.nop(), asm.csrr(2, "cycle"),
                           asm.csrr(3, "mcycleh"), asm.csrrw(0, "mcycleh", 1))
    assert iss.x[2] > iss.x[1] and iss.x[3] == 0
    assert iss.mcycle >> 32 == iss.x[1]
    assert reads_cycle_counter(records[0].insn) and not reads_cycle_counter(records[4].insn)


def test_fences_are_nops():
    iss, records = execute(asm.fence(), asm.fence_i(), asm.fence(0, 0) | 0xf8f80)
    assert not any(r.trap for r in records) and iss.pc == 12
    assert all(r.rd_addr == 0 for r in records)


# -- Interrupts ---------------------------------------------------------------------------------

MEIE, MTIE = 1 << 11, 1 << 7        # and MEIP, MTIP; written out from the privileged spec


def interrupt_iss(*program, mie=MEIE | MTIE, mstatus_mie=1):
    memory = Memory(1024)
    memory.load(0, asm.assemble(*program))
    iss = Iss(memory)
    iss.mtvec, iss.mie, iss.mstatus_mie = 0x400, mie, mstatus_mie
    return iss


def test_interrupt_is_taken_before_the_instruction():
    iss = interrupt_iss(asm.addi(1, 0, 1), asm.addi(2, 0, 2))
    assert not iss.step().trap
    iss.irq_timer = 1
    record = iss.step()
    assert record == Retire(pc=4, insn=asm.addi(2, 0, 2), trap=True, interrupt=True)
    assert (iss.pc, iss.mepc, iss.mcause, iss.mtval) == (0x400, 4, 0x80000007, 0)
    assert (iss.mstatus_mie, iss.mstatus_mpie, iss.x[2], iss.minstret) == (0, 1, 0, 1)


def test_external_interrupt_before_timer():
    iss = interrupt_iss(asm.nop())
    iss.irq_timer = iss.irq_external = 1
    assert iss.step().interrupt and iss.mcause == 0x8000000B


@pytest.mark.parametrize("mie,mstatus_mie", [(0, 1), (MTIE, 1), (MEIE | MTIE, 0)])
def test_masked_interrupts_are_not_taken(mie, mstatus_mie):
    iss = interrupt_iss(asm.csrr(1, "mip"), asm.csrr(2, "mie"), mie=mie,
                        mstatus_mie=mstatus_mie)
    iss.irq_external = 1
    records = iss.run(2)
    assert not any(r.trap for r in records) and iss.x[1:3] == [MEIE, mie]


def test_mret_reenables_and_takes_a_pending_interrupt_at_once():
    iss = interrupt_iss(asm.nop(), mstatus_mie=0)
    iss.memory.load(0x400, [asm.mret()])
    iss.mepc, iss.mstatus_mpie, iss.pc, iss.irq_external = 0x40, 1, 0x400, 1
    assert not iss.step().trap and iss.pc == 0x40 and iss.mstatus_mie == 1
    assert iss.step() == Retire(pc=0x40, insn=0, trap=True, interrupt=True)
    assert iss.mepc == 0x40


@pytest.mark.parametrize("mstatus_mie", [0, 1])
def test_wfi_waits_until_an_enabled_interrupt_is_pending(mstatus_mie):
    iss = interrupt_iss(asm.wfi(), asm.addi(1, 0, 1), mie=MTIE, mstatus_mie=mstatus_mie)
    assert iss.run(3) == [None] * 3 and iss.waiting and iss.pc == 0
    iss.irq_external = 1                                    # not enabled in mie
    assert iss.step() is None
    iss.irq_timer = 1
    assert iss.step() == Retire(pc=0, insn=asm.wfi())      # wakes: the wfi retires
    assert not iss.waiting and iss.minstret == 1
    record = iss.step()
    if mstatus_mie:         # taken before the next instruction, which it returns to
        assert record.interrupt and iss.mepc == 4 and iss.mcause == 0x80000007
    else:
        assert not record.trap and iss.x[1] == 1


def test_wfi_with_an_interrupt_pending_does_not_wait():
    iss = interrupt_iss(asm.wfi(), mie=MEIE, mstatus_mie=0)
    iss.irq_external = 1
    assert iss.step() == Retire(pc=0, insn=asm.wfi()) and iss.pc == 4


# -- Custom-0 -----------------------------------------------------------------------------------

def test_custom0_commands():
    calls = []

    def engine(funct, op1, op2, wants_answer):
        calls.append((funct, op1, op2, wants_answer))
        return 0xabc if wants_answer else None

    iss, records = execute(asm.custom0(5, 0, 1, 2), asm.custom0(127, 3, 2, 1),
                           regs={1: 0x11, 2: M32}, engine=engine)
    assert calls == [(5, 0x11, M32, False), (127, M32, 0x11, True)]
    assert iss.x[3] == 0xabc
    assert records[0].rd_addr == 0 and records[1] == Retire(
        pc=4, insn=asm.custom0(127, 3, 2, 1), rd_addr=3, rd_wdata=0xabc)


# -- The helpers themselves ---------------------------------------------------------------------

def test_retire_matching_ignores_meaningless_fields():
    a = Retire(pc=0, insn=asm.nop(), rd_addr=0, rd_wdata=5, mem_addr=9, mem_wdata=3)
    assert a.matches(Retire(pc=0, insn=asm.nop()))
    assert not a.matches(Retire(pc=4, insn=asm.nop()))
    read = asm.csrr(1, "cycle")
    assert Retire(pc=0, insn=read, rd_addr=1, rd_wdata=5).matches(
        Retire(pc=0, insn=read, rd_addr=1, rd_wdata=6))


def test_assembler_round_trip():
    assert asm.addi(1, 2, -1) == 0xfff10093
    assert asm.lw(5, 8, 2) == 0x00812283
    assert asm.sw(5, 8, 2) == 0x00512423
    assert asm.beq(1, 2, -8) == 0xfe208ce3
    assert asm.jal(1, 2048) == 0x001000ef
    assert asm.disasm(asm.sw(5, 8, 2)) == "sw t0, 8(sp)"
    assert asm.disasm(asm.csrrs(3, "mstatus", 0)) == "csrrs gp, mstatus, zero"
    with pytest.raises(ValueError):
        asm.addi(1, 2, 2048)
