"""Random firmware for the whole SoC: the core issues a random engine command program (legal
and refused commands, command lists) through custom-0 instructions, with random core
instructions, memory-mapped peripheral accesses, traps, WFI and interrupts in between.
``rvnpu fuzz soc`` runs it (:mod:`rvnpu.sim.soc_lockstep`).

The RAM is split so that the comparison with the reference (the ISS with the golden engine, which
runs a command the moment it is issued) does not depend on timing: the core's code, trap
handler and data sit below :data:`WINDOW`, and every engine command is aimed at the window
above it. The commands come from :func:`rvnpu.sim.engine_programs.random_program`, made for an
engine whose main memory is just the window, and moved up by :data:`WINDOW` (command lists in
memory too): a command the window refuses is still refused, past the end of the RAM, and one
it allows stays inside the window. So nothing the engine may write is below the window, and
the core never reads or writes the window: any difference there is the engine's.

Interrupts come from the hardware: MEIP is the engine's ``list_done`` (a RUN finished), MTIP
the timer (the program arms it, sometimes followed by WFI). The handler acknowledges them (a
FENCE, then STATUS with ``clear_done``; MTIMECMP moved to never) and skips a faulting
instruction, recording mcause, mtval, mepc and mstatus in x24..x27 so that they are compared.
"""

import dataclasses
import random

from rvnpu.sim import rv32_asm as asm
from rvnpu.sim.engine_programs import random_program as random_engine_program
from rvnpu.sim.lockstep import HALT, ILLEGAL_WORDS, MEIE, MTIE
from rvnpu.spec.commands import (LIST_ENTRY_BYTES, Funct, IsaError, decode, encode, pack_list,
                                 unpack_list)
from rvnpu.spec.config import EngineConfig
from rvnpu.spec.memory_map import GPIO, PERIPHERAL_BASE, PERIPHERAL_SPAN, SIM, TIMER, SocConfig
from rvnpu.spec.rv32 import MCAUSE_INTERRUPT, Interrupt


__all__ = ["SocProgram", "random_soc_program", "window_program", "relocate", "SOC_FUZZ_ENGINE",
           "SOC_FUZZ", "WINDOW", "WINDOW_ENGINE", "HANDLER", "DATA", "ANSWERING"]

#: The SoC's engine: the fuzz engine's array, with small local memories so that a program's
#: prologue and epilogue (which fill and dump them all) take few cycles in Amaranth's
#: simulator; 32 KiB of RAM, half of it the engine's window.
SOC_FUZZ_ENGINE = dict(rows=4, cols=4, dataflow="both", spad_depth=64, acc_depth=32,
                       qp_depth=8, mem_bytes=1 << 15)
SOC_FUZZ = SocConfig(engine=EngineConfig(**SOC_FUZZ_ENGINE))

#: First byte the engine's commands aim at; the RAM below is the core's.
WINDOW = 0x4000
#: The engine the command programs are made for: one whose main memory is the window.
WINDOW_ENGINE = dataclasses.replace(SOC_FUZZ.engine, mem_bytes=SOC_FUZZ.ram_bytes - WINDOW)

HANDLER = 0x2800            # code from 0 up to here
DATA = 0x3000               # the core's loads and stores: DATA .. WINDOW
BASE = DATA + 2048          # x28..x30 point here; offsets reach -2048..2047

#: Commands that answer (the core gives them an ``rd`` and waits).
ANSWERING = (Funct.FENCE, Funct.STATUS)

#: Command fields that are main-memory byte addresses.
_ADDRESS_FIELDS = ("dram_addr", "list_addr", "in_addr", "out_addr", "a_addr", "b_addr")

_OP1, _OP2, _ANSWER = 20, 21, 22        # registers of the command sequences
_MMIO = 23                              # base register of peripheral accesses
_BASES = (28, 29, 30)
_DESTS = list(range(1, 20)) + [_MMIO]   # what filler instructions may write

_VOLATILE_TIMER = ("CYCLE_LO", "CYCLE_HI", "ACTIVE_LO", "ACTIVE_HI", "SLEEP_LO", "SLEEP_HI")


@dataclasses.dataclass
class SocProgram:
    """One random firmware: the RAM image and what is in it."""
    seed: int
    image: bytes                # the whole RAM
    commands: list              # the engine commands the code issues, in order (relocated)
    code_words: int


def relocate(command, offset=WINDOW):
    """``(funct, op1, op2)`` with its main-memory addresses moved up by ``offset``; an address
    that would pass 2**32 stays (it is refused either way), and so does an unknown command."""
    funct, op1, op2 = command
    try:
        cmd, fields = decode(funct, op1, op2)
    except IsaError:
        return command
    for name in _ADDRESS_FIELDS:
        if name in fields and fields[name] + offset < 1 << 32:
            fields[name] += offset
    return encode(cmd.funct, **fields)


def _relocated_lists(commands, window):
    """The window's bytes with the command lists the RUNs run moved up too."""
    window = bytearray(window)
    seen = set()
    for funct, op1, op2 in commands:
        if funct != Funct.RUN:
            continue
        _, f = decode(funct, op1, op2)
        at, count = f["list_addr"], f["count"]
        end = at + count * LIST_ENTRY_BYTES
        if at % LIST_ENTRY_BYTES or not count or end > len(window) or (at, count) in seen:
            continue
        seen.add((at, count))
        entries = unpack_list(bytes(window[at:end]))
        window[at:end] = pack_list([relocate(e) for e in entries])
    return bytes(window)


def _handler():
    """Skip a faulting instruction; acknowledge an interrupt: the engine's with a FENCE and a
    STATUS clearing list_done, the timer's by moving MTIMECMP to never."""
    clear_done = encode(Funct.STATUS, clear=0, clear_done=1)[1]
    mtimecmp_hi = TIMER.address("MTIMECMP_HI")
    external = MCAUSE_INTERRUPT | Interrupt.MACHINE_EXTERNAL
    timer = [*asm.li(31, mtimecmp_hi), asm.addi(27, 0, -1), asm.sw(27, 0, 31), asm.mret()]
    engine = [asm.custom0(Funct.FENCE, 27, 0, 0), *asm.li(31, clear_done),
              asm.custom0(Funct.STATUS, 27, 31, 0), asm.mret()]
    skip = [asm.addi(31, 25, 4), asm.csrw("mepc", 31), asm.mret()]
    is_external = [*asm.li(31, external), asm.bne(26, 31, 4 * (len(engine) + 1))]
    head = [asm.csrr(26, "mcause"), asm.csrr(27, "mtval"), asm.csrr(25, "mepc"),
            asm.csrr(24, "mstatus"),
            asm.blt(26, 0, 4 * (len(skip) + 1))]
    return asm.assemble(*head, *skip, *is_external, *engine, *timer)


class _Code:
    """The code of one program, made instruction by instruction."""

    def __init__(self, rng):
        self.rng = rng
        self.words = []

    def src(self):
        return self.rng.choice([0] + list(range(1, 28)) * 3)

    def dest(self):
        return self.rng.choice(_DESTS)

    def issue(self, command):
        """An engine command: its operands into x20, x21, then custom-0 (with an ``rd`` if it
        answers; a refused FENCE or STATUS does not exist, they are never refused)."""
        funct, op1, op2 = command
        rd = _ANSWER if funct in ANSWERING else 0
        self.words += [*asm.li(_OP1, op1), *asm.li(_OP2, op2), asm.custom0(funct, rd, _OP1, _OP2)]

    def filler(self, count):
        """``count`` random instructions (or short sequences); branches land only between
        them or at the end, so they never skip part of a sequence (or of a command's)."""
        rng, groups, branches = self.rng, [], []
        while len(groups) < count:
            kind = rng.choices(["alu", "imm", "m", "load", "store", "branch", "csr", "mie",
                                "mmio", "timer", "trap"],
                               [10, 10, 5, 8, 8, 5, 4, 2, 5, 2, 2])[0]
            if kind == "alu":
                op = rng.choice([asm.add, asm.sub, asm.slt, asm.sltu, asm.xor, asm.or_,
                                 asm.and_, asm.sll, asm.srl, asm.sra])
                groups.append([op(self.dest(), self.src(), self.src())])
            elif kind == "imm":
                op = rng.choice([asm.addi, asm.slti, asm.sltiu, asm.xori, asm.ori, asm.andi])
                groups.append([op(self.dest(), self.src(), rng.randrange(-2048, 2048))])
            elif kind == "m":
                op = rng.choice([asm.mul, asm.mulh, asm.mulhsu, asm.mulhu, asm.div, asm.divu,
                                 asm.rem, asm.remu])
                groups.append([op(self.dest(), self.src(), self.src())])
            elif kind in ("load", "store"):
                ops = [asm.lb, asm.lbu, asm.lh, asm.lhu, asm.lw] if kind == "load" else \
                    [asm.sb, asm.sh, asm.sw]
                op = rng.choice(ops)
                offset = rng.randrange(-2048, 2048)
                if rng.random() < 0.9:          # else possibly misaligned: a trap
                    offset &= ~{asm.lh: 1, asm.lhu: 1, asm.lw: 3, asm.sh: 1, asm.sw: 3}.get(op, 0)
                reg = self.dest() if kind == "load" else self.src()
                groups.append([op(reg, offset, rng.choice(_BASES))])
            elif kind == "branch":
                op = rng.choice([asm.beq, asm.bne, asm.blt, asm.bge, asm.bltu, asm.bgeu])
                branches.append((len(groups), op, self.src(), self.src(),
                                 rng.randint(1, 6), rng.random() < 0.05))
                groups.append([None])
            elif kind == "csr":
                name = rng.choice(["mscratch", "mstatus", "mie", "mip", "mcause", "minstret",
                                   "mcycle", "misa", "mhartid"])
                op = asm.csrrw if name == "mscratch" and rng.random() < 0.5 else asm.csrrs
                groups.append([op(self.dest(), name, self.src() if op == asm.csrrw else 0)])
            elif kind == "mie":                 # mstatus.MIE on (mostly) or off
                op = asm.csrrsi if rng.random() < 0.7 else asm.csrrci
                groups.append([op(rng.choice([0, self.dest()]), "mstatus", 8)])
            elif kind == "mmio":
                groups.append(self._mmio())
            elif kind == "timer":
                groups.append(self._arm_timer())
            else:
                groups.append([rng.choice([asm.ecall(), asm.ebreak(), asm.fence(),
                                           rng.choice(ILLEGAL_WORDS)])])
        for index, op, rs1, rs2, skip, misaligned in branches:
            # Forward over `skip` groups (the branch's own included), at most to the end; or
            # to a misaligned address, a trap if taken.
            end = min(index + skip, len(groups))
            offset = 2 if misaligned else 4 * sum(len(g) for g in groups[index:end])
            groups[index] = [op(rs1, rs2, offset)]
        self.words += [word for group in groups for word in group]

    def _mmio(self):
        """A peripheral access: the timer's counters (whose values the reference takes from
        the RTL) and compare registers, the GPIO, and addresses nothing answers."""
        rng = self.rng
        choice = rng.randrange(5)
        if choice == 0:
            address = TIMER.address(rng.choice(_VOLATILE_TIMER))
        elif choice == 1:
            address = TIMER.address(rng.choice(["MTIMECMP_LO", "MTIMECMP_HI"]))
        elif choice == 2:
            address = GPIO.address(rng.choice(["LEDS", "BUTTONS"]))
        else:
            address = rng.choice([SOC_FUZZ.ram_bytes + 4 * rng.randrange(64), 0x2000_0000,
                                  PERIPHERAL_BASE + 6 * PERIPHERAL_SPAN, SIM.base + 0x40,
                                  TIMER.base + 0x40, GPIO.base + 0x10])
        words = asm.li(_MMIO, address)
        store = rng.random() < 0.4 and address != TIMER.address("MTIMECMP_LO")
        if store and address == TIMER.address("MTIMECMP_HI"):
            # Moving MTIMECMP up only: the compare never falls below the count by accident.
            words += [asm.addi(19, 0, -1), asm.sw(19, 0, _MMIO)]
        elif store:
            words.append(asm.sw(self.src(), 0, _MMIO))
        else:
            words.append(asm.lw(self.dest(), 0, _MMIO))
        return words

    def _arm_timer(self):
        """MTIMECMP = now + a few hundred cycles (high word first to all ones, as the map says),
        often followed by WFI, which the timer then wakes."""
        rng = self.rng
        words = [*asm.li(_MMIO, TIMER.base), asm.lw(19, TIMER.register("CYCLE_LO").offset, _MMIO),
                 asm.addi(19, 19, rng.randrange(60, 600)), asm.addi(18, 0, -1),
                 asm.sw(18, TIMER.register("MTIMECMP_HI").offset, _MMIO),
                 asm.sw(19, TIMER.register("MTIMECMP_LO").offset, _MMIO),
                 asm.sw(0, TIMER.register("MTIMECMP_HI").offset, _MMIO)]
        if rng.random() < 0.6:
            words.append(asm.wfi())
        return words


def window_program(seed):
    """The engine program of case ``seed``, for an engine whose memory is the window (before
    it is moved up)."""
    length = random.Random(seed ^ 0xE0).randint(8, 24)
    return random_engine_program(WINDOW_ENGINE, seed, length=length)


def random_soc_program(seed):
    """The random firmware of case ``seed`` (see the module docstring)."""
    rng = random.Random(seed ^ 0x50C)
    engine = window_program(seed)
    commands = [relocate(c) for c in engine.commands]
    if WINDOW_ENGINE.post_unit:
        # The post-processing unit's output address is 0 from reset, below the window: the
        # first command moves it to where relocating it would (the clamps at their reset
        # values), so the unit's state is the window program's throughout.
        commands.insert(0, relocate(encode(Funct.CONFIG_POST_OUT, out_addr=0, clamp_min=0,
                                           clamp_max=0)))
    ((_, window),) = engine.image
    image = bytearray(SOC_FUZZ.ram_bytes)
    image[WINDOW:] = _relocated_lists(engine.commands, window)
    image[DATA:WINDOW] = bytes(rng.getrandbits(8) for _ in range(WINDOW - DATA))

    code = _Code(rng)
    code.words += [*asm.li(31, HANDLER), asm.csrw("mtvec", 31)]
    for base in _BASES:
        code.words += asm.li(base, BASE)
    code.words += [*asm.li(1, MEIE | MTIE), asm.csrw("mie", 1), asm.csrrsi(0, "mstatus", 8)]
    for reg in range(1, 28):
        code.words += asm.li(reg, rng.getrandbits(32) if rng.random() < 0.7
                             else rng.randrange(-64, 64))
    for command in commands:
        if rng.random() < 0.5:
            code.filler(rng.randint(1, 6))
        code.issue(command)
    code.filler(rng.randint(0, 6))
    code.words += [HALT] * 8
    if 4 * len(code.words) > HANDLER:
        raise ValueError(f"seed {seed}: {len(code.words)} words of code do not fit below the "
                         f"handler at {HANDLER:#x}")
    image[:4 * len(code.words)] = b"".join(w.to_bytes(4, "little") for w in code.words)
    handler = _handler()
    image[HANDLER:HANDLER + 4 * len(handler)] = b"".join(w.to_bytes(4, "little")
                                                         for w in handler)
    return SocProgram(seed, bytes(image), commands, len(code.words))
