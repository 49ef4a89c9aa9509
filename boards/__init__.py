"""The boards the chip can be built for, found from the modules of this package.

Each module describes its boards in a ``BOARDS`` tuple of :class:`Board`, so adding a board is
adding one file; nothing here names a board.
"""

import importlib
import pkgutil
from dataclasses import dataclass, replace

from rvnpu.spec.config import ConfigError, EngineConfig


__all__ = ["Board", "BOARDS", "board"]


@dataclass(frozen=True)
class Board:
    """One board and the design it gets by default.

    Parameters
    ----------
    name : str
        What ``rvnpu build --board`` takes.
    platform : type
        The board's Amaranth platform (its part, pins and input clock).
    clock_hz : int
        Target clock of the SoC; a PLL makes it from the board's oscillator.
    engine : EngineConfig
        The default design, sized to fit the part.
    program : tuple of str
        The programmer's command line; ``{bitstream}`` stands for the bitstream's path.
    bitstream : str
        Suffix of the file the programmer takes (``.bin`` or ``.bit``).
    ram_style : str
        The SoC's main RAM (:attr:`rvnpu.spec.memory_map.SocConfig.ram_style`): ``"block"``,
        or ``"spram"`` where block RAM is too scarce to hold it.
    with_m : bool
        The control core has the M extension.
    flash_offset : int or None
        With ``ram_style="spram"``: the firmware goes into the configuration flash from this
        byte on, after the bitstream in the same image, and is copied into RAM at reset
        (:attr:`rvnpu.spec.memory_map.SocConfig.flash_offset`); the platform then has an
        ``spi_flash`` resource. ``None``: it is in a ROM of block RAM.
    regfile_style : str
        Where the core's registers go (:attr:`rvnpu.spec.memory_map.SocConfig.regfile_style`):
        ``"block"`` RAM, or ``"lut"`` RAM where block RAM is the scarcer.
    shifter : str
        The core's shifter (:attr:`rvnpu.spec.memory_map.SocConfig.shifter`): ``"serial"``,
        or ``"barrel"`` where LUTs are to spare.
    memory_stage : bool
        The core's loads and stores take a cycle more, their address from a register
        (:attr:`rvnpu.spec.memory_map.SocConfig.memory_stage`).
    nextpnr_options : tuple of str
        Options added to nextpnr's command line for this board's builds.
    placement_seed : int or None
        nextpnr's ``--seed`` for this board's builds; ``None``: nextpnr's own. Whether router2
        converges on a crowded part can turn on the placement, and so on the seed; a build
        whose route stalls tries the next seeds (:data:`~rvnpu.boards.flow.PLACEMENTS`).
    engine_clock_hz : int or None
        The engine's own clock, from a second output of the PLL
        (:attr:`rvnpu.spec.memory_map.SocConfig.engine_clock_hz`); ``None``: the SoC's clock.
    command_slice : bool
        Commands pass a register between the core and the engine
        (:attr:`rvnpu.spec.memory_map.SocConfig.command_slice`).
    bus_register : bool
        The engine's bus requests pass a register before the RAM
        (:attr:`rvnpu.spec.memory_map.SocConfig.bus_register`), where the RAM has its
        dual-port form (the engine on a clock of its own, or ``ram_style="dual"``).
    timer_width : int
        Bits the TIMER's counters keep (:attr:`rvnpu.spec.memory_map.SocConfig.timer_width`):
        64, or 32 where logic cells run out.
    uart_rx_depth : int
        Bytes the UART receives ahead of the firmware
        (:attr:`rvnpu.spec.memory_map.SocConfig.uart_rx_depth`).
    """

    name: str
    platform: type
    clock_hz: int
    engine: EngineConfig
    program: tuple
    bitstream: str
    doc: str = ""
    ram_style: str = "block"
    with_m: bool = True
    flash_offset: int | None = None
    regfile_style: str = "block"
    shifter: str = "serial"
    memory_stage: bool = False
    nextpnr_options: tuple = ()
    placement_seed: int | None = None
    engine_clock_hz: int | None = None
    command_slice: bool = True
    bus_register: bool = False
    timer_width: int = 64
    uart_rx_depth: int = 4

    def soc_config(self, engine=None, clock_hz=None, engine_clock_hz=None):
        """The SoC built for this board (its defaults, or ``engine``, ``clock_hz`` and
        ``engine_clock_hz``; an ``engine_clock_hz`` of 0 puts the engine on the SoC's clock)."""
        from rvnpu.spec.memory_map import SocConfig
        if engine_clock_hz is None:
            engine_clock_hz = self.engine_clock_hz
        # The bus register needs the RAM's dual-port form: with the engine put on the SoC's
        # clock, a board's block RAM has none, and the register goes with the second clock.
        dual_port = self.dual_port_ram(engine_clock_hz)
        return SocConfig(engine=self.engine if engine is None else engine,
                         clock_hz=self.clock_hz if clock_hz is None else clock_hz,
                         ram_style=self.ram_style, with_m=self.with_m,
                         flash_offset=self.flash_offset, regfile_style=self.regfile_style,
                         shifter=self.shifter, memory_stage=self.memory_stage,
                         engine_clock_hz=engine_clock_hz or None,
                         command_slice=self.command_slice,
                         bus_register=self.bus_register and dual_port,
                         timer_width=self.timer_width, uart_rx_depth=self.uart_rx_depth)

    def dual_port_ram(self, engine_clock_hz):
        """Whether the SoC's RAM has a port of the engine's own (what the bus register
        needs): with the engine on a clock of its own, or ``ram_style="dual"``."""
        return bool(engine_clock_hz) or self.ram_style == "dual"

    def simulated_config(self, engine=None, clock_hz=None, engine_clock_hz=None):
        """:meth:`soc_config` as simulations of the whole design run it: a UART eight clocks
        a bit, so that printing does not set the pace, and the RAM holding the firmware from
        the start (booting from a ROM or the flash is tested on its own), with as many ports
        as on the board: SPRAM becomes one port of RAM that holds the image."""
        config = self.soc_config(engine, clock_hz, engine_clock_hz)
        ram_style = "single" if config.ram_style == "spram" else config.ram_style
        return replace(config, uart_baud=config.clock_hz // 8, ram_style=ram_style,
                       flash_offset=None)

    def program_command(self, bitstream):
        return [arg.format(bitstream=bitstream) for arg in self.program]


def _discover():
    boards = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for b in getattr(module, "BOARDS", ()):
            if b.name in boards:
                raise RuntimeError(f"board {b.name!r} is described twice")
            boards[b.name] = b
    return dict(sorted(boards.items()))


#: Every known board, by name.
BOARDS = _discover()


def board(name):
    """The board called ``name``; a :class:`ConfigError` listing the known ones otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ConfigError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None
