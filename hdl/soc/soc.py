"""The SoC: the control core, the matrix engine sharing the RAM with it, and the peripherals."""

from amaranth.hdl import Module, Mux, ResetInserter
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect

from rvnpu.hdl.soc.boot import BootCopier
from rvnpu.hdl.soc.clock_crossing import ENGINE_DOMAIN, ClockCrossedEngine
from rvnpu.hdl.soc.dual_port_ram import DualPortSram
from rvnpu.hdl.soc.flash_boot import FlashBootCopier, FlashSignature
from rvnpu.hdl.core.cpu import RiscvCore
from rvnpu.hdl.soc.decoder import AddressDecoder
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine.command_slice import CommandSlice
from rvnpu.hdl.engine.engine import MatrixEngine
from rvnpu.hdl.soc.gpio import Gpio
from rvnpu.spec.memory_map import GPIO, RAM_BASE, SIM, SocConfig
from rvnpu.hdl.soc.sim_control import SimControl
from rvnpu.hdl.soc.sram import BusSram
from rvnpu.hdl.soc.timer import Timer
from rvnpu.hdl.soc.uart import Uart


__all__ = ["Soc", "image_words"]


def image_words(image, config):
    """``image`` (bytes, loaded at :data:`.memory_map.RAM_BASE`) as little-endian RAM words
    of the engine's bus width."""
    size = config.engine.bus_bytes
    image = bytes(image)
    if len(image) > config.ram_bytes:
        raise ValueError(f"firmware image of {len(image)} bytes does not fit the "
                         f"{config.ram_bytes}-byte RAM")
    image += bytes(-len(image) % size)
    return [int.from_bytes(image[i:i + size], "little") for i in range(0, len(image), size)]


class Soc(wiring.Component):
    """Core + RAM + engine + UART, timer, GPIO and simulation control.

    The RAM has two read ports: the engine's DMA uses one at its full bus width, the core the
    other through the address decoder, so DMA and the core's fetches never wait for each other.
    They share one write port (the iCE40's block RAM allows no more); the engine's writes come
    first and the core waits a cycle when both write. With ``config.ram_style="dual"`` each
    has a read/write port of its own (:class:`.dual_port_ram.DualPortSram`, true dual-port
    block RAM), so neither ever waits and the RAM is one copy where two read ports take two.
    Commands pass a register on their way to the engine (``config.command_slice``).

    With ``config.engine_clock_hz`` the engine runs in the ``engine`` clock domain, which the
    top level provides beside ``sync`` (:class:`.clock_crossing.ClockCrossedEngine`), and
    the RAM has a read/write port in each domain (:class:`.dual_port_ram.DualPortSram`).

    Parameters
    ----------
    config : SocConfig
    image : bytes
        Initial RAM contents from address 0 (a firmware image); the rest is zero. A simulation
        may leave it empty and write the RAM before releasing reset. With
        ``config.flash_offset`` only its length is built in: the bytes go into the flash.

    Members
    -------
    uart_tx : Out
    uart_rx : In
    leds : Out
    buttons : In
    sim_exit_valid : Out
        Firmware wrote ``SIM.EXIT``; stays high until reset.
    sim_exit_code : Out
        The value written.
    flash : Out(:class:`.flash_boot.FlashSignature`)
        Only with ``config.flash_offset``: the SPI flash the firmware is read from.
    """

    def __init__(self, config=SocConfig(), *, image=b""):
        if not isinstance(config, SocConfig):
            raise TypeError(f"config must be a SocConfig, not {config!r}")
        self._config = config
        self._words = image_words(image, config)
        members = {
            "uart_tx":        Out(1, init=1),
            "uart_rx":        In(1, init=1),
            "leds":           Out(GPIO.register("LEDS").width),
            "buttons":        In(GPIO.register("BUTTONS").width),
            "sim_exit_valid": Out(1),
            "sim_exit_code":  Out(SIM.register("EXIT").width),
        }
        if config.flash_offset is not None:
            members["flash"] = Out(FlashSignature())
        super().__init__(members)

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        c = self._config
        e = c.engine
        core = RiscvCore(with_m=c.with_m, reset_vector=RAM_BASE,
                         regfile_style=c.regfile_style, shifter=c.shifter,
                         memory_stage=c.memory_stage)
        spram = c.ram_style == "spram"
        depth = c.ram_bytes // e.bus_bytes
        if c.split_clocks:
            m.submodules.engine = engine = ClockCrossedEngine(e)
        else:
            m.submodules.engine = engine = MatrixEngine(e)
        if c.split_clocks or c.ram_style == "dual":
            m.submodules.ram = ram = DualPortSram(
                depth=depth, data_width=e.bus_width,
                addr_width=engine.bus_signature.addr_width,
                bus_domain=ENGINE_DOMAIN if c.split_clocks else "sync", init=self._words,
                registered_requests=c.bus_register)
        else:
            m.submodules.ram = ram = BusSram(
                depth=depth, data_width=e.bus_width, addr_width=engine.bus_signature.addr_width,
                with_host=True, single_port=c.ram_style != "block",
                init=() if spram else self._words)
        m.submodules.decoder = decoder = AddressDecoder(ram_bytes=c.ram_bytes,
                                                        ram_width=e.bus_width)
        m.submodules.uart = uart = Uart(divisor=c.uart_divisor, rx_depth=c.uart_rx_depth)
        m.submodules.timer = timer = Timer(width=c.timer_width)
        m.submodules.gpio = gpio = Gpio()
        m.submodules.sim = sim = SimControl()

        connect(m, core.bus, decoder.cpu)
        if c.command_slice and not c.split_clocks:
            m.submodules.cmd_slice = cmd_slice = CommandSlice(CommandLayout)
            connect(m, core.cmd, cmd_slice.i)
            connect(m, cmd_slice.o, engine.cmd)
        else:
            connect(m, core.cmd, engine.cmd)
        connect(m, engine.rsp, core.rsp)
        connect(m, engine.bus, ram.bus)
        m.d.comb += [decoder.ram.rdata.eq(ram.host_rdata), decoder.ram.busy.eq(ram.host_busy)]
        host_signals = {"addr": decoder.ram.addr, "we": decoder.ram.we,
                        "wdata": decoder.ram.wdata}
        if spram:
            # The RAM starts empty: the core waits in reset while the firmware is copied in
            # from its ROM or the flash, which has the RAM's host port until then.
            if c.flash_offset is None:
                boot = BootCopier(self._words, depth=depth, width=e.bus_width)
            else:
                boot = FlashBootCopier(words=len(self._words), offset=c.flash_offset,
                                       depth=depth, width=e.bus_width,
                                       wake_cycles=-(-c.clock_hz * 3 // 1_000_000) + 1)
                connect(m, wiring.flipped(self.flash), boot.flash)
            m.submodules.boot = boot
            m.d.comb += boot.ram.busy.eq(ram.host_busy)
            m.submodules.core = ResetInserter(~boot.done)(core)
            host_signals = {name: Mux(boot.done, value, getattr(boot.ram, name))
                            for name, value in host_signals.items()}
        else:
            m.submodules.core = core
        m.d.comb += [getattr(ram, f"host_{name}").eq(value)
                     for name, value in host_signals.items()]
        connect(m, decoder.uart, uart.bus)
        connect(m, decoder.timer, timer.bus)
        connect(m, decoder.gpio, gpio.bus)
        connect(m, decoder.sim, sim.bus)

        m.d.comb += [
            timer.active.eq(engine.active),
            timer.sleeping.eq(core.sleeping),
            core.irq_timer.eq(timer.irq),
            core.irq_external.eq(engine.irq),
            self.uart_tx.eq(uart.tx),
            uart.rx.eq(self.uart_rx),
            self.leds.eq(gpio.leds),
            gpio.buttons.eq(self.buttons),
            self.sim_exit_valid.eq(sim.exit_valid),
            self.sim_exit_code.eq(sim.exit_code),
        ]
        return m
