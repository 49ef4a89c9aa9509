"""The SoC's memory map, written once: the address decoder, the peripherals, the C header, the
linker script and the documentation (:mod:`rvnpu.gen.soc_header`, :mod:`rvnpu.gen.docs`) all read
the tables below.

RAM starts at 0 and is the engine's main-memory window, so a firmware pointer is also a DMA
address. Peripherals sit at :data:`PERIPHERAL_BASE`, one :data:`PERIPHERAL_SPAN` block each;
every register is one 32-bit word (byte and half-word writes reach it as a word write).
"""

import enum
from dataclasses import dataclass, field

from rvnpu.spec.config import ConfigError, EngineConfig, check_choice, check_int, reject_unknown


__all__ = [
    "RAM_BASE", "PERIPHERAL_BASE", "PERIPHERAL_SPAN", "CUSTOM0_OPCODE", "Access", "Bits",
    "Register", "Peripheral", "UART", "TIMER", "GPIO", "SIM", "PERIPHERALS", "SocConfig",
    "ConfigError", "RAM_STYLES", "REGFILE_STYLES", "SHIFTERS", "peripheral_at",
]


#: Byte address of the first RAM byte; RAM is also the engine's DMA window, from address 0.
RAM_BASE = 0x0000_0000

#: Byte address of the first peripheral block.
PERIPHERAL_BASE = 0x4000_0000

#: Bytes of address space each peripheral decodes (its registers repeat no further).
PERIPHERAL_SPAN = 0x1000

#: Major opcode of the instruction that carries engine commands (RISC-V custom-0).
CUSTOM0_OPCODE = 0x0B


class Access(enum.Enum):
    RW = "rw"
    RO = "ro"   #: writes are ignored
    WO = "wo"   #: reads answer 0


@dataclass(frozen=True)
class Bits:
    """A field of a register, ``width`` bits from ``lsb``."""
    name: str
    lsb: int
    width: int
    doc: str

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    offset: int           # byte offset in the peripheral's block
    width: int            # implemented bits, from bit 0; the rest read 0
    access: Access
    doc: str
    bits: tuple = ()
    reset: str = "0"      # reset value, as documentation (may depend on the configuration)

    @property
    def word(self):
        """Word offset, as the register bus carries it."""
        return self.offset // 4

    def field(self, name):
        for bits in self.bits:
            if bits.name == name:
                return bits
        raise KeyError(f"register {self.name} has no field {name!r}")


@dataclass(frozen=True)
class Peripheral:
    name: str
    index: int            # block number above PERIPHERAL_BASE
    doc: str
    registers: tuple = field(default=())

    @property
    def base(self):
        return PERIPHERAL_BASE + self.index * PERIPHERAL_SPAN

    def register(self, name):
        for register in self.registers:
            if register.name == name:
                return register
        raise KeyError(f"{self.name} has no register {name!r}")

    def address(self, name):
        return self.base + self.register(name).offset


UART = Peripheral("UART", 0, "Serial port, 8 data bits, no parity, 1 stop bit (8N1).", (
    Register("DATA", 0x0, 9, Access.RW,
             "Write: queue a byte for transmission; a byte written while TX_READY is 0 is "
             "lost. Read: take the oldest received byte from the receive FIFO; EMPTY is set "
             "(and BYTE is 0) when none was waiting.",
             (Bits("BYTE", 0, 8, "the byte"),
              Bits("EMPTY", 8, 1, "read only: no received byte was waiting"))),
    Register("STATUS", 0x4, 5, Access.RW,
             "Transmitter and receiver state. Writing 1 to a sticky error bit clears it.",
             (Bits("TX_READY", 0, 1, "the transmit buffer can take a byte"),
              Bits("TX_IDLE", 1, 1, "every written byte has left, stop bit included"),
              Bits("RX_VALID", 2, 1, "the receive FIFO holds a byte"),
              Bits("RX_OVERRUN", 3, 1, "sticky: a byte arrived while the receive FIFO was full "
                                       "and was dropped"),
              Bits("RX_FRAME_ERROR", 4, 1, "sticky: a byte arrived without its stop bit and "
                                           "was dropped")),
             reset="0x3"),
    Register("DIVISOR", 0x8, 16, Access.RW,
             "Clock cycles a bit lasts (values below 4 act as 4). Takes effect at the next "
             "byte.", reset="round(clock_hz / uart_baud)"),
))

TIMER = Peripheral("TIMER", 1, "Free-running 64-bit counters, from reset, and the machine "
                   "timer interrupt (the core's mip.MTIP): CYCLE is mtime, compared with "
                   "MTIMECMP. A SoC built with a narrower timer (SocConfig.timer_width, "
                   "RVNPU_TIMER_WIDTH) counts that many bits, wrapping there, and reads its "
                   "bits above as zero.", (
    Register("CYCLE_LO", 0x0, 32, Access.RO,
             "Clock cycles, low word. Reading it latches the high word for CYCLE_HI, so read "
             "CYCLE_LO first."),
    Register("CYCLE_HI", 0x4, 32, Access.RO,
             "Clock cycles, high word, as latched by the last read of CYCLE_LO."),
    Register("ACTIVE_LO", 0x8, 32, Access.RO,
             "Cycles in which the matrix engine fed its array, low word; reading it latches "
             "ACTIVE_HI. Counted in core clock cycles: with the engine on its own clock "
             "(engine_clock_hz) it counts the core cycles in which the synchronised level was "
             "high, an estimate of the engine's busy time, not its own cycles."),
    Register("ACTIVE_HI", 0xC, 32, Access.RO,
             "Engine-active cycles, high word, as latched by the last read of ACTIVE_LO."),
    Register("MTIMECMP_LO", 0x10, 32, Access.RW,
             "Timer compare value, low word. The timer interrupt is pending while the 64-bit "
             "CYCLE count is at least MTIMECMP, a cycle late (the line is a register), and "
             "not in the cycle after a write to MTIMECMP, so that the old value's line is "
             "never seen. To move it without a spurious interrupt, write MTIMECMP_HI all "
             "ones, then MTIMECMP_LO, then MTIMECMP_HI.",
             reset="0xffffffff"),
    Register("MTIMECMP_HI", 0x14, 32, Access.RW,
             "Timer compare value, high word; all ones (never) from reset.",
             reset="0xffffffff"),
    Register("SLEEP_LO", 0x18, 32, Access.RO,
             "Cycles the core spent waiting in WFI, low word; reading it latches SLEEP_HI."),
    Register("SLEEP_HI", 0x1C, 32, Access.RO,
             "Cycles in WFI, high word, as latched by the last read of SLEEP_LO."),
))

GPIO = Peripheral("GPIO", 2, "LEDs and buttons.", (
    Register("LEDS", 0x0, 8, Access.RW, "One bit an LED, 1 lit."),
    Register("BUTTONS", 0x4, 8, Access.RO,
             "One bit a button, 1 pressed; synchronised, not debounced."),
))

SIM = Peripheral("SIM", 3, "Simulation control; a synthesised chip ignores it.", (
    Register("EXIT", 0x0, 32, Access.WO,
             "Writing ends the simulation with the written value as the exit code (the "
             "firmware's start-up code writes the return value of main)."),
))

#: Every peripheral, in block order.
PERIPHERALS = (UART, TIMER, GPIO, SIM)


def _check_map():
    """The tables must describe a decodable map: catch a bad edit at import time."""
    for index, p in enumerate(PERIPHERALS):
        assert p.index == index, f"{p.name} is block {p.index}, listed as {index}"
        offsets = [r.offset for r in p.registers]
        assert len(set(offsets)) == len(offsets), f"{p.name} has two registers at one offset"
        for r in p.registers:
            assert r.offset % 4 == 0 and r.offset < PERIPHERAL_SPAN, f"{p.name}.{r.name}"
            assert 1 <= r.width <= 32, f"{p.name}.{r.name} width"
            for b in r.bits:
                assert b.lsb + b.width <= r.width, f"{p.name}.{r.name}.{b.name}"


_check_map()


def peripheral_at(address):
    """The peripheral whose block holds byte ``address``, or ``None``."""
    index, offset = divmod(address - PERIPHERAL_BASE, PERIPHERAL_SPAN)
    if address >= PERIPHERAL_BASE and index < len(PERIPHERALS):
        return PERIPHERALS[index]
    return None


# -- Configuration ------------------------------------------------------------------------------

#: Kinds of main RAM (:attr:`SocConfig.ram_style`).
RAM_STYLES = ("block", "dual", "single", "spram")

#: Where the core's registers live (:attr:`SocConfig.regfile_style`).
REGFILE_STYLES = ("block", "lut")

#: How the core shifts (:attr:`SocConfig.shifter`): a bit a cycle, or all at once.
SHIFTERS = ("serial", "barrel")


@dataclass(frozen=True)
class SocConfig:
    """Parameters of one SoC.

    Parameters
    ----------
    engine : EngineConfig
        The matrix engine; its ``mem_bytes`` is the RAM size.
    ram_bytes : int or None
        RAM size; must equal ``engine.mem_bytes`` (the DMA window is the whole RAM). ``None``
        (the default) takes it from the engine. To change it, change the engine's
        ``mem_bytes`` and pass ``ram_bytes=None`` to :func:`dataclasses.replace`.
    clock_hz : int
        Clock frequency, for the UART divisor and the firmware's time conversions.
    uart_baud : int
        Reset baud rate of the UART.
    with_m : bool
        The control core implements the M extension (and the firmware is built for it).
    ram_style : str
        ``"block"`` (the default): block RAM holding the firmware from configuration, with a
        read port for the core and one for the engine, and a write port they share (the
        core's write waits a cycle for the engine's). ``"dual"``: true dual-port block RAM
        holding the firmware, a read/write port each, so neither ever waits and the RAM is
        one copy where two read ports take two (Gowin; refused on the iCE40, whose block RAM
        has one write port, and on ECP5, where Yosys built a whole SoC's from flip-flops).
        ``"single"``: block RAM holding the firmware, with one port that the core and the
        engine take turns at (the engine first): one copy of the RAM where two read ports
        take two, for parts whose block RAM runs out first and that have no true dual-port
        block RAM. ``"spram"``: a single-port RAM that the core and the engine take turns
        at (the engine first), with no initial contents: the firmware sits in a ROM and is
        copied into it at reset. That is the shape of the
        iCE40 UP5K's 128 KiB of SPRAM, which leaves its 15 KiB of block RAM to the engine.
    flash_offset : int or None
        With ``ram_style="spram"``: the firmware is not in a ROM but in the board's SPI flash
        from this byte on, beside the bitstream, and is copied from there at reset. ``None``
        (the default): in a ROM of block RAM.
    regfile_style : str
        ``"block"`` (the default): the core's registers (and CSRs), a 64 x 32-bit memory read
        twice a cycle, are left to synthesis, which puts them in two block RAMs. ``"lut"``:
        they are asked for as distributed (LUT) RAM, which gives those two block RAMs back
        where the part has LUT RAM and block RAM is what runs out (the GW1NR-9).
    shifter : str
        ``"serial"`` (the default): the core shifts a bit a cycle, 4 + n cycles a shift by n,
        the smallest shifter (where logic cells run out: the iCE40 UP5K). ``"barrel"``: 5
        cycles whatever n, for about 190 LUTs more (:class:`rvnpu.hdl.core.cpu.RiscvCore`).
    memory_stage : bool
        The core makes a load's or store's address in one cycle, into a register, and the
        access in the next (5 cycles instead of 4), and fetches from ``pc``, so that no sum
        runs on through the address decoder into the RAM's enables (default False: about 70
        logic cells more, where they run out).
    engine_clock_hz : int or None
        ``None`` (the default): the engine runs on the core's clock, one clock domain. A
        frequency: the engine (array, units, local memories) runs on its own clock (the
        ``engine`` domain) at that frequency, so that the control core does not set its pace;
        commands, answers and status cross between the clocks (:mod:`rvnpu.hdl.soc.clock_crossing`)
        and the RAM has a port in each (true dual-port block RAM, whether ``ram_style`` is
        ``"block"`` or ``"dual"``; a single-port RAM is refused).
        ``clock_hz`` stays the core's clock (TIMER, UART).
    command_slice : bool
        With one clock: a register between the core and the engine on the command stream
        (default True). A command then reaches the engine a cycle later, and the engine's
        front end, which decodes a command's fields (products, extents) as it takes it, no
        longer does so in the cycle the core reads them from its register file: that path set
        the clock of the ECP5 boards. The core issues a command every three cycles at most, so
        only the latency of a command with an answer grows, by a cycle. False saves the
        register's flip-flops (about 70) where logic cells run out (the iCE40 UP5K). With
        ``engine_clock_hz`` the clock crossing registers commands anyway.
    bus_register : bool
        A register on the engine's bus requests before the RAM (default False; needs the
        RAM's true dual-port form, ``engine_clock_hz`` or ``ram_style="dual"``): the engine's
        reads are answered a cycle later and its writes land a cycle later, in order, and
        the engine's bus arbiter no longer drives the block RAM's write enables and data in
        the same cycle (a path across the chip, which set the ULX3S-25F's engine clock).
    timer_width : int
        Bits the TIMER's counters keep, 32 to 64 (default 64). A narrower count wraps at
        ``2**timer_width`` and its high words read the bits above 32 (zero at 32); MTIMECMP
        keeps 64 (:class:`rvnpu.hdl.soc.timer.Timer`). 32 saves about 250 logic cells where
        they run out (the iCE40 UP5K), for a count that wraps every 2**32 cycles.
    uart_rx_depth : int
        Bytes the UART's receive FIFO holds, 1 to 64 (default 4). The FIFO is built from
        flip-flops; 1 (a byte register) saves about 75 logic cells on the iCE40, for firmware
        that must read each byte before the next one ends (a byte's time: 10 bits at
        ``uart_baud``) or see RX_OVERRUN.
    """

    engine: EngineConfig = EngineConfig()
    ram_bytes: int | None = None
    clock_hz: int = 24_000_000
    uart_baud: int = 115_200
    with_m: bool = True
    ram_style: str = "block"
    flash_offset: int | None = None
    regfile_style: str = "block"
    shifter: str = "serial"
    memory_stage: bool = False
    engine_clock_hz: int | None = None
    command_slice: bool = True
    bus_register: bool = False
    timer_width: int = 64
    uart_rx_depth: int = 4

    def __post_init__(self):
        if not isinstance(self.engine, EngineConfig):
            raise ConfigError(f"engine must be an EngineConfig, not {self.engine!r}")
        if self.ram_bytes is None:
            object.__setattr__(self, "ram_bytes", self.engine.mem_bytes)
        elif self.ram_bytes != self.engine.mem_bytes:
            raise ConfigError(f"ram_bytes must equal engine.mem_bytes "
                              f"({self.engine.mem_bytes}), not {self.ram_bytes!r}")
        if self.ram_bytes > PERIPHERAL_BASE - RAM_BASE:
            raise ConfigError(f"ram_bytes must be at most {PERIPHERAL_BASE - RAM_BASE:#x} "
                              f"(the peripherals start there), not {self.ram_bytes!r}")
        check_int("clock_hz", self.clock_hz, 1_000, 2_000_000_000)
        check_int("uart_baud", self.uart_baud, 1, 10_000_000)
        divisor = self.uart_divisor
        if not 4 <= divisor < 1 << UART.register("DIVISOR").width:
            raise ConfigError(f"uart_baud must give a divisor (clock_hz / uart_baud) from 4 to "
                              f"{(1 << UART.register('DIVISOR').width) - 1}, not {divisor} "
                              f"({self.uart_baud!r} baud at {self.clock_hz} Hz)")
        if not isinstance(self.with_m, bool):
            raise ConfigError(f"with_m must be True or False, not {self.with_m!r}")
        check_choice("ram_style", self.ram_style, RAM_STYLES)
        check_choice("regfile_style", self.regfile_style, REGFILE_STYLES)
        check_choice("shifter", self.shifter, SHIFTERS)
        if self.memory_stage in (0, 1) and isinstance(self.memory_stage, int):
            object.__setattr__(self, "memory_stage", bool(self.memory_stage))
        else:
            raise ConfigError(f"memory_stage must be true or false (1 or 0), "
                              f"not {self.memory_stage!r}")
        if self.flash_offset is not None:
            check_int("flash_offset", self.flash_offset, 0, (1 << 24) - self.ram_bytes)
            if self.ram_style != "spram":
                raise ConfigError("flash_offset needs ram_style 'spram' (a RAM the firmware "
                                  "is copied into)")
        if not isinstance(self.command_slice, bool):
            raise ConfigError(f"command_slice must be True or False, "
                              f"not {self.command_slice!r}")
        if not isinstance(self.bus_register, bool):
            raise ConfigError(f"bus_register must be True or False, not {self.bus_register!r}")
        if self.bus_register and self.engine_clock_hz is None and self.ram_style != "dual":
            raise ConfigError("bus_register needs the RAM's true dual-port form "
                              "(engine_clock_hz, or ram_style 'dual')")
        check_int("timer_width", self.timer_width, 32, 64)
        check_int("uart_rx_depth", self.uart_rx_depth, 1, 64)
        if self.engine_clock_hz is not None:
            check_int("engine_clock_hz", self.engine_clock_hz, 1_000, 2_000_000_000)
            if self.ram_style not in ("block", "dual"):
                raise ConfigError("engine_clock_hz (a clock of the engine's own) needs "
                                  "ram_style 'block' or 'dual': a single-port RAM has no port "
                                  "for a second clock")

    @property
    def split_clocks(self):
        """The engine runs on a clock of its own (:attr:`engine_clock_hz` is set)."""
        return self.engine_clock_hz is not None

    @property
    def uart_divisor(self):
        """Reset value of UART.DIVISOR: clock cycles a bit."""
        return (self.clock_hz + self.uart_baud // 2) // self.uart_baud

    def to_dict(self):
        return {"engine": self.engine.to_dict(), "ram_bytes": self.ram_bytes,
                "clock_hz": self.clock_hz, "uart_baud": self.uart_baud, "with_m": self.with_m,
                "ram_style": self.ram_style, "flash_offset": self.flash_offset,
                "regfile_style": self.regfile_style,
                # Only when set: a one-clock configuration keeps the dictionary (and the hash
                # of it that names its simulator builds) it had before the option existed.
                **({"engine_clock_hz": self.engine_clock_hz} if self.split_clocks else {}),
                **({} if self.command_slice else {"command_slice": False}),
                **({} if self.shifter == "serial" else {"shifter": self.shifter}),
                **({"memory_stage": True} if self.memory_stage else {}),
                **({"bus_register": True} if self.bus_register else {}),
                **({} if self.timer_width == 64 else {"timer_width": self.timer_width}),
                **({} if self.uart_rx_depth == 4 else {"uart_rx_depth": self.uart_rx_depth})}

    @classmethod
    def from_dict(cls, data):
        reject_unknown(cls, data, "SoC")
        data = dict(data)
        if isinstance(data.get("engine"), dict):
            data["engine"] = EngineConfig.from_dict(data["engine"])
        return cls(**data)
