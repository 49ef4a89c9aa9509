"""The whole SoC's RTL against the reference SoC: the ISS with the golden engine attached to
the same memory, retired instruction by retired instruction, then the whole RAM.

The SoC (:class:`rvnpu.hdl.soc.soc.Soc`: core, engine, RAM, timer, GPIO ...) runs on
Amaranth's simulator; the bench drives nothing, it watches the core's ``retire`` port, its bus
and its interrupt lines. The reference steps :class:`~rvnpu.sim.golden.iss.Iss` over a memory
that is the golden :class:`~rvnpu.sim.golden.engine.EngineModel`'s main memory too, with the
timer's compare registers and the GPIO modelled; a custom-0 instruction runs its command on the
golden engine at once.

What cannot be the same in both is taken from the RTL and checked as far as it can be:

- the interrupt lines: the ISS gets, before each instruction, the lines the core sampled when
  it fetched it (and, for a WFI woken up, those it woke with), so where an interrupt is taken
  is compared exactly; the lines themselves are checked: MEIP only while the golden engine
  has ``list_done``, MTIP as the timer's count against MTIMECMP (give or take the cycles a
  write takes);
- the timer's counters, ``mcycle`` and ``mip`` reads: their values are adopted;
- STATUS answers: compared with the busy bit masked (FENCE answers exactly: nothing is in
  flight then).

A run that does not reach its HALT within its cycle budget raises
:class:`~rvnpu.sim.soc_sim.FirmwareHang`, saying where the core and the engine were; any
difference raises :class:`~rvnpu.sim.lockstep.LockstepMismatch`. Afterwards the whole RAM is
compared: a difference below :data:`~rvnpu.sim.soc_programs.WINDOW` is a write outside the
engine's window.
"""

import dataclasses
import time

import numpy as np
from amaranth.sim import Simulator

from rvnpu.hdl.soc.soc import Soc
from rvnpu.sim.engine_programs import BUSY_MASK, region_of
from rvnpu.sim.golden.engine import EngineModel
from rvnpu.sim.golden.iss import Iss, Retire, reads_cycle_counter
from rvnpu.sim.lockstep import HALT, LockstepMismatch
from rvnpu.sim.soc_programs import ANSWERING, SOC_FUZZ, WINDOW, WINDOW_ENGINE
from rvnpu.sim.soc_sim import FirmwareHang, SocRun
from rvnpu.spec import rv32
from rvnpu.spec.commands import Funct, unpack_status
from rvnpu.spec.memory_map import CUSTOM0_OPCODE, GPIO, TIMER
from rvnpu.spec.rv32 import Csr


__all__ = ["SocMemory", "SocTrace", "SocBench", "run_soc_rtl", "soc_lockstep", "soc_case_budget",
           "MTIP_SLACK"]

M32 = 0xffffffff

#: Cycles either side of MTIMECMP where the timer line is not checked (a compare register
#: write lands a cycle or two before its store retires).
MTIP_SLACK = 4

_VOLATILE = {TIMER.address(name) for name in ("CYCLE_LO", "CYCLE_HI", "ACTIVE_LO", "ACTIVE_HI",
                                              "SLEEP_LO", "SLEEP_HI")}
_MTIMECMP = {TIMER.address("MTIMECMP_LO"): 0, TIMER.address("MTIMECMP_HI"): 1}


class SocMemory:
    """The reference SoC's address space for the ISS: the RAM (a numpy byte array, the golden
    engine's main memory as well), the timer's compare registers and the GPIO; the timer's
    counters read 0 (the RTL's values are adopted), and what nothing answers reads 0 and
    ignores writes, as the address decoder does."""

    def __init__(self, ram):
        self.ram = ram
        self.ram_words = ram.view("<u4")
        self.mtimecmp = [M32, M32]
        self.leds = 0

    @property
    def compare(self):
        return self.mtimecmp[1] << 32 | self.mtimecmp[0]

    def read(self, word_addr):
        word_addr &= (1 << 30) - 1
        if word_addr < len(self.ram_words):
            return int(self.ram_words[word_addr])
        address = word_addr * 4
        if address in _MTIMECMP:
            return self.mtimecmp[_MTIMECMP[address]]
        if address == GPIO.address("LEDS"):
            return self.leds
        return 0

    def write(self, word_addr, data, mask):
        word_addr &= (1 << 30) - 1
        if word_addr < len(self.ram_words):
            for lane in range(4):
                if mask >> lane & 1:
                    self.ram[word_addr * 4 + lane] = data >> 8 * lane & 0xff
            return
        address = word_addr * 4         # a byte or half-word write is a word write here
        if address in _MTIMECMP:
            self.mtimecmp[_MTIMECMP[address]] = data & M32
        elif address == GPIO.address("LEDS"):
            self.leds = data & ((1 << GPIO.register("LEDS").width) - 1)


class _ObservedSoc(Soc):
    """The SoC, keeping hold of the parts the bench watches once it is elaborated."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        self.core = m.submodules.core
        ram, engine = m.submodules.ram, m.submodules.engine
        for part, name, attribute in ((ram, "mem", "memory"), (engine, "frontend", "frontend")):
            elaborate = part.elaborate

            def keep(platform, elaborate=elaborate, part=part, name=name, attribute=attribute):
                inner = elaborate(platform)
                setattr(self, attribute, inner.submodules[name])
                return inner
            part.elaborate = keep
        return m


@dataclasses.dataclass
class SocTrace:
    """What the RTL did: its retire records, the lines each instruction was fetched with (and
    the cycle), the lines each retired with, the RAM afterwards."""
    records: list = dataclasses.field(default_factory=list)
    fetch_lines: list = dataclasses.field(default_factory=list)
    fetch_cycles: list = dataclasses.field(default_factory=list)
    retire_lines: list = dataclasses.field(default_factory=list)
    retire_cycles: list = dataclasses.field(default_factory=list)
    ram: np.ndarray = None
    cycles: int = 0
    timed_out: bool = False
    pc: int | None = None
    engine_status: int | None = None
    wall_s: float = 0.0


class SocBench:
    """The SoC in Amaranth's simulator, made once and reset for each program: elaborating
    the SoC and preparing the simulation take longer than most programs run.

    The RAM starts empty; the bench writes a program's image into it before the first clock
    edge."""

    def __init__(self, config=SOC_FUZZ):
        self.config = config
        self.dut = _ObservedSoc(config)
        self.sim = Simulator(self.dut)
        self.sim.add_clock(1e-8)
        self.sim.add_testbench(self._bench)
        self._job = None
        self.sim.run()              # the bench returns at once: every later run starts at reset

    def run(self, program, *, max_cycles):
        """Run ``program`` (a :class:`~rvnpu.sim.soc_programs.SocProgram`) until its HALT
        retires or ``max_cycles`` pass; a :class:`SocTrace`."""
        self._job = (program, max_cycles, SocTrace())
        self.sim.reset()
        start = time.perf_counter()
        self.sim.run()
        trace = self._job[2]
        trace.wall_s = time.perf_counter() - start
        return trace

    async def _bench(self, ctx):
        if self._job is None:       # the simulator's first start, before any program
            return
        program, max_cycles, trace = self._job
        dut, core = self.dut, self.dut.core
        data, width = self.dut.memory.data, self.config.engine.bus_bytes
        image = program.image
        for i in range(data.depth):
            word = int.from_bytes(image[i * width:(i + 1) * width], "little")
            if word:
                ctx.set(data[i], word)
        cycle, fetching, fetch_addr = 0, True, 0
        async for _, _, re, addr, ready, t, external, timer in ctx.tick().sample(
                core.bus.re, core.bus.addr, core.bus.ready, core.retire, core.irq_external,
                core.irq_timer):
            cycle += 1
            if fetching and re and ready:
                # The first read after a retire is the fetch, where the core decides whether an
                # interrupt comes first.
                trace.fetch_lines.append((external, timer))
                trace.fetch_cycles.append(cycle)
                fetching, fetch_addr = False, addr * 4
            if t.valid:
                record = Retire(pc=t.pc, insn=t.insn, trap=bool(t.trap),
                                interrupt=bool(t.interrupt), rd_addr=t.rd_addr,
                                rd_wdata=t.rd_wdata, mem_addr=t.mem_addr,
                                mem_wmask=t.mem_wmask, mem_wdata=t.mem_wdata,
                                mem_rmask=t.mem_rmask)
                trace.records.append(record)
                trace.retire_lines.append((external, timer))
                trace.retire_cycles.append(cycle)
                fetching = True
                if t.insn == HALT and not t.trap:
                    break
            if cycle >= max_cycles:
                trace.timed_out = True
                break
        trace.cycles = cycle
        trace.pc = fetch_addr
        trace.engine_status = ctx.get(dut.frontend.rsp.payload)
        rows = [ctx.get(data[i]) for i in range(data.depth)]
        trace.ram = np.frombuffer(b"".join(int(r).to_bytes(width, "little") for r in rows),
                                  np.uint8).copy()


_benches = {}


def run_soc_rtl(program, *, max_cycles, config=SOC_FUZZ):
    """Run ``program`` on the SoC's RTL (one :class:`SocBench` a configuration and process);
    a :class:`SocTrace`."""
    if config not in _benches:
        _benches[config] = SocBench(config)
    return _benches[config].run(program, max_cycles=max_cycles)


def soc_case_budget(program):
    """The cycle budget of a program: far more than the engine and the core need (a run takes
    a few thousand cycles), small enough that a hang ends in minutes."""
    return 40 * program.code_words + 200 * len(program.commands) + 20_000


def _volatile(record):
    """Whether the record's ``rd`` value depends on timing (adopted from the RTL)."""
    insn = record.insn
    if reads_cycle_counter(insn):
        return True
    encoding = rv32.identify(insn)
    if encoding is not None and encoding.format in (rv32.Format.CSR, rv32.Format.CSRI) \
            and insn >> 20 == Csr.MIP:
        return True
    return bool(record.mem_rmask) and record.mem_addr & ~3 in _VOLATILE


def _answer(record):
    """The command of a custom-0 record that answers, or ``None``."""
    if record.trap or record.insn & 0x7f != CUSTOM0_OPCODE or not record.insn >> 7 & 31:
        return None
    return Funct(record.insn >> 25) if record.insn >> 25 in ANSWERING else None


def soc_lockstep(program, *, max_cycles=None, config=SOC_FUZZ):
    """Run ``program`` on the RTL and on the reference and compare them (see the module
    docstring); returns ``(trace, engine commands issued)``."""
    max_cycles = soc_case_budget(program) if max_cycles is None else max_cycles
    trace = run_soc_rtl(program, max_cycles=max_cycles, config=config)
    seed = program.seed
    if trace.timed_out:
        run = SocRun(uart=b"", exit_code=None, timed_out=True, cycles=trace.cycles,
                     wall_time_s=trace.wall_s, total_time_s=trace.wall_s, build_time_s=0.0,
                     leds=0, pc=trace.pc, engine_status=trace.engine_status)
        try:
            run.raise_if_hung(max_cycles)
        except FirmwareHang as error:
            raise FirmwareHang(f"seed {seed}: {error} ({len(trace.records)} instructions "
                               f"retired)") from None

    ram = np.frombuffer(program.image, np.uint8).copy()
    memory = SocMemory(ram)
    golden = EngineModel(config.engine, ram)
    issued = [0]

    def engine(funct, op1, op2, wants_answer):
        issued[0] += 1
        answer = golden.execute(funct, op1, op2)
        return answer if wants_answer else None

    iss = Iss(memory, with_m=config.with_m, engine=engine)
    compare_written = 0             # the cycle the last MTIMECMP store retired
    history = []

    def fail(index, text):
        context = "\n".join(f"    {r}" for r in history[-4:])
        raise LockstepMismatch(f"seed {seed}: instruction {index}: {text}\n"
                               f"  previous (reference):\n{context}")

    for index, got in enumerate(trace.records):
        external, timer = trace.fetch_lines[index]
        if external and not golden.list_done:
            fail(index, "the engine's interrupt line is high, but no command list finished")
        fetched = trace.fetch_cycles[index]
        count = fetched - 1                 # the timer's count at that clock edge
        if fetched > compare_written + MTIP_SLACK and abs(count - memory.compare) > MTIP_SLACK \
                and timer != (count >= memory.compare):
            fail(index, f"the timer's interrupt line is {timer} at cycle {count}, MTIMECMP "
                        f"{memory.compare}")
        iss.irq_external, iss.irq_timer = external, timer
        want = iss.step()
        if want is None:                    # waiting in WFI: the lines it woke with
            iss.irq_external, iss.irq_timer = trace.retire_lines[index]
            want = iss.step()
            if want is None:
                fail(index, f"the RTL woke from WFI at pc={got.pc:08x}, the reference "
                            f"waits (lines {trace.retire_lines[index]})")
        g, w = got.normalized(), want.normalized()
        adopt = False
        if g.rd_addr and not g.trap and g.rd_addr == w.rd_addr and not w.trap:
            funct = _answer(g)
            if funct == Funct.STATUS and g.insn == w.insn \
                    and g.rd_wdata & BUSY_MASK == w.rd_wdata & BUSY_MASK:
                adopt = True
            elif funct == Funct.FENCE and g.rd_wdata & ~BUSY_MASK:
                fail(index, f"a FENCE answered busy: {unpack_status(g.rd_wdata)}\n  RTL: {got}")
            elif _volatile(g) and g.insn == w.insn:
                adopt = True
        if adopt:
            w = dataclasses.replace(w, rd_wdata=g.rd_wdata)
            iss.x[g.rd_addr] = g.rd_wdata
        if g != w:
            text = ""
            funct = _answer(g)
            if funct is not None and g.rd_addr == w.rd_addr:
                text = (f"\n  RTL answer: {unpack_status(g.rd_wdata)}"
                        f"\n  golden:     {unpack_status(w.rd_wdata)}")
            fail(index, f"differs\n  RTL:       {got}\n  reference: {want}{text}")
        if w.mem_wmask and w.mem_addr & ~3 in _MTIMECMP:
            compare_written = trace.retire_cycles[index]
        history.append(want)

    diff = np.flatnonzero(trace.ram != ram)
    if diff.size:
        at = int(diff[0])
        if at < WINDOW:
            where = f"byte {at:#x}, below the engine's window ({WINDOW:#x}): written outside it"
        else:
            where = (f"byte {at:#x} of the engine's window "
                     f"({region_of(WINDOW_ENGINE, at - WINDOW)})")
        raise LockstepMismatch(
            f"seed {seed}: RAM after the run: {diff.size} bytes differ; first at {where}: "
            f"RTL {trace.ram[at]:#04x}, reference {ram[at]:#04x}")
    return trace, issued[0]
