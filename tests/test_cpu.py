"""The RTL core against the ISS, retired instruction by retired instruction.

The core runs on Amaranth's simulator with a Python memory (answering the cycle after a
request, or after random wait states) and a fake engine (random ``cmd.ready`` stalls and answer
delays). Every record on the core's ``retire`` port is compared with the record of
:class:`~rvnpu.sim.golden.iss.Iss` stepping the same program; reads of ``mcycle``/``cycle``
are the only values not compared (the ISS adopts the core's value so the runs stay in step).

- directed programs cover every instruction, operand corner, trap and CSR;
- the lockstep fuzz runs random instruction streams (fixed seeds) with loads and stores to a
  data region, branches and jumps to aligned and misaligned targets, CSR accesses, M
  operations and engine commands, and reports the seed and the first differing instruction;
- interrupts: the bench drives the core's interrupt lines, changing them only right after a
  retire (so they are constant from one instruction boundary to the next) and, while the core
  sleeps in WFI, raising them to wake it. It records the lines after every retire and those
  each record retired with; the ISS gets the same lines at the same boundaries, so whether
  and where an interrupt is taken is compared exactly, by the spec's rule in the ISS;
- the CPI test checks the table in :class:`~rvnpu.hdl.core.cpu.RiscvCore`'s docstring, exactly.
"""

import collections
import random

import pytest

from rvnpu.sim import rv32_asm as asm
from rvnpu.sim import lockstep as harness
from rvnpu.sim.golden.iss import Retire
from rvnpu.sim.lockstep import (DATA, EDGES, HALT, ILLEGAL_WORDS, M32, MEIE, MTIE,
                                LockstepMismatch, RtlRun, answers, program, random_program,
                                run_iss, with_mtvec)
from rvnpu.spec.rv32 import MCAUSE_INTERRUPT


def lockstep(image, *, seed=None, **options):
    """:func:`rvnpu.sim.lockstep.lockstep`, failing the test at the first difference."""
    try:
        return harness.lockstep(image, seed=seed, **options)
    except LockstepMismatch as error:
        pytest.fail(str(error))


# -- Directed tests ------------------------------------------------------------------------------

def li_pair(a, b):
    return [*asm.li(1, a), *asm.li(2, b)]


@pytest.mark.parametrize("shifter", ["serial", "barrel"])
def test_register_register_ops(shifter):
    ops = [asm.add, asm.sub, asm.sll, asm.slt, asm.sltu, asm.xor, asm.srl, asm.sra, asm.or_,
           asm.and_]
    rng = random.Random(1)
    pairs = [(a, b) for a in EDGES for b in EDGES if rng.random() < 0.3]
    words = []
    for a, b in pairs:
        words += li_pair(a, b) + [op(3 + i, 1, 2) for i, op in enumerate(ops)]
    words += [asm.add(0, 1, 2), asm.sub(4, 4, 4), asm.add(5, 5, 5)]     # x0, rd = rs1 = rs2
    lockstep(program(*words), shifter=shifter)


@pytest.mark.parametrize("shifter", ["serial", "barrel"])
def test_immediate_ops(shifter):
    imms = [0, 1, -1, 5, 31, 2047, -2048, 0x555, -0x556]
    words = []
    for a in EDGES[::2]:
        words += asm.li(1, a)
        for imm in imms:
            words += [asm.addi(3, 1, imm), asm.slti(4, 1, imm), asm.sltiu(5, 1, imm),
                      asm.xori(6, 1, imm), asm.ori(7, 1, imm), asm.andi(8, 1, imm)]
        for shamt in (0, 1, 7, 16, 31):
            words += [asm.slli(9, 1, shamt), asm.srli(10, 1, shamt), asm.srai(11, 1, shamt)]
    words += [asm.lui(12, 0xfffff), asm.lui(13, 0x80000), asm.lui(14, 1), asm.auipc(15, 0),
              asm.auipc(16, 0xfffff), asm.addi(0, 0, 1), asm.lui(0, 5)]
    lockstep(program(*words), shifter=shifter)


def test_m_extension():
    ops = [asm.mul, asm.mulh, asm.mulhsu, asm.mulhu, asm.div, asm.divu, asm.rem, asm.remu]
    values = [0, 1, 3, 7, 0x7fffffff, 0x80000000, M32, M32 - 6, 0x12345678, 0xfedcba98]
    rng = random.Random(2)
    words = []
    for a in values:
        for b in values:
            if rng.random() < 0.35 or b in (0, M32) and a in (0x80000000, 7):
                words += li_pair(a, b) + [op(3 + i, 1, 2) for i, op in enumerate(ops)]
    words += [asm.mul(1, 1, 1), asm.div(0, 1, 2)]
    rtl, _ = lockstep(program(*words))
    assert sum(1 for r in rtl.records if r.insn >> 25 == 1 and r.insn & 0x7f == 0x33) > 200


def test_m_extension_absent():
    words = with_mtvec(*asm.li(1, 6), *asm.li(2, 7), asm.mul(3, 1, 2), asm.divu(4, 1, 2),
                       asm.csrr(5, "misa"))
    rtl, _ = lockstep(program(*words), with_m=False)
    assert sum(r.trap for r in rtl.records) == 2


def test_loads_and_stores():
    words = [*asm.li(1, DATA), *asm.li(2, 0x80f17f01), asm.sw(2, 0, 1), asm.sw(2, 4, 1)]
    for make in (asm.lb, asm.lbu, asm.lh, asm.lhu, asm.lw):
        step = {asm.lh: 2, asm.lhu: 2, asm.lw: 4}.get(make, 1)
        words += [make(3, offset, 1) for offset in range(0, 8, step)]
    words += [*asm.li(4, 0xa5b6c7d8)]
    for make, step in ((asm.sb, 1), (asm.sh, 2), (asm.sw, 4)):
        for offset in range(8, 16, step):
            words += [make(4, offset, 1), asm.lw(5, offset & ~3, 1), asm.addi(4, 4, 0x123)]
    words += [*asm.li(6, DATA + 2048), asm.lw(7, -2048, 6), asm.sw(7, 2047 & ~3, 6),
              asm.lw(8, 2044, 6), asm.lw(0, 0, 1)]
    lockstep(program(*words))


def test_jumps_and_branches():
    branches = [asm.beq, asm.bne, asm.blt, asm.bge, asm.bltu, asm.bgeu]
    words = []
    for a, b in [(5, 5), (5, 6), (M32, 0), (0, M32), (0x80000000, 0x7fffffff)]:
        words += li_pair(a, b)
        for make in branches:
            # Taken: skip the addi. Not taken: run it.
            words += [make(1, 2, 8), asm.addi(3, 3, 1)]
    words += [asm.jal(4, 8), asm.addi(3, 3, 100), asm.auipc(5, 0), asm.jalr(6, 5, 13),
              asm.addi(3, 3, 100), asm.auipc(7, 0), asm.addi(7, 7, 12), asm.jalr(7, 7, 0),
              asm.addi(3, 3, 100), asm.jal(0, 8), asm.addi(3, 3, 100),
              asm.beq(0, 0, 8), asm.addi(3, 3, 100), asm.bne(0, 0, 8), asm.addi(3, 3, 1),
              asm.jal(8, 8), asm.jal(0, 8), asm.jal(0, -4)]
    lockstep(program(*words))


def test_traps():
    words = with_mtvec(*asm.li(1, DATA), *asm.li(2, 0x55), *asm.li(8, 8), asm.csrw("mstatus", 8))
    words += ILLEGAL_WORDS
    words += [asm.lw(3, 1, 1), asm.lw(3, 2, 1), asm.lw(3, 3, 1), asm.lh(3, 1, 1),
              asm.lhu(3, 3, 1), asm.lh(3, 2, 1), asm.lb(3, 3, 1),
              asm.sw(2, 1, 1), asm.sw(2, 2, 1), asm.sh(2, 3, 1), asm.sh(2, 2, 1),
              asm.sb(2, 1, 1), asm.lw(3, 0, 1),
              *asm.li(7, MEIE | MTIE), asm.csrw("mie", 7),
              asm.ecall(), asm.ebreak(), asm.wfi(), asm.fence(), asm.fence_i(),
              asm.jal(5, 6), asm.auipc(6, 0), asm.jalr(5, 6, 2), asm.jalr(5, 6, 3),
              asm.beq(0, 0, 2), asm.bne(0, 0, 2), asm.blt(0, 8, 6), asm.bge(0, 8, 6)]
    rtl, _ = lockstep(program(*words))
    traps = [r for r in rtl.records if r.trap]
    assert len(traps) == len(ILLEGAL_WORDS) + 8 + 2 + 5     # data, ecall/ebreak, jumps


def test_csrs():
    words = with_mtvec(
        *asm.li(1, 0x0f0), asm.csrrw(2, "mscratch", 1), *asm.li(1, 0x00f),
        asm.csrrs(3, "mscratch", 1), *asm.li(1, 0x030), asm.csrrc(4, "mscratch", 1),
        asm.csrrwi(5, "mscratch", 0x1f), asm.csrrsi(6, "mscratch", 0), asm.csrrci(7, "mscratch", 3),
        asm.csrrsi(8, "mscratch", 1), asm.csrr(9, "mscratch"), asm.csrrw(9, "mscratch", 9),
        *asm.li(1, M32))
    for name in ("mtvec", "mepc", "mcause", "mtval", "mstatus", "misa", "mie", "mip",
                 "mscratch"):
        words += [asm.csrrw(10, name, 1), asm.csrr(11, name), asm.csrrc(12, name, 1),
                  asm.csrrs(13, name, 0), asm.csrrw(14, name, 0)]
    words += [asm.csrw("mtvec", 31)]
    for name in ("mvendorid", "marchid", "mimpid", "mhartid", "misa", "minstret", "instret",
                 "minstreth", "instreth", "cycle", "mcycle", "cycleh", "mcycleh"):
        words += [asm.csrr(15, name), asm.csrrs(16, name, 0), asm.csrrci(17, name, 0)]
    words += [*asm.li(1, M32), asm.csrw("minstret", 1), asm.csrr(18, "minstret"),
              asm.csrr(19, "minstreth"), asm.csrw("minstreth", 0), asm.csrr(20, "minstreth"),
              asm.csrr(21, "instret"), asm.csrrs(22, "minstret", 1), asm.csrr(23, "minstret"),
              asm.csrrwi(0, "mcycleh", 1), asm.csrr(24, "mcycleh"), asm.csrr(25, "cycleh"),
              asm.csrw("mcycle", 0), asm.csrr(26, "mcycle")]
    words += [asm.csrr(2, "mcycle"), asm.nop(), asm.csrr(3, "cycle"), asm.nop(),
              asm.csrr(4, "mcycle")]
    rtl, _ = lockstep(program(*words))
    assert not any(r.trap for r in rtl.records)
    by_insn = {}
    for r in rtl.records:
        by_insn[r.insn] = r.rd_wdata
    assert by_insn[asm.csrr(24, "mcycleh")] == 1 and by_insn[asm.csrr(25, "cycleh")] == 1
    assert by_insn[asm.csrr(26, "mcycle")] < 10
    counts = [by_insn[asm.csrr(2, "mcycle")], by_insn[asm.csrr(3, "cycle")],
              by_insn[asm.csrr(4, "mcycle")]]
    assert counts[0] < counts[1] < counts[2]


def test_mret_and_mstatus():
    handler = [asm.csrr(26, "mcause"), asm.csrr(24, "mstatus"), asm.csrr(25, "mepc"),
               asm.addi(25, 25, 4), asm.csrw("mepc", 25), asm.csrrsi(0, "mstatus", 8),
               asm.mret()]
    words = with_mtvec(asm.csrr(1, "mstatus"), asm.csrrsi(0, "mstatus", 8), asm.ecall(),
                       asm.csrr(2, "mstatus"), asm.csrrci(0, "mstatus", 8), asm.ebreak(),
                       asm.csrr(3, "mstatus"), *asm.li(4, 0x5c), asm.csrw("mepc", 4), asm.mret(),
                       asm.addi(5, 0, 1), asm.nop(), asm.nop(), asm.nop())
    lockstep(program(*words, handler=handler))


def test_x0_is_never_written():
    words = [asm.addi(0, 0, 5), asm.lui(0, 1), *asm.li(1, DATA), asm.sw(1, 0, 1),
             asm.lw(0, 0, 1), asm.jal(0, 4), asm.csrrs(0, "mscratch", 0), asm.add(2, 0, 0),
             asm.custom0(3, 0, 1, 1), asm.mul(0, 1, 1), asm.slli(0, 1, 3), asm.add(3, 0, 0)]
    rtl, _ = lockstep(program(*words))
    assert rtl.records[-2].rd_addr == 3 and rtl.records[-2].rd_wdata == 0


def test_custom0_commands_with_back_pressure():
    words = [*asm.li(1, 0x1234), *asm.li(2, 0x80000000)]
    for funct in range(0, 128, 9):
        words += [asm.custom0(funct, 3 if answers(funct) else 0, 1, 2), asm.add(1, 1, 3)]
    for seed in (0, 1):
        rtl, _ = lockstep(program(*words), seed=seed, cmd_stall=0.6, rsp_delay=5, mem_wait=2)
        sent = [funct for funct, _, _ in rtl.commands]
        assert sent == list(range(0, 128, 9))


# -- Interrupts ----------------------------------------------------------------------------------

# Records mcause (x26) and mepc (x25), masks the interrupt taken in mie (the lines stay high),
# and returns to the interrupted instruction.
IRQ_HANDLER = [asm.csrr(26, "mcause"), asm.csrr(25, "mepc"), asm.andi(27, 26, 31),
               asm.addi(24, 0, 1), asm.sll(24, 24, 27), asm.csrc("mie", 24), asm.mret()]


def interrupts_taken(rtl):
    """``(pc, mcause)`` of each interrupt, mcause read back by IRQ_HANDLER."""
    causes = [r.rd_wdata for r in rtl.records if r.insn == asm.csrr(26, "mcause")]
    return list(zip([r.pc for r in rtl.records if r.interrupt], causes, strict=True))


def test_interrupt_priority_masking_and_mstatus_mie():
    """Lines high throughout: nothing is taken until mie and mstatus.MIE both allow it, then
    external before timer, again after MRET (MPIE), and again after MIE is cleared and set."""
    first, second = asm.addi(9, 0, 2), asm.addi(7, 0, 7)
    words = with_mtvec(*asm.li(1, MEIE | MTIE), asm.csrr(2, "mip"), asm.csrrw(3, "mie", 1),
                       asm.csrr(4, "mie"), asm.addi(8, 0, 1), asm.csrrsi(5, "mstatus", 8),
                       first, asm.addi(10, 0, 3), asm.csrrci(6, "mstatus", 8),
                       asm.csrw("mie", 1), asm.addi(11, 0, 4), asm.csrrsi(0, "mstatus", 8),
                       second)
    image = program(*words, handler=IRQ_HANDLER)
    rtl, iss = lockstep(image, irq_rate=1.0, irq_hold=1.0)
    at = lambda word: 4 * words.index(word)                    # noqa: E731
    assert interrupts_taken(rtl) == [
        (at(first), MCAUSE_INTERRUPT | 11),     # after csrrsi mstatus, external first,
        (at(first), MCAUSE_INTERRUPT | 7),      # then right after MRET (MPIE) the timer
        (at(second), MCAUSE_INTERRUPT | 11),    # MIE cleared, mie restored, MIE set again
        (at(second), MCAUSE_INTERRUPT | 7)]
    assert iss.x[2] == MEIE | MTIE and iss.x[4] == MEIE | MTIE
    assert iss.x[7:12] == [7, 1, 2, 3, 4] and iss.x[5] == 0x1800 and iss.x[6] == 0x1888


@pytest.mark.parametrize("mie_set", [False, True])
def test_wfi_wakes_with_or_without_mstatus_mie(mie_set):
    """WFI waits (``sleeping``) until ``mie & mip``; then with MIE the interrupt is taken
    before the next instruction (mepc = WFI + 4), without it that instruction runs."""
    setup = [*asm.li(1, MTIE), asm.csrw("mie", 1)]
    if mie_set:
        setup.append(asm.csrrsi(0, "mstatus", 8))
    words = with_mtvec(*setup, asm.nop(), asm.wfi(), asm.addi(5, 0, 5))
    wfi_pc = 4 * (len(words) - 2)
    for seed in range(3):
        rtl, iss = lockstep(program(*words, handler=IRQ_HANDLER), seed=seed, irq_hold=1.0,
                            wake_delay=6, mem_wait=seed)
        index = next(i for i, r in enumerate(rtl.records) if r.pc == wfi_pc)
        assert not rtl.records[index].trap and rtl.records[index].insn == asm.wfi()
        assert rtl.sleep_cycles > 0 and rtl.retire_lines[index][1] == 1
        after = rtl.records[index + 1]
        assert after.pc == wfi_pc + 4 and after.interrupt == mie_set
        assert interrupts_taken(rtl) == ([(wfi_pc + 4, MCAUSE_INTERRUPT | 7)] if mie_set
                                         else [])
        assert iss.x[5] == 5


def test_wfi_does_not_sleep_with_an_interrupt_pending():
    words = with_mtvec(*asm.li(1, MEIE), asm.csrw("mie", 1), asm.wfi(), asm.wfi())
    rtl, _ = lockstep(program(*words), irq_rate=1.0, irq_hold=1.0)
    assert rtl.sleep_cycles == 0 and not any(r.interrupt for r in rtl.records)


def test_lockstep_would_see_an_interrupt_taken_a_boundary_late():
    """The ISS, given the lines one boundary late, disagrees with the RTL: the comparison is
    exact about where an interrupt is taken."""
    words = with_mtvec(*asm.li(1, MEIE), asm.csrw("mie", 1), asm.csrrsi(0, "mstatus", 8),
                       *[asm.addi(2, 2, 1)] * 8)
    image = program(*words, handler=IRQ_HANDLER)
    rtl = RtlRun(image, seed=3, irq_rate=0.3, irq_hold=0.0).run()
    assert any(r.interrupt for r in rtl.records)
    _, same = run_iss(image, len(rtl.records), rtl=rtl)
    assert all(a.matches(b) for a, b in zip(rtl.records, same))
    rtl.lines_after = [(0, 0)] + rtl.lines_after[:-1]
    _, late = run_iss(image, len(rtl.records), rtl=rtl)
    assert not all(a.matches(b) for a, b in zip(rtl.records, late))


def test_minstret_write_replaces_the_increment():
    """Zicsr: a write to either half of minstret is done instead of the instruction's own
    increment, so the next instruction reads the value written."""
    words = [asm.addi(1, 0, -1), asm.csrw("minstret", 1), asm.csrw("minstreth", 1), asm.nop(),
             asm.csrr(2, "minstret"), asm.csrr(3, "minstreth"),
             asm.csrw("minstret", 1), asm.csrr(4, "minstret"), asm.csrr(5, "minstreth")]
    rtl, iss = lockstep(program(*words))
    assert iss.x[2:6] == [0, 0, M32, 1]


# -- Lockstep fuzz -------------------------------------------------------------------------------

FUZZ = [  # (seed, instructions, memory wait states, cmd stall chance, answer delay)
    (100, 500, 0, 0.0, 1),
    (101, 500, 0, 0.3, 3),
    (102, 500, 2, 0.5, 6),
    (103, 500, 1, 0.2, 2),
    (104, 500, 0, 0.0, 1),
    (105, 500, 3, 0.7, 4),
]


@pytest.mark.parametrize("seed,length,mem_wait,cmd_stall,rsp_delay", FUZZ,
                         ids=[f"seed{f[0]}" for f in FUZZ])
def test_lockstep_fuzz(seed, length, mem_wait, cmd_stall, rsp_delay):
    image = random_program(seed, length)
    rtl, iss = lockstep(image, seed=seed, mem_wait=mem_wait, cmd_stall=cmd_stall,
                        rsp_delay=rsp_delay, max_instructions=2 * length)
    kinds = collections.Counter(r.insn & 0x7f for r in rtl.records)
    assert len(rtl.records) > length // 2
    assert sum(r.trap for r in rtl.records) > 5
    assert kinds[0b0001011] > 3 and kinds[0b0000011] > 10 and kinds[0b0100011] > 10


@pytest.mark.parametrize("seed", [110, 111])
def test_lockstep_fuzz_barrel_shifter(seed):
    """The barrel shifter retires what the ISS does, with wait states and a stalling engine."""
    image = random_program(seed, 500)
    rtl, _ = lockstep(image, seed=seed, shifter="barrel", mem_wait=seed - 110, cmd_stall=0.3,
                      rsp_delay=3, max_instructions=1000)
    shifts = [r for r in rtl.records
              if r.insn & 0x5f == 0x13 and r.insn >> 12 & 3 == 1 and r.insn >> 25 != 1]
    assert len(rtl.records) > 250 and len(shifts) > 10


@pytest.mark.parametrize("seed", [120, 121, 122])
def test_lockstep_fuzz_memory_stage(seed):
    """The core with its memory stage retires what the ISS does, loads and stores taking
    their address from a register, with wait states, a stalling engine and interrupts."""
    image = random_program(seed, 500)
    rtl, _ = lockstep(image, seed=seed, memory_stage=True, shifter=("serial", "barrel")[seed % 2],
                      mem_wait=seed - 120, cmd_stall=0.3, rsp_delay=2, irq_rate=0.05,
                      irq_hold=0.5, max_instructions=1000)
    accesses = [r for r in rtl.records if r.mem_wmask or r.mem_rmask]
    assert len(rtl.records) > 250 and len(accesses) > 30


IRQ_FUZZ = [  # (seed, instructions, memory wait states, line rise chance, line hold chance)
    (200, 500, 0, 0.05, 0.5),
    (201, 500, 2, 0.10, 0.7),
    (202, 500, 1, 0.02, 0.9),
    (203, 500, 0, 0.20, 0.3),
]


@pytest.mark.parametrize("seed,length,mem_wait,irq_rate,irq_hold", IRQ_FUZZ,
                         ids=[f"seed{f[0]}" for f in IRQ_FUZZ])
def test_lockstep_fuzz_with_interrupts(seed, length, mem_wait, irq_rate, irq_hold):
    image = random_program(seed, length, interrupts=True)
    rtl, _ = lockstep(image, seed=seed, mem_wait=mem_wait, cmd_stall=0.3, rsp_delay=3,
                      irq_rate=irq_rate, irq_hold=irq_hold, max_instructions=3 * length)
    taken = [r for r in rtl.records if r.interrupt]
    # Interrupts were taken, and lines were also high where none could be (MIE clear or
    # masked), which the ISS must agree on.
    assert len(taken) > 3
    assert sum(any(lines) for lines in rtl.retire_lines) > 2 * len(taken)


def test_fuzz_detects_a_difference():
    """The comparison can fail: a wrong ISS answer is reported with seed and instruction."""
    image = program(*asm.li(1, 5), asm.addi(2, 1, 1))
    rtl = RtlRun(image).run()
    _, want = run_iss(image, len(rtl.records))
    broken = Retire(**{**want[1].__dict__, "rd_wdata": 7})
    assert not rtl.records[1].matches(broken)
    assert "addi sp, ra, 1" in str(rtl.records[1])


# -- Cycles per instruction ----------------------------------------------------------------------

CPI = [  # (name, instruction words to time (the last one is timed), setup, cycles)
    ("alu", [asm.add(3, 1, 2)], [], 3),
    ("alu-imm", [asm.xori(3, 1, 5)], [], 3),
    ("lui", [asm.lui(3, 5)], [], 3),
    ("auipc", [asm.auipc(3, 5)], [], 3),
    ("jal", [asm.jal(3, 4)], [], 3),
    ("jalr", [asm.auipc(4, 0), asm.jalr(3, 4, 8)], [], 3),
    ("branch-not-taken", [asm.bne(0, 0, 8)], [], 3),
    ("branch-taken", [asm.beq(0, 0, 4)], [], 3),
    ("branch-not-taken-misaligned-offset", [asm.bne(0, 0, 6)], [], 4),
    ("fence", [asm.fence()], [], 3),
    ("wfi", [asm.wfi()], [*asm.li(5, MEIE), asm.csrw("mie", 5)], 3),     # the line is high
    ("load", [asm.lw(3, 0, 9)], [], 4),
    ("store", [asm.sb(3, 1, 9)], [], 4),
    ("shift-0", [asm.slli(3, 1, 0)], [], 4),
    ("shift-1", [asm.srl(3, 1, 10)], [*asm.li(10, 1)], 5),
    ("shift-31", [asm.srai(3, 1, 31)], [], 4 + 31),
    ("csr", [asm.csrrw(3, "mscratch", 1)], [], 4),
    ("csr-counter", [asm.csrr(3, "minstret")], [], 4),
    ("custom0", [asm.custom0(2, 0, 1, 2)], [], 3),
    ("custom0-answer", [asm.custom0(3, 3, 1, 2)], [], 4),
    ("mul", [asm.mul(3, 1, 2)], [], 37),
    ("mulh", [asm.mulh(3, 1, 2)], [], 37),
    ("div", [asm.div(3, 1, 2)], [], 37),
    ("remu", [asm.remu(3, 1, 2)], [], 37),
    ("ecall", [asm.ecall()], [], 5),
    ("illegal", [0], [], 5),
    ("misaligned-load", [asm.lw(3, 1, 9)], [], 5),
    ("misaligned-jump", [asm.jal(3, 6)], [], 5),
    ("misaligned-branch", [asm.beq(0, 0, 6)], [], 6),
    ("mret", [asm.mret()], [*asm.li(4, 0x40), asm.csrw("mepc", 4)], 3),
    ("interrupt", [asm.csrrsi(0, "mstatus", 8)], [*asm.li(5, MTIE), asm.csrw("mie", 5)], 5),
]


#: What the barrel shifter changes in :data:`CPI`: a shift by n > 0 takes 5 cycles.
BARREL_CPI = {"shift-1": 5, "shift-31": 5}

#: What the memory stage changes in :data:`CPI`: a load or store takes a cycle more.
MEMORY_STAGE_CPI = {"load": 5, "store": 5}


@pytest.mark.parametrize("shifter, memory_stage", [("serial", False), ("barrel", False),
                                                   ("serial", True)])
def test_cpi(shifter, memory_stage):
    """Cycles from one instruction's retirement to the next one's, with a memory answering the
    cycle after each request and an engine that is always ready and answers a cycle later;
    the interrupt lines are high (but mstatus.MIE is clear), and for "interrupt" the timed
    instruction sets mstatus.MIE and the interrupt is timed."""
    measured = {}
    for name, timed, setup, _ in CPI:
        words = with_mtvec(*asm.li(1, 0x1234), *asm.li(2, 77), *asm.li(9, DATA), *setup,
                           asm.nop(), *timed)
        image = program(*words, handler=[HALT])
        rtl = RtlRun(image, max_instructions=len(words) + 2, irq_rate=1.0, irq_hold=1.0,
                     shifter=shifter, memory_stage=memory_stage).run()
        index = len(words) - (name != "interrupt")
        assert rtl.records[index].interrupt == (name == "interrupt")
        measured[name] = rtl.cycles[index] - rtl.cycles[index - 1]
    expected = {name: cycles for name, _, _, cycles in CPI}
    if shifter == "barrel":
        expected.update(BARREL_CPI)
    if memory_stage:
        expected.update(MEMORY_STAGE_CPI)
    assert measured == expected
