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
- the CPI test checks the table in :class:`~rvnpu.hdl.core.cpu.RiscvCore`'s docstring, exactly.
"""

import collections
import random

import pytest
from amaranth.sim import Simulator

from rvnpu.hdl.core.cpu import RiscvCore
from rvnpu.sim import rv32_asm as asm
from rvnpu.sim.golden.iss import Iss, Memory, Retire, reads_cycle_counter


M32 = 0xffffffff
MEM_WORDS = 4096            # 16 KiB: code from 0, handler at HANDLER, data at DATA
HANDLER = 0x2000
DATA = 0x3000
HALT = asm.jal(0, 0)        # a program ends by jumping to itself


def engine_answer(seq, funct, op1, op2):
    """The fake engine's answer to its ``seq``-th answered command; the ISS uses it too."""
    value = (seq + 1) * 0x9e3779b9 ^ op1 ^ ((op2 << 7 | op2 >> 25) & M32) ^ funct * 0x01000193
    return value & M32


def answers(funct):
    """Which commands the fake engine answers (firmware gives exactly these an ``rd``)."""
    return funct & 1


# -- Running the RTL -----------------------------------------------------------------------------

class RtlRun:
    """Run ``program`` on the RTL core; records, retire cycles and engine log afterwards.

    ``mem_wait``: extra wait states per bus access, drawn from ``0..mem_wait``. ``cmd_stall``:
    chance that ``cmd.ready`` is low in a cycle. ``rsp_delay``: cycles from accepting an
    answered command to its answer, drawn from ``1..rsp_delay``.
    """

    def __init__(self, image, *, with_m=True, seed=0, mem_wait=0, cmd_stall=0.0, rsp_delay=1,
                 max_instructions=10_000, max_cycles=400_000):
        self.memory = Memory(MEM_WORDS)
        for addr, words in image.items():
            self.memory.load(addr, words)
        self.with_m = with_m
        self.rng = random.Random(seed)
        self.mem_wait, self.cmd_stall, self.rsp_delay = mem_wait, cmd_stall, rsp_delay
        self.max_instructions, self.max_cycles = max_instructions, max_cycles
        self.records, self.cycles, self.commands = [], [], []
        self.timed_out = False

    def run(self):
        dut = RiscvCore(with_m=self.with_m)
        rng, memory = self.rng, self.memory
        pending = collections.deque()               # (ready cycle, value)

        async def bench(ctx):
            cycle = wait = 0
            busy = False
            ctx.set(dut.cmd.ready, 1)
            async for _, _, re, we, addr, wdata, ready, cmd_valid, cmd_ready, cmd, rsp_valid, \
                    rsp_ready, t in ctx.tick().sample(
                        dut.bus.re, dut.bus.we, dut.bus.addr, dut.bus.wdata, dut.bus.ready,
                        dut.cmd.valid, dut.cmd.ready, dut.cmd.payload, dut.rsp.valid,
                        dut.rsp.ready, dut.retire):
                cycle += 1
                if t.valid:
                    self.records.append(Retire(
                        pc=t.pc, insn=t.insn, trap=bool(t.trap), rd_addr=t.rd_addr,
                        rd_wdata=t.rd_wdata, mem_addr=t.mem_addr, mem_wmask=t.mem_wmask,
                        mem_wdata=t.mem_wdata, mem_rmask=t.mem_rmask))
                    self.cycles.append(cycle)
                    if t.insn == HALT or len(self.records) >= self.max_instructions:
                        return
                if cycle >= self.max_cycles:
                    self.timed_out = True
                    return
                # Memory: a request seen at an edge is answered after `wait` more cycles.
                if ready:
                    if we:
                        memory.write(addr, wdata, we)
                    busy = False
                    ctx.set(dut.bus.ready, 0)
                elif re or we:
                    if not busy:
                        busy, wait = True, rng.randint(0, self.mem_wait)
                    if wait:
                        wait -= 1
                    else:
                        ctx.set(dut.bus.rdata, memory.read(addr))
                        ctx.set(dut.bus.ready, 1)
                # Engine: commands, answers after a delay, random back-pressure.
                if cmd_valid and cmd_ready:
                    self.commands.append((cmd.funct, cmd.op1, cmd.op2))
                    if answers(cmd.funct):
                        value = engine_answer(len(pending) + self._answered, cmd.funct,
                                              cmd.op1, cmd.op2)
                        pending.append((cycle + self.rng.randint(1, self.rsp_delay) - 1,
                                        value))
                if rsp_valid and rsp_ready:
                    pending.popleft()
                    self._answered += 1
                ctx.set(dut.cmd.ready, rng.random() >= self.cmd_stall)
                if pending and pending[0][0] <= cycle:
                    ctx.set(dut.rsp.valid, 1)
                    ctx.set(dut.rsp.payload, pending[0][1])
                else:
                    ctx.set(dut.rsp.valid, 0)

        self._answered = 0
        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return self


def run_iss(image, count, *, with_m=True, rtl=None):
    """Step the ISS ``count`` times; with ``rtl`` records, adopt its cycle-counter reads."""
    memory = Memory(MEM_WORDS)
    for addr, words in image.items():
        memory.load(addr, words)
    seq = [0]

    def engine(funct, op1, op2, wants_answer):
        if not wants_answer:
            return None
        seq[0] += 1
        return engine_answer(seq[0] - 1, funct, op1, op2)

    iss = Iss(memory, with_m=with_m, engine=engine)
    records = []
    for index in range(count):
        record = iss.step()
        records.append(record)
        if rtl is not None and index < len(rtl) and reads_cycle_counter(record.insn) \
                and record.rd_addr:
            iss.x[record.rd_addr] = rtl[index].rd_wdata
    return iss, records


def lockstep(image, *, seed=None, **options):
    """Run ``image`` on the RTL and the ISS, fail at the first differing record; return both."""
    rtl = RtlRun(image, seed=seed or 0, **options).run()
    assert not rtl.timed_out, f"seed {seed}: no HALT within {rtl.max_cycles} cycles"
    iss, want = run_iss(image, len(rtl.records), with_m=options.get("with_m", True),
                        rtl=rtl.records)
    for index, (got, expected) in enumerate(zip(rtl.records, want)):
        if not got.matches(expected):
            context = "\n".join(f"    {r}" for r in want[max(0, index - 4):index])
            pytest.fail(f"seed {seed}: instruction {index} differs\n"
                        f"  previous (ISS):\n{context}\n"
                        f"  RTL: {got}\n  ISS: {expected}")
    return rtl, iss


def program(*words, handler=None):
    """An image: ``words`` at 0 followed by HALT, and a trap handler at HANDLER."""
    return {0: asm.assemble(*words, HALT),
            HANDLER: asm.assemble(handler if handler is not None else SKIP_HANDLER)}


def with_mtvec(*words):
    return [*asm.li(31, HANDLER), asm.csrw("mtvec", 31), *words]


# Records the trap in x24..x27 (compared through the retire records), then skips the
# faulting instruction.
SKIP_HANDLER = [asm.csrr(26, "mcause"), asm.csrr(27, "mtval"), asm.csrr(25, "mepc"),
                asm.csrr(24, "mstatus"), asm.addi(31, 25, 4), asm.csrw("mepc", 31), asm.mret()]


# -- Directed tests ------------------------------------------------------------------------------

EDGES = [0, 1, 2, 31, 32, 33, 0x7fffffff, 0x80000000, 0x80000001, M32, M32 - 1, 0x12345678,
         0xedcba987, 0x0000ffff]


def li_pair(a, b):
    return [*asm.li(1, a), *asm.li(2, b)]


def test_register_register_ops():
    ops = [asm.add, asm.sub, asm.sll, asm.slt, asm.sltu, asm.xor, asm.srl, asm.sra, asm.or_,
           asm.and_]
    rng = random.Random(1)
    pairs = [(a, b) for a in EDGES for b in EDGES if rng.random() < 0.3]
    words = []
    for a, b in pairs:
        words += li_pair(a, b) + [op(3 + i, 1, 2) for i, op in enumerate(ops)]
    words += [asm.add(0, 1, 2), asm.sub(4, 4, 4), asm.add(5, 5, 5)]     # x0, rd = rs1 = rs2
    lockstep(program(*words))


def test_immediate_ops():
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
    lockstep(program(*words))


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


ILLEGAL_WORDS = [
    0x00000000, M32, 0x00000010, asm.sub(3, 1, 2) | 1 << 26, asm.xor(3, 1, 2) | 1 << 30,
    asm.slli(3, 1, 1) | 1 << 30, asm.srli(3, 1, 1) | 1 << 25, asm.add(3, 1, 2) | 0x40 << 25,
    asm.jalr(1, 1, 0) | 1 << 12, asm.beq(1, 2, 8) & ~(7 << 12) | 2 << 12,
    asm.beq(1, 2, 8) & ~(7 << 12) | 3 << 12, asm.lw(3, 0, 1) | 1 << 12,
    asm.lw(3, 0, 1) & ~(7 << 12) | 6 << 12, asm.lw(3, 0, 1) | 5 << 12,
    asm.sw(3, 0, 1) | 1 << 12, asm.sw(3, 0, 1) & ~(7 << 12) | 4 << 12,
    asm.fence() | 2 << 12, asm.fence() | 7 << 12,
    asm.custom0(1, 0, 1, 2, funct3=1), asm.custom0(1, 0, 1, 2, funct3=7),
    0x00000073 | 4 << 12, 0x10200073, 0x7b200073, 0x00000073 | 1 << 7, 0x00100073 | 1 << 15,
    0x00200073, 0x30200073 | 1 << 7, 0x10500073 | 1 << 15,
    asm.csrr(3, 0x7c0), asm.csrr(3, 0x302), asm.csrr(3, 0xb03), asm.csrr(3, 0xf15),
    asm.csrrw(0, "mhartid", 1), asm.csrrw(0, "cycle", 0), asm.csrrsi(3, "instret", 1),
    asm.csrrc(3, "mvendorid", 1), asm.csrrwi(0, "instreth", 0),
    0b0101011, 0b1111111, 0b1011011, 0x0000000b | 3 << 12,
]


def test_traps():
    words = with_mtvec(*asm.li(1, DATA), *asm.li(2, 0x55), *asm.li(8, 8), asm.csrw("mstatus", 8))
    words += ILLEGAL_WORDS
    words += [asm.lw(3, 1, 1), asm.lw(3, 2, 1), asm.lw(3, 3, 1), asm.lh(3, 1, 1),
              asm.lhu(3, 3, 1), asm.lh(3, 2, 1), asm.lb(3, 3, 1),
              asm.sw(2, 1, 1), asm.sw(2, 2, 1), asm.sh(2, 3, 1), asm.sh(2, 2, 1),
              asm.sb(2, 1, 1), asm.lw(3, 0, 1),
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


# -- Lockstep fuzz -------------------------------------------------------------------------------

READ_CSRS = ["mstatus", "misa", "mie", "mip", "mscratch", "mepc", "mcause", "mtval", "mcycle",
             "mcycleh", "minstret", "minstreth", "cycle", "cycleh", "instret", "instreth",
             "mvendorid", "marchid", "mimpid", "mhartid"]
WRITE_CSRS = ["mstatus", "misa", "mie", "mip", "mscratch", "mepc", "mcause", "mtval",
              "mcycle", "mcycleh", "minstret", "minstreth"]
BASES = (28, 29, 30)        # point into the data region; x31 is the handler's


def random_program(seed, length):
    """A random instruction stream of ``length`` words (see the module docstring)."""
    rng = random.Random(seed)
    r = lambda: rng.choice([0] + list(range(1, 28)) * 3)      # noqa: E731 - any source
    d = lambda: rng.randrange(1, 28)                           # noqa: E731 - a destination
    words = with_mtvec()
    for base in BASES:
        words += asm.li(base, DATA + 2048)
    for reg in range(1, 28):
        words += asm.li(reg, rng.choice([rng.getrandbits(32), rng.randrange(-64, 64),
                                         rng.choice(EDGES)]))
    body = []
    jumps = []              # (index, encoder, registers, offset)
    pairs = set()           # indices of JALRs, which need the AUIPC before them
    remaining = lambda: length - len(body)                     # noqa: E731

    while remaining() > 0:
        kind = rng.choices(
            ["alu", "imm", "shift", "lui", "m", "load", "store", "branch", "jal", "jalr",
             "csr", "custom", "system", "illegal"],
            [10, 10, 4, 2, 5, 8, 8, 6, 2, 2, 5, 4, 1, 1])[0]
        if kind == "alu":
            op = rng.choice([asm.add, asm.sub, asm.slt, asm.sltu, asm.xor, asm.or_, asm.and_,
                             asm.sll, asm.srl, asm.sra])
            body.append(op(d(), r(), r()))
        elif kind == "imm":
            op = rng.choice([asm.addi, asm.slti, asm.sltiu, asm.xori, asm.ori, asm.andi])
            body.append(op(d(), r(), rng.randrange(-2048, 2048)))
        elif kind == "shift":
            op = rng.choice([asm.slli, asm.srli, asm.srai])
            body.append(op(d(), r(), rng.choice([0, 1, 31, rng.randrange(32)])))
        elif kind == "lui":
            op = rng.choice([asm.lui, asm.auipc])
            body.append(op(d(), rng.getrandbits(20)))
        elif kind == "m":
            op = rng.choice([asm.mul, asm.mulh, asm.mulhsu, asm.mulhu, asm.div, asm.divu,
                             asm.rem, asm.remu])
            body.append(op(d(), r(), r()))
        elif kind == "load":
            op = rng.choice([asm.lb, asm.lbu, asm.lh, asm.lhu, asm.lw])
            offset = rng.randrange(-2048, 2048)
            if rng.random() < 0.8:
                offset &= ~{asm.lh: 1, asm.lhu: 1, asm.lw: 3}.get(op, 0)
            body.append(op(d(), offset, rng.choice(BASES)))
        elif kind == "store":
            op = rng.choice([asm.sb, asm.sh, asm.sw])
            offset = rng.randrange(-2048, 2048)
            if rng.random() < 0.8:
                offset &= ~{asm.sh: 1, asm.sw: 3}.get(op, 0)
            body.append(op(r(), offset, rng.choice(BASES)))
        elif kind == "branch":
            op = rng.choice([asm.beq, asm.bne, asm.blt, asm.bge, asm.bltu, asm.bgeu])
            # Forward only (a backward one could loop forever), sometimes misaligned.
            offset = rng.choice([rng.randrange(1, 12) * 4] * 8 + [2, 6, -2])
            jumps.append((len(body), op, (r(), r()), offset))
            body.append(op(*jumps[-1][2], offset))
        elif kind == "jal":
            offset = rng.choice([4, 8, 12, 16, 20, 6, 10])
            jumps.append((len(body), asm.jal, (rng.choice([0, d()]),), offset))
            body.append(asm.jal(*jumps[-1][2], offset))
        elif kind == "jalr" and remaining() >= 2:
            link, offset = d(), rng.choice([8, 12, 16, 9, 13, 10, 14])
            pairs.add(len(body) + 1)
            body.append(asm.auipc(link, 0))
            jumps.append((len(body) - 1, lambda rd, link, offset: asm.jalr(rd, link, offset),
                          (rng.choice([0, d()]), link), offset))
            body.append(asm.jalr(*jumps[-1][2], offset))
        elif kind == "csr":
            op = rng.choice([asm.csrrw, asm.csrrs, asm.csrrc, asm.csrrwi, asm.csrrsi,
                             asm.csrrci])
            name = rng.choice(WRITE_CSRS if op in (asm.csrrw, asm.csrrwi) else READ_CSRS)
            immediate = op in (asm.csrrwi, asm.csrrsi, asm.csrrci)
            src = rng.choice([0, rng.randrange(32)]) if immediate else r()
            if rng.random() < 0.05:
                name = rng.choice([0x7c0, 0xf11, 0xc01, 0x302])   # unknown or read-only
            body.append(op(d(), name, src))
        elif kind == "custom":
            funct = rng.randrange(128)
            body.append(asm.custom0(funct, d() if answers(funct) else 0, r(), r()))
        elif kind == "system":
            body.append(rng.choice([asm.ecall(), asm.ebreak(), asm.fence(), asm.fence_i(),
                                    asm.wfi()]))
        elif kind == "illegal":
            body.append(rng.choice(ILLEGAL_WORDS))
    for index, encode, regs, offset in jumps:
        # Landing on a JALR would use a stale link register, and jump backwards. (A JALR's
        # index here is its AUIPC's, which its offset is relative to.)
        if offset & 2 == 0 and index + offset // 4 in pairs:
            at = index + 1 if index + 1 in pairs else index
            body[at] = encode(*regs, offset + 4)
    return program(*words, *body, *[HALT] * 15)   # jumps past the end halt too


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
    ("branch-taken", [asm.beq(0, 0, 4)], [], 4),
    ("fence", [asm.fence()], [], 3),
    ("wfi", [asm.wfi()], [], 3),
    ("load", [asm.lw(3, 0, 9)], [], 4),
    ("store", [asm.sb(3, 1, 9)], [], 4),
    ("shift-0", [asm.slli(3, 1, 0)], [], 4),
    ("shift-1", [asm.srl(3, 1, 10)], [*asm.li(10, 1)], 5),
    ("shift-31", [asm.srai(3, 1, 31)], [], 4 + 31),
    ("csr", [asm.csrrw(3, "mscratch", 1)], [], 4),
    ("csr-counter", [asm.csrr(3, "minstret")], [], 4),
    ("custom0", [asm.custom0(2, 0, 1, 2)], [], 3),
    ("custom0-answer", [asm.custom0(3, 3, 1, 2)], [], 4),
    ("mul", [asm.mul(3, 1, 2)], [], 36),
    ("mulh", [asm.mulh(3, 1, 2)], [], 36),
    ("div", [asm.div(3, 1, 2)], [], 36),
    ("remu", [asm.remu(3, 1, 2)], [], 36),
    ("ecall", [asm.ecall()], [], 5),
    ("illegal", [0], [], 5),
    ("misaligned-load", [asm.lw(3, 1, 9)], [], 5),
    ("misaligned-jump", [asm.jal(3, 6)], [], 5),
    ("misaligned-branch", [asm.beq(0, 0, 6)], [], 6),
    ("mret", [asm.mret()], [*asm.li(4, 0x40), asm.csrw("mepc", 4)], 3),
]


def test_cpi():
    """Cycles from one instruction's retirement to the next one's, with a memory answering the
    cycle after each request and an engine that is always ready and answers a cycle later."""
    measured = {}
    for name, timed, setup, _ in CPI:
        words = with_mtvec(*asm.li(1, 0x1234), *asm.li(2, 77), *asm.li(9, DATA), *setup,
                           asm.nop(), *timed)
        image = program(*words, handler=[HALT])
        rtl = RtlRun(image, max_instructions=len(words) + 1).run()
        index = len(words) - 1
        measured[name] = rtl.cycles[index] - rtl.cycles[index - 1]
    expected = {name: cycles for name, _, _, cycles in CPI}
    assert measured == expected
