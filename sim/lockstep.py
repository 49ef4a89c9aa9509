"""The RTL core against the ISS, retired instruction by retired instruction: the harness
and the random programs that ``tests/test_cpu.py`` and ``rvnpu fuzz core`` share.

The core runs on Amaranth's simulator with a Python memory (answering the cycle after a
request, or after random wait states) and a fake engine (random ``cmd.ready`` stalls and answer
delays). Every record on the core's ``retire`` port is compared with the record of
:class:`~rvnpu.sim.golden.iss.Iss` stepping the same program; reads of ``mcycle``/``cycle``
are the only values not compared (the ISS adopts the core's value so the runs stay in step).

Interrupts: the bench drives the core's interrupt lines, changing them only right after a
retire (so they are constant from one instruction boundary to the next) and, while the core
sleeps in WFI, raising them to wake it. It records the lines after every retire and those each
record retired with; the ISS gets the same lines at the same boundaries, so whether and where
an interrupt is taken is compared exactly, by the spec's rule in the ISS.

:func:`random_program` makes random instruction streams (loads and stores to a data region,
branches and jumps to aligned and misaligned targets, CSR accesses, M operations, engine
commands, WFI, illegal words); :func:`lockstep` runs one on both and raises
:class:`LockstepMismatch` with the seed and the first differing instruction.
"""

import collections
import random

from amaranth.sim import Simulator

from rvnpu.hdl.core.cpu import RiscvCore
from rvnpu.sim import rv32_asm as asm
from rvnpu.sim.golden.iss import Iss, Memory, Retire, reads_cycle_counter
from rvnpu.spec.rv32 import Interrupt


__all__ = ["LockstepMismatch", "LockstepHang", "RtlRun", "run_iss", "lockstep", "program",
           "with_mtvec", "random_program", "engine_answer", "answers", "SKIP_HANDLER", "EDGES",
           "ILLEGAL_WORDS", "MEM_WORDS", "HANDLER", "DATA", "HALT", "MEIE", "MTIE", "M32"]


class LockstepMismatch(AssertionError):
    """The RTL core and the ISS disagree (or the RTL never reached HALT)."""


class LockstepHang(LockstepMismatch):
    """The RTL core did not reach the program's HALT within the cycle budget."""


M32 = 0xffffffff
MEM_WORDS = 4096            # 16 KiB: code from 0, handler at HANDLER, data at DATA
HANDLER = 0x2000
DATA = 0x3000
HALT = asm.jal(0, 0)        # a program ends by jumping to itself
MEIE = 1 << Interrupt.MACHINE_EXTERNAL      # also MEIP in mip
MTIE = 1 << Interrupt.MACHINE_TIMER         # also MTIP


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

    Interrupt lines ``(external, timer)``: after each retire, a low line rises with chance
    ``irq_rate`` and a high one stays high with chance ``irq_hold``. While the core sleeps in
    WFI, a random line rises every ``1..wake_delay`` cycles. ``lines_after[i]`` are the lines
    set right after record ``i`` (those of the next boundary), ``retire_lines[i]`` those
    record ``i`` retired with (different only for a WFI woken up).
    """

    def __init__(self, image, *, with_m=True, shifter="serial", memory_stage=False, seed=0,
                 mem_wait=0,
                 cmd_stall=0.0, rsp_delay=1, irq_rate=0.0, irq_hold=0.0, wake_delay=4,
                 max_instructions=10_000, max_cycles=400_000):
        self.memory = Memory(MEM_WORDS)
        for addr, words in image.items():
            self.memory.load(addr, words)
        self.with_m = with_m
        self.shifter = shifter
        self.memory_stage = memory_stage
        self.rng = random.Random(seed)
        self.mem_wait, self.cmd_stall, self.rsp_delay = mem_wait, cmd_stall, rsp_delay
        self.irq_rate, self.irq_hold, self.wake_delay = irq_rate, irq_hold, wake_delay
        self.max_instructions, self.max_cycles = max_instructions, max_cycles
        self.records, self.cycles, self.commands = [], [], []
        self.lines_after, self.retire_lines = [], []
        self.sleep_cycles = 0
        self.timed_out = False

    def _next_lines(self, lines):
        """The lines for the next boundary, after a retire."""
        return tuple(int(self.rng.random() < (self.irq_hold if line else self.irq_rate))
                     for line in lines)

    def run(self):
        dut = RiscvCore(with_m=self.with_m, shifter=self.shifter,
                        memory_stage=self.memory_stage)
        rng, memory = self.rng, self.memory
        pending = collections.deque()               # (ready cycle, value)

        async def bench(ctx):
            # Every set makes the simulator settle the whole core again, so only changes are
            # set: that halves the run time.
            driven = {}

            def drive(name, signal, value):
                value = int(value)
                if driven.get(name) != value:
                    driven[name] = value
                    ctx.set(signal, value)

            cycle = wait = 0
            busy = False
            lines, wake_in = (0, 0), self.wake_delay
            drive("cmd.ready", dut.cmd.ready, 1)
            async for _, _, re, we, addr, wdata, ready, cmd_valid, cmd_ready, cmd, rsp_valid, \
                    rsp_ready, t, sleeping in ctx.tick().sample(
                        dut.bus.re, dut.bus.we, dut.bus.addr, dut.bus.wdata, dut.bus.ready,
                        dut.cmd.valid, dut.cmd.ready, dut.cmd.payload, dut.rsp.valid,
                        dut.rsp.ready, dut.retire, dut.sleeping):
                cycle += 1
                if t.valid:
                    self.records.append(Retire(
                        pc=t.pc, insn=t.insn, trap=bool(t.trap), interrupt=bool(t.interrupt),
                        rd_addr=t.rd_addr, rd_wdata=t.rd_wdata, mem_addr=t.mem_addr,
                        mem_wmask=t.mem_wmask, mem_wdata=t.mem_wdata, mem_rmask=t.mem_rmask))
                    self.cycles.append(cycle)
                    self.retire_lines.append(lines)
                    if t.insn == HALT or len(self.records) >= self.max_instructions:
                        return
                    lines = self._next_lines(lines)
                    self.lines_after.append(lines)
                elif sleeping:
                    self.sleep_cycles += 1
                    wake_in -= 1
                    if wake_in <= 0:
                        raised = rng.choice([(1, 0), (0, 1)])
                        lines = (lines[0] | raised[0], lines[1] | raised[1])
                        wake_in = rng.randint(1, self.wake_delay)
                drive("irq_external", dut.irq_external, lines[0])
                drive("irq_timer", dut.irq_timer, lines[1])
                if cycle >= self.max_cycles:
                    self.timed_out = True
                    return
                # Memory: a request seen at an edge is answered after `wait` more cycles.
                if ready:
                    if we:
                        memory.write(addr, wdata, we)
                    busy = False
                    drive("bus.ready", dut.bus.ready, 0)
                elif re or we:
                    if not busy:
                        busy, wait = True, rng.randint(0, self.mem_wait)
                    if wait:
                        wait -= 1
                    else:
                        drive("bus.rdata", dut.bus.rdata, memory.read(addr))
                        drive("bus.ready", dut.bus.ready, 1)
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
                drive("cmd.ready", dut.cmd.ready, rng.random() >= self.cmd_stall)
                if pending and pending[0][0] <= cycle:
                    drive("rsp.valid", dut.rsp.valid, 1)
                    drive("rsp.payload", dut.rsp.payload, pending[0][1])
                else:
                    drive("rsp.valid", dut.rsp.valid, 0)

        self._answered = 0
        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return self


def run_iss(image, count, *, with_m=True, rtl=None):
    """Step the ISS to ``count`` records. With ``rtl`` (an :class:`RtlRun`): drive its
    interrupt lines, boundary by boundary, and adopt its cycle-counter reads."""
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
        known = rtl is not None and index < len(rtl.records)
        if known and index:
            iss.irq_external, iss.irq_timer = rtl.lines_after[index - 1]
        record = iss.step()
        if record is None and known:
            # Waiting in WFI: the RTL woke up with the lines it retired the WFI with.
            iss.irq_external, iss.irq_timer = rtl.retire_lines[index]
            record = iss.step()
        if record is None:
            raise LockstepMismatch(f"instruction {index}: the ISS waits in wfi at pc={iss.pc:08x}")
        records.append(record)
        if known and reads_cycle_counter(record.insn) and record.rd_addr \
                and not record.trap:
            iss.x[record.rd_addr] = rtl.records[index].rd_wdata
    return iss, records


def lockstep(image, *, seed=None, **options):
    """Run ``image`` on the RTL and the ISS; raise :class:`LockstepMismatch` at the first
    differing record (or a run without HALT); return both runs."""
    rtl = RtlRun(image, seed=seed or 0, **options).run()
    if rtl.timed_out:
        raise LockstepHang(f"seed {seed}: no HALT within {rtl.max_cycles} cycles, "
                           f"{len(rtl.records)} instructions retired")
    iss, want = run_iss(image, len(rtl.records), with_m=options.get("with_m", True), rtl=rtl)
    for index, (got, expected) in enumerate(zip(rtl.records, want)):
        if not got.matches(expected):
            context = "\n".join(f"    {r}" for r in want[max(0, index - 4):index])
            raise LockstepMismatch(f"seed {seed}: instruction {index} differs\n"
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
# faulting instruction, or, after an interrupt (mcause < 0), returns to the one interrupted.
SKIP_HANDLER = [asm.csrr(26, "mcause"), asm.csrr(27, "mtval"), asm.csrr(25, "mepc"),
                asm.csrr(24, "mstatus"), asm.addi(31, 25, 4), asm.bge(26, 0, 8),
                asm.addi(31, 25, 0), asm.csrw("mepc", 31), asm.mret()]


EDGES = [0, 1, 2, 31, 32, 33, 0x7fffffff, 0x80000000, 0x80000001, M32, M32 - 1, 0x12345678,
         0xedcba987, 0x0000ffff]


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


READ_CSRS = ["mstatus", "misa", "mie", "mip", "mscratch", "mepc", "mcause", "mtval", "mcycle",
             "mcycleh", "minstret", "minstreth", "cycle", "cycleh", "instret", "instreth",
             "mvendorid", "marchid", "mimpid", "mhartid"]
WRITE_CSRS = ["mstatus", "misa", "mie", "mip", "mscratch", "mepc", "mcause", "mtval",
              "mcycle", "mcycleh", "minstret", "minstreth"]
BASES = (28, 29, 30)        # point into the data region; x31 is the handler's
# A WFI comes after `csrrs x0, mie, x28`, so that the bench's lines can wake it.
assert (DATA + 2048) & MEIE


def random_program(seed, length, *, interrupts=False):
    """A random instruction stream of ``length`` words (see the module docstring).

    With ``interrupts``, it starts with both interrupts enabled, and often sets and clears
    ``mstatus.MIE``.
    """
    rng = random.Random(seed)
    r = lambda: rng.choice([0] + list(range(1, 28)) * 3)      # noqa: E731 - any source
    d = lambda: rng.randrange(1, 28)                           # noqa: E731 - a destination
    words = with_mtvec()
    for base in BASES:
        words += asm.li(base, DATA + 2048)
    if interrupts:
        words += [*asm.li(1, MEIE | MTIE), asm.csrw("mie", 1), asm.csrrsi(0, "mstatus", 8)]
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
             "csr", "custom", "system", "illegal", "mie"],
            [10, 10, 4, 2, 5, 8, 8, 6, 2, 2, 5, 4, 1, 1, 4 if interrupts else 0])[0]
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
            word = rng.choice([asm.ecall(), asm.ebreak(), asm.fence(), asm.fence_i(),
                               asm.wfi()])
            if word == asm.wfi() and remaining() >= 2:
                pairs.add(len(body) + 1)
                body += [asm.csrrs(0, "mie", BASES[0]), word]
            elif word != asm.wfi():
                body.append(word)
        elif kind == "mie":         # mstatus.MIE on or off, with or without the old value
            op = rng.choice([asm.csrrsi, asm.csrrci])
            body.append(op(rng.choice([0, d()]), "mstatus", 8))
        elif kind == "illegal":
            body.append(rng.choice(ILLEGAL_WORDS))
    for index, encode, regs, offset in jumps:
        # Landing on a JALR would use a stale link register, and jump backwards. (A JALR's
        # index here is its AUIPC's, which its offset is relative to.)
        if offset & 2 == 0 and index + offset // 4 in pairs:
            at = index + 1 if index + 1 in pairs else index
            body[at] = encode(*regs, offset + 4)
    return program(*words, *body, *[HALT] * 15)   # jumps past the end halt too
