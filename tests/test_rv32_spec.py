"""The RV32 encoding table (:mod:`rvnpu.spec.rv32`) against its three readers.

The assembler, the ISS and the core's decoder each read the table; these tests check that the
table is self-consistent and that each reader agrees with it, instruction by instruction and
on random words, so a wrong or duplicated entry shows up here rather than as a lockstep
mismatch.
"""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from rvnpu.hdl.core import cpu
from rvnpu.hdl.core.csr import LOGIC_CSRS, RAM_CSRS, ram_slot
from rvnpu.sim import rv32_asm as asm
from rvnpu.sim.golden.iss import Iss, Memory
from rvnpu.spec import rv32
from rvnpu.spec.rv32 import INSTRUCTIONS, Cause, Csr, Format, Interrupt, Opcode


CSR_FORMATS = (Format.CSR, Format.CSRI)


def encoder(name):
    """The assembler's function for instruction ``name``."""
    return getattr(asm, {"or": "or_", "and": "and_", "fence.i": "fence_i"}.get(name, name))


def sample(name, rng):
    """An encoding of ``name`` with random operands (valid ones for the assembler)."""
    fmt = INSTRUCTIONS[name].format
    reg = lambda: rng.randrange(32)                                 # noqa: E731
    if fmt is Format.U:
        return encoder(name)(reg(), rng.getrandbits(20))
    if fmt is Format.J:
        return encoder(name)(reg(), rng.randrange(-2**19, 2**19) * 2)
    if fmt is Format.B:
        return encoder(name)(reg(), reg(), rng.randrange(-2**11, 2**11) * 2)
    if fmt is Format.S or fmt is Format.I and INSTRUCTIONS[name].opcode == Opcode.LOAD:
        return encoder(name)(reg(), rng.randrange(-2048, 2048), reg())
    if fmt is Format.I:
        return encoder(name)(reg(), reg(), rng.randrange(-2048, 2048))
    if fmt in (Format.SHIFT, Format.R) and name != "custom0":
        return encoder(name)(reg(), reg(), reg())
    if fmt in CSR_FORMATS:
        return encoder(name)(reg(), rng.choice(list(Csr)), reg())
    if name == "custom0":
        return asm.custom0(rng.randrange(128), reg(), reg(), reg())
    if name == "fence":
        return asm.fence(rng.randrange(16), rng.randrange(16))
    return encoder(name)()


def expected_legal(word, with_m):
    """Legality as the table says it: a row matches, M rows only with M, and a CSR
    instruction names a CSR the core has and does not write a read-only one."""
    encoding = rv32.identify(word)
    if encoding is None or encoding.extension == "M" and not with_m:
        return False
    if encoding.format in CSR_FORMATS:
        f = rv32.fields(word)
        writes = encoding.name in ("csrrw", "csrrwi") or f.rs1 != 0
        return f.funct12 in set(Csr) and not (writes and rv32.csr_is_read_only(f.funct12))
    return True


# -- The table itself ----------------------------------------------------------------------------

def test_instruction_rows_are_distinct():
    keys = [(e.opcode, e.funct3, e.funct7, e.funct12) for e in INSTRUCTIONS.values()]
    assert len(set(keys)) == len(keys)
    assert all(name == e.name for name, e in INSTRUCTIONS.items())


def test_no_two_rows_match_one_word():
    rng = random.Random(13)
    for name in INSTRUCTIONS:
        for _ in range(50):
            word = sample(name, rng)
            matching = [e.name for e in INSTRUCTIONS.values() if e.matches(word)]
            assert matching == [name], (name, hex(word))
            assert rv32.identify(word).name == name


def test_csr_numbers_are_unique_and_named():
    # An IntEnum silently turns a repeated value into an alias; count the names instead.
    assert len(Csr.__members__) == len(set(Csr)) == len(rv32.CSR_NAMES)
    assert sorted(rv32.CSR_NAMES.values()) == sorted(n.lower() for n in Csr.__members__)
    assert all(0 <= csr < 4096 for csr in Csr)


def test_every_csr_has_a_place_in_the_core():
    assert set(RAM_CSRS) | set(LOGIC_CSRS) == set(Csr)
    assert not set(RAM_CSRS) & set(LOGIC_CSRS)
    slots = [ram_slot(csr) for csr in RAM_CSRS if csr < Csr.CYCLE]     # aliases share words
    assert len(set(slots)) == len(slots) and all(32 <= slot < 64 for slot in slots)
    for alias in (Csr.CYCLE, Csr.INSTRET, Csr.CYCLEH, Csr.INSTRETH):
        assert ram_slot(alias) == ram_slot(Csr[f"M{alias.name}"])


def test_trap_causes_are_distinct_exception_codes():
    assert len(Cause.__members__) == len(set(Cause)) and all(0 <= c < 16 for c in Cause)


# -- The assembler and the ISS -------------------------------------------------------------------

@pytest.mark.parametrize("name", list(INSTRUCTIONS))
def test_assembler_disassembler_round_trip(name):
    rng = random.Random(name)
    for _ in range(20):
        word = sample(name, rng)
        assert rv32.identify(word) is INSTRUCTIONS[name]
        assert asm.disasm(word).split()[0] == name


@pytest.mark.parametrize("name", list(INSTRUCTIONS))
@pytest.mark.parametrize("with_m", [True, False])
def test_iss_accepts_exactly_the_table(name, with_m):
    rng = random.Random(name)
    for _ in range(20):
        word = sample(name, rng)
        memory = Memory(1024)
        memory.load(0, [word])
        iss = Iss(memory, with_m=with_m)
        record = iss.step()         # None: a wfi waiting for an interrupt, so accepted
        illegal = record is not None and record.trap \
            and iss.mcause == Cause.ILLEGAL_INSTRUCTION
        assert illegal == (not expected_legal(word, with_m)), (name, asm.disasm(word))


@pytest.mark.parametrize("name,cause", [("ecall", Cause.ECALL_M),
                                        ("ebreak", Cause.BREAKPOINT)])
def test_iss_traps_with_the_table_cause(name, cause):
    memory = Memory(16)
    memory.load(0, [encoder(name)()])
    iss = Iss(memory)
    assert iss.step().trap and iss.mcause == cause


# -- The core's decoder --------------------------------------------------------------------------

def random_words(rng, count):
    """Words near the table: real opcodes and function fields, random elsewhere."""
    words = []
    for _ in range(count):
        word = rng.getrandbits(32)
        if rng.random() < 0.9:
            word = word & ~0x7f | rng.choice(list(Opcode))
        if rng.random() < 0.5:
            word = word & ~(0x7f << 25) | rng.choice([0, 1, 0x20, 0x7f]) << 25
        if rng.random() < 0.3 and word & 0x7f == Opcode.SYSTEM:
            word = word & 0xfffff | rng.choice(list(Csr) + [0x302, 0x105, 0, 1]) << 20
        if rng.random() < 0.2:
            word &= ~(0x1f << 15 | 0x1f << 7)
        words.append(word)
    return words


@pytest.mark.parametrize("with_m", [True, False])
def test_rtl_decoder_agrees_with_the_table(with_m):
    rng = random.Random(7)
    words = [sample(name, rng) for name in INSTRUCTIONS for _ in range(10)]
    words += random_words(rng, 1500)
    word = Signal(32)
    m = Module()
    decoded = cpu._decode(m, word, with_m)
    legal, ecall, ebreak = Signal(), Signal(), Signal()
    m.d.comb += [legal.eq(decoded.legal), ecall.eq(decoded.is_ecall),
                 ebreak.eq(decoded.is_ebreak)]
    mismatches = []

    async def bench(ctx):
        for value in words:
            ctx.set(word, value)
            got = (ctx.get(legal), ctx.get(ecall), ctx.get(ebreak))
            encoding = rv32.identify(value)
            name = encoding.name if encoding is not None else None
            want = (int(expected_legal(value, with_m)), int(name == "ecall"),
                    int(name == "ebreak"))
            if got != want:
                mismatches.append((f"{value:08x}", asm.disasm(value), got, want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not mismatches, mismatches[:10]


# Words as the RISC-V manual and GNU objdump give them, independent of the table.
KNOWN_WORDS = [
    (0x00c58533, "add a0, a1, a2"), (0x40c58533, "sub a0, a1, a2"),
    (0x02c58533, "mul a0, a1, a2"), (0x02c5c533, "div a0, a1, a2"),
    (0x40355513, "srai a0, a0, 3"), (0xfff10093, "addi ra, sp, -1"),
    (0x0005a503, "lw a0, 0(a1)"), (0x00a5a023, "sw a0, 0(a1)"),
    (0x12345537, "lui a0, 0x12345"), (0x0000100f, "fence.i"),
    (0x30529073, "csrrw zero, mtvec, t0"), (0xf1402573, "csrrs a0, mhartid, zero"),
    (0x00000073, "ecall"), (0x00100073, "ebreak"), (0x30200073, "mret"),
    (0x10500073, "wfi"), (0x00c5850b, "custom0 0, a0, a1, a2"),
]


@pytest.mark.parametrize("word,text", KNOWN_WORDS)
def test_known_encodings(word, text):
    assert asm.disasm(word) == text
    assert expected_legal(word, with_m=True)


def test_interrupt_codes_are_the_privileged_specs():
    # mcause codes, also the mie/mip bits; Interrupt lists them highest priority first.
    assert [(irq.name, int(irq)) for irq in Interrupt] == [("MACHINE_EXTERNAL", 11),
                                                             ("MACHINE_TIMER", 7)]
    assert rv32.MCAUSE_INTERRUPT == 0x80000000
