"""GPIO: LED outputs and button inputs."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from rvnpu.spec.memory_map import GPIO
from rvnpu.hdl.soc.regbus import RegisterSignature


__all__ = ["Gpio"]

_LEDS, _BUTTONS = GPIO.register("LEDS"), GPIO.register("BUTTONS")


class Gpio(wiring.Component):
    """Registers of :data:`.memory_map.GPIO`.

    Members
    -------
    bus : In(RegisterSignature)
    leds : Out
        Driven by ``LEDS``.
    buttons : In
        Asynchronous inputs, synchronised before ``BUTTONS`` reads them.
    """

    bus: In(RegisterSignature())
    leds: Out(_LEDS.width)
    buttons: In(_BUTTONS.width)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        buttons = Signal(_BUTTONS.width)
        m.submodules.buttons_sync = FFSynchronizer(self.buttons, buttons)
        with m.If(bus.w_en & (bus.addr == _LEDS.word)):
            m.d.sync += self.leds.eq(bus.w_data)
        m.d.sync += bus.r_data.eq(0)
        with m.If(bus.r_en):
            with m.Switch(bus.addr):
                with m.Case(_LEDS.word):
                    m.d.sync += bus.r_data.eq(self.leds)
                with m.Case(_BUTTONS.word):
                    m.d.sync += bus.r_data.eq(buttons)
        return m
