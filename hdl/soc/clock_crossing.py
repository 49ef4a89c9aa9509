"""The matrix engine on a clock of its own, seen from the core's clock.

The engine is the part of the chip that can run fast; the control core is not (issue 15). With
:attr:`rvnpu.spec.memory_map.SocConfig.engine_clock_hz` set, the SoC puts the engine in the
``engine`` clock domain and this wrapper carries what it exchanges with the core across:

* commands (core -> engine) and answers (engine -> core) through
  :class:`amaranth.lib.fifo.AsyncFIFO` s, so nothing is lost or duplicated whatever the ratio;
* the levels the core and the TIMER watch (``irq``, ``busy``, ``active``) through
  :class:`amaranth.lib.cdc.FFSynchronizer`. ``irq`` is the sticky ``list_done`` bit, a level
  until STATUS ``clear_done``, so two flip-flops are enough. ``active`` is sampled: the TIMER
  then counts core cycles in which the engine was feeding its array.

The engine's bus stays in the ``engine`` domain: the RAM gives it a port of its own there
(:class:`.dual_port_ram.DualPortSram`).
"""

from amaranth.hdl import DomainRenamer, Module
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.fifo import AsyncFIFO
from amaranth.lib.wiring import connect

from rvnpu.hdl.engine.engine import MatrixEngine, engine_signature
from rvnpu.spec.config import EngineConfig


__all__ = ["ENGINE_DOMAIN", "ClockCrossedEngine", "stream_through_fifo"]


#: The clock domain the engine runs in when it has a clock of its own.
ENGINE_DOMAIN = "engine"


def stream_through_fifo(m, source, fifo, sink):
    """Connect the stream ``source`` to the write side of ``fifo`` and its read side to the
    stream ``sink``: valid/ready on both sides, as the FIFO's ``w_rdy``/``r_rdy``."""
    m.d.comb += [
        fifo.w_data.eq(source.payload), fifo.w_en.eq(source.valid), source.ready.eq(fifo.w_rdy),
        sink.payload.eq(fifo.r_data), sink.valid.eq(fifo.r_rdy), fifo.r_en.eq(sink.ready),
    ]


class ClockCrossedEngine(wiring.Component):
    """A :class:`MatrixEngine` in the ``engine`` domain, with the ports of one in ``sync``.

    The signature is the engine's (:func:`engine_signature`): ``cmd``, ``rsp``, ``busy``,
    ``active`` and ``irq`` belong to ``sync`` (the core's clock), ``bus`` to ``engine``. The
    ``engine`` domain is not created here: the top level (the board's PLL, a testbench's
    second clock) provides it, with a reset released no earlier than ``sync``'s.

    Parameters
    ----------
    config : EngineConfig
    cmd_depth : int
        Commands the crossing holds (a power of two): the core issues that many ahead of the
        engine before it waits, as it would for a full command queue.
    """

    def __init__(self, config=EngineConfig(), *, cmd_depth=4):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config, self._cmd_depth = config, cmd_depth
        super().__init__(engine_signature(config))
        self.bus_signature = self.signature.members["bus"].signature

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        engine = MatrixEngine(self._config)
        m.submodules.engine = DomainRenamer({"sync": ENGINE_DOMAIN})(engine)
        # Each FIFO is reset by its writer's domain (AsyncFIFO empties on the write reset).
        m.submodules.cmd_fifo = cmd_fifo = AsyncFIFO(
            width=len(self.cmd.payload.as_value()), depth=self._cmd_depth,
            w_domain="sync", r_domain=ENGINE_DOMAIN)
        # Answers never pile up: the core waits for each one it asked for.
        m.submodules.rsp_fifo = rsp_fifo = AsyncFIFO(
            width=len(self.rsp.payload), depth=2, w_domain=ENGINE_DOMAIN, r_domain="sync")
        stream_through_fifo(m, self.cmd, cmd_fifo, engine.cmd)
        stream_through_fifo(m, engine.rsp, rsp_fifo, self.rsp)
        connect(m, engine.bus, wiring.flipped(self.bus))
        for name in ("irq", "busy", "active"):
            m.submodules[f"{name}_sync"] = FFSynchronizer(getattr(engine, name),
                                                          getattr(self, name), o_domain="sync")
        return m
